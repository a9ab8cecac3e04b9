"""MLflow helpers used by stage entry points (never by the library). One parent run per pipeline run,
one child run per stage; run ids are passed explicitly because Prefect runs tasks in threads (mlflow#13456)."""

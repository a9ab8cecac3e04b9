"""Lightning training library: datasets, adversarial losses, LightningModules and Trainer helpers.

Deliberately free of experiment tracking / orchestration imports (mlflow, prefect, dvc): stages wire those in.
"""

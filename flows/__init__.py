"""Prefect orchestration for Sora: the retrain flow (one task per DVC stage) and its cron deployment."""

"""Cron deployment of the retrain flow.

`sora schedule --cron "0 3 * * *"` serves it: a long-running process that executes the scheduled runs. There
is no register-only mode, because a deployment nobody serves shows runs that never start; to run on workers,
deploy to a process work pool (README). Scheduled runs are created by a Prefect server's scheduler, so point
PREFECT_API_URL at a running server (`make prefect-ui`): Prefect's ephemeral mode runs no scheduler.

The deployment has concurrency_limit=1 with the CANCEL_NEW collision strategy, so the server cancels a run
that comes due while the previous one is still running instead of queueing it.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_NAME = "sora-retrain"
DEFAULT_CRON = "0 3 * * *"


def build_deployment(
    name: str = DEFAULT_NAME,
    cron: str = DEFAULT_CRON,
    timezone: str | None = None,
    parameters: dict[str, Any] | None = None,
):
    """RunnerDeployment of the retrain flow on a cron schedule, at most one run at a time."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron

    from flows.retrain import retrain

    return retrain.to_deployment(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        parameters=parameters or {},
        tags=["sora"],
        description=f"Sora retrain on cron '{cron}'"
        + (f" ({timezone})" if timezone else " (UTC)")
        + "; overlapping runs are cancelled/skipped.",
    )


def server_configured() -> bool:
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"))


def serve_schedule(name: str = DEFAULT_NAME, cron: str = DEFAULT_CRON, timezone: str | None = None) -> None:
    """Apply the deployment and execute its scheduled runs in this process until interrupted (Ctrl-C)."""
    from prefect import serve

    serve(build_deployment(name, cron, timezone), limit=1)

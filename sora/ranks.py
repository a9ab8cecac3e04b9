"""Which process of a multi-process run this is, read from the environment before any framework starts."""

from __future__ import annotations

import os

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_rank_zero() -> bool:
    """Lightning's ddp launcher, torchrun and SLURM start the stage once per process with one of these set;
    only global rank 0 talks to MLflow and writes outputs."""
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in RANK_VARIABLES)

"""Shared by the training stages (pretrain, finetune, harden, prune): data, loggers, resumable fits."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
from lightning.pytorch.loggers.logger import Logger

from sora.config import Params
from sora.data.vocab import Vocab
from sora.stages.common import PLOTS, PROCESSED, VOCAB, require
from sora.tracking.runs import is_rank_zero, stage_run, tracking_uri

WORK = Path(".sora/work")


def load_splits(*names: str) -> dict[str, pd.DataFrame]:
    paths = {n: PROCESSED / f"{n}.parquet" for n in names}
    require(VOCAB, *paths.values())
    return {n: pd.read_parquet(p) for n, p in paths.items()}


def load_vocab() -> Vocab:
    require(VOCAB)
    return Vocab.load(VOCAB)


def maybe_stage_run(stage: str, params: Params, blocks: tuple[str, ...], inputs: list[str]):
    """The MLflow child run on rank zero; nothing on other DDP ranks (one run per stage, not per process)."""
    return stage_run(stage, params, blocks, inputs) if is_rank_zero() else nullcontext(None)


def log_final(mlflow_module, metrics: dict) -> None:
    """The stage's summary numbers as `final_*` metrics of its run (rank zero only: mlflow is None elsewhere)."""
    if mlflow_module is not None:
        mlflow_module.log_metrics(
            {f"final_{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        )


def loggers(params: Params, mlflow_module, stage: str) -> list:
    """MLflow (rank-zero only inside Lightning) logging into this stage's child run, + epoch CSV for DVC plots."""
    from lightning.pytorch.loggers import MLFlowLogger

    out: list = [EpochCSV(PLOTS / f"{stage}.csv", WORK / stage / "epochs.csv")]
    if mlflow_module is not None:
        run_id = mlflow_module.active_run().info.run_id
        out.insert(
            0,
            MLFlowLogger(
                experiment_name=params.tracking.experiment,
                tracking_uri=tracking_uri(params),
                run_id=run_id,
                log_model=False,
            ),
        )
    return out


class EpochCSV(Logger):
    """A Lightning logger that keeps one row per epoch (epoch-level metrics only) in a CSV: the DVC plot
    source. Rank zero only, like every Lightning logger."""

    def __init__(self, path: Path, work_copy: Path | None = None):
        """`work_copy` lives in the fit's work dir: a resumed fit reloads the epochs it already has (DVC
        deletes `path`, a stage output, before rerunning the stage)."""
        super().__init__()
        self.path, self.work_copy = Path(path), work_copy
        self.rows: dict[int, dict[str, float]] = {}
        if work_copy is not None and Path(work_copy).exists():
            for row in pd.read_csv(work_copy).to_dict("records"):
                self.rows[int(row["epoch"])] = {k: v for k, v in row.items() if pd.notna(v)}

    @property
    def name(self) -> str:
        return "epoch_csv"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from lightning.pytorch.utilities import rank_zero_only

        if rank_zero_only.rank != 0 or "epoch" not in metrics:
            return
        epoch = int(metrics["epoch"])
        row = self.rows.setdefault(epoch, {"epoch": epoch})
        row.update({k: float(v) for k, v in metrics.items() if k != "epoch" and not k.endswith("_step")})
        self._write()

    def _write(self) -> None:
        from sora.io import atomic_path

        columns = sorted({k for r in self.rows.values() for k in r} - {"epoch"})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for path in filter(None, (self.path, self.work_copy)):
            if not Path(path).parent.exists():  # the work dir is gone once the fit has finished
                continue
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=["epoch", *columns])
                writer.writeheader()
                for epoch in sorted(self.rows):
                    writer.writerow(self.rows[epoch])


def fingerprint(params: Params, blocks: tuple[str, ...], inputs: list[Path]) -> str:
    """Hash of the params blocks and input files a fit depends on: resume only when it is unchanged."""
    h = hashlib.sha256(
        json.dumps(params.model_dump(by_alias=True, include=set(blocks)), sort_keys=True, default=str).encode()
    )
    for path in inputs:
        for f in sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()):
            h.update(f.name.encode())
            h.update(hashlib.md5(f.read_bytes()).digest())
    return h.hexdigest()


class ResumableFit:
    """A work dir (.sora/work/<stage>) holding checkpoints of an interrupted fit and the fingerprint of
    what produced them. A rerun with the same fingerprint resumes from last.ckpt; anything else starts fresh.
    On success the checkpoints are copied to the stage's outputs and the work dir is removed."""

    def __init__(self, stage: str, print_fn=print):
        self.dir = WORK / stage
        self.print = print_fn

    def prepare(self, fp: str) -> str | None:
        stamp = self.dir / "fingerprint"
        last = self.dir / "last.ckpt"
        if is_rank_zero():
            if stamp.exists() and stamp.read_text() == fp and last.exists():
                self.print(f"resuming from {last} (params and data unchanged since it was written)")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir.mkdir(parents=True)
                stamp.write_text(fp)
        return str(last) if last.exists() and stamp.exists() and stamp.read_text() == fp else None

    def finish(self, out_dir: Path) -> None:
        if not is_rank_zero():
            return
        from sora.io import atomic_path

        out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("best.ckpt", "last.ckpt"):
            if (self.dir / name).exists():
                with atomic_path(out_dir / name) as tmp:
                    shutil.copyfile(self.dir / name, tmp)
        shutil.rmtree(self.dir, ignore_errors=True)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start

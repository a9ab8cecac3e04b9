"""Pipeline parent run + stage child runs.

How stages of one pipeline run find their shared parent run:
1. `SORA_PARENT_RUN_ID` in the environment (set by `sora run` and the Prefect flow), else
2. the `dvc repro` process that launched this stage: its pid + start time key a small state file, so every
   stage of one plain `dvc repro` shares a parent, else
3. a new parent run for this stage alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sora.config import Params

PARENT_ENV = "SORA_PARENT_RUN_ID"
STATE_FILE = Path(".sora/pipeline_run.json")


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_rank_zero() -> bool:
    """Lightning's ddp launcher, torchrun and SLURM start the stage once per process with one of these set;
    only global rank 0 talks to MLflow and writes outputs."""
    return all(int(os.environ.get(name, "0") or 0) == 0 for name in RANK_VARIABLES)


def tracking_uri(params: Params, root: Path | None = None) -> str:
    """Relative sqlite paths resolve against the repo root so stages, flow and UI share one store."""
    uri = params.tracking.uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(((root or Path.cwd()) / uri[len(prefix) :]).resolve())
    return uri


def sqlite_store(params: Params) -> Path | None:
    """The database file of a local sqlite tracking store (None for a server URI)."""
    uri = tracking_uri(params)
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def setup_mlflow(params: Params):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(params))
    store = sqlite_store(params)
    if store is not None:
        # keep artifacts beside the store, not wherever the process happens to run
        os.environ.setdefault("MLFLOW_ARTIFACTS_DESTINATION", str(store.parent / "mlruns"))
    experiment = mlflow.get_experiment_by_name(params.tracking.experiment)
    if experiment is None:
        artifact_location = (store.parent / "mlruns").as_uri() if store is not None else None
        exp_id = mlflow.create_experiment(params.tracking.experiment, artifact_location=artifact_location)
    else:
        exp_id = experiment.experiment_id
    return mlflow, exp_id


def git_dirty() -> bool | None:
    """True when tracked files differ from the commit (the commit alone does not reproduce the run)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _dvc_ancestor() -> str | None:
    """'pid:create_time' of the nearest `dvc` ancestor process, or None."""
    import psutil

    proc = psutil.Process().parent()
    while proc is not None:
        try:
            cmd = " ".join(proc.cmdline())
            if "dvc" in Path(proc.cmdline()[0]).name or " -m dvc" in cmd or "/dvc " in cmd + " ":
                return f"{proc.pid}:{proc.create_time()}"
            proc = proc.parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            return None
    return None


def create_parent_run(params: Params, name: str = "pipeline", tags: dict[str, str] | None = None) -> str:
    mlflow, exp_id = setup_mlflow(params)
    client = mlflow.MlflowClient()
    all_tags = {"sora.kind": "pipeline", "mlflow.runName": name}
    if commit := git_commit():
        all_tags["mlflow.source.git.commit"] = commit
    all_tags.update(tags or {})
    return client.create_run(exp_id, tags=all_tags, run_name=name).info.run_id


def resolve_parent_run(params: Params) -> str:
    if run_id := os.environ.get(PARENT_ENV):
        return run_id
    key = _dvc_ancestor()
    if key and STATE_FILE.exists():
        try:
            state = json.loads(STATE_FILE.read_text())
        except json.JSONDecodeError:
            state = {}  # a torn file from a killed run: start a new parent
        if state.get("dvc_process") == key:
            return state["parent_run_id"]
    run_id = create_parent_run(params, name="dvc repro" if key else "stage")
    if key:
        from sora.io import atomic_path

        STATE_FILE.parent.mkdir(exist_ok=True)
        with atomic_path(STATE_FILE) as tmp:
            tmp.write_text(json.dumps({"dvc_process": key, "parent_run_id": run_id}))
    return run_id


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = value


def flat_params(blocks: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _flatten("", blocks, out)
    return out


def dvc_hashes(paths: list[str]) -> dict[str, str]:
    """md5 of each path as recorded in dvc.lock (the output of the stage that produced it)."""
    import yaml

    lock = Path("dvc.lock")
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    hashes: dict[str, str] = {}
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path") in paths and out.get("md5"):
                hashes[out["path"]] = out["md5"]
    return hashes


@contextmanager
def stage_run(stage: str, params: Params, blocks: tuple[str, ...], inputs: list[str] = ()) -> Iterator[Any]:
    """Child run of the pipeline parent for one stage; logs params of `blocks`, git commit, input hashes.
    Yields the `mlflow` module with the child run active (only call from rank zero)."""
    mlflow, exp_id = setup_mlflow(params)
    parent_id = resolve_parent_run(params)
    tags = {"mlflow.parentRunId": parent_id, "sora.stage": stage, "sora.kind": "stage"}
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = str(git_dirty())
    status = "FAILED"
    try:
        with mlflow.start_run(experiment_id=exp_id, run_name=stage, tags=tags):
            dumped = params.model_dump(by_alias=True)
            mlflow.log_params(flat_params({b: dumped[b] for b in blocks}))
            mlflow.log_dict(dumped, "resolved_params.yaml")  # the whole validated config, defaults included
            hashes = dvc_hashes(list(inputs))
            if hashes:
                from mlflow.data.dataset_source_registry import resolve_dataset_source
                from mlflow.data.meta_dataset import MetaDataset

                for path, md5 in hashes.items():
                    source = resolve_dataset_source(Path(path).resolve().as_uri())
                    mlflow.log_input(MetaDataset(source, name=path, digest=md5[:20]), context=stage)
                mlflow.set_tags({f"dvc.md5.{p}": h for p, h in hashes.items()})
            yield mlflow
        status = "FINISHED"
    finally:
        if not os.environ.get(PARENT_ENV):
            # Parents made by a plain `dvc repro` (or a lone stage) have no owner to close them: each stage
            # closes its parent on exit, so the last one leaves it right. The Prefect flow closes its own.
            mlflow.MlflowClient().set_terminated(parent_id, status)

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
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sora.config import Params
from sora.pipeline.spec import StageSpec
from sora.tracking.relocate import relocate_store

PARENT_ENV = "SORA_PARENT_RUN_ID"
STATE_FILE = Path(".sora/pipeline_run.json")


def tracking_uri(params: Params, root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI when set (the flow sets it for DVC experiments, which run in a temporary copy of
    the repo), else params' tracking.uri with relative sqlite paths resolved against the repo root, so
    stages, flow and UI share one store."""
    if env_uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return env_uri
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
        relocate_store(store, params.tracking.experiment)
        # keep artifacts beside the store, not wherever the process happens to run
        os.environ.setdefault("MLFLOW_ARTIFACTS_DESTINATION", str(store.parent / "mlruns"))
    experiment = mlflow.get_experiment_by_name(params.tracking.experiment)
    if experiment is None:
        artifact_location = (store.parent / "mlruns").as_uri() if store is not None else None
        exp_id = mlflow.create_experiment(params.tracking.experiment, artifact_location=artifact_location)
    else:
        exp_id = experiment.experiment_id
    return mlflow, exp_id


def changed_since_commit() -> list[str] | None:
    """Tracked files that differ from the commit, leaving out what the pipeline itself writes (dvc.lock and every
    stage's outs, metrics and plots, as dvc.yaml declares them): a non-empty list means the commit alone does
    not reproduce the run. None when git cannot say."""
    from sora.pipeline.spec import pipeline_stages

    written = {"dvc.lock"} | {out for spec in pipeline_stages().values() for out in spec.outs}
    excludes = [f":(exclude){path}" for path in sorted(written)]
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excludes],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line[3:] for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _dvc_ancestor() -> str | None:
    """process_key of the nearest `dvc` ancestor process, or None."""
    import psutil

    proc = psutil.Process().parent()
    while proc is not None:
        try:
            cmd = " ".join(proc.cmdline())
            if "dvc" in Path(proc.cmdline()[0]).name or " -m dvc" in cmd or "/dvc " in cmd + " ":
                return process_key(proc.pid)
            proc = proc.parent()
        except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
            return None
    return None


OWNER_TAG = "sora.owner"  # host:pid:start time of the process that closes the run


def process_key(pid: int | None = None) -> str:
    """'host:pid:start time' of a process (this one by default): a pid alone can be reused."""
    import socket

    import psutil

    proc = psutil.Process(pid)
    return f"{socket.gethostname()}:{proc.pid}:{proc.create_time()}"


def _owner_alive(owner: str) -> bool:
    """False only when the owner is certainly gone: on this host, and its pid is free or now another process.
    A run owned by another host is left alone."""
    import socket

    import psutil

    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time()}" == started
    except psutil.NoSuchProcess:
        return False


def close_stranded_runs(client, experiment_id: str) -> list[str]:
    """Mark KILLED every RUNNING run whose owner process died without closing it (kill -9, power loss, an
    OOM kill). Runs of live processes and runs from other hosts are left alone. Returns the closed run ids."""
    closed = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        owner = run.data.tags.get(OWNER_TAG)
        if owner and not _owner_alive(owner):
            client.set_tag(run.info.run_id, "sora.closed_by", "a later start: its process was gone")
            client.set_terminated(run.info.run_id, status="KILLED")
            closed.append(run.info.run_id)
    if closed:
        print(f"mlflow: closed {len(closed)} run(s) left RUNNING by killed processes as KILLED", file=sys.stderr)
    return closed


def create_parent_run(
    params: Params, name: str = "pipeline", tags: dict[str, str] | None = None, owner: str | None = None
) -> str:
    """A pipeline parent run owned by `owner` (a process_key; this process by default)."""
    mlflow, exp_id = setup_mlflow(params)
    client = mlflow.MlflowClient()
    close_stranded_runs(client, exp_id)
    all_tags = {"sora.kind": "pipeline", "mlflow.runName": name, OWNER_TAG: owner or process_key()}
    if commit := git_commit():
        all_tags["mlflow.source.git.commit"] = commit
    all_tags.update(tags or {})
    return client.create_run(exp_id, tags=all_tags, run_name=name).info.run_id


def finish_parent_run(params: Params, run_id: str, records: list[dict], failed: bool) -> bool:
    """Close the flow's parent run: FINISHED or FAILED, with each stage's status and wall time. A run in which
    no stage ran and nothing failed is deleted instead (a daily schedule would otherwise add 365 empty runs a
    year); returns whether the run was kept."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(params))
    if not failed and not any(rec["status"] == "ran" for rec in records):
        client.delete_run(run_id)
        return False
    for rec in records:
        client.set_tag(run_id, f"sora.stage.{rec['stage']}", rec["status"])
        client.log_metric(run_id, f"stage_seconds.{rec['stage']}", rec["seconds"])
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
    return True


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
    run_id = create_parent_run(params, name="dvc repro" if key else "stage", owner=key)
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


def dvc_hashes(paths: list[str] | tuple[str, ...]) -> dict[str, str]:
    """md5 of each path as dvc.lock records it for the stage output that holds it (the output itself, or the
    folder it lies in)."""
    import yaml

    lock = Path("dvc.lock")
    if not lock.exists():
        return {}
    outs = {
        out["path"]: out["md5"]
        for stage in ((yaml.safe_load(lock.read_text()) or {}).get("stages") or {}).values()
        for out in stage.get("outs", [])
        if out.get("md5")
    }
    hashes: dict[str, str] = {}
    for path in paths:
        holder = next((o for o in outs if path == o or path.startswith(o.rstrip("/") + "/")), None)
        if holder is not None:
            hashes[path] = outs[holder]
    return hashes


def lightning_logger(params: Params, run_id: str):
    """Lightning's MLflow logger writing into an existing run (the stage's child run)."""
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(
        experiment_name=params.tracking.experiment, tracking_uri=tracking_uri(params), run_id=run_id, log_model=False
    )


@contextmanager
def stage_run(spec: StageSpec, params: Params) -> Iterator[Any]:
    """Child run of the pipeline parent for one stage: the params and data deps its dvc.yaml entry declares
    (deps as MLflow datasets with their dvc.lock md5), git commit. Yields the `mlflow` module with the child
    run active (only call from rank zero)."""
    from sora.pipeline.spec import declared_params

    mlflow, exp_id = setup_mlflow(params)
    parent_id = resolve_parent_run(params)
    tags = {"mlflow.parentRunId": parent_id, "sora.stage": spec.name, "sora.kind": "stage", OWNER_TAG: process_key()}
    if commit := git_commit():
        tags["mlflow.source.git.commit"] = commit
        changed = changed_since_commit()
        tags["git.dirty"] = str(bool(changed)) if changed is not None else "unknown"
        if changed:
            tags["git.changed_files"] = ", ".join(changed[:20]) + (
                f" (+{len(changed) - 20} more)" if len(changed) > 20 else ""
            )
    status = "FAILED"
    try:
        # system metrics (CPU, memory, disk; GPU where there is one) every 10 s, beside the stage's own metrics
        with mlflow.start_run(experiment_id=exp_id, run_name=spec.name, tags=tags, log_system_metrics=True):
            mlflow.log_params(flat_params(declared_params(params, spec)))
            mlflow.log_dict(params.model_dump(by_alias=True), "resolved_params.yaml")
            hashes = dvc_hashes(spec.data_deps)
            if hashes:
                from mlflow.data.dataset_source_registry import resolve_dataset_source
                from mlflow.data.meta_dataset import MetaDataset

                for path, md5 in hashes.items():
                    source = resolve_dataset_source(Path(path).resolve().as_uri())
                    mlflow.log_input(MetaDataset(source, name=path, digest=md5[:20]), context=spec.name)
                mlflow.set_tags({f"dvc.md5.{p}": h for p, h in hashes.items()})
            yield mlflow
        status = "FINISHED"
    finally:
        if not os.environ.get(PARENT_ENV):
            # Parents made by a plain `dvc repro` (or a lone stage) have no owner to close them: each stage
            # closes its parent on exit, so the last one leaves it right. The Prefect flow closes its own.
            mlflow.MlflowClient().set_terminated(parent_id, status)

"""Prefect retrain flow: one task per DVC stage, each task a `dvc repro --single-item <stage>` subprocess.

DVC stays the source of truth: dvc.lock and the DVC cache decide what is up to date, so a stage whose deps,
params and outs did not change is skipped ("Stage 'x' didn't change, skipping"), and a run that failed at
stage N resumes at stage N next time. The stage list is read from ./dvc.yaml (run from the repo root) in
file order; `targets` selects those stages and everything before the last of them.

Guarantees:
- never two `dvc repro` at once in one repo: each dvc call holds an exclusive flock on `.sora/repro.lock`,
  and the whole flow run holds `.sora/flow.lock` so two flow runs cannot interleave (a manual run waits; a
  scheduled deployment run skips with "skipped: previous run still in progress");
- overrides ({"finetune": {"lr": 0.1}}) are validated with sora.config, written into params.yaml for the
  run and the original file restored afterwards (also after a crash: see `_recover_override_backup`).
  dvc.lock then records the override values, so the next plain run redoes the affected stages;
- one MLflow parent run per flow run; every stage joins it through SORA_PARENT_RUN_ID and the parent is
  terminated FINISHED or FAILED at the end;
- a failing stage fails its task (message = its stderr tail), stops the flow, later stages do not run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from sora.io import write_text
from sora.tracking.runs import flat_params

DVC_FILE = Path("dvc.yaml")
PARAMS_PATH = Path("params.yaml")
STATE_DIR = Path(".sora")
REPRO_LOCK = STATE_DIR / "repro.lock"
FLOW_LOCK = STATE_DIR / "flow.lock"
OVERRIDE_BACKUP = STATE_DIR / "params_override.json"
LOG_DIR = STATE_DIR / "logs"
EVALUATE_METRICS = Path("metrics/evaluate.json")
REGISTER_DECISION = Path("metrics/register.json")
INGEST_STAGE = "ingest"
TAIL_LINES = 30
SKIP_MESSAGE = "skipped: previous run still in progress"
DONE_STATUSES = ("ran", "skipped", "cached")


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero (or timed out); the message carries its stderr tail."""


# --------------------------------------------------------------------------- helpers (no Prefect needed)


def pipeline_stages(dvc_file: Path = DVC_FILE) -> list[str]:
    """Stage names of dvc.yaml in file order."""
    if not dvc_file.exists():
        raise FileNotFoundError(f"{dvc_file.resolve()} not found: run the retrain flow from the repository root")
    stages = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("stages") or {}
    if not stages:
        raise ValueError(f"{dvc_file}: no stages defined")
    return list(stages)


def select_stages(all_stages: list[str], targets: list[str] | None) -> list[str]:
    """All stages, or the targets plus their upstream ones: everything up to the last target in file order."""
    if not targets:
        return list(all_stages)
    unknown = [t for t in targets if t not in all_stages]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml defines {all_stages}")
    return all_stages[: max(all_stages.index(t) for t in targets) + 1]


def dvc_executable() -> list[str]:
    """The `dvc` beside sys.executable (the venv's), else the one on PATH, else `python -m dvc`."""
    beside = Path(sys.executable).parent / "dvc"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dvc")
    return [found] if found else [sys.executable, "-m", "dvc"]


def stage_env(parent_run_id: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    # stage cmds say `python -m ...`: make that the interpreter running this flow (the venv's)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if parent_run_id:
        env["SORA_PARENT_RUN_ID"] = parent_run_id
    return env


@contextlib.contextmanager
def file_lock(path: Path, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Exclusive fcntl.flock on `path`. Yields True once held; with wait=False yields False if it is busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            if not wait:
                yield False
                return
            if on_wait:
                on_wait(holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        try:
            yield True
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def run_streaming(
    cmd: list[str], env: dict[str, str], timeout_s: float, log_path: Path, on_line: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run cmd in its own process group; stream both pipes to log_path (and on_line); keep tails.
    Kills the group on timeout or on any exception (e.g. a Prefect task timeout, Ctrl-C)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tails = {"stdout": deque(maxlen=TAIL_LINES), "stderr": deque(maxlen=TAIL_LINES)}
    lines: queue.Queue = queue.Queue()
    stdout_all: list[str] = []
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )

    def pump(name: str, stream) -> None:
        for line in iter(stream.readline, ""):
            lines.put((name, line))
        lines.put((name, None))

    readers = [
        threading.Thread(target=pump, args=(n, s), daemon=True)
        for n, s in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for r in readers:
        r.start()
    deadline = time.monotonic() + timeout_s
    timed_out = False
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            open_streams = 2
            while open_streams:
                try:
                    name, line = lines.get(timeout=max(0.05, min(1.0, deadline - time.monotonic())))
                except queue.Empty:
                    if time.monotonic() > deadline:
                        timed_out = True
                        _kill_group(proc)
                    continue
                if line is None:
                    open_streams -= 1
                    continue
                log.write(line)
                shown = line.rstrip("\n").split("\r")[-1].rstrip()  # last frame of a progress bar
                if name == "stdout":
                    stdout_all.append(line)
                if shown:
                    tails[name].append(shown)
                    if on_line:
                        on_line(shown[:1000])
        rc = proc.wait()
    finally:
        _kill_group(proc)
        for r in readers:
            r.join(timeout=5)
    return {
        "returncode": rc,
        "timed_out": timed_out,
        "stdout": "".join(stdout_all),
        "stdout_tail": "\n".join(tails["stdout"]),
        "stderr_tail": "\n".join(tails["stderr"]),
    }


def stage_status(dvc_stdout: str) -> str:
    """ran / cached (outputs restored from DVC's run cache) / skipped (up to date), from `dvc repro` output."""
    if "is cached - skipping run" in dvc_stdout:
        return "cached"
    if "Running stage" in dvc_stdout:
        return "ran"
    return "skipped"  # "Stage 'x' didn't change, skipping"


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _recover_override_backup(logger) -> None:
    """A run killed while overrides were applied leaves params.yaml modified: put the original back,
    unless someone has edited params.yaml since (then keep their file)."""
    if not OVERRIDE_BACKUP.exists():
        return
    backup = json.loads(OVERRIDE_BACKUP.read_text(encoding="utf-8"))
    current = PARAMS_PATH.read_text(encoding="utf-8") if PARAMS_PATH.exists() else None
    if current == backup.get("written"):
        if backup.get("original") is None:
            PARAMS_PATH.unlink(missing_ok=True)
        else:
            write_text(PARAMS_PATH, backup["original"])
        logger.warning("restored params.yaml left with overrides by an interrupted retrain run")
    else:
        logger.warning(f"stale {OVERRIDE_BACKUP} found but params.yaml was edited since: keeping params.yaml")
    OVERRIDE_BACKUP.unlink(missing_ok=True)


@contextlib.contextmanager
def applied_overrides(overrides: dict[str, Any] | None, run_label: str) -> Iterator[Any]:
    """Validate params.yaml (+ overrides) with sora.config; with overrides, write them into params.yaml for
    the duration of the block and restore the original text afterwards. Yields the validated Params."""
    from sora.config import ConfigError, load_params, parse_params

    if not overrides:
        yield load_params(PARAMS_PATH)
        return
    original = PARAMS_PATH.read_text(encoding="utf-8") if PARAMS_PATH.exists() else None
    try:
        data = (yaml.safe_load(original) if original else None) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{PARAMS_PATH}: not valid YAML: {err}") from None
    merged = _merge(data, overrides)
    params = parse_params(merged, f"{PARAMS_PATH} + overrides")  # raises before anything is written
    written = (
        f"# TEMPORARY params.yaml of retrain run {run_label} (overrides {json.dumps(overrides)});\n"
        f"# the original is restored when the run ends (backup: {OVERRIDE_BACKUP}).\n"
        + yaml.safe_dump(merged, sort_keys=False, allow_unicode=True)
    )
    STATE_DIR.mkdir(exist_ok=True)
    write_text(OVERRIDE_BACKUP, json.dumps({"original": original, "written": written}))
    write_text(PARAMS_PATH, written)
    try:
        yield params
    finally:
        if original is None:
            PARAMS_PATH.unlink(missing_ok=True)
        else:
            write_text(PARAMS_PATH, original)
        OVERRIDE_BACKUP.unlink(missing_ok=True)


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- Prefect task + flow


def _run_stage(stage: str, force: bool, parent_run_id: str | None, timeout_s: int) -> dict[str, Any]:
    logger = get_run_logger()
    args = ["repro", "--single-item", stage] + (["--force"] if force else [])
    cmd, shown = dvc_executable() + args, " ".join(["dvc"] + args)
    start = time.monotonic()
    with file_lock(
        REPRO_LOCK,
        on_wait=lambda holder: logger.info(
            f"waiting for {REPRO_LOCK} (held by {holder}): another dvc repro runs in this repo"
        ),
    ):
        logger.info(f"$ {shown}")
        out = run_streaming(cmd, stage_env(parent_run_id), timeout_s, LOG_DIR / f"{stage}.log", on_line=logger.info)
    seconds = round(time.monotonic() - start, 2)
    if out["returncode"] != 0:
        reason = (
            f"timed out after {timeout_s}s (flow.stage_timeout_seconds)"
            if out["timed_out"]
            else f"exited with {out['returncode']} after {seconds:.1f}s"
        )
        tail = out["stderr_tail"] or out["stdout_tail"] or "(no output)"
        raise StageFailed(
            f"stage '{stage}' failed: `{shown}` {reason}\n"
            f"--- stderr (last lines) ---\n{tail}\n--- full log: {LOG_DIR / (stage + '.log')}"
        )
    status = stage_status(out["stdout"])
    logger.info(f"stage '{stage}': {status} in {seconds:.1f}s")
    return {"stage": stage, "status": status, "seconds": seconds, "forced": force}


run_stage = task(_run_stage, name="dvc-stage", cache_policy=NO_CACHE)


def _earlier_active_run(deployment_id: str, my_id: str) -> str | None:
    """Name of a RUNNING flow run of the same deployment that started before this one, if any."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        me = client.read_flow_run(my_id)
        others = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
                id=FlowRunFilterId(not_any_=[my_id]),
            )
        )
    mine = (me.start_time.timestamp() if me.start_time else float("inf"), str(me.id))
    for run in others:
        if (run.start_time.timestamp() if run.start_time else float("inf"), str(run.id)) < mine:
            return run.name
    return None


def _summary(label: str, records: list[dict[str, Any]], seconds: float, parent_run_id: str | None) -> str:
    count = {s: sum(r["status"] == s for r in records) for s in ("ran", "skipped", "cached", "failed", "not run")}
    failed = next((r["stage"] for r in records if r["status"] == "failed"), None)
    parts = [f"{count['ran']} ran", f"{count['skipped']} skipped (up to date)"]
    if count["cached"]:
        parts.append(f"{count['cached']} restored from run cache")
    head = f"retrain {label} FAILED at stage '{failed}'" if failed else f"retrain {label} completed"
    tail = f"; {count['not run']} not run" if count["not run"] else ""
    return (
        f"{head}: {len(records)} stage(s), {', '.join(parts)}{tail} in {seconds:.1f}s"
        f"; MLflow parent run {parent_run_id}"
    )


def _finish_parent_run(
    params, parent_run_id: str, records: list[dict[str, Any]], summary: str, failed: bool, logger
) -> None:
    try:
        from mlflow import MlflowClient

        from sora.tracking.runs import tracking_uri

        client = MlflowClient(tracking_uri=tracking_uri(params))
        client.set_tag(parent_run_id, "sora.status", "failed" if failed else "completed")
        client.set_tag(parent_run_id, "sora.summary", summary[:5000])
        for rec in records:
            client.set_tag(parent_run_id, f"sora.stage.{rec['stage']}", rec["status"])
            if rec["status"] in DONE_STATUSES:
                client.log_metric(parent_run_id, f"stage_seconds.{rec['stage']}", rec["seconds"])
        client.set_terminated(parent_run_id, status="FAILED" if failed else "FINISHED")
    except Exception as err:  # never mask the stage error with a tracking error
        logger.warning(f"could not finalize MLflow parent run {parent_run_id}: {err!r}")


def _register_markdown(decision: Any) -> str:
    lines = ["# Model registry decision", ""]
    if isinstance(decision, dict):
        for key in ("decision", "promoted", "registered", "reason", "model_name", "version", "alias"):
            if key in decision and not isinstance(decision[key], (dict, list)):
                lines.append(f"- **{key}**: {decision[key]}")
        lines += ["", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in flat_params(decision).items()]
    lines += ["", "```json", json.dumps(decision, indent=2, ensure_ascii=False, default=str), "```"]
    return "\n".join(lines)


def _publish_artifacts(records: list[dict[str, Any]], summary: str, all_stages: list[str], logger) -> None:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    def current(path: Path) -> bool:
        """The file reflects this run: its stage (same name as the file) completed here, or no such stage."""
        if path.stem not in all_stages:
            return True
        return any(r["stage"] == path.stem and r["status"] in DONE_STATUSES for r in records)

    try:
        create_table_artifact(
            table=[{"stage": r["stage"], "status": r["status"], "seconds": r["seconds"]} for r in records],
            key="retrain-stages",
            description=summary,
        )
        if EVALUATE_METRICS.exists() and current(EVALUATE_METRICS):
            metrics = _read_json(EVALUATE_METRICS)
            if metrics is not None:
                flat = flat_params(metrics) if isinstance(metrics, dict) else {"value": metrics}
                create_table_artifact(
                    table=[{"metric": k, "value": v} for k, v in flat.items()],
                    key="retrain-evaluate-metrics",
                    description=f"{EVALUATE_METRICS}",
                )
        if REGISTER_DECISION.exists() and current(REGISTER_DECISION):
            decision = _read_json(REGISTER_DECISION)
            if decision is not None:
                create_markdown_artifact(
                    markdown=_register_markdown(decision),
                    key="retrain-register-decision",
                    description=f"{REGISTER_DECISION}",
                )
    except Exception as err:
        logger.warning(f"could not create Prefect artifacts: {err!r}")


def _run_pipeline(
    stages: list[str],
    all_stages: list[str],
    force: bool,
    overrides: dict | None,
    refresh_data: bool,
    flow_run_id: str,
    label: str,
    deployment_id: str | None,
    logger,
) -> dict:
    from sora.tracking.runs import create_parent_run

    _recover_override_backup(logger)
    if refresh_data and INGEST_STAGE not in stages:
        logger.warning(f"refresh_data: no '{INGEST_STAGE}' stage among {stages}; nothing to force")
    with applied_overrides(overrides, label) as params:
        tags = {
            "prefect.flow_run_id": flow_run_id,
            "prefect.flow_run_name": label,
            "sora.stages": ",".join(stages),
            "sora.force": str(force),
            "sora.refresh_data": str(refresh_data),
        }
        if deployment_id:
            tags["prefect.deployment_id"] = deployment_id
        if overrides:
            tags["sora.overrides"] = json.dumps(overrides)[:5000]
        parent_run_id = create_parent_run(params, name=f"retrain {label}", tags=tags)
        logger.info(f"MLflow parent run {parent_run_id}; stages: {', '.join(stages)}")
        cfg = params.flow
        records: list[dict[str, Any]] = []
        error: BaseException | None = None
        started = time.monotonic()
        try:
            for stage in stages:
                stage_task = run_stage.with_options(
                    name=stage,
                    task_run_name=stage,
                    retries=cfg.retries,
                    retry_delay_seconds=cfg.retry_delay_seconds,
                    timeout_seconds=cfg.stage_timeout_seconds,
                )
                t0 = time.monotonic()
                try:
                    rec = stage_task(
                        stage,
                        force or (refresh_data and stage == INGEST_STAGE),
                        parent_run_id,
                        cfg.stage_timeout_seconds,
                    )
                except BaseException as exc:
                    error = exc
                    records.append(
                        {
                            "stage": stage,
                            "status": "failed",
                            "seconds": round(time.monotonic() - t0, 2),
                            "forced": force,
                        }
                    )
                    break
                records.append(rec)
        finally:
            done = {r["stage"] for r in records}
            records += [
                {"stage": s, "status": "not run", "seconds": 0.0, "forced": False} for s in stages if s not in done
            ]
            summary = _summary(label, records, time.monotonic() - started, parent_run_id)
            _finish_parent_run(params, parent_run_id, records, summary, error is not None, logger)
            _publish_artifacts(records, summary, all_stages, logger)
            (logger.error if error is not None else logger.info)(summary)
    if error is not None:
        raise error
    return {
        "stages": records,
        "summary": summary,
        "parent_run_id": parent_run_id,
        "flow_run_id": flow_run_id,
        "status": "completed",
    }


@flow(
    name="retrain",
    description="Sora pipeline: one task per DVC stage (dvc repro), MLflow parent run, "
    "artifacts with stage status and evaluation metrics.",
)
def retrain(
    targets: list[str] | None = None, force: bool = False, overrides: dict | None = None, refresh_data: bool = False
) -> dict:
    """Run the DVC pipeline stage by stage (up-to-date stages are skipped by DVC).

    targets: stage names; runs them and every stage before the last of them (dvc.yaml order).
    force: rerun the selected stages even if up to date.  refresh_data: force the ingest stage.
    overrides: nested params, e.g. {"finetune": {"lr": 0.0005}}, applied to params.yaml for this run only.
    Returns {"stages": [{stage, status, seconds, forced}], "summary": str, "parent_run_id": str, ...}.
    """
    from prefect.context import FlowRunContext

    logger = get_run_logger()
    ctx = FlowRunContext.get()
    current = ctx.flow_run if ctx else None
    flow_run_id = str(current.id) if current else ""
    label = current.name if current else "local"
    deployment_id = str(current.deployment_id) if current and current.deployment_id else None
    all_stages = pipeline_stages()
    stages = select_stages(all_stages, targets)

    def skipped(why: str) -> dict:
        logger.warning(f"{SKIP_MESSAGE} ({why})")
        return {
            "stages": [],
            "summary": f"retrain {label} {SKIP_MESSAGE} ({why})",
            "parent_run_id": None,
            "flow_run_id": flow_run_id,
            "status": "skipped",
        }

    if deployment_id:  # scheduled/deployment runs never queue up behind a running one
        try:
            earlier = _earlier_active_run(deployment_id, flow_run_id)
        except Exception as err:
            logger.debug(f"could not check for running flow runs: {err!r}")
            earlier = None
        if earlier:
            return skipped(f"flow run '{earlier}' of this deployment is running")

    with file_lock(
        FLOW_LOCK,
        wait=deployment_id is None,
        on_wait=lambda holder: logger.info(
            f"another retrain run holds {FLOW_LOCK} ({holder}); waiting for it to finish"
        ),
    ) as acquired:
        if not acquired:
            return skipped(f"{FLOW_LOCK} is held by another retrain run")
        return _run_pipeline(
            stages, all_stages, force, overrides, refresh_data, flow_run_id, label, deployment_id, logger
        )


if __name__ == "__main__":
    print(retrain()["summary"])

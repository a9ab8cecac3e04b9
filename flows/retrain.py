"""Prefect retrain flow: one task per DVC stage, or one DVC experiment when params are overridden.

DVC decides what is stale (dvc.lock and its cache): an unchanged stage is skipped, and a run that failed at
stage N resumes at stage N next time. Overrides never touch params.yaml: they run as `dvc exp run --temp -S`,
so each variant is listed by `dvc exp show` and a failed one leaves the workspace as it was.

One guard against overlapping runs: an exclusive lock on .sora/flow.lock, held for the whole flow run and
released by the kernel when its holder dies (a killed run leaves no stale lock). A manual run waits for it;
a scheduled deployment run returns "skipped" at once, so runs never queue up behind each other.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.states import Completed, Failed, State

from sora.config import load_params
from sora.pipeline.processes import dies_with_this_process, stop
from sora.pipeline.spec import pipeline_stages

STATE_DIR = Path(".sora")
FLOW_LOCK = STATE_DIR / "flow.lock"
LOG_DIR = STATE_DIR / "logs"
TAIL_LINES = 30
SKIP_MESSAGE = "skipped: previous run still in progress"


class StageFailed(RuntimeError):
    """A DVC command exited non-zero; the message carries the end of its output."""


class InputError(StageFailed):
    """The stage rejected its input or config: rerunning it would fail the same way, so it is not retried."""


REJECTED = "Rejected"  # the name of a Failed state for bad input: shown in the UI, never retried


def _worth_retrying(task, task_run, state) -> bool:
    return state.name != REJECTED


def _rejected(err: InputError) -> State:
    """Failed, named Rejected, carrying the error: a returned state, so Prefect logs its one-line message
    instead of a traceback (the stage already said what to fix)."""
    return Failed(name=REJECTED, message=str(err), data=err)


def select_stages(all_stages: list[str], targets: list[str] | None) -> list[str]:
    """All stages, or the targets plus every stage before the last of them (dvc.yaml order)."""
    if not targets:
        return list(all_stages)
    unknown = [t for t in targets if t not in all_stages]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; dvc.yaml defines {all_stages}")
    return all_stages[: max(all_stages.index(t) for t in targets) + 1]


def _env(parent_run_id: str | None) -> dict[str, str]:
    from sora.tracking.runs import tracking_uri

    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    # `python` in stage cmds is this interpreter; experiments run in a temp copy, so the store URI is absolute
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["MLFLOW_TRACKING_URI"] = tracking_uri(load_params())
    return env | ({"SORA_PARENT_RUN_ID": parent_run_id} if parent_run_id else {})


# DVC's reminders to `git add` dvc.lock after every stage: noise in a flow run (kept in the stage's log file)
DVC_HINTS = (
    "To track the changes with git, run:",
    "git add ",
    "To enable auto staging, run:",
    "dvc config core.autostage",
)


RAN = re.compile(r"^Running stage '([^']+)'")  # what DVC prints when it executes a stage's command


def _pump(proc: subprocess.Popen, log_path: Path, tail: deque[str], logger, ran: set[str]) -> None:
    with open(log_path, "w", encoding="utf-8") as log:
        for line in proc.stdout:
            log.write(line)
            shown = line.rstrip("\n").split("\r")[-1].rstrip()  # a progress bar's last frame
            if started := RAN.match(shown):
                ran.add(started.group(1))
            if shown and not shown.lstrip().startswith(DVC_HINTS):
                tail.append(shown)
                logger.info(shown[:1000])


def run_dvc(args: list[str], parent_run_id: str | None, log_name: str, logger) -> set[str]:
    """`dvc ARGS` in its own process group, each output line to the Prefect log and .sora/logs/<log_name>.log.
    The group is killed when this returns abnormally (task timeout, Ctrl-C), so no dvc child outlives it.
    Returns the stages whose command DVC ran (not those it found up to date or restored from its cache)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    logger.info("$ dvc " + " ".join(args))
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    ran: set[str] = set()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", *args], env=_env(parent_run_id), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True,
        preexec_fn=dies_with_this_process(),
    )  # fmt: skip
    log = LOG_DIR / f"{log_name}.log"
    reader = threading.Thread(target=_pump, args=(proc, log, tail, logger, ran), daemon=True)
    reader.start()
    try:
        # Short waits, never one blocking read: off the main thread (or under another SIGALRM user) Prefect
        # enforces a task timeout by raising in this thread, which only happens between Python instructions.
        while reader.is_alive():
            reader.join(0.2)
        returncode = proc.wait()
    except BaseException:
        stop(proc, group=True)  # stages close their MLflow runs on SIGTERM
        raise
    if returncode != 0:
        last = "\n".join(tail) or "(no output)"
        raise StageFailed(
            f"`dvc {' '.join(args)}` exited with {returncode}\n--- last lines ---\n{last}\n--- full log: {log}"
        )
    return ran


def registry_drift(params, register_stage) -> str | None:
    """Why the register stage must rerun although DVC finds it up to date: the registry no longer holds the
    version its metrics file records (store deleted or replaced, version removed, a register killed halfway)."""
    import mlflow

    from sora.io import read_json
    from sora.tracking.registry import registry_mismatch
    from sora.tracking.runs import tracking_uri

    recorded = next((Path(o) for o in register_stage.outs if o.endswith(".json")), None)
    if recorded is None or not recorded.is_file():
        return None  # never ran: DVC runs it anyway
    client = mlflow.MlflowClient(tracking_uri=tracking_uri(params))
    return registry_mismatch(client, params.register_.model_name, read_json(recorded))


@task(name="dvc-stage", cache_policy=NO_CACHE)
def run_stage(stage: str, force: bool, parent_run_id: str | None):
    """`dvc repro --single-item STAGE`; the task ends Completed, or Completed named "Skipped" when DVC did not
    run the stage's command (up to date, or its outputs restored from the cache). A stage that ran and
    reproduced its recorded outputs exactly (a fresh clone) ran: its dvc.lock entry alone would not say so."""
    from sora.pipeline.entry import INPUT_ERRORS

    marker = INPUT_ERRORS / stage
    marker.unlink(missing_ok=True)  # a marker left from an earlier run would stop retries of an unrelated failure
    start = time.monotonic()
    try:
        ran = run_dvc(["repro", "--single-item", stage, *(["--force"] if force else [])], parent_run_id, stage,
                      get_run_logger())  # fmt: skip
    except StageFailed:
        if marker.is_file():
            return _rejected(InputError(f"stage '{stage}': {marker.read_text(encoding='utf-8')}"))
        raise
    record = {"stage": stage, "seconds": round(time.monotonic() - start, 1)}
    if stage not in ran:
        return Completed(name="Skipped", message=f"{stage}: up to date", data={**record, "status": "skipped"})
    return {**record, "status": "ran"}


@task(name="dvc-experiment", cache_policy=NO_CACHE)
def run_experiment(targets: list[str], sets: list[str], copy_paths: list[str], force: bool, parent: str | None) -> dict:
    """The variant as a DVC experiment in a temporary copy of the workspace: params.yaml stays as it is."""
    args = ["exp", "run", "--temp", *(["--force"] if force else [])]
    args += [arg for item in sets for arg in ("-S", item)] + [arg for path in copy_paths for arg in ("-C", path)]
    if copy_paths:
        get_run_logger().warning("untracked, so copied into the experiment but left out of its git commit "
                                 "(`git add` them to record them): " + ", ".join(copy_paths))  # fmt: skip
    start = time.monotonic()
    run_dvc([*args, *targets], parent, "experiment", get_run_logger())
    return {"stage": "experiment", "status": "ran", "seconds": round(time.monotonic() - start, 1)}


def _untracked_paths() -> list[str]:
    """Untracked, unignored files and folders. The temporary workspace of `dvc exp run --temp` is the last
    commit plus changes to tracked files: untracked ones (a new module, a new input) must be copied in (-C)."""
    if subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], capture_output=True).returncode:
        raise ValueError(
            "overrides run as a DVC experiment, which starts from a git commit: run from a git repository with at "
            "least one commit (git add -A && git commit), or edit params.yaml and run without overrides"
        )
    cmd = ["git", "status", "--porcelain", "-z", "--untracked-files=normal"]  # folders as one entry
    status = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [entry[3:] for entry in status.split("\0") if entry.startswith("?? ")]


@contextmanager
def flow_lock(wait: bool) -> Iterator[bool]:
    """Yields True while this process holds .sora/flow.lock; with wait=False yields False if it is taken."""
    STATE_DIR.mkdir(exist_ok=True)
    with open(FLOW_LOCK, "a+") as fh:  # closing the file releases the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def _flat_sets(overrides: dict[str, Any], prefix: str = "") -> list[str]:
    """{'finetune': {'lr': 0.1}} -> ['finetune.lr=0.1'] (values as YAML, as `dvc exp run -S` reads them)."""
    items = []
    for key, value in overrides.items():
        if isinstance(value, dict):
            items += _flat_sets(value, f"{prefix}{key}.")
        else:
            text = yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()
            items.append(f"{prefix}{key}={text}")
    return items


@flow(name="retrain", description="Sora pipeline: one task per DVC stage; overrides run as a DVC experiment.")
def retrain(
    targets: list[str] | None = None, force: bool = False, overrides: dict | None = None, refresh_data: bool = False
) -> dict:
    """Run the DVC pipeline (up-to-date stages are skipped by DVC).

    targets: stage names; runs them and every stage before the last of them (dvc.yaml order).
    force: rerun the selected stages even if up to date. refresh_data: rerun ingest even if up to date.
    overrides: nested params, e.g. {"finetune": {"lr": 0.0005}}: the run becomes `dvc exp run --temp -S ...`.
    """
    from sora.tracking.runs import create_parent_run, finish_parent_run

    logger = get_run_logger()
    params = load_params(overrides=overrides)  # every config error stops here, before any stage starts
    stages = select_stages(list(pipeline_stages()), targets)
    ctx = FlowRunContext.get()
    run = ctx.flow_run if ctx else None
    label = run.name if run else "local"
    if refresh_data and overrides:
        raise ValueError("--refresh-data cannot be combined with overrides (-S): refresh first, then run the variant")
    copy_paths = _untracked_paths() if overrides else []  # without a commit to start from, stop here
    with flow_lock(wait=not (run and run.deployment_id)) as held:
        if not held:
            logger.warning(SKIP_MESSAGE)
            return {"status": "skipped", "summary": f"retrain {label} {SKIP_MESSAGE}", "stages": []}
        tags = {"sora.stages": ",".join(stages), **({"sora.overrides": str(overrides)} if overrides else {})}
        parent = create_parent_run(params, name=f"retrain {label}", tags=tags)
        records: list[dict] = []
        failed, rejected = True, None
        start = time.monotonic()
        try:
            if overrides:
                budget = params.flow.stage_timeout_seconds * len(stages)  # the experiment runs them all
                experiment = run_experiment.with_options(timeout_seconds=budget)
                records.append(experiment(targets or [], _flat_sets(overrides), copy_paths, force, parent))
            else:
                drift = registry_drift(params, pipeline_stages()["register"]) if "register" in stages else None
                if drift:
                    logger.warning(f"{drift}: register reruns (with plain DVC: dvc repro --force register)")
                for stage in stages:
                    stage_task = run_stage.with_options(
                        name=stage, task_run_name=stage, retries=params.flow.retries,
                        retry_delay_seconds=params.flow.retry_delay_seconds,
                        timeout_seconds=params.flow.stage_timeout_seconds, retry_condition_fn=_worth_retrying,
                    )  # fmt: skip
                    forced = (
                        force or (refresh_data and stage == "ingest") or (drift is not None and stage == "register")
                    )
                    state = stage_task(stage, forced, parent, return_state=True)
                    if state.name == REJECTED:
                        rejected = state
                        break
                    records.append(state.result())  # the record, also from a Skipped state; raises if it failed
            failed = rejected is not None
        finally:
            ran = [r["stage"] for r in records if r["status"] == "ran"]
            if not finish_parent_run(params, parent, records, failed):
                parent = None
            summary = (
                f"retrain {label} {'FAILED' if failed else 'completed'}: {len(ran)} ran ({', '.join(ran) or 'none'}), "
                f"{len(records) - len(ran)} up to date, in {time.monotonic() - start:.1f}s; "
                + (f"MLflow parent run {parent}" if parent else "nothing ran, so no MLflow run was kept")
            )
            (logger.error if failed else logger.info)(summary)
    if rejected is not None:
        return _rejected(rejected.result(raise_on_failure=False))
    return {"status": "completed", "summary": summary, "stages": records, "parent_run_id": parent}

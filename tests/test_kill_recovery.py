"""kill -9 at the worst moments, then rerun: the outputs equal an uninterrupted run's (dvc.lock hashes), no
MLflow run is left RUNNING, no process outlives the killed one, and the registry holds no half-made version.

Cases: ingest, finetune in the middle of an epoch, register just after it created a version, and `sora run`
itself (the Prefect flow, its dvc child, the stage it runs and its Prefect API server)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = pytest.mark.slow

# Left out of the comparison: version numbers (a rerun after a kill registers the next one) and measured speed.
NOT_COMPARED = {"metrics/register.json", "plots/prune.csv"}


def _outs(project) -> dict[str, str]:
    """Every stage output's md5 as dvc.lock records it."""
    lock = yaml.safe_load((project.path / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def _env(project) -> dict[str, str]:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["PREFECT_HOME"] = str(project.path / ".prefect")
    for name in ("SORA_PARENT_RUN_ID", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(name, None)
    return env


def _start(project, cmd: list[str]) -> psutil.Process:
    proc = subprocess.Popen(
        cmd, cwd=project.path, env=_env(project), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return psutil.Process(proc.pid)


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:  # exited, or a zombie, meanwhile
        return ""


def _kill_when(proc: psutil.Process, ready, timeout: float = 240) -> tuple[list[psutil.Process], dict[int, str]]:
    """kill -9 `proc` alone (not its group) once `ready()` holds; returns the descendants it had then, and
    their command lines."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE, "finished before the kill point"
        assert time.time() < deadline, "kill point never reached"
        time.sleep(0.05)
    children = proc.children(recursive=True)
    names = {c.pid: _cmdline(c) for c in children}
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return children, names


def _assert_no_survivors(children: list[psutil.Process], within: float = 60) -> None:
    """Every descendant gone within `within` seconds. Not at once: a stage told to stop (parent-death SIGTERM)
    first closes its MLflow run, which can wait on the sqlite store's lock."""
    deadline = time.time() + within
    alive = children
    while alive and time.time() < deadline:
        alive = [c for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    assert not alive, f"outlived the killed process: {[_cmdline(c)[:120] for c in alive]}"


def _client(project):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.path}/mlflow.db")


def _assert_clean_tracking(project) -> None:
    from sora.tracking.registry import COMPLETE_TAG

    client = _client(project)
    exp = client.get_experiment_by_name("sora")
    running = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    assert running == [], [r.data.tags.get("mlflow.runName") for r in running]
    versions = client.search_model_versions("name = 'sora'")
    assert all(COMPLETE_TAG in v.tags for v in versions), [v.version for v in versions if COMPLETE_TAG not in v.tags]


def _rerun_matches(project, reference: dict[str, str], via: list[str]) -> None:
    result = subprocess.run(via, cwd=project.path, env=_env(project), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    after = _outs(project)
    differing = {p for p in reference if reference[p] != after.get(p)} - NOT_COMPARED
    assert differing == set(), f"outputs differ from the uninterrupted run: {sorted(differing)}"
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=project.path, capture_output=True, text=True)
    assert "up to date" in status.stdout, status.stdout
    _assert_clean_tracking(project)


DVC_REPRO = [sys.executable, "-m", "dvc", "repro"]
SORA_RUN = [sys.executable, "-m", "sora.cli", "run"]


def test_kill_ingest(built_pipeline, tmp_path):
    project = built_pipeline.copy(tmp_path)
    reference = _outs(project)
    proc = _start(project, [*DVC_REPRO, "--force", "--single-item", "ingest"])
    raw = project.path / "data/raw/labeled.parquet"
    mtime = raw.stat().st_mtime
    # killed while ingest writes its outputs (the first one is replaced, the others not yet)
    children, _ = _kill_when(proc, lambda: raw.stat().st_mtime != mtime)
    _assert_no_survivors(children)
    # through the flow: ingest's outputs may be whole already, so DVC runs nothing, and the flow's start is
    # what closes the run the killed stage left RUNNING
    _rerun_matches(project, reference, SORA_RUN)


def _variant(built_pipeline, tmp_path, **params):
    """A copy with changed params, and the outputs an uninterrupted `dvc repro` of them gives in another."""
    project = built_pipeline.copy(tmp_path)
    project.set_params(**params)
    uninterrupted = built_pipeline.copy(tmp_path / "reference")
    uninterrupted.set_params(**params)
    uninterrupted.dvc("repro")
    return project, _outs(uninterrupted)


def test_kill_finetune_mid_epoch(built_pipeline, tmp_path):
    project, reference = _variant(built_pipeline, tmp_path, finetune={"max_epochs": 6, "patience": 6})

    proc = _start(project, DVC_REPRO)
    last = project.path / ".sora/work/finetune/last.ckpt"
    children, _ = _kill_when(proc, lambda: last.exists())  # the kill lands in the epoch after it
    _assert_no_survivors(children)
    _rerun_matches(project, reference, DVC_REPRO)


def test_kill_register_after_it_created_a_version(built_pipeline, tmp_path):
    project = built_pipeline.copy(tmp_path)
    client = _client(project)
    before = {str(v.version) for v in client.search_model_versions("name = 'sora'")}
    reference = _outs(project)

    def version_created() -> bool:
        return any(str(v.version) not in before for v in client.search_model_versions("name = 'sora'"))

    proc = _start(project, [*DVC_REPRO, "--force", "--single-item", "register"])
    children, _ = _kill_when(proc, version_created)
    _assert_no_survivors(children)
    # the kill left a version without its tags and aliases, and the register stage's run RUNNING
    _rerun_matches(project, reference, [*DVC_REPRO, "--force", "--single-item", "register"])
    versions = {str(v.version) for v in client.search_model_versions("name = 'sora'")}
    assert len(versions - before) == 1, "the half-made version was not removed"
    assert client.get_model_version_by_alias("sora", "candidate").version in {int(v) for v in versions - before}


def test_a_registration_dvc_never_recorded_is_not_made_twice(built_pipeline, tmp_path):
    """The latest window: register's run finished, then its dvc was killed before writing dvc.lock (restoring
    the old lock stands in for that kill, which a poll cannot time). The rerun reuses the version."""
    project = built_pipeline.copy(tmp_path)
    client = _client(project)
    before = {str(v.version) for v in client.search_model_versions("name = 'sora'")}
    lock = (project.path / "dvc.lock").read_text()
    forced = subprocess.run(
        [*DVC_REPRO, "--force", "--single-item", "register"], cwd=project.path, env=_env(project), timeout=600
    )
    assert forced.returncode == 0
    made = {str(v.version) for v in client.search_model_versions("name = 'sora'")} - before
    assert len(made) == 1
    (project.path / "dvc.lock").write_text(lock)

    result = subprocess.run(SORA_RUN, cwd=project.path, env=_env(project), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "already registers these inputs" in result.stdout + result.stderr
    assert {str(v.version) for v in client.search_model_versions("name = 'sora'")} - before == made
    _assert_clean_tracking(project)


def test_kill_sora_run(built_pipeline, tmp_path):
    project, reference = _variant(built_pipeline, tmp_path, finetune={"max_epochs": 5, "patience": 5})

    proc = _start(project, SORA_RUN)
    last = project.path / ".sora/work/finetune/last.ckpt"
    children, cmdlines = _kill_when(proc, lambda: last.exists())
    names = list(cmdlines.values())
    assert any("dvc" in n for n in names) and any("sora.stages.finetune" in n for n in names), names
    assert any("uvicorn" in n for n in names), f"no Prefect API server among {names}"
    _assert_no_survivors(children)
    _rerun_matches(project, reference, SORA_RUN)


def test_a_deleted_store_is_registered_again(built_pipeline, tmp_path):
    """`rm mlflow.db && sora run` reported success with nothing registered: register was 'up to date'."""
    project = built_pipeline.copy(tmp_path)
    (project.path / "mlflow.db").unlink()
    result = subprocess.run(SORA_RUN, cwd=project.path, env=_env(project), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "is not in the registry: register reruns" in result.stdout + result.stderr
    assert "1 ran (register)" in result.stdout
    client = _client(project)
    assert client.get_model_version_by_alias("sora", "candidate").version == 1
    _assert_clean_tracking(project)

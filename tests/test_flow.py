"""Retrain flow on a tiny 3-stage DVC project in tmp_path (Prefect test server, MLflow on a tmp sqlite).

The real Sora stages need downloads, so the project here has stages one -> two -> three that write small files
and append to counts/<stage> each time they really run (DVC skipping shows up as an unchanged counter).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from flows import retrain as retrain_mod  # noqa: E402
from flows.retrain import file_lock, retrain, run_streaming, select_stages, stage_status  # noqa: E402

STAGES_PY = textwrap.dedent("""\
    import json, os, pathlib, sys
    import yaml

    stage = sys.argv[1]
    pathlib.Path("counts").mkdir(exist_ok=True)
    with open(f"counts/{stage}", "a") as f:
        f.write(os.environ.get("SORA_PARENT_RUN_ID", "-") + "\\n")
    out = pathlib.Path("out")
    out.mkdir(exist_ok=True)
    if stage == "one":
        (out / "one.txt").write_text("one")
    elif stage == "two":
        if pathlib.Path("fail_two.flag").exists():
            sys.stderr.write("boom: injected failure in stage two\\n")
            sys.exit(3)
        c = yaml.safe_load(open("params.yaml"))["baseline"]["C"]
        (out / "two.txt").write_text(f"C={c} input={pathlib.Path('input_two.txt').read_text()}")
    else:
        (out / "three.txt").write_text("three")
        pathlib.Path("metrics").mkdir(exist_ok=True)
        pathlib.Path("metrics/evaluate.json").write_text(json.dumps({"f1": 0.9, "zh": {"accuracy": 0.8}}))
""")

DVC_YAML = textwrap.dedent("""\
    stages:
      one:
        cmd: python stages.py one
        deps: [stages.py]
        outs: [out/one.txt]
      two:
        cmd: python stages.py two
        deps: [stages.py, out/one.txt, input_two.txt]
        params: [baseline]
        outs: [out/two.txt]
      three:
        cmd: python stages.py three
        deps: [stages.py, out/two.txt]
        outs: [out/three.txt]
        metrics:
          - metrics/evaluate.json:
              cache: false
""")


def _dvc() -> str:
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else "dvc"


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """Prefect's test harness: a local server on a temporary sqlite database, PREFECT_HOME in tmp."""
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect_home")
    with temporary_settings({PREFECT_HOME: str(home), PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture
def project(tmp_path, monkeypatch, prefect_server):
    import mlflow.tracking._tracking_service.utils as mlflow_utils

    root = tmp_path / "proj"
    root.mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (root / "stages.py").write_text(STAGES_PY)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "input_two.txt").write_text("v1")
    (root / "params.yaml").write_text(
        yaml.safe_dump(
            {
                "baseline": {"C": 4.0, "max_iter": 2000},
                "tracking": {"uri": uri, "experiment": "flow-test"},
                "flow": {"retries": 0, "retry_delay_seconds": 0, "stage_timeout_seconds": 120},
            },
            sort_keys=False,
        )
    )
    for key, value in {
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "mlruns"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SORA_PARENT_RUN_ID", raising=False)
    monkeypatch.setattr(mlflow_utils, "_tracking_uri", mlflow_utils._tracking_uri)  # restored after the test
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run([_dvc(), "init", "-q"], cwd=root, check=True)
    else:
        subprocess.run([_dvc(), "init", "-q", "--no-scm"], cwd=root, check=True)
    monkeypatch.chdir(root)
    return {"root": root, "uri": uri}


def _statuses(result: dict) -> dict[str, str]:
    return {r["stage"]: r["status"] for r in result["stages"]}


def _count(stage: str) -> int:
    path = Path("counts") / stage
    return len(path.read_text().splitlines()) if path.exists() else 0


def _parent_run(uri: str, flow_run_id: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("flow-test")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`prefect.flow_run_id` = '{flow_run_id}'")
    assert len(runs) == 1, runs
    return runs[0]


# ------------------------------------------------------------------ fast unit checks (no Prefect, no DVC)


def test_stage_selection_and_status():
    stages = ["ingest", "preprocess", "vocab", "baseline"]
    assert select_stages(stages, None) == stages
    assert select_stages(stages, ["vocab"]) == ["ingest", "preprocess", "vocab"]
    assert select_stages(stages, ["vocab", "preprocess"]) == ["ingest", "preprocess", "vocab"]
    with pytest.raises(ValueError, match="unknown stage"):
        select_stages(stages, ["nope"])
    assert stage_status("Running stage 'a':\n> python x\n") == "ran"
    assert stage_status("Stage 'a' didn't change, skipping\nData and pipelines are up to date.\n") == "skipped"
    assert stage_status("Stage 'a' is cached - skipping run, checking out outputs\n") == "cached"


def test_file_lock_is_exclusive(tmp_path):
    lock = tmp_path / ".sora" / "repro.lock"
    with file_lock(lock) as held:
        assert held
        with file_lock(lock, wait=False) as second:  # another open file description: must not get it
            assert second is False
    with file_lock(lock, wait=False) as again:
        assert again


def test_stage_timeout_kills_the_process_group(tmp_path):
    import os

    start = time.monotonic()
    out = run_streaming(
        [
            sys.executable,
            "-c",
            "import sys, time; print('started', flush=True); "
            "sys.stderr.write('working\\n'); sys.stderr.flush(); time.sleep(60)",
        ],
        dict(os.environ),
        timeout_s=1.5,
        log_path=tmp_path / "slow.log",
    )
    assert out["timed_out"] and out["returncode"] != 0
    assert time.monotonic() - start < 15
    assert out["stdout_tail"] == "started" and out["stderr_tail"] == "working"
    assert (tmp_path / "slow.log").read_text().count("\n") == 2


# ------------------------------------------------------------------ flow on the tiny DVC project


def test_run_skip_fail_resume(project):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    # 1. everything runs; every stage joins the flow's MLflow parent run
    first = retrain()
    assert _statuses(first) == {"one": "ran", "two": "ran", "three": "ran"}, first
    assert "3 ran" in first["summary"]
    assert Path("counts/one").read_text().split() == [first["parent_run_id"]]
    parent = _parent_run(project["uri"], first["flow_run_id"])
    assert parent.info.run_id == first["parent_run_id"]
    assert parent.info.status == "FINISHED" and parent.data.tags["sora.status"] == "completed"
    assert parent.info.run_name.startswith("retrain ")
    with get_client(sync_client=True) as client:
        keys = {
            a.key
            for a in client.read_artifacts(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[first["flow_run_id"]]))
            )
        }
    assert {"retrain-stages", "retrain-evaluate-metrics"} <= keys
    assert not Path("params.yaml").read_text().startswith("# TEMPORARY")

    # 2. nothing changed: DVC skips every stage
    second = retrain()
    assert _statuses(second) == {"one": "skipped", "two": "skipped", "three": "skipped"}, second
    assert (_count("one"), _count("two"), _count("three")) == (1, 1, 1)
    one_mtime = Path("out/one.txt").stat().st_mtime_ns

    # 3. stage two is out of date and fails: the flow fails with its stderr, stage three never runs
    Path("input_two.txt").write_text("v2")
    Path("fail_two.flag").touch()
    state = retrain(return_state=True)
    assert state.is_failed()
    assert "boom: injected failure in stage two" in state.message
    assert _count("three") == 1 and _count("one") == 1
    flow_run_id = str(state.state_details.flow_run_id)
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    by_name = {t.name: t for t in task_runs}
    assert set(by_name) == {"one", "two"}  # three was never started
    assert by_name["one"].state.is_completed()
    assert by_name["two"].state.is_failed() and "boom" in by_name["two"].state.message
    failed_parent = _parent_run(project["uri"], flow_run_id)
    assert failed_parent.info.status == "FAILED" and failed_parent.data.tags["sora.stage.three"] == "not run"

    # 4. failure removed: resumes at stage two, stage one is not redone
    Path("fail_two.flag").unlink()
    fourth = retrain()
    assert _statuses(fourth) == {"one": "skipped", "two": "ran", "three": "ran"}, fourth
    assert _count("one") == 1 and Path("out/one.txt").stat().st_mtime_ns == one_mtime
    assert Path("out/two.txt").read_text() == "C=4.0 input=v2"


def test_targets_and_overrides(project):
    from sora.config import ConfigError

    original = Path("params.yaml").read_text()
    result = retrain(targets=["two"], overrides={"baseline": {"C": 2.5}})
    assert _statuses(result) == {"one": "ran", "two": "ran"}, result  # upstream of the target, not three
    assert Path("out/two.txt").read_text() == "C=2.5 input=v1"
    assert Path("params.yaml").read_text() == original and not Path(".sora/params_override.json").exists()
    assert not Path("out/three.txt").exists()

    with pytest.raises(ConfigError, match="nope"):
        retrain(overrides={"baseline": {"nope": 1}})
    assert Path("params.yaml").read_text() == original

    # refresh_data forces the ingest stage only (named `one` here via the module constant)
    retrain_mod.INGEST_STAGE = "one"
    try:
        refreshed = retrain(targets=["one"], refresh_data=True)
    finally:
        retrain_mod.INGEST_STAGE = "ingest"
    assert _statuses(refreshed) == {"one": "ran"} and _count("one") == 2


def test_cron_deployment_and_overlap_skip(project):
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.flow_engine import run_flow

    from flows.schedule import register_deployment

    deployment_id = register_deployment("sora-test", "0 3 * * *")
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain/sora-test")
        assert str(deployment.id) == deployment_id
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
        flow_run = client.create_flow_run_from_deployment(deployment.id)

    # a deployment run that finds another retrain run holding the flow lock skips and says so
    with file_lock(retrain_mod.FLOW_LOCK):
        result = run_flow(retrain, flow_run=flow_run, parameters={})
    assert result["status"] == "skipped" and "previous run still in progress" in result["summary"]
    assert not Path("counts").exists()
    messages: list[str] = []
    with get_client(sync_client=True) as client:
        for _ in range(40):
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
            messages = [log.message for log in logs]
            if any("skipped: previous run still in progress" in m for m in messages):
                break
            time.sleep(0.25)
    assert any("skipped: previous run still in progress" in m for m in messages), messages

    # a manually triggered run of the deployment (nothing else holding the lock) completes every stage
    with get_client(sync_client=True) as client:
        manual = client.create_flow_run_from_deployment(deployment.id)
    done = run_flow(retrain, flow_run=manual, parameters={})
    assert done["status"] == "completed", done
    assert {r["status"] for r in done["stages"]} <= {"ran", "skipped", "cached"}
    assert Path("out/three.txt").exists()
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(manual.id).state.is_completed()

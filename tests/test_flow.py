"""Retrain flow on a tiny 3-stage DVC project (real DVC, Prefect's test server, MLflow on a tmp sqlite).

The real Sora stages need downloads, so the project has stages one -> two -> three that write small files and
append to counts/<stage> each time they really run (a stage DVC skips leaves its counter unchanged). Flag
files make a stage fail (`fail_<stage>.flag`), fail on bad input (`input_error_<stage>.flag`, writing the
marker sora.pipeline.entry.stage_main writes) or hang (`sleep_<stage>.flag`). The project is built once
(git + DVC initialised, committed) and every integration test runs in its own copy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from flows.retrain import _flat_sets, flow_lock, retrain, select_stages

REPO = Path(__file__).resolve().parents[1]

STAGES_PY = textwrap.dedent("""\
    import json, os, pathlib, sys, time
    import yaml

    stage = sys.argv[1]
    flag = lambda kind: pathlib.Path(f"{kind}_{stage}.flag").exists()
    pathlib.Path("counts").mkdir(exist_ok=True)
    with open(f"counts/{stage}", "a") as f:
        f.write(os.environ.get("SORA_PARENT_RUN_ID", "-") + "\\n")
    if flag("fail"):  # before the marker cleanup stage_main does: a crash before it starts (an import error)
        sys.stderr.write(f"boom: injected failure in stage {stage}\\n")
        sys.exit(3)
    marker = pathlib.Path(".sora/input-errors") / stage
    marker.unlink(missing_ok=True)
    if flag("input_error"):
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("bad input: injected")
        sys.stderr.write("error: bad input: injected\\n")
        sys.exit(1)
    if flag("sleep"):
        pathlib.Path("pids").mkdir(exist_ok=True)
        pathlib.Path(f"pids/{stage}").write_text(str(os.getpid()))
        time.sleep(120)
    pathlib.Path("out").mkdir(exist_ok=True)
    if stage == "two":
        c = yaml.safe_load(open("params.yaml"))["baseline"]["C"]
        text = pathlib.Path("input_two.txt").read_text()
        pathlib.Path("out/two.txt").write_text(f"C={c} input={text}")
        pathlib.Path("metrics").mkdir(exist_ok=True)
        pathlib.Path("metrics/two.json").write_text(json.dumps({"C": c, "input": text}))
    else:
        pathlib.Path(f"out/{stage}.txt").write_text(stage)
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
        metrics:
          - metrics/two.json:
              cache: false
      three:
        cmd: python stages.py three
        deps: [stages.py, out/two.txt]
        outs: [out/three.txt]
""")

GITIGNORE = "/.sora/\n/counts/\n/pids/\n*.flag\n"


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _dvc(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=True)
    return done.stdout


# ------------------------------------------------------------------ unit checks (no Prefect, no DVC)


def test_select_stages():
    stages = ["ingest", "preprocess", "vocab", "baseline"]
    assert select_stages(stages, None) == stages
    assert select_stages(stages, []) == stages
    assert select_stages(stages, ["vocab"]) == ["ingest", "preprocess", "vocab"]
    assert select_stages(stages, ["vocab", "preprocess"]) == ["ingest", "preprocess", "vocab"]
    assert select_stages(stages, ["ingest"]) == ["ingest"]
    with pytest.raises(ValueError, match="unknown stage"):
        select_stages(stages, ["nope"])


def test_overrides_become_dvc_set_params():
    sets = _flat_sets({"finetune": {"lr": 0.0005, "init": "scratch"}, "ingest": {"sources": ["a", "b"]}})
    assert sets == ["finetune.lr=0.0005", "finetune.init=scratch", "ingest.sources=[a, b]"]
    assert _flat_sets({"harden": {"continue_optimizer": False}}) == ["harden.continue_optimizer=false"]


def test_flow_lock_is_exclusive_and_dies_with_its_holder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with flow_lock(wait=True) as held:
        assert held is True
        with flow_lock(wait=False) as second:  # another open file description, as another run would have
            assert second is False
    with flow_lock(wait=False) as again:
        assert again is True

    # another process holding it, then killed (a crashed run): the kernel releases the lock, nothing is stale
    hold = textwrap.dedent("""\
        import fcntl, time
        f = open(".sora/flow.lock", "a+")
        fcntl.flock(f, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with flow_lock(wait=False) as taken:
            assert taken is False
    finally:
        holder.kill()
        holder.wait()
    with flow_lock(wait=False) as freed:
        assert freed is True


# ------------------------------------------------------------------ the flow on the tiny DVC project


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """Prefect's test harness: a local server on a temporary sqlite database, PREFECT_HOME in tmp."""
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect_home")
    settings = {PREFECT_HOME: str(home), PREFECT_SERVER_ANALYTICS_ENABLED: False}
    with temporary_settings(settings), prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The tiny project, committed except input_two.txt (left untracked on purpose: experiments must still see
    it); the repo's params.yaml with tracking on a module-wide sqlite store and no retries."""
    base = tmp_path_factory.mktemp("flow")
    root = base / "proj"
    root.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["tracking"] = {"uri": f"sqlite:///{base / 'mlflow.db'}", "experiment": "flow-test"}
    params["flow"] = {"retries": 0, "retry_delay_seconds": 0, "stage_timeout_seconds": 120}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "stages.py").write_text(STAGES_PY)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / ".gitignore").write_text(GITIGNORE)
    _git("init", "-q", cwd=root)
    _git("config", "user.email", "test@example.com", cwd=root)
    _git("config", "user.name", "flow test", cwd=root)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    _git("add", "-A", cwd=root)
    _git("commit", "-q", "-m", "tiny project", cwd=root)
    (root / "input_two.txt").write_text("v1")
    return root


@pytest.fixture
def project(template, tmp_path, monkeypatch, prefect_server) -> Path:
    import mlflow.tracking._tracking_service.utils as mlflow_utils

    root = tmp_path / "proj"
    shutil.copytree(template, root, symlinks=True)
    for key in ("MLFLOW_TRACKING_URI", "SORA_PARENT_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", str(tmp_path / "mlruns"))
    monkeypatch.setattr(mlflow_utils, "_tracking_uri", mlflow_utils._tracking_uri)  # restored after the test
    monkeypatch.chdir(root)
    return root


def _set_flow_params(**values) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["flow"].update(values)
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _count(stage: str) -> int:
    path = Path("counts") / stage
    return len(path.read_text().splitlines()) if path.exists() else 0


def _counts() -> tuple[int, int, int]:
    return _count("one"), _count("two"), _count("three")


def _statuses(result: dict) -> dict[str, str]:
    return {r["stage"]: r["status"] for r in result["stages"]}


def _task_runs(state) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r for r in runs}


def _parent_run(state):
    """The flow run's MLflow parent run (named after the Prefect flow run)."""
    from mlflow import MlflowClient
    from prefect import get_client

    with get_client(sync_client=True) as client:
        name = client.read_flow_run(state.state_details.flow_run_id).name
    params = yaml.safe_load(Path("params.yaml").read_text())["tracking"]
    mlflow = MlflowClient(tracking_uri=params["uri"])
    exp = mlflow.get_experiment_by_name(params["experiment"])
    runs = mlflow.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = 'retrain {name}'")
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_run_skip_fail_resume(project):
    # 1. everything runs, every stage inside the flow's MLflow parent run
    state = retrain(return_state=True)
    first = state.result()
    assert first["status"] == "completed" and _statuses(first) == {"one": "ran", "two": "ran", "three": "ran"}
    assert _counts() == (1, 1, 1)
    assert Path("counts/one").read_text().split() == [first["parent_run_id"]]
    parent = _parent_run(state)
    assert parent.info.run_id == first["parent_run_id"] and parent.info.status == "FINISHED"
    assert parent.data.tags["sora.stage.three"] == "ran"
    assert Path(".sora/logs/two.log").read_text().count("Running stage 'two'") == 1

    # 2. nothing changed: every task ends in a Completed state named Skipped, no stage script runs
    state = retrain(return_state=True)
    second = state.result()
    assert _statuses(second) == {"one": "skipped", "two": "skipped", "three": "skipped"}, second
    assert {name: run.state.name for name, run in _task_runs(state).items()} == dict.fromkeys(
        ("one", "two", "three"), "Skipped"
    )
    assert all(run.state.is_completed() for run in _task_runs(state).values())
    assert _counts() == (1, 1, 1)
    # ... and no MLflow run is left for it (a daily schedule would add 365 empty ones a year)
    assert second["parent_run_id"] is None and "no MLflow run was kept" in second["summary"]
    with pytest.raises(AssertionError):
        _parent_run(state)
    one_mtime = Path("out/one.txt").stat().st_mtime_ns

    # 3. stage two is out of date and fails: the flow fails with its output, three never starts
    Path("input_two.txt").write_text("v2")
    Path("fail_two.flag").touch()
    state = retrain(return_state=True)
    assert state.is_failed()
    assert "boom: injected failure in stage two" in state.message
    tasks = _task_runs(state)
    assert set(tasks) == {"one", "two"} and tasks["two"].state.is_failed() and tasks["one"].state.name == "Skipped"
    assert _counts() == (1, 2, 1)
    failed_parent = _parent_run(state)
    assert failed_parent.info.status == "FAILED" and "sora.stage.three" not in failed_parent.data.tags

    # 4. failure fixed: resumes at stage two, stage one is not redone
    Path("fail_two.flag").unlink()
    fourth = retrain()
    assert _statuses(fourth) == {"one": "skipped", "two": "ran", "three": "ran"}, fourth
    assert _counts() == (1, 3, 2) and Path("out/one.txt").stat().st_mtime_ns == one_mtime
    assert Path("out/two.txt").read_text() == "C=4.0 input=v2"

    # 5. nothing in the DVC cache (as in a fresh clone): DVC reruns every stage, and each reproduces its dvc.lock
    # entry exactly. They still ran, and the flow says so (an unchanged entry does not mean skipped).
    shutil.rmtree(".dvc/cache")
    fifth = retrain()
    assert _statuses(fifth) == {"one": "ran", "two": "ran", "three": "ran"}, fifth
    assert _counts() == (2, 4, 3) and fifth["parent_run_id"] is not None


@pytest.mark.slow
def test_input_errors_are_not_retried(project):
    from flows.retrain import InputError, StageFailed

    _set_flow_params(retries=1, retry_delay_seconds=0)
    Path("input_error_one.flag").touch()
    state = retrain(targets=["one"], return_state=True)
    assert state.is_failed() and "bad input: injected" in state.message
    with pytest.raises(InputError):
        state.result()
    assert _count("one") == 1 and _task_runs(state)["one"].run_count == 1
    # a returned Rejected state, not a raised exception: Prefect logs one line for it, not two tracebacks
    assert state.name == "Rejected" and _task_runs(state)["one"].state.name == "Rejected"

    # an ordinary failure is retried once; the marker the last run left (this failure never reaches the stage's
    # own cleanup) does not make it look like bad input
    Path("input_error_one.flag").unlink()
    Path("fail_one.flag").touch()
    state = retrain(targets=["one"], return_state=True)
    assert state.is_failed() and "boom: injected failure in stage one" in state.message
    with pytest.raises(StageFailed) as err:
        state.result()
    assert not isinstance(err.value, InputError)
    assert _count("one") == 3 and _task_runs(state)["one"].run_count == 2


def _experiments() -> list[dict]:
    """Every experiment `dvc exp show` lists: {'name', 'params', 'metrics'}."""
    found = []
    for rev in json.loads(_dvc("exp", "show", "--json")):
        for exp in rev.get("experiments") or []:
            for run in exp["revs"]:
                data = run["data"]
                found.append(
                    {
                        "name": exp["name"],
                        "params": data["params"]["params.yaml"]["data"],
                        "metrics": {k: v["data"] for k, v in (data.get("metrics") or {}).items()},
                    }
                )
    return found


@pytest.mark.slow
def test_overrides_run_as_dvc_experiment(project):
    from sora.config import ConfigError

    original = Path("params.yaml").read_bytes()
    with open("stages.py", "a") as f:  # an uncommitted edit of a tracked file goes into the experiment as well
        f.write("# edited\n")
    result = retrain(targets=["two"], overrides={"baseline": {"C": 9.0}})
    assert result["status"] == "completed" and _statuses(result) == {"experiment": "ran"}, result
    assert Path("params.yaml").read_bytes() == original
    assert not Path("out").exists() and _counts() == (0, 0, 0)  # the workspace is left as it was
    (exp,) = _experiments()
    assert exp["params"]["baseline"]["C"] == 9.0
    # input_two.txt is untracked: the flow copies it into the experiment's temporary workspace
    assert exp["metrics"]["metrics/two.json"] == {"C": 9.0, "input": "v1"}

    # invalid overrides stop the flow before any stage or experiment runs
    with pytest.raises(ConfigError, match="nope"):
        retrain(overrides={"baseline": {"nope": 1}})
    with pytest.raises(ConfigError, match="divisible"):
        retrain(overrides={"model": {"n_heads": 3}})
    with pytest.raises(ValueError, match="refresh"):
        retrain(overrides={"baseline": {"C": 1.0}}, refresh_data=True)
    assert Path("params.yaml").read_bytes() == original and _counts() == (0, 0, 0) and len(_experiments()) == 1


@pytest.mark.slow
def test_overrides_need_a_git_commit(project):
    shutil.rmtree(".git")
    _git("init", "-q", cwd=Path.cwd())
    with pytest.raises(ValueError, match="git commit"):
        retrain(overrides={"baseline": {"C": 9.0}})
    assert _counts() == (0, 0, 0)


@pytest.mark.slow
def test_stage_timeout_kills_the_dvc_process_group(project):
    import psutil

    _set_flow_params(stage_timeout_seconds=6)
    Path("sleep_one.flag").touch()
    start = time.monotonic()
    state = retrain(targets=["one"], return_state=True)
    assert state.is_failed() and time.monotonic() - start < 20
    assert _task_runs(state)["one"].state.name == "TimedOut"
    pid = int(Path("pids/one").read_text())  # the stage script had started (under dvc, in its group)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"stage process {pid} outlived the timeout"
        time.sleep(0.1)


@pytest.mark.slow
def test_cron_deployment_and_overlap_skip(project):
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.flow_engine import run_flow
    from prefect.flows import load_flow_from_entrypoint

    from flows.retrain import SKIP_MESSAGE
    from flows.schedule import build_deployment

    deployment_id = str(build_deployment("sora-test", "0 3 * * *").apply())  # what serve() applies
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain/sora-test")
        assert str(deployment.id) == deployment_id
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
        flow_run = client.create_flow_run_from_deployment(deployment.id)
    assert load_flow_from_entrypoint(deployment.entrypoint).name == "retrain"  # what a served run loads

    # a deployment run that finds another retrain run holding the flow lock returns at once, skipped
    with flow_lock(wait=True):
        result = run_flow(retrain, flow_run=flow_run, parameters={})
    assert result["status"] == "skipped" and SKIP_MESSAGE in result["summary"]
    assert _counts() == (0, 0, 0)
    messages: list[str] = []
    with get_client(sync_client=True) as client:
        for _ in range(40):
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))
            messages = [log.message for log in logs]
            if any(SKIP_MESSAGE in m for m in messages):
                break
            time.sleep(0.25)
    assert any(SKIP_MESSAGE in m for m in messages), messages

    # with the lock free, a run of the deployment goes ahead
    with get_client(sync_client=True) as client:
        manual = client.create_flow_run_from_deployment(deployment.id, parameters={"targets": ["one"]})
    done = run_flow(retrain, flow_run=manual, parameters={"targets": ["one"]})
    assert done["status"] == "completed" and _statuses(done) == {"one": "ran"}, done
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(manual.id).state.is_completed()

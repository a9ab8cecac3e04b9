"""Runs left RUNNING by a killed process are closed as KILLED on the next start; live and foreign runs stay."""

import subprocess
import sys

import mlflow

from sora.tracking.runs import OWNER_TAG, close_stranded_runs, process_key


def test_runs_of_dead_processes_are_closed_as_killed(tmp_path):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("sora", artifact_location=(tmp_path / "mlruns").as_uri())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead_owner = process_key(child.pid)
    child.kill()
    child.wait()
    live_owner = process_key()
    host, pid, started = live_owner.split(":", 2)
    runs = {
        "dead": client.create_run(exp, tags={OWNER_TAG: dead_owner}).info.run_id,
        "live": client.create_run(exp, tags={OWNER_TAG: live_owner}).info.run_id,
        "reused pid": client.create_run(exp, tags={OWNER_TAG: f"{host}:{pid}:{float(started) - 5}"}).info.run_id,
        "other host": client.create_run(exp, tags={OWNER_TAG: f"elsewhere:{child.pid}:1.0"}).info.run_id,
        "no owner": client.create_run(exp).info.run_id,
    }
    closed = close_stranded_runs(client, exp)
    assert set(closed) == {runs["dead"], runs["reused pid"]}
    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {
        "dead": "KILLED",
        "live": "RUNNING",
        "reused pid": "KILLED",
        "other host": "RUNNING",
        "no owner": "RUNNING",
    }
    assert close_stranded_runs(client, exp) == []

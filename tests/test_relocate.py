"""A checkout moved to another folder: its MLflow store's artifact locations follow it (they used to point
at the old tree, so runs logged there or failed where it was gone)."""

import shutil

import mlflow

from sora.tracking.relocate import recorded_root, relocate_store


def _store_with_a_run(root):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    exp = client.create_experiment("sora", artifact_location=(root / "mlruns").as_uri())
    run = client.create_run(exp)
    (root / "note.txt").write_text("hello")
    client.log_artifact(run.info.run_id, str(root / "note.txt"))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_a_moved_store_points_at_its_new_folder(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    run_id = _store_with_a_run(old)
    shutil.move(old, new)
    assert recorded_root(new / "mlflow.db", "sora") == old

    assert relocate_store(new / "mlflow.db", "sora") == old
    assert relocate_store(new / "mlflow.db", "sora") is None  # done once
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{new}/mlflow.db")
    run = client.get_run(run_id)
    assert run.info.artifact_uri.startswith((new / "mlruns").as_uri())
    assert client.get_experiment_by_name("sora").artifact_location.startswith((new / "mlruns").as_uri())
    assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
    new_run = client.create_run(client.get_experiment_by_name("sora").experiment_id)
    (new / "more.txt").write_text("x")
    client.log_artifact(new_run.info.run_id, str(new / "more.txt"))
    assert list((new / "mlruns").rglob("more.txt")) and not old.exists()


def test_the_move_is_reported_on_stderr(tmp_path, capsys):
    """Reported on stdout, the message landed among `sora predict`'s predictions."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    _store_with_a_run(old)
    shutil.move(old, new)
    relocate_store(new / "mlflow.db", "sora")
    out, err = capsys.readouterr()
    assert out == "" and "the store moved from" in err

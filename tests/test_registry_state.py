"""The registry state a run depends on is checked: what DVC cannot see (the MLflow store) is compared with
what the register stage recorded, and versions a killed register left half-made are removed."""

import hashlib

import mlflow

from sora.io import json_text
from sora.tracking.registry import (
    COMPLETE_TAG,
    PREVIOUS_CHAMPION_TAG,
    RESULT_TAG,
    registry_mismatch,
    remove_incomplete_versions,
    unrecorded_result,
)


def _store(tmp_path):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    exp = client.create_experiment("sora", artifact_location=(tmp_path / "mlruns").as_uri())
    client.create_registered_model("sora")
    return client, exp


def _version(client, exp, stage="register", complete=True, status="FINISHED"):
    run = client.create_run(exp, tags={"sora.stage": stage})
    v = client.create_model_version("sora", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    if complete:
        client.set_model_version_tag("sora", v.version, COMPLETE_TAG, "true")
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status=status)
    return str(v.version)


def test_a_half_made_version_from_a_killed_register_is_removed(tmp_path):
    client, exp = _store(tmp_path)
    done = _version(client, exp)
    orphan = _version(client, exp, complete=False, status="KILLED")
    in_progress = _version(client, exp, complete=False, status="RUNNING")
    by_hand = _version(client, exp, stage="notebook", complete=False)
    aliased_by_hand = _version(client, exp, complete=False)
    client.set_registered_model_alias("sora", "production", aliased_by_hand)
    # killed after it marked the version complete, before the stage ended: DVC never recorded it
    killed_late = _version(client, exp, status="KILLED")
    failed_late = _version(client, exp, status="FAILED")
    assert set(remove_incomplete_versions(client, "sora")) == {orphan, killed_late, failed_late}
    left = {str(v.version) for v in client.search_model_versions("name = 'sora'")}
    assert left == {done, in_progress, by_hand, aliased_by_hand}


def test_a_kill_after_the_aliases_moved_is_undone(tmp_path):
    """register was killed after moving candidate and champion to its version but before marking it complete:
    the version goes, and champion returns to the version it replaced."""
    client, exp = _store(tmp_path)
    old = _version(client, exp)
    client.set_registered_model_alias("sora", "champion", old)
    half = _version(client, exp, complete=False, status="KILLED")
    client.set_model_version_tag("sora", half, PREVIOUS_CHAMPION_TAG, old)
    client.set_registered_model_alias("sora", "candidate", half)
    client.set_registered_model_alias("sora", "champion", half)
    assert remove_incomplete_versions(client, "sora") == [half]
    assert str(client.get_model_version_by_alias("sora", "champion").version) == old
    assert {str(v.version) for v in client.search_model_versions("name = 'sora'")} == {old}


def test_registry_drift_is_detected(tmp_path):
    client, exp = _store(tmp_path)
    v = _version(client, exp)
    client.set_registered_model_alias("sora", "champion", v)
    recorded = {"version": int(v), "promoted": 1, "champion_version": int(v)}
    assert registry_mismatch(client, "sora", recorded) is None
    client.delete_registered_model_alias("sora", "champion")
    assert "lost its champion alias" in registry_mismatch(client, "sora", recorded)
    assert "is not in the registry" in registry_mismatch(client, "sora", {**recorded, "version": 7})
    half = _version(client, exp, complete=False)
    assert "never completed" in registry_mismatch(client, "sora", {"version": int(half), "promoted": 0})

    # a deleted store (rm mlflow.db) is a new, empty one
    fresh = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/new.db")
    assert "is not in the registry" in registry_mismatch(fresh, "sora", recorded)


def test_a_finished_registration_dvc_never_recorded_is_reused(tmp_path):
    """register finished (run FINISHED, version complete) but its dvc was killed before writing dvc.lock: the
    rerun gets the same result back instead of registering the same bundle a second time."""
    client, exp = _store(tmp_path)
    hashes = {"models/prune": "aaa", "data/processed/test.parquet": "bbb"}
    older = _version(client, exp)
    v = _version(client, exp)
    result = {"version": int(v), "promoted": 1}
    client.set_model_version_tag("sora", v, RESULT_TAG, json_text(result))
    for path, md5 in hashes.items():
        client.set_model_version_tag("sora", v, f"dvc.md5.{path}", md5)

    assert unrecorded_result(client, "sora", hashes, recorded_md5=None) == result
    # DVC recorded exactly this result: the rerun was forced, so it registers anew
    recorded = hashlib.md5(json_text(result).encode()).hexdigest()
    assert unrecorded_result(client, "sora", hashes, recorded_md5=recorded) is None
    # other inputs (a new bundle), or inputs unknown
    assert unrecorded_result(client, "sora", {**hashes, "models/prune": "ccc"}, recorded_md5=None) is None
    assert unrecorded_result(client, "sora", {}, recorded_md5=None) is None
    # only the newest version counts, and only a complete one
    newer = _version(client, exp, complete=False)
    assert unrecorded_result(client, "sora", hashes, recorded_md5=None) is None
    assert older != newer

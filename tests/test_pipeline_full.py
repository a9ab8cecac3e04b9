"""Integration: the whole pipeline through real `dvc repro` on tiny data in a temp repo (real Lightning,
MLflow sqlite store, registry), then DDP, resume and registry-gate checks on the same repo."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from fixtures import dvc, make_repo, run

TINY = {
    "model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "ff_dim": 32, "max_len": 32, "decoder_layers": 1},
    "trainer": {"batch_size": 16, "threads": 1, "log_every_n_steps": 1},
    "pretrain": {"max_epochs": 1, "max_len": 32, "loss_fraction": 0.5},
    "finetune": {"max_epochs": 3, "lr": 0.005, "patience": 2},
    "harden": {"max_epochs": 1, "noise_augment": 0.3, "val_checks_per_epoch": 2},
    "evaluate": {"attack_max_examples": 8, "batch_size": 64},
    "prune": {"recovery_epochs": 1, "latency_batch": 16},
    "register": {"attack_accuracy_floor": 0.0},
}
STAGES = [
    "ingest",
    "preprocess",
    "vocab",
    "baseline",
    "pretrain",
    "finetune",
    "harden",
    "evaluate",
    "prune",
    "register",
]


def mlflow_runs(repo):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("sora")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = make_repo(tmp_path_factory.mktemp("full"), TINY, n_per_lang=60)
    result = dvc(repo, "repro")
    for stage in STAGES:
        assert f"Running stage '{stage}'" in result.stdout, stage
    return repo


def test_outputs_metrics_and_plots(repo):
    finetune = json.loads((repo / "metrics/finetune.json").read_text())
    for key in (
        "val_acc",
        "val_f1",
        "test_acc",
        "test_f1",
        "test_acc_zh",
        "test_acc_en",
        "baseline_test_acc_zh",
        "epochs_to_best",
    ):
        assert key in finetune, key
    assert finetune["test_acc"] > 0.5
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
    assert {
        "finetuned_all_acc",
        "hardened_all_acc",
        "hardened_zh_ece",
        "finetuned_attack_greedy_en_acc",
        "hardened_attack_all_perturbations_zh_acc",
    } <= set(evaluate)
    prune = json.loads((repo / "metrics/prune.json").read_text())
    assert abs(prune["global_sparsity"] - 0.7) < 0.01
    assert prune["int8_size_ratio"] > 1.0  # tiny model: fixed overheads dominate; the real ratio is benchmarked
    shown = dvc(repo, "metrics", "show", "--json").stdout
    for name in ("evaluate.json", "prune.json", "finetune.json", "baseline.json"):
        assert name in shown
    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)
    names = " ".join(plots["data"])
    for expected in ("finetune.csv", "confusion_hardened.csv", "ROC", "robustness.png"):
        assert expected in names, expected
    assert (repo / "plots/evaluate/robustness.png").stat().st_size > 1000


def test_one_parent_run_with_a_child_per_stage(repo):
    client, runs = mlflow_runs(repo)
    stage_runs = [r for r in runs if r.data.tags.get("sora.kind") == "stage"]
    assert sorted(r.data.tags["sora.stage"] for r in stage_runs) == sorted(STAGES)
    parents = {r.data.tags["mlflow.parentRunId"] for r in stage_runs}
    assert len(parents) == 1  # every stage of one `dvc repro` shares the parent
    finetune = next(r for r in stage_runs if r.data.tags["sora.stage"] == "finetune")
    assert "finetune.lr" in finetune.data.params and "model.d_model" in finetune.data.params
    assert len(client.get_metric_history(finetune.info.run_id, "val_f1")) >= 1  # per-epoch curve
    assert finetune.inputs.dataset_inputs, "DVC hashes of the input data are logged as dataset inputs"
    harden = next(r for r in stage_runs if r.data.tags["sora.stage"] == "harden")
    assert len(client.get_metric_history(harden.info.run_id, "val_f1")) == 2  # val_checks_per_epoch=2, 1 epoch


def test_evaluate_in_two_processes_matches_one(repo, monkeypatch):
    import numpy as np

    from sora.config import load_params
    from sora.stages.evaluate import assess_all

    monkeypatch.chdir(repo)
    one = assess_all(load_params(overrides={"evaluate": {"processes": 1}}))
    two = assess_all(load_params(overrides={"evaluate": {"processes": 2}}))
    assert list(one) == list(two) == ["finetuned", "hardened"]
    for name in one:
        np.testing.assert_allclose(one[name][0], two[name][0], rtol=0, atol=1e-6)
        pd.testing.assert_frame_equal(one[name][1], two[name][1])
        pd.testing.assert_frame_equal(one[name][2], two[name][2])  # per-example outcomes


def test_registry_champion_and_predict(repo):
    import mlflow

    client, _ = mlflow_runs(repo)
    champion = client.get_model_version_by_alias("sora", "champion")
    assert champion.tags["sora.promoted"] == "True" and "dvc.md5.models/prune" in champion.tags
    assert champion.run_id
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/sora@champion")
    out = model.predict(pd.DataFrame({"text": ["这部电影很好", "the movie was awful"]}))
    assert list(out.columns[:2]) == ["label", "probability"] and len(out) == 2
    assert out["probability"].between(0.5, 1.0).all()

    cli = [sys.executable, "-m", "sora.cli", "predict"]
    ok = run(cli + ["这本书很好", "great movie", "中英 mixed 文本 text"], repo)
    assert len(ok.stdout.strip().splitlines()) == 3
    long_text = run(cli + ["good " * 20_000, "--model", "models/prune"], repo)  # 100k chars (argv limit: 128 KiB)
    assert long_text.returncode == 0
    empty = run(cli + [""], repo, check=False)
    assert empty.returncode == 1 and "empty text" in empty.stderr
    missing = run(cli + ["--input", "nope.csv"], repo, check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    (repo / "bad.csv").write_text("words\nhello\n")
    bad = run(cli + ["--input", "bad.csv"], repo, check=False)
    assert bad.returncode == 1 and "no 'text' column" in bad.stderr and "Traceback" not in bad.stderr
    (repo / "in.txt").write_text("好看\nboring film\n")
    written = run(cli + ["--input", "in.txt", "--output", "out.csv"], repo)
    assert "wrote 2 predictions" in written.stdout
    assert pd.read_csv(repo / "out.csv")["label"].isin([0, 1]).all()


def test_worse_candidate_stays_candidate(repo):
    client, _ = mlflow_runs(repo)
    before = client.get_model_version_by_alias("sora", "champion").version
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prune"].update(sparsity=0.99, recovery_epochs=0)  # a deliberately broken candidate
    (repo / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    out = dvc(repo, "repro", "register")
    assert "stays candidate" in out.stdout and "test macro-F1" in out.stdout
    assert client.get_model_version_by_alias("sora", "champion").version == before
    candidate = client.get_model_version_by_alias("sora", "candidate").version
    assert int(candidate) == int(before) + 1
    decision = json.loads((repo / "metrics/register.json").read_text())
    assert decision["promoted"] == 0 and "< champion's" in decision["reason"]
    assert decision["candidate_test_f1"] < decision["champion_test_f1"]


def _stage_env():
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("SORA_PARENT_RUN_ID", None)
    return env


def test_ddp_two_processes_make_one_child_run(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["trainer"].update(devices=2, strategy="ddp", accelerator="cpu")
    params["finetune"]["max_epochs"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    _, before = mlflow_runs(repo)
    result = subprocess.run(
        [sys.executable, "-m", "sora.stages.finetune"],
        cwd=repo,
        env=_stage_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    _, after = mlflow_runs(repo)
    new = [r for r in after if r.info.run_id not in {b.info.run_id for b in before}]
    assert len([r for r in new if r.data.tags.get("sora.stage") == "finetune"]) == 1
    assert json.loads((repo / "metrics/finetune.json").read_text())["test_acc"] > 0


def _kill_when_checkpointed(cmd, repo, last):
    proc = subprocess.Popen(
        cmd, cwd=repo, env=_stage_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.3)  # let the first checkpoint write finish; later epochs still take seconds
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_finetune_resumes_from_last_checkpoint(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["trainer"].update(devices=1, strategy="auto")
    params["finetune"].update(max_epochs=12, patience=12)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    cmd = [sys.executable, "-m", "sora.stages.finetune"]
    last = repo / ".sora/work/finetune/last.ckpt"
    _kill_when_checkpointed(cmd, repo, last)
    assert last.exists(), "no last.ckpt was written before the kill"
    import torch

    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] < 12
    resumed = subprocess.run(cmd, cwd=repo, env=_stage_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from .sora/work/finetune/last.ckpt" in resumed.stdout
    assert "Restoring states from the checkpoint path" in resumed.stderr + resumed.stdout
    assert not last.exists()  # the work dir is cleared once the fit completes
    assert (repo / "models/finetune/best.ckpt").exists() and (repo / "models/finetune/last.ckpt").exists()

"""Integration: the whole pipeline through real `dvc repro` on tiny data in a temp repo (real Lightning,
MLflow sqlite store, registry), then DDP, resume and registry-gate checks, each on its own copy of it."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import PIPELINE_STAGES as STAGES

pytestmark = pytest.mark.slow


def mlflow_runs(project):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.path}/mlflow.db")
    exp = client.get_experiment_by_name("sora")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


@pytest.fixture(scope="module")
def built(built_pipeline):
    return built_pipeline


@pytest.fixture
def repo(built, tmp_path):
    return built.copy(tmp_path)


def test_outputs_metrics_and_plots(built):
    finetune = built.read_json("metrics/finetune.json")
    assert set(finetune) >= {"val", "test", "test_minus_baseline", "epochs", "train_examples"}
    assert set(finetune["test"]) == {"all", "zh", "en", "tasks"} and set(finetune["test"]["zh"]) == {"acc", "f1"}
    assert set(finetune["test"]["tasks"]["topic"]["all"]) == {"acc", "f1", "n"}  # the project's second task
    assert finetune["test"]["all"]["acc"] > 0.5
    evaluate = built.read_json("metrics/evaluate.json")
    for model in ("finetuned", "hardened", "distilled"):
        assert set(evaluate[model]["zh"]) >= {"acc", "f1", "ece"}
        assert evaluate[model]["behaviour"]["zh"]["clear"]["n"] >= 60
        assert set(evaluate[model]["attack"]["greedy"]["en"]) == {"acc", "success_rate"}
        assert "all_perturbations" in evaluate[model]["attack"]
    for model in ("finetuned", "hardened", "distilled"):  # the project's second task, in every model
        assert evaluate[model]["tasks"]["topic"]["all"]["n"] > 0
        assert (built.path / f"plots/evaluate/tasks/confusion_{model}_topic.csv").is_file()
        topic_attacks = evaluate[model]["task_attack"]["topic"]  # the topic head under the perturbation attacks
        assert {"clean", "all_perturbations"} <= set(topic_attacks) and topic_attacks["clean"]["zh"]["n"] > 0
    prune = built.read_json("metrics/prune.json")
    assert set(prune["tasks"]["topic"]) == {"fp32", "pruned", "int8"}
    assert abs(prune["global_sparsity"] - 0.7) < 0.01
    assert prune["int8_size_ratio"] > 1.0  # tiny model: fixed overheads dominate; the real ratio is benchmarked
    assert set(prune["vs_tuned_classical"]["en"]) == {"champion_acc", "classical_acc", "p_value"}
    assert 0 <= prune["behaviour"]["en"]["clear"]["pass_rate"] <= 1
    distill = built.read_json("metrics/distill.json")
    assert 0 <= distill["teacher"]["weight_hardened"] <= 1 and distill["transfer"]["unlabeled"] > 0
    assert set(distill["teacher"]["test"]["zh"]) == {"acc", "f1"} and distill["test"]["all"]["acc"] > 0.5
    assert set(built.read_json("metrics/baseline.json")["tuned"]["test"]) == {"zh", "en"}
    shown = json.loads(built.dvc("metrics", "show", "--json").stdout)
    values = json.dumps(shown)
    for name in ("evaluate.json", "prune.json", "finetune.json", "baseline.json"):
        assert name in values
    leaves = []

    def collect(node):
        if isinstance(node, dict):
            for value in node.values():
                collect(value)
        else:
            leaves.append(node)

    collect(shown)
    assert all(isinstance(v, int | float) or v is None for v in leaves), "metrics are numbers only"
    plots = json.loads(built.dvc("plots", "show", "--json").stdout)
    names = " ".join(plots["data"])
    for expected in (
        "plots/finetune/val/f1.tsv",
        "plots/pretrain/ppmi_spectrum.tsv",
        "plots/distill/val/f1.tsv",
        "confusion_hardened.csv",
        "ROC",
    ):
        assert expected in names, expected
    assert (built.path / "plots/evaluate/robustness.png").stat().st_size > 1000


def test_one_parent_run_with_a_child_per_stage(built):
    client, runs = mlflow_runs(built)
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


def test_evaluate_in_two_processes_matches_one(built, monkeypatch):
    import numpy as np

    from sora.config import load_params
    from sora.evaluation.assess import assess_all

    monkeypatch.chdir(built.path)
    e = load_params().evaluate
    checkpoints = {name: built.path / f"models/{stage}/best.ckpt" for name, stage in
                   (("finetuned", "finetune"), ("hardened", "harden"))}  # fmt: skip
    test, vocab = built.path / "data/processed/test.parquet", built.path / "data/vocab.json"
    one = assess_all(checkpoints, test, vocab, e, threads=1, processes=1, tasks={"topic": "topic"})
    two = assess_all(checkpoints, test, vocab, e, threads=1, processes=2, tasks={"topic": "topic"})
    assert list(one) == list(two) == ["finetuned", "hardened"]
    for name in one:
        np.testing.assert_allclose(one[name][0], two[name][0], rtol=0, atol=1e-6)
        pd.testing.assert_frame_equal(one[name][1], two[name][1])
        pd.testing.assert_frame_equal(one[name][2], two[name][2])  # per-example outcomes
        pd.testing.assert_frame_equal(one[name][3], two[name][3])  # the other tasks' robustness


def test_registry_champion_and_predict(repo):
    import mlflow

    client, _ = mlflow_runs(repo)
    champion = client.get_model_version_by_alias("sora", "champion")
    assert champion.tags["sora.promoted"] == "True" and "dvc.md5.models/prune" in champion.tags
    assert champion.run_id
    mlflow.set_tracking_uri(f"sqlite:///{repo.path}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/sora@champion")
    out = model.predict(pd.DataFrame({"text": ["这部电影很好", "the movie was awful"]}))
    assert list(out.columns[:3]) == ["label", "label_name", "probability"] and len(out) == 2
    assert set(out["label_name"]) <= {"negative", "positive"}
    assert out["probability"].between(0.5, 1.0).all()
    # One model answers both tasks of the project (sentiment and topic), for a zh and an en text.
    assert set(out["topic_label_name"]) <= {"things", "places"} and out["topic_probability"].between(0.5, 1).all()
    register = repo.read_json("metrics/register.json")
    assert set(register["gate"]["tasks"]["candidate_acc"]) == {"topic"}

    cli = [sys.executable, "-m", "sora.cli", "predict"]
    ok = repo.run(cli + ["这本书很好", "great movie", "中英 mixed 文本 text"])
    assert len(ok.stdout.strip().splitlines()) == 3 and all("\ttopic=" in line for line in ok.stdout.splitlines())
    long_text = repo.run(cli + ["good " * 20_000, "--model", "models/prune"])  # 100k chars (argv limit: 128 KiB)
    assert long_text.returncode == 0
    empty = repo.run(cli + [""], check=False)
    assert empty.returncode == 1 and "empty text" in empty.stderr
    missing = repo.run(cli + ["--input", "nope.csv"], check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    (repo.path / "bad.csv").write_text("words\nhello\n")
    bad = repo.run(cli + ["--input", "bad.csv"], check=False)
    assert bad.returncode == 1 and "no 'text' column" in bad.stderr and "Traceback" not in bad.stderr
    (repo.path / "in.txt").write_text("好看\nboring film\n")
    written = repo.run(cli + ["--input", "in.txt", "--output", "out.csv"])
    assert "wrote 2 predictions" in written.stdout
    assert pd.read_csv(repo.path / "out.csv")["label"].isin([0, 1]).all()


def test_worse_candidate_stays_candidate(repo):
    client, _ = mlflow_runs(repo)
    before = client.get_model_version_by_alias("sora", "champion").version
    # A deliberately broken candidate: its network 99 % pruned with no recovery, its n-gram half regularised to
    # almost nothing (C = 1e-4 answers the class prior)
    repo.set_params(prune={"sparsity": 0.99, "recovery_epochs": 0}, baseline={"tuned_Cs": [0.0001]})
    out = repo.dvc("repro", "register")
    assert "stays candidate" in out.stdout and "WARNING: register.baseline_tolerance is 1.0" in out.stdout
    assert client.get_model_version_by_alias("sora", "champion").version == before
    candidate = client.get_model_version_by_alias("sora", "candidate").version
    assert int(candidate) == int(before) + 1
    decision = repo.read_json("metrics/register.json")
    assert decision["promoted"] == 0
    assert set(decision["gate"]["majority_acc"]) == {"zh", "en"}

    # With no champion to compare against, the junk model was promoted: the absolute gate refuses it.
    client.delete_registered_model_alias("sora", "champion")
    repo.set_params(register={"majority_margin": 0.05})
    out = repo.dvc("repro", "register")
    assert "stays candidate" in out.stdout and "majority class" in out.stdout, out.stdout
    assert repo.read_json("metrics/register.json")["promoted"] == 0
    no_champion = repo.run([sys.executable, "-m", "sora.cli", "predict", "good film"], check=False)
    assert no_champion.returncode == 1 and "no champion yet" in no_champion.stderr, no_champion.stderr
    assert "--model models:/sora@candidate" in no_champion.stderr
    client.set_registered_model_alias("sora", "champion", before)


def _stage_env():
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name in ("SORA_PARENT_RUN_ID", "MLFLOW_TRACKING_URI"):  # mlflow.set_tracking_uri exports the latter
        env.pop(name, None)
    return env


def test_ddp_two_processes_make_one_child_run(repo):
    repo.set_params(trainer={"devices": 2, "strategy": "ddp", "accelerator": "cpu"}, finetune={"max_epochs": 1})
    _, before = mlflow_runs(repo)
    result = subprocess.run(
        repo.stage_command("finetune"),
        cwd=repo.path,
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
    assert repo.read_json("metrics/finetune.json")["test"]["all"]["acc"] > 0


def _kill_when_checkpointed(cmd, repo, last):
    proc = subprocess.Popen(
        cmd,
        cwd=repo.path,
        env=_stage_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.3)  # let the first checkpoint write finish; later epochs still take seconds
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_finetune_resumes_from_last_checkpoint(repo):
    repo.set_params(finetune={"max_epochs": 12, "patience": 12})
    cmd = repo.stage_command("finetune")
    last = repo.path / ".sora/work/finetune/last.ckpt"
    _kill_when_checkpointed(cmd, repo, last)
    assert last.exists(), "no last.ckpt was written before the kill"
    import torch

    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] < 12
    resumed = subprocess.run(cmd, cwd=repo.path, env=_stage_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from .sora/work/finetune/last.ckpt" in resumed.stdout
    assert "Restoring states from the checkpoint path" in resumed.stderr + resumed.stdout
    assert not last.exists()  # the work dir is cleared once the fit completes
    assert (repo.path / "models/finetune/best.ckpt").exists() and (repo.path / "models/finetune/last.ckpt").exists()
    curve = pd.read_csv(repo.path / "plots/finetune/val/f1.tsv", sep="\t")
    assert curve["step"].nunique() == 12, "the resumed fit kept the validation points from before the kill"

    # The resumed fit ends with the weights of an uninterrupted one: the shuffle, dropout and noise draw from
    # random states that the checkpoint carries (they used to be reseeded, which moved test F1 by a point).
    resumed_state = torch.load(repo.path / "models/finetune/last.ckpt", map_location="cpu", weights_only=True)
    again = subprocess.run(cmd, cwd=repo.path, env=_stage_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "resuming" not in again.stdout
    fresh_state = torch.load(repo.path / "models/finetune/last.ckpt", map_location="cpu", weights_only=True)
    assert resumed_state["epoch"] == fresh_state["epoch"], again.stdout[-3000:]
    differing = [k for k, v in fresh_state["state_dict"].items() if not torch.equal(v, resumed_state["state_dict"][k])]
    assert differing == [], f"resumed weights differ from an uninterrupted fit in {differing[:5]}"

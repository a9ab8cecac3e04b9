"""The served model and `sora predict` on MLflow model folders: Sora reads only the bundle (nothing from a model
folder runs), its own models are logged as code (no pickle), empty texts are refused alike, and the intra-op
thread count is set on purpose."""

from __future__ import annotations

import os
import pickle
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import invoke_cli

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["这部电影很好看", "a good movie"]


class RunsAShellCommand:
    """Unpickling this runs `touch MARKER`: what a crafted python_model.pkl in a model folder can do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def crafted_model_folder(folder: Path, marker: Path, bundle: Path | None = None) -> Path:
    """An MLflow pyfunc model folder whose python_model.pkl runs a shell command when unpickled; with `bundle`,
    it also carries a Sora bundle artifact, laid out as Sora's pickled models were."""
    import cloudpickle

    folder.mkdir()
    (folder / "python_model.pkl").write_bytes(pickle.dumps(RunsAShellCommand(marker)))
    flavor = {
        "loader_module": "mlflow.pyfunc.model",
        "python_model": "python_model.pkl",
        "cloudpickle_version": cloudpickle.__version__,
        "python_version": ".".join(map(str, sys.version_info[:3])),
    }
    if bundle is not None:
        shutil.copytree(bundle, folder / "artifacts" / "prune")
        flavor["artifacts"] = {"bundle": {"path": "artifacts/prune", "uri": "models/prune"}}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"python_function": flavor}}))
    return folder


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Restores what loading an MLflow model changes in this process: torch's thread count (the served model
    sets it), sys.path (MLflow prepends the model's code folder), the tracking URI and environment."""
    import mlflow.tracking._tracking_service.utils as mlflow_utils

    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(mlflow_utils, "_tracking_uri", mlflow_utils._tracking_uri)
    for name in ("MLFLOW_TRACKING_URI", "SORA_PARENT_RUN_ID", "SORA_THREADS", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ARTIFACTS_DESTINATION", str(tmp_path / "mlruns"))
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- (A) nothing from a model folder runs


def test_mlflow_runs_the_pickle_of_a_model_folder_it_loads(tmp_path, isolated):
    """Why Sora never hands a folder to mlflow.pyfunc.load_model: the folder's pickle runs on load."""
    import mlflow

    marker = tmp_path / "ran"
    folder = crafted_model_folder(tmp_path / "model", marker)
    # What it unpickled (the command's exit status) is no model, but by then the command has run.
    with pytest.raises(AttributeError, match="load_context"):
        mlflow.pyfunc.load_model(str(folder))
    assert marker.exists()


def test_predict_refuses_a_model_folder_that_is_not_sora_s(tmp_path, monkeypatch, isolated):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    folder = crafted_model_folder(tmp_path / "model", marker)
    result = invoke_cli("predict", "--model", folder, "good")
    assert result.exit_code == 1
    assert not marker.exists()
    message = result.output.strip()
    assert "\n" not in message and message.startswith(f"error: {folder} is not a Sora model")
    assert "would execute" in message and "mlflow.pyfunc.load_model" in message


def test_predict_reads_only_the_bundle_of_a_pickled_sora_model(bundle, tmp_path, monkeypatch, isolated):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    folder = crafted_model_folder(tmp_path / "model", marker, bundle)
    result = invoke_cli("predict", "--model", folder, *TEXTS)
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 2 and TEXTS[0] in result.output
    assert not marker.exists()


def test_a_bundle_artifact_outside_the_folder_is_refused(bundle, tmp_path, isolated):
    from sora.tracking.pyfunc import NotASoraModel, load_sora_model

    folder = crafted_model_folder(tmp_path / "model", tmp_path / "ran", bundle)
    spec = yaml.safe_load((folder / "MLmodel").read_text())
    spec["flavors"]["python_function"]["artifacts"]["bundle"]["path"] = str(bundle)  # absolute, elsewhere
    (folder / "MLmodel").write_text(yaml.safe_dump(spec))
    with pytest.raises(NotASoraModel, match="outside the model folder"):
        load_sora_model(folder)


def _save_as_registered(bundle: Path, path: Path) -> Path:
    """The model folder register.py logs, saved locally (same files, no tracking store)."""
    import mlflow

    from sora.tracking.pyfunc import model_files

    mlflow.pyfunc.save_model(path=str(path), **model_files(bundle), pip_requirements=["sora"])
    return path


def test_sora_model_is_logged_as_code_without_a_pickle(bundle, tmp_path, isolated):
    import mlflow

    from sora.tracking.pyfunc import load_sora_model

    folder = _save_as_registered(bundle, tmp_path / "model")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.pkl")) == []
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    assert Path(flavor["model_code_path"]).name == "served_model.py" and "python_model" not in flavor
    served = mlflow.pyfunc.load_model(str(folder)).predict(pd.DataFrame({"text": TEXTS}))
    assert served["lang"].tolist() == ["zh", "en"] and served["label"].isin([0, 1]).all()
    # the bundle's class names: label_name and one prob_<name> column per class
    assert list(served.columns[:5]) == ["label", "label_name", "probability", "prob_negative", "prob_positive"]
    assert (served["label_name"] == served["label"].map({0: "negative", 1: "positive"})).all()
    assert served["probability"].between(0.5, 1.0).all()
    # `sora predict` reads the same folder without MLflow running it, and answers the same
    read = load_sora_model(folder).predict_frame(TEXTS)
    pd.testing.assert_frame_equal(served, read)


@pytest.mark.slow
def test_registered_versions_are_read_without_running_them(bundle, tmp_path, monkeypatch, isolated):
    """Registered versions whose pickle runs a command: loading them as register re-scores a champion and as
    `sora predict` does reads the bundle and never unpickles; one without a bundle is refused."""
    import mlflow

    from sora.tracking.pyfunc import NotASoraModel, load_sora_model

    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"]["uri"] = "sqlite:///mlflow.db"
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")  # the store params.yaml names
    mlflow.set_experiment("serving-test")
    marker = tmp_path / "ran"
    versions = [
        crafted_model_folder(tmp_path / "crafted", marker, bundle),
        _save_as_registered(bundle, tmp_path / "sora_model"),
        crafted_model_folder(tmp_path / "crafted_alone", marker),
    ]
    for folder in versions:
        with mlflow.start_run():
            mlflow.log_artifacts(str(folder), "model")
            mlflow.register_model(f"runs:/{mlflow.active_run().info.run_id}/model", "sora")
    expected = load_sora_model(versions[1]).predict_frame(TEXTS)
    for uri in ("models:/sora/1", "models:/sora/2"):  # what register's re-scoring of a champion loads
        pd.testing.assert_frame_equal(load_sora_model(uri).predict_frame(TEXTS), expected)
    with pytest.raises(NotASoraModel, match="models:/sora/3 is not a Sora model"):
        load_sora_model("models:/sora/3")
    result = invoke_cli("predict", "--model", "models:/sora/1", *TEXTS)
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 2
    assert not marker.exists()


# ---------------------------------------------------------------- (B) empty texts, as the CLI refuses them


def _served_model(bundle: Path):
    from sora.tracking.pyfunc import SoraModel

    model = SoraModel()
    model.load_context(type("Context", (), {"artifacts": {"bundle": str(bundle)}})())
    return model


@pytest.mark.parametrize(
    "model_input",
    [
        pd.DataFrame({"text": ["good", "", None, "  \t", float("nan")]}),
        pd.Series(["good", "", None, "  \t", float("nan")]),
        ["good", "", None, "  \t", float("nan")],
    ],
    ids=["dataframe", "series", "list"],
)
def test_served_model_refuses_empty_texts_naming_the_rows(bundle, model_input, isolated):
    with pytest.raises(ValueError, match=r"4 empty text\(s\) at rows? 2, 3, 4, 5 \(counting from 1\)"):
        _served_model(bundle).predict(None, model_input)


def test_served_and_cli_answer_an_empty_text_alike(bundle, isolated):
    with pytest.raises(ValueError, match=r"1 empty text\(s\) at row 2 \(counting from 1\): nothing to classify"):
        _served_model(bundle).predict(None, pd.DataFrame({"text": ["good", " "]}))
    result = invoke_cli("predict", "--model", bundle, "good", " ")
    assert result.exit_code == 1 and "1 empty text(s), first at argument 2: nothing to classify" in result.output
    assert _served_model(bundle).predict(None, ["good", "好"])["label"].isin([0, 1]).all()


def test_the_emptiness_rule_is_one_helper():
    from sora.inference import empty_text_rows

    assert empty_text_rows(["a", "", " \n", None, float("nan"), pd.NA, "0", 0, "好"]) == [1, 2, 3, 4, 5]


# ---------------------------------------------------------------- (C) the intra-op thread count


def test_threads_come_from_the_option_then_the_environment_then_one(bundle, monkeypatch, isolated):
    from sora.inference import inference_threads

    torch.set_num_threads(2)
    assert inference_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("SORA_THREADS", "2")
    assert inference_threads() == 2 and torch.get_num_threads() == 2
    assert inference_threads(1) == 1 and torch.get_num_threads() == 1
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SORA_THREADS", bad)
        with pytest.raises(ValueError, match=f"SORA_THREADS={bad}"):
            inference_threads()


def test_predict_and_the_served_model_set_the_thread_count(bundle, monkeypatch, isolated):
    torch.set_num_threads(2)
    assert invoke_cli("predict", "--model", bundle, "good").exit_code == 0
    assert torch.get_num_threads() == 1
    assert invoke_cli("predict", "--model", bundle, "--threads", "2", "good").exit_code == 0
    assert torch.get_num_threads() == 2
    result = invoke_cli("predict", "--model", bundle, "--threads", "0", "good")
    assert result.exit_code == 1 and "--threads" in result.output
    monkeypatch.setenv("SORA_THREADS", "2")
    torch.set_num_threads(1)
    _served_model(bundle)
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("SORA_THREADS", "lots")
    result = invoke_cli("predict", "--model", bundle, "good")
    assert result.exit_code == 1 and "SORA_THREADS=lots" in result.output and "\n" not in result.output.strip()


def test_predict_help_says_that_loading_an_mlflow_model_runs_its_code():
    result = invoke_cli("predict", "--help", env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert "--threads" in text and "SORA_THREADS" in text
    assert "executes its code" in text and "mlflow models serve" in text


def test_a_multi_task_bundle_answers_every_task_from_one_model(tmp_path, tiny_model):
    from sora.data.vocab import Vocab
    from sora.inference import load_bundle, save_bundle
    from sora.models.classifier import build_classifier

    vocab = Vocab.build([["好看", "电影", "good", "movie"]] * 2, ["<pad>", "<unk>", "<cls>", "<mask>"], 1, 100)
    params = tiny_model.model_copy(update={"d_model": 8, "ff_dim": 16, "dropout": 0.1}).model_dump()
    tasks = {"topic": {"name": "topic", "classes": ["things", "places", "people"]}}
    model = build_classifier(len(vocab), vocab.pad_id, params, 2, {"topic": 3})
    config = {"vocab_size": len(vocab), "pad_id": vocab.pad_id, "num_classes": 2, "model_params": params,
              "class_names": ["negative", "positive"], "tasks": tasks}  # fmt: skip
    save_bundle(tmp_path, model, vocab, config)
    out = load_bundle(tmp_path).predict_frame(["好看的电影", "a good movie"])
    assert list(out.columns) == [
        "label", "label_name", "probability", "prob_negative", "prob_positive",
        "topic_label", "topic_label_name", "topic_probability", "topic_prob_things", "topic_prob_places",
        "topic_prob_people", "lang", "truncated",
    ]  # fmt: skip
    assert set(out["topic_label_name"]) <= {"things", "places", "people"}
    assert list(load_bundle(tmp_path).predict_frame([]).columns) == list(out.columns)  # no texts: no rows
    probs = out[["topic_prob_things", "topic_prob_places", "topic_prob_people"]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
    assert (out["topic_probability"] == probs.max(1)).all()

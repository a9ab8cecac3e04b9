"""Integration: the data stages through real `dvc repro` in a temp copy of the repo, on tiny user files."""

import json

import pandas as pd
import yaml
from fixtures import dvc, make_repo

DATA_STAGES = ["ingest", "preprocess", "vocab", "baseline"]


def _ran(output: str) -> list[str]:
    return [s for s in DATA_STAGES if f"Running stage '{s}'" in output]


def test_data_stages_via_dvc_repro(tmp_path):
    repo = make_repo(tmp_path)
    first = dvc(repo, "repro", "vocab", "baseline")
    assert _ran(first.stdout) == DATA_STAGES

    splits = {s: pd.read_parquet(repo / f"data/processed/{s}.parquet") for s in ("train", "val", "test")}
    for name, frame in splits.items():
        assert {"text", "label", "lang", "tokens", "source"} <= set(frame.columns)
        assert set(frame["lang"]) == {"zh", "en"}, name
    texts = [set(f["text"]) for f in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])

    rejects = pd.read_parquet(repo / "data/processed/rejected.parquet")
    reasons = rejects["reason"].value_counts().to_dict()
    assert reasons["invalid_row"] == 2  # whitespace-only text + float label, each with its detail
    assert reasons["conflicting_labels"] == 2  # the first text repeated with the other label
    metrics = json.loads((repo / "metrics/preprocess.json").read_text())
    assert metrics["rejected_total"] == len(rejects) and metrics["rows_in"] == metrics["rows_kept"] + len(rejects)
    vocab = json.loads((repo / "data/vocab.json").read_text())
    assert vocab["tokens"][:4] == ["<pad>", "<unk>", "<cls>", "<mask>"]
    baseline = json.loads((repo / "metrics/baseline.json").read_text())
    assert baseline["zh_test_acc"] > 0.7 and baseline["en_test_acc"] > 0.7  # keywords decide the label

    # Second repro: nothing to do.
    second = dvc(repo, "repro", "vocab", "baseline")
    assert _ran(second.stdout) == []

    # A preprocess param change reruns preprocess and its dependants only.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["preprocess"]["seed"] = 7
    (repo / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    third = dvc(repo, "repro", "vocab", "baseline")
    assert _ran(third.stdout) == ["preprocess", "vocab", "baseline"]


def test_unusable_user_file_stops_ingest_cleanly(tmp_path):
    repo = make_repo(tmp_path)
    (repo / "data/user/reviews.csv").write_bytes("text,label\n这本书很好,1\n".encode("gbk"))
    result = dvc(repo, "repro", "ingest", check=False)
    assert result.returncode != 0
    assert "data/user/reviews.csv:2: not valid UTF-8" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (repo / "data/raw").exists() or not any((repo / "data/raw").iterdir())

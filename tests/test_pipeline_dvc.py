"""Integration: the data stages through real `dvc repro` in a temp copy of the repo, on tiny user files."""

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

DATA_STAGES = ["ingest", "preprocess", "pool", "vocab", "baseline"]


def _ran(output: str) -> list[str]:
    return [s for s in DATA_STAGES if f"Running stage '{s}'" in output]


def test_data_stages_via_dvc_repro(tmp_path, create_project):
    project = create_project(tmp_path)
    first = project.dvc("repro", "vocab", "baseline")
    assert _ran(first.stdout) == DATA_STAGES

    splits = {s: pd.read_parquet(project.path / f"data/processed/{s}.parquet") for s in ("train", "val", "test")}
    for name, frame in splits.items():
        assert {"text", "label", "lang", "tokens", "source"} <= set(frame.columns)
        assert set(frame["lang"]) == {"zh", "en"}, name
    texts = [set(f["text"]) for f in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])

    rejects = pd.read_parquet(project.path / "data/processed/rejected.parquet")
    reasons = rejects["reason"].value_counts().to_dict()
    assert reasons["invalid_row"] == 2  # whitespace-only text + float label, each with its detail
    assert reasons["conflicting_labels"] == 2  # the first text repeated with the other label
    metrics = project.read_json("metrics/preprocess.json")
    assert metrics["rows"]["rejected"] == len(rejects) and metrics["rejected"]["invalid_row"] == 2
    assert metrics["rows"]["in"] == metrics["rows"]["kept"] + len(rejects)
    vocab = project.read_json("data/vocab.json")
    assert vocab["tokens"][:4] == ["<pad>", "<unk>", "<cls>", "<mask>"]
    baseline = project.read_json("metrics/baseline.json")
    assert baseline["test"]["zh"]["acc"] > 0.7 and baseline["test"]["en"]["acc"] > 0.7  # keywords decide

    # Second repro: nothing to do.
    assert _ran(project.dvc("repro", "vocab", "baseline").stdout) == []

    # The pool holds no val/test text and none of the user's labeled texts.
    pool = pd.read_parquet(project.path / "data/pool/texts.parquet")
    assert not set(pool["text"]) & (set(splits["val"]["text"]) | set(splits["test"]["text"]))
    assert not set(pool["text"]) & set(splits["train"]["text"])

    # New labeled rows rerun ingest, preprocess and the baseline; the foundation (pool, vocab) stays.
    with open(project.path / "data/user/reviews.csv", "a", encoding="utf-8") as fh:
        fh.write("这家店的菜真好吃，下次还来,1\nThe service was slow and rude,0\n")
    assert _ran(project.dvc("repro", "vocab", "baseline").stdout) == ["ingest", "preprocess", "baseline"]
    grown = {s: set(pd.read_parquet(project.path / f"data/processed/{s}.parquet")["text"]) for s in splits}
    for name, frame in splits.items():
        assert set(frame["text"]) <= grown[name], f"appending rows moved a {name} text to another split"

    # A split param change reruns preprocess and the pool (it drops other texts), and what depends on them.
    project.set_params(preprocess={"seed": 7})
    assert _ran(project.dvc("repro", "vocab", "baseline").stdout) == ["preprocess", "pool", "vocab", "baseline"]


def test_unusable_user_file_stops_ingest_cleanly(tmp_path, create_project):
    """A rejected user file must leave the last good data alone: DVC used to delete data/raw before ingest
    found the file bad (ingest's output is `persist: true` now, and ingest writes atomically)."""
    import hashlib

    project = create_project(tmp_path)
    project.dvc("repro", "ingest")
    raw = project.path / "data/raw"

    def digests() -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(raw.iterdir())}

    good = digests()
    assert {"labeled.parquet", "manifest.json"} <= set(good)
    (project.path / "data/user/reviews.csv").write_bytes("text,label\n这本书很好,1\n".encode("gbk"))
    result = project.dvc("repro", "ingest", check=False)
    assert result.returncode != 0
    assert "data/user/reviews.csv:2: not valid UTF-8" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert digests() == good
    marker = project.path / ".sora/input-errors/ingest"
    assert "not valid UTF-8" in marker.read_text()  # tells the flow not to retry

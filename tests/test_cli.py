"""`sora predict`, `run` and `schedule` on bad input: one line naming the problem, exit 1, nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import invoke_cli

REPO = Path(__file__).resolve().parents[1]


def test_predict_writes_the_requested_format(bundle, tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    result = invoke_cli("predict", "--model", bundle, "好看的电影", "a good movie", "-o", out)
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and lines[0].startswith('{"text":"好看的电影"')


@pytest.mark.parametrize(
    "name, message",
    [("out.xlsx", "unsupported type '.xlsx'"), ("out", "unsupported type ''"), ("folder", "is a folder")],
)
def test_predict_refuses_an_output_it_cannot_write(bundle, tmp_path, name, message):
    (tmp_path / "folder").mkdir()
    result = invoke_cli("predict", "--model", bundle, "good", "-o", tmp_path / name)
    assert result.exit_code == 1 and message in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # nothing written


def test_predict_names_empty_inputs(bundle, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    result = invoke_cli("predict", "--model", bundle, "-i", empty)
    assert result.exit_code == 1 and f"{empty}: no texts to classify" in result.output
    rows = tmp_path / "rows.csv"
    rows.write_text('text\ngood\n""\n')
    result = invoke_cli("predict", "--model", bundle, "fine", "-i", rows)
    assert result.exit_code == 1 and f"first at {rows}, data row 2" in result.output
    result = invoke_cli("predict", "--model", bundle, "fine", " ", "-i", rows)
    assert result.exit_code == 1 and "2 empty text(s), first at argument 2" in result.output


def test_predict_names_the_broken_jsonl_line(bundle, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "good"}\n\n{"text": "bad",\n', encoding="utf-8")
    result = invoke_cli("predict", "--model", bundle, "-i", path)
    assert result.exit_code == 1 and f"{path}:3: invalid JSON" in result.output
    path.write_text('{"text": "good"}\n{"text": "也很好"}\n', encoding="utf-8")
    result = invoke_cli("predict", "--model", bundle, "-i", path)
    assert result.exit_code == 0 and "也很好" in result.output


def test_predict_flags_texts_longer_than_the_model_reads(bundle, tmp_path):
    # The bundle reads 16 ids ([CLS] + 15 tokens): 15 words fit exactly, 16 do not.
    out = tmp_path / "out.csv"
    fits, cut = " ".join(["good"] * 15), " ".join(["good"] * 16)
    result = invoke_cli("predict", "--model", bundle, fits, cut, "good movie " * 50_000, "-o", out)
    assert result.exit_code == 0, result.output
    assert "2 text(s) are longer than the model reads (first: row 2)" in result.output
    assert pd.read_csv(out)["truncated"].tolist() == [False, True, True]


def test_predict_without_a_store_or_model_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke_cli("predict", "好")  # default models:/sora@champion, outside the repo
    assert result.exit_code == 1 and "no such params file" in result.output and "--model" in result.output
    result = invoke_cli("predict", "--model", "models/nowhere", "好")
    assert result.exit_code == 1 and "models/nowhere: no such model folder" in result.output
    assert list(tmp_path.iterdir()) == []  # no stray mlflow.db


def test_run_checks_stages_and_overrides_before_the_flow_starts(monkeypatch):
    monkeypatch.chdir(REPO)
    result = invoke_cli("run", "finetun")
    assert result.exit_code == 1 and "unknown stage(s) finetun; dvc.yaml defines: ingest" in result.output


def test_run_refuses_an_impossible_override_before_any_stage(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        (repo / name).write_bytes((REPO / name).read_bytes())
    result = _main(["run", "-S", "model.n_heads=3"], repo)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: params.yaml: 'model': d_model (128) must be divisible by n_heads (3)"
    assert sorted(p.name for p in repo.iterdir()) == ["dvc.yaml", "params.yaml"]  # nothing started, nothing written


def test_schedule_rejects_a_bad_cron():
    result = invoke_cli("schedule", "--cron", "every day at 3")
    assert result.exit_code == 1 and "--cron 'every day at 3': Invalid cron string" in result.output


def _main(args, cwd):
    """Through the console entry point (sora.cli:main), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", "from sora.cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def test_config_errors_are_one_line_not_a_traceback(tmp_path):
    (tmp_path / "params.yaml").write_text("finetune:\n  lrr: 1\n")
    for args in (["predict", "好"], ["ui", "mlflow"]):
        done = _main(args, tmp_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr and "unknown key 'finetune.lrr'" in done.stderr
    params = (REPO / "params.yaml").read_bytes()
    done = _main(["run", "-S", "finetune.lrr=1"], REPO)  # refused before the flow touches params.yaml
    assert done.returncode == 1 and "Traceback" not in done.stderr and "finetune.lrr" in done.stderr
    assert (REPO / "params.yaml").read_bytes() == params


def test_prefect_gets_time_for_a_first_start_on_a_new_database(monkeypatch):
    # 20 s (Prefect's default) was too short for `make pipeline` on a fresh 2-core machine; a user value wins.
    import sora.cli

    key = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
    monkeypatch.setenv(key, "unset")  # recorded first, so teardown restores the real state after main() sets it
    monkeypatch.delenv(key)
    monkeypatch.setattr(sys, "argv", ["sora", "--help"])
    with pytest.raises(SystemExit):
        sora.cli.main()
    assert os.environ[key] == "120"
    monkeypatch.setenv(key, "7")
    with pytest.raises(SystemExit):
        sora.cli.main()
    assert os.environ[key] == "7"


def test_predict_reads_tsv_without_csv_quoting(bundle, tmp_path):
    """As ingest does: an unclosed leading quote in a .tsv used to swallow the rows after it."""
    path = tmp_path / "in.tsv"
    path.write_text('text\n"unclosed start\nsecond row\nthird row\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    result = invoke_cli("predict", "--model", bundle, "--input", path, "--output", out)
    assert result.exit_code == 0, result.output
    import pandas as pd

    assert len(pd.read_csv(out)) == 3

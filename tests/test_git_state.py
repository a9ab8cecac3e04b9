"""git.dirty on MLflow runs means the code or config differs from the commit, not that the pipeline wrote its
own outputs (dvc.lock, metrics, plots)."""

import subprocess

import yaml

from sora.tracking.runs import changed_since_commit


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_pipeline_outputs_do_not_make_the_checkout_dirty(tmp_path, monkeypatch):
    stages = {"train": {"cmd": "python train.py", "deps": ["train.py"],
                        "outs": ["models/m.pt"], "metrics": [{"metrics/train.json": {"cache": False}}]}}  # fmt: skip
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    for name, text in {"train.py": "print(1)\n", "dvc.lock": "a\n", "params.yaml": "lr: 1\n"}.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/train.json").write_text("{}\n")
    _git("init", "-q", cwd=tmp_path)
    _git("add", "-A", cwd=tmp_path)
    _git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    assert changed_since_commit() == []

    (tmp_path / "dvc.lock").write_text("b\n")  # what every run rewrites
    (tmp_path / "metrics/train.json").write_text('{"acc": 1}\n')
    assert changed_since_commit() == []

    (tmp_path / "train.py").write_text("print(2)\n")
    (tmp_path / "params.yaml").write_text("lr: 2\n")
    assert sorted(changed_since_commit()) == ["params.yaml", "train.py"]

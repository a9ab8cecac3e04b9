"""Tiny bilingual labeled data and a temp copy of the repo for integration tests."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

ZH_POS = ["很好", "不错", "喜欢", "满意", "推荐", "精彩", "漂亮", "实惠"]
ZH_NEG = ["很差", "失望", "难看", "糟糕", "后悔", "垃圾", "无聊", "太贵"]
ZH_SUBJ = ["这本书", "这部电影", "酒店", "服务", "这个手机", "房间", "快递", "质量", "价格", "作者"]
EN_POS = ["great", "wonderful", "excellent", "lovely", "amazing", "good", "fun", "brilliant"]
EN_NEG = ["awful", "terrible", "boring", "bad", "horrible", "dull", "poor", "ugly"]
EN_SUBJ = ["the movie", "this book", "the hotel", "the service", "the phone", "the room", "the plot", "the food"]


def labeled_rows(n_per_lang: int = 80, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n_per_lang):
        label = i % 2
        zh_word = rng.choice(ZH_POS if label else ZH_NEG)
        en_word = rng.choice(EN_POS if label else EN_NEG)
        rows.append({"text": f"{rng.choice(ZH_SUBJ)}{zh_word}，{rng.choice(ZH_SUBJ)}也{zh_word}{i}", "label": label})
        rows.append(
            {"text": f"{rng.choice(EN_SUBJ)} was {en_word} and {rng.choice(EN_SUBJ)} {en_word} {i}", "label": label}
        )
    return rows


def write_user_csv(path: Path, rows: list[dict], extra_lines: str = "") -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
        fh.write(extra_lines)


def make_repo(tmp: Path, params_overrides: dict | None = None, n_per_lang: int = 80) -> Path:
    """A git+DVC repo in tmp with Sora's code, dvc.yaml and params, reading only tiny user files."""
    repo = tmp / "repo"
    repo.mkdir()
    for name in ("sora", "flows"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    rows = labeled_rows(n_per_lang)
    write_user_csv(
        repo / "data/user/reviews.csv", rows, extra_lines="   ,1\nfloat label row,0.5\n" + rows[0]["text"] + ",1\n"
    )  # rows[0] has label 0
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ingest"].update(sources=[], user_files=["data/user/reviews.csv"])
    params["tracking"]["uri"] = "sqlite:///mlflow.db"
    for block, values in (params_overrides or {}).items():
        params.setdefault(block, {}).update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    run(["git", "init", "-q"], repo)
    run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], repo)
    return repo


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    import os

    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("SORA_PARENT_RUN_ID", None)
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], repo, check=check)

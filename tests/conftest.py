"""Shared fixtures: the repo's params, a tiny model shape and synthetic bilingual data, and temp git+DVC copies
of the project for integration tests (each test that mutates one gets its own)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO = Path(__file__).resolve().parents[1]

ZH_POS = ["很好", "不错", "喜欢", "满意", "推荐", "精彩", "漂亮", "实惠"]
ZH_NEG = ["很差", "失望", "难看", "糟糕", "后悔", "垃圾", "无聊", "太贵"]
ZH_SUBJ = ["这本书", "这部电影", "酒店", "服务", "这个手机", "房间", "快递", "质量", "价格", "作者"]
EN_POS = ["great", "wonderful", "excellent", "lovely", "amazing", "good", "fun", "brilliant"]
EN_NEG = ["awful", "terrible", "boring", "bad", "horrible", "dull", "poor", "ugly"]
EN_SUBJ = ["the movie", "this book", "the hotel", "the service", "the phone", "the room", "the plot", "the food"]

FILLER = {
    "zh": ["我们", "今天", "电影", "东西", "觉得", "这个"],
    "en": ["we", "today", "movie", "thing", "think", "this"],
}
CUE = {("zh", 0): "差", ("zh", 1): "好", ("en", 0): "bad", ("en", 1): "good"}


# ---------------------------------------------------------------- params and tiny models


@pytest.fixture(scope="session")
def repo_params():
    """The repository's params.yaml, validated: the one source of defaults."""
    from sora.config import load_params

    return load_params(REPO / "params.yaml")


def params_with(tasks: list[str] | None = None, **overrides: dict):
    """The repository's params keeping only the named `tasks` (all if None), with nested `overrides`."""
    from sora.config import _deep_merge, parse_params

    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    if tasks is not None:
        data["tasks"] = {name: data["tasks"][name] for name in tasks}
    return parse_params(_deep_merge(data, overrides))


@pytest.fixture(scope="session")
def specials(repo_params) -> list[str]:
    return list(repo_params.vocab.specials)


@pytest.fixture(scope="session")
def tiny_model(repo_params):
    """A model shape that trains in seconds on CPU; Transformer only (the wide part has its own tests)."""
    return repo_params.model.model_copy(
        update={"d_model": 32, "n_heads": 2, "n_layers": 1, "ff_dim": 64, "dropout": 0.0, "max_len": 16,
                "wide_buckets": 0}
    )  # fmt: skip


@pytest.fixture(scope="session")
def trainer_params(repo_params):
    """TrainerParams from params.yaml with some fields changed: trainer_params(threads=1)."""
    return lambda **changes: repo_params.trainer.model_copy(update=changes)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, tiny_model):
    """A tiny untrained model bundle: enough for predict's and the served model's input and output handling.
    Shared by tests: copy it before changing it."""
    from sora.data.vocab import Vocab
    from sora.inference import save_bundle
    from sora.models.classifier import build_classifier

    vocab = Vocab.build(
        [["好看", "电影", "good", "movie"]] * 2, ["<pad>", "<unk>", "<cls>", "<mask>"], min_freq=1, max_size=100
    )
    params = tiny_model.model_copy(update={"d_model": 8, "ff_dim": 16, "dropout": 0.1}).model_dump()
    model = build_classifier(len(vocab), vocab.pad_id, params, 2)
    folder = tmp_path_factory.mktemp("bundle")
    save_bundle(
        folder,
        model,
        vocab,
        {
            "vocab_size": len(vocab),
            "pad_id": vocab.pad_id,
            "num_classes": 2,
            "model_params": params,
            "class_names": ["negative", "positive"],
        },  # fmt: skip
    )
    return folder


def synthetic_rows(n: int, seed: int, filler_words: int = 2) -> pd.DataFrame:
    """Tokenised rows whose label is decided by one cue token hidden among filler words, in both languages."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lang, label = ("zh", "en")[i % 2], rng.randint(0, 1)
        toks = rng.sample(FILLER[lang], filler_words)
        toks.insert(rng.randint(0, filler_words), CUE[(lang, label)])
        rows.append({"tokens": toks, "label": label, "lang": lang})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def synthetic(specials):
    """(train, val, vocab) of the cue-word task."""
    from sora.data.vocab import Vocab

    train, val = synthetic_rows(64, 0), synthetic_rows(32, 1)
    return train, val, Vocab.build(train["tokens"], specials, min_freq=1, max_size=200)


# ---------------------------------------------------------------- temp copies of the project


def labeled_rows(n_per_lang: int = 80, seed: int = 0) -> list[dict]:
    """Keyword-decided zh and en reviews, distinct texts."""
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


# A second task for the test project: topic 0 (things) or 1 (places), from the subject of the text.
TOPIC_SUBJ = {
    ("zh", 0): ["这本书", "这部电影", "这个手机"],
    ("zh", 1): ["酒店", "房间", "餐厅"],
    ("en", 0): ["this book", "the movie", "the phone"],
    ("en", 1): ["the hotel", "the room", "the restaurant"],
}
TOPIC_TASK = {"column": "topic", "classes": ["things", "places"], "weight": 1.0}


def topic_rows(n_per_lang: int = 40, seed: int = 3) -> list[dict]:
    """Texts with a sentiment label and a topic; a third have no sentiment label and a third no topic."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_per_lang):
        label, topic = rng.randint(0, 1), i % 2
        for lang, words, pattern in (
            ("zh", (ZH_NEG, ZH_POS), "{}{}，话题{}"),
            ("en", (EN_NEG, EN_POS), "{} was {} {}"),
        ):
            text = pattern.format(rng.choice(TOPIC_SUBJ[(lang, topic)]), rng.choice(words[label]), i)
            gap = i % 3
            rows.append({"text": text, "label": "" if gap == 0 else label, "topic": "" if gap == 1 else topic})
    return rows


def write_user_csv(path: Path, rows: list[dict], extra_lines: str = "") -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        fh.write(extra_lines)


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for name in ("SORA_PARENT_RUN_ID", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


class Project:
    """A git+DVC copy of Sora in a temp dir, reading only tiny user files instead of the built-in corpora: one
    with two invalid rows and one conflicting label, and one with a second task (topic) where some rows lack
    one of the two labels."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, tmp: Path, params_overrides: dict | None = None, n_per_lang: int = 80) -> Project:
        repo = tmp / "repo"
        repo.mkdir()
        for name in ("sora", "flows"):
            shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("dvc.yaml", ".gitignore", "pyproject.toml"):
            shutil.copy(REPO / name, repo / name)
        shutil.copytree(REPO / "data/behaviour", repo / "data/behaviour")
        rows = labeled_rows(n_per_lang)
        # Unlabeled text for the pool (vocabulary and pretraining): same word lists, other sentences.
        unlabeled = [r["text"] + "。" for r in labeled_rows(n_per_lang, seed=7)]
        (repo / "data/user").mkdir(parents=True, exist_ok=True)
        (repo / "data/user/unlabeled.txt").write_text("\n".join(unlabeled) + "\n", encoding="utf-8")
        write_user_csv(
            repo / "data/user/reviews.csv", rows, extra_lines="   ,1\nfloat label row,0.5\n" + rows[0]["text"] + ",1\n"
        )  # rows[0] has label 0
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        # A second file with two tasks' labels, some rows missing one: the project trains a multi-task model.
        write_user_csv(repo / "data/user/topics.csv", topic_rows(n_per_lang * 2))
        params["ingest"].update(
            sources=[],
            user_files=["data/user/reviews.csv", "data/user/topics.csv"],
            unlabeled_globs=["data/user/unlabeled.txt"],
        )
        params["tasks"] = {"sentiment": params["tasks"]["sentiment"], "topic": TOPIC_TASK}
        params["tracking"]["uri"] = "sqlite:///mlflow.db"
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
        project = cls(repo)
        project.set_params(**(params_overrides or {}))
        project.run(["git", "init", "-q"])
        project.dvc("init", "-q")
        project.run(["git", "add", "-A"])
        project.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"])
        return project

    def copy(self, tmp: Path) -> Project:
        """A private copy (git, DVC cache, outputs, MLflow store) for a test that mutates the project."""
        target = tmp / "copy"
        shutil.copytree(self.path, target, symlinks=True)
        return Project(target)

    def run(self, cmd: list[str], check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
        return run(cmd, self.path, check, timeout)

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-m", "dvc", *args], check=check)

    def stage_command(self, stage: str) -> list[str]:
        """The stage's cmd as its dvc.yaml declares it, run with this interpreter."""
        import shlex

        from sora.pipeline.spec import pipeline_stages

        cmd = shlex.split(pipeline_stages(self.path / "dvc.yaml")[stage].cmd)
        return [sys.executable, *cmd[1:]] if cmd[0] == "python" else cmd

    def set_params(self, **blocks: dict) -> None:
        path = self.path / "params.yaml"
        params = yaml.safe_load(path.read_text())
        for block, values in blocks.items():
            params[block].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True))

    def read_json(self, relative: str):
        import json

        return json.loads((self.path / relative).read_text())


@pytest.fixture(scope="session")
def create_project():
    """Project.create(tmp_dir, params_overrides, n_per_lang)."""
    return Project.create


# Params of the tiny whole-pipeline project the slow integration tests share.
TINY_PIPELINE = {
    "model": {
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 1,
        "ff_dim": 32,
        "max_len": 32,
        "decoder_layers": 1,
        "wide_buckets": 1024,
    },
    "vocab": {"hash_buckets": 64},
    "trainer": {"batch_size": 16, "threads": 1, "log_every_n_steps": 1},
    "pretrain": {"max_epochs": 1, "max_len": 32, "loss_fraction": 0.5},
    "finetune": {"max_epochs": 3, "lr": 0.005, "patience": 2},
    # FGM, not the default: the integration tests then run the embedding-space adversary through harden and distill
    "harden": {"method": "fgm", "max_epochs": 1, "noise_augment": 0.3, "val_checks_per_epoch": 2},
    # three epochs: the student's topic head learns from a random start (its sentiment is right at once, from the
    # n-gram half)
    "distill": {"max_epochs": 3, "max_pool_texts": 40},
    "baseline": {"tuned_Cs": [1.0, 4.0]},
    "evaluate": {"attack_max_examples": 8, "batch_size": 64},
    "prune": {"recovery_epochs": 1, "latency_batch": 16},
    # tiny data: a model far from the baseline still has to be registered for the tests downstream of it
    "register": {"attack_accuracy_floor": 0.0, "baseline_tolerance": 1.0, "majority_margin": 0.0},
}
PIPELINE_STAGES = [
    "ingest",
    "preprocess",
    "pool",
    "vocab",
    "baseline",
    "pretrain",
    "finetune",
    "harden",
    "distill",
    "evaluate",
    "prune",
    "register",
]


@pytest.fixture(scope="session")
def built_pipeline(tmp_path_factory, create_project):
    """The whole pipeline run once through `dvc repro` on tiny data; tests that change it work on a copy."""
    project = create_project(tmp_path_factory.mktemp("full"), TINY_PIPELINE, n_per_lang=60)
    result = project.dvc("repro")
    for stage in PIPELINE_STAGES:
        assert f"Running stage '{stage}'" in result.stdout, stage
    return project


def invoke_cli(*args, **kwargs):
    """`sora ARGS` in-process (typer's runner); never a traceback, only clean exits."""
    from typer.testing import CliRunner

    from sora.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], **kwargs)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result

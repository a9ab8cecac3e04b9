"""Ablation on the same split and settings: finetune with `init=scratch` vs `init=pretrained`.
Trains each arm in-process (outputs under benchmarks/out/ablation-*, not the DVC stage outputs) and prints
test accuracy per language and epochs to best side by side. Needs `dvc repro pretrain` first.

    python benchmarks/ablation_init.py [--arms scratch pretrained]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def train_arm(init: str) -> dict:

    from sora.config import load_params
    from sora.data.tasks import labeled_splits
    from sora.data.vocab import Vocab
    from sora.io import read_json
    from sora.pipeline.entry import declared_args, read_frames
    from sora.training.classify import fit_and_score, initialise
    from sora.training.fit import ResumableFit
    from sora.training.modules import classifier_module
    from sora.training.trainer import seed_and_threads

    params = load_params()
    p = params.finetune
    seed_and_threads(params.trainer)
    args = declared_args("finetune")  # the same files the finetune stage reads
    splits = labeled_splits(read_frames(args, "train", "val", "test"))
    vocab = Vocab.load(args.vocab)
    module = classifier_module(params, vocab, 2, p.lr)
    initialise(module, params, vocab, args.encoder / "encoder.pt" if init == "pretrained" else None,
               splits["train"], splits["val"])  # fmt: skip
    out = Path("benchmarks/out") / f"ablation-{init}"
    metrics, seconds = fit_and_score(
        params, module, vocab, splits, p.max_epochs, p.patience, ResumableFit(out / "work"), f"ablation-{init}",
        out / "model", out / "curve.csv", read_json(args.baseline), loggers=[],
    )  # fmt: skip
    shutil.rmtree(out / "model", ignore_errors=True)
    return {**metrics, "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["scratch", "pretrained"], choices=["scratch", "pretrained"])
    args = parser.parse_args()
    Path("benchmarks/out").mkdir(parents=True, exist_ok=True)
    results = {arm: train_arm(arm) for arm in args.arms}
    rows = {
        "test acc zh": lambda m: m["test"]["zh"]["acc"],
        "test acc en": lambda m: m["test"]["en"]["acc"],
        "test macro-F1": lambda m: m["test"]["all"]["f1"],
        "val macro-F1": lambda m: m["val"]["all"]["f1"],
        "epochs to best": lambda m: m["epochs"]["to_best"],
        "epochs run": lambda m: m["epochs"]["run"],
        "train seconds": lambda m: m["train_seconds"],
        "zh minus baseline": lambda m: m["test_minus_baseline"]["zh"],
        "en minus baseline": lambda m: m["test_minus_baseline"]["en"],
    }
    print(f"{'metric':28s}" + "".join(f"{arm:>14s}" for arm in results))
    for label, get in rows.items():
        print(f"{label:28s}" + "".join(f"{get(results[arm]):>14}" for arm in results))


if __name__ == "__main__":
    main()

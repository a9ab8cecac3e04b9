"""Ablation on the same split and settings: finetune with `init=scratch` vs `init=pretrained`.
Trains the missing arm(s) in-process (outputs under models/ablation-*, not the DVC stage outputs) and prints
test accuracy per language and epochs to best side by side. Needs `dvc repro pretrain` first.

    python benchmarks/ablation_init.py [--arms scratch pretrained]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def train_arm(init: str) -> dict:
    import torch

    from sora.config import load_params
    from sora.stages.finetune import ENCODER, fit_classifier, with_baseline
    from sora.stages.training import load_splits, load_vocab
    from sora.training.modules import ClassifierModule
    from sora.training.trainer import seed_and_threads

    params = load_params()
    p = params.finetune
    seed_and_threads(params.trainer)
    splits = load_splits("train", "val", "test")
    vocab = load_vocab()
    module = ClassifierModule(
        len(vocab),
        vocab.pad_id,
        params.model,
        num_classes=2,
        lr=p.lr,
        weight_decay=p.weight_decay,
        token_dropout=p.token_dropout,
        unk_id=vocab.unk_id,
    )
    if init == "pretrained":
        module.load_encoder_state(torch.load(ENCODER, map_location="cpu", weights_only=True)["state_dict"])
    stage = f"ablation-{init}"
    metrics = fit_classifier(
        params, stage, module, vocab, splits["train"], splits["val"], splits["test"], p.max_epochs, p.patience, [], None
    )
    shutil.rmtree(Path("models") / stage, ignore_errors=True)
    curve = Path("plots", f"{stage}.csv")
    if curve.exists():  # keep the stage outputs folder clean: the curve goes beside the other benchmark outputs
        curve.replace(Path("benchmarks/out", curve.name))
    return with_baseline(metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["scratch", "pretrained"], choices=["scratch", "pretrained"])
    args = parser.parse_args()
    Path("benchmarks/out").mkdir(parents=True, exist_ok=True)
    results = {arm: train_arm(arm) for arm in args.arms}
    keys = [
        "test_acc_zh",
        "test_acc_en",
        "test_f1",
        "val_f1",
        "epochs_to_best",
        "epochs_run",
        "train_seconds",
        "test_acc_zh_minus_baseline",
        "test_acc_en_minus_baseline",
    ]
    print(f"{'metric':28s}" + "".join(f"{arm:>14s}" for arm in results))
    for key in keys:
        print(f"{key:28s}" + "".join(f"{results[arm].get(key, float('nan')):>14}" for arm in results))


if __name__ == "__main__":
    main()

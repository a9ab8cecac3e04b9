"""finetune: classifier with its encoder initialised from pretraining (or scratch), early-stopped on val
macro-F1 -> models/finetune/{best,last}.ckpt, metrics/finetune.json, plots/finetune.csv."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sora.config import Params
from sora.data.sources import DataError
from sora.io import read_json, write_json
from sora.stages.common import METRICS, MODELS, PLOTS, PROCESSED, VOCAB, main, require
from sora.stages.training import (
    ResumableFit,
    Timer,
    fingerprint,
    load_splits,
    load_vocab,
    log_final,
    loggers,
    maybe_stage_run,
)
from sora.tracking.runs import is_rank_zero

ENCODER = MODELS / "pretrain" / "encoder.pt"


def epochs_to_best(curve: Path, monitor: str = "val_f1") -> int | None:
    """1-based epoch with the best monitored value, from the epoch CSV."""
    if not curve.exists():
        return None
    frame = pd.read_csv(curve)
    if monitor not in frame or frame[monitor].isna().all():
        return None
    return int(frame.loc[frame[monitor].idxmax(), "epoch"]) + 1


def fit_classifier(
    params: Params,
    stage: str,
    module,
    vocab,
    train: pd.DataFrame,
    val: pd.DataFrame,
    test: pd.DataFrame,
    max_epochs: int,
    patience: int | None,
    fp_inputs: list[Path],
    mlflow=None,
    val_checks_per_epoch: int = 1,
) -> dict:
    """Fit with best/last checkpoints (resumable), then val and test metrics of the best checkpoint.
    With val_checks_per_epoch > 1, best.ckpt is the best of that many points per epoch."""
    from sora.training.data import TextDataModule
    from sora.training.trainer import build_trainer, checkpoint_callbacks

    t = params.trainer
    data = TextDataModule(
        train,
        val,
        test,
        vocab=vocab,
        max_len=params.model.max_len,
        batch_size=t.batch_size,
        num_workers=t.num_workers,
        mode="classify",
        seed=t.seed,
    )
    work = ResumableFit(stage)
    resume = work.prepare(fingerprint(params, ("model", "trainer", stage, "finetune"), fp_inputs))
    trainer = build_trainer(
        t,
        max_epochs,
        work.dir,
        callbacks=checkpoint_callbacks(work.dir, "val_f1", "max", patience),
        logger=loggers(params, mlflow, stage),
        val_check_interval=1 / val_checks_per_epoch,
    )
    with Timer() as timer:
        trainer.fit(module, datamodule=data, ckpt_path=resume)
    metrics: dict[str, float] = {"train_seconds": round(timer.seconds, 1), "train_examples": len(train)}
    if trainer.is_global_zero:
        # Scored here on one process, not with trainer.validate/test: under DDP the distributed sampler pads
        # the last batches with repeats, which would skew the numbers.
        metrics.update(score_checkpoint(work.dir / "best.ckpt", {"val": val, "test": test}, vocab))
        metrics["epochs_to_best"] = epochs_to_best(PLOTS / f"{stage}.csv")
        metrics["epochs_run"] = int(trainer.current_epoch)
        work.finish(MODELS / stage)
    return metrics


def score_checkpoint(ckpt: Path, splits: dict[str, pd.DataFrame], vocab) -> dict[str, float]:
    """{split}_acc / _f1, overall and per language (_zh, _en), of a classifier checkpoint."""
    from sora.evaluation.report import clean_metrics
    from sora.inference import Predictor
    from sora.training.trainer import load_classifier

    model, hp = load_classifier(ckpt)
    predictor = Predictor(model, vocab, hp["model_params"]["max_len"])
    out: dict[str, float] = {}
    for split, frame in splits.items():
        ids = [vocab.encode(list(toks), predictor.max_len) for toks in frame["tokens"]]
        scores = clean_metrics(predictor.predict_ids(ids), frame["label"].to_numpy(), frame["lang"].to_numpy())
        for lang, suffix in (("all", ""), ("zh", "_zh"), ("en", "_en")):
            for metric in ("acc", "f1"):
                if f"{lang}_{metric}" in scores:
                    out[f"{split}_{metric}{suffix}"] = scores[f"{lang}_{metric}"]
    return out


def with_baseline(metrics: dict) -> dict:
    """Put the baseline's test accuracy beside ours (same split, same run of the pipeline)."""
    base_path = METRICS / "baseline.json"
    if not base_path.exists():
        return metrics
    base = read_json(base_path)
    out = dict(metrics)
    for lang in ("zh", "en"):
        if f"{lang}_test_acc" in base and f"test_acc_{lang}" in metrics:
            out[f"baseline_test_acc_{lang}"] = base[f"{lang}_test_acc"]
            out[f"test_acc_{lang}_minus_baseline"] = round(metrics[f"test_acc_{lang}"] - base[f"{lang}_test_acc"], 5)
    return out


def report(stage: str, metrics: dict, label: str = "") -> dict:
    """Baseline figures beside ours, written to metrics/<stage>.json (rank zero only) and printed."""
    metrics = with_baseline(metrics)
    if is_rank_zero():
        write_json(METRICS / f"{stage}.json", metrics)
        print(f"{stage}{label}: {metrics}")
    return metrics


def class_count(splits: dict[str, pd.DataFrame]) -> int:
    """max(label) + 1 over the splits; every class must have training examples (labels 0, 1, 7 would make an
    8-class head with 5 classes never seen)."""
    num_classes = int(max(s["label"].max() for s in splits.values())) + 1
    missing = sorted(set(range(num_classes)) - set(splits["train"]["label"].tolist()))
    if missing:
        raise DataError(
            f"{PROCESSED / 'train.parquet'}: no examples of label(s) {missing}; labels must be "
            f"consecutive integers from 0 (the classifier gets max(label) + 1 = {num_classes} classes)"
        )
    return num_classes


def finetune(params: Params, mlflow=None) -> dict:
    from sora.training.modules import ClassifierModule
    from sora.training.trainer import seed_and_threads

    p = params.finetune
    seed_and_threads(params.trainer)
    splits = load_splits("train", "val", "test")
    vocab = load_vocab()
    num_classes = class_count(splits)
    module = ClassifierModule(
        len(vocab),
        vocab.pad_id,
        params.model,
        num_classes=num_classes,
        lr=p.lr,
        weight_decay=p.weight_decay,
        token_dropout=p.token_dropout,
        unk_id=vocab.unk_id,
    )
    inputs = [VOCAB, PROCESSED]
    if p.init == "pretrained":
        require(ENCODER)
        import torch

        state = torch.load(ENCODER, map_location="cpu", weights_only=True)
        if state["vocab_size"] != len(vocab) or state["model_params"] != params.model.model_dump():
            raise DataError(f"{ENCODER} was pretrained with another vocabulary or model shape: rerun pretrain")
        module.load_encoder_state(state["state_dict"])
        inputs.append(ENCODER)
    metrics = fit_classifier(
        params,
        "finetune",
        module,
        vocab,
        splits["train"],
        splits["val"],
        splits["test"],
        p.max_epochs,
        p.patience,
        inputs,
        mlflow,
    )
    return report("finetune", {**metrics, "init_pretrained": int(p.init == "pretrained")})


def run(params: Params) -> None:
    with maybe_stage_run(
        "finetune",
        params,
        ("model", "trainer", "finetune"),
        inputs=["data/processed", "data/vocab.json", "models/pretrain"],
    ) as mlflow:
        log_final(mlflow, finetune(params, mlflow))
        if mlflow is not None:
            mlflow.log_artifact(str(VOCAB))


if __name__ == "__main__":
    main(run)

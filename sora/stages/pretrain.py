"""pretrain: denoising autoencoder on unlabeled text (train split texts of both languages, labels unused,
+ unlabeled corpora from ingest) -> models/pretrain/encoder.pt, metrics/pretrain.json, plots/pretrain.csv."""

from __future__ import annotations

import pandas as pd
import torch

from sora.config import Params
from sora.io import atomic_path, write_json
from sora.stages.common import METRICS, MODELS, PROCESSED, VOCAB, main
from sora.stages.training import (
    EpochCSV,
    ResumableFit,
    Timer,
    fingerprint,
    load_splits,
    load_vocab,
    log_final,
    loggers,
    maybe_stage_run,
)

OUT = MODELS / "pretrain"


def pretrain_corpus(params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    splits = load_splits("train", "val", "unlabeled")
    texts = pd.concat([splits["train"][["tokens", "lang"]], splits["unlabeled"][["tokens", "lang"]]], ignore_index=True)
    if len(texts) > params.pretrain.max_texts:
        texts = texts.sample(n=params.pretrain.max_texts, random_state=params.trainer.seed)
    return texts, splits["val"][["tokens", "lang"]]


def pretrain(params: Params, mlflow=None) -> dict:
    from sora.training.data import TextDataModule
    from sora.training.modules import PretrainModule
    from sora.training.trainer import build_trainer, checkpoint_callbacks, seed_and_threads

    p, t = params.pretrain, params.trainer
    seed_and_threads(t)
    vocab = load_vocab()
    train, val = pretrain_corpus(params)
    data = TextDataModule(
        train,
        val,
        vocab=vocab,
        max_len=min(p.max_len, params.model.max_len),
        batch_size=t.batch_size,
        num_workers=t.num_workers,
        mode="denoise",
        mask_rate=p.mask_rate,
        delete_rate=p.delete_rate,
        span_rate=p.span_rate,
        max_span=p.max_span,
        seed=t.seed,
    )
    module = PretrainModule(len(vocab), vocab.pad_id, params.model, lr=p.lr, loss_fraction=p.loss_fraction)
    work = ResumableFit("pretrain")
    resume = work.prepare(fingerprint(params, ("model", "trainer", "pretrain"), [VOCAB, PROCESSED]))
    trainer = build_trainer(
        t,
        p.max_epochs,
        work.dir,
        callbacks=checkpoint_callbacks(work.dir, "val_loss", "min"),
        logger=loggers(params, mlflow, "pretrain"),
    )
    with Timer() as timer:
        trainer.fit(module, datamodule=data, ckpt_path=resume)
    trainer.loggers = [lg for lg in trainer.loggers if not isinstance(lg, EpochCSV)]
    best = trainer.validate(module, datamodule=data, ckpt_path="best", verbose=False)[0] if p.max_epochs else {}
    metrics = {
        "val_loss": round(best.get("val_loss", float("nan")), 5),
        "val_token_acc": round(best.get("val_token_acc", float("nan")), 5),
        "train_texts": len(train),
        "epochs": p.max_epochs,
        "train_seconds": round(timer.seconds, 1),
    }
    if trainer.is_global_zero:
        state = {
            "state_dict": {k: v.cpu() for k, v in module.encoder_state_dict().items()},
            "vocab_size": len(vocab),
            "pad_id": vocab.pad_id,
            "model_params": params.model.model_dump(),
        }
        with atomic_path(OUT / "encoder.pt") as tmp:
            torch.save(state, tmp)
        work.finish(OUT)
        write_json(METRICS / "pretrain.json", metrics)
        print(f"pretrain: {metrics}")
    return metrics


def run(params: Params) -> None:
    with maybe_stage_run(
        "pretrain", params, ("model", "trainer", "pretrain"), inputs=["data/processed", "data/vocab.json"]
    ) as mlflow:
        log_final(mlflow, pretrain(params, mlflow))


if __name__ == "__main__":
    main(run)

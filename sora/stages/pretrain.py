"""pretrain: denoising autoencoder on unlabeled text (train split texts of both languages, labels unused,
+ unlabeled corpora from ingest) -> models/pretrain/encoder.pt, metrics/pretrain.json, plots/pretrain/ (curves)."""

from __future__ import annotations

import torch

from sora.data.vocab import Vocab
from sora.io import atomic_path, write_json
from sora.pipeline.entry import StageContext, read_frames, require, stage_main
from sora.pipeline.spec import fingerprint
from sora.training.data import denoising_data, pretrain_corpus
from sora.training.fit import ResumableFit, fit_resumable
from sora.training.modules import PretrainModule
from sora.training.trainer import seed_and_threads


def run(ctx: StageContext) -> None:
    params, args = ctx.params, ctx.args
    p, t = params.pretrain, params.trainer
    seed_and_threads(t)
    require(args.vocab)
    vocab = Vocab.load(args.vocab)
    frames = read_frames(args, "train", "val", "unlabeled", columns=["tokens", "lang"])
    texts = pretrain_corpus(frames["train"], frames["unlabeled"], p.max_texts, t.seed)
    data = denoising_data(params, vocab, texts, frames["val"])
    module = PretrainModule(
        len(vocab), vocab.pad_id, params.model, lr=p.lr, loss_fraction=p.loss_fraction, tie_output=p.tie_output
    )
    work = ResumableFit(ctx.work_dir)
    trainer, seconds = fit_resumable(
        module,
        data,
        t,
        p.max_epochs,
        work,
        fingerprint(params, ctx.spec),
        "val_loss",
        "min",
        loggers=ctx.lightning_loggers(),
    )
    trainer.loggers = ctx.lightning_loggers()  # the validation below is not a point of the DVC curves
    best = trainer.validate(module, datamodule=data, ckpt_path="best", verbose=False)[0] if p.max_epochs else {}
    if not trainer.is_global_zero:
        return
    metrics = {
        "val": {
            "loss": round(best.get("val_loss", float("nan")), 5),
            "token_acc": round(best.get("val_token_acc", float("nan")), 5),
        },
        "train_texts": len(texts),
    }
    state = {
        "state_dict": {k: v.cpu() for k, v in module.encoder_state_dict().items()},
        "vocab_size": len(vocab),
        "pad_id": vocab.pad_id,
        "model_params": params.model.model_dump(),
    }
    with atomic_path(args.out / "encoder.pt") as tmp:
        torch.save(state, tmp)
    work.finish(args.out, args.plots)
    write_json(args.metrics, metrics)
    ctx.log_metrics({**metrics, "train_seconds": round(seconds, 1)})
    print(f"pretrain: {metrics}")


if __name__ == "__main__":
    stage_main("pretrain", run)

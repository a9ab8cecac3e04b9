"""finetune: classifier with its encoder initialised from pretraining (or scratch), early-stopped on val
macro-F1 -> models/finetune/{best,last}.ckpt, metrics/finetune.json, plots/finetune/ (curves)."""

from __future__ import annotations

import torch

from sora.data.vocab import Vocab
from sora.errors import DataError
from sora.io import read_json, write_json
from sora.pipeline.entry import StageContext, read_frames, require, stage_main
from sora.pipeline.spec import fingerprint
from sora.training.classify import fit_and_score
from sora.training.fit import ResumableFit, class_count
from sora.training.modules import classifier_module
from sora.training.trainer import seed_and_threads


def run(ctx: StageContext) -> None:
    params, args, p = ctx.params, ctx.args, ctx.params.finetune
    seed_and_threads(params.trainer)
    require(args.vocab, args.baseline)
    vocab = Vocab.load(args.vocab)
    splits = read_frames(args, "train", "val", "test")
    num_classes = class_count(splits["train"], splits["val"], splits["test"], where=str(args.train))
    module = classifier_module(params, vocab, num_classes, p.lr)
    if p.init == "pretrained":
        encoder = args.encoder / "encoder.pt"
        require(encoder)
        state = torch.load(encoder, map_location="cpu", weights_only=True)
        if state["vocab_size"] != len(vocab) or state["model_params"] != params.model.model_dump():
            raise DataError(f"{encoder} was pretrained with another vocabulary or model shape: rerun pretrain")
        module.load_encoder_state(state["state_dict"])
    metrics, seconds = fit_and_score(
        params, module, vocab, splits, p.max_epochs, p.patience, ResumableFit(ctx.work_dir),
        fingerprint(params, ctx.spec), args.out, args.plots, read_json(args.baseline), ctx.lightning_loggers(),
    )  # fmt: skip
    if metrics is None:
        return
    write_json(args.metrics, metrics)
    ctx.log_metrics({**metrics, "train_seconds": round(seconds, 1)})
    ctx.log_artifact(args.vocab)
    print(f"finetune: {metrics}")


if __name__ == "__main__":
    stage_main("finetune", run)

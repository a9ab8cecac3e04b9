"""finetune: classifier with its encoder initialised from pretraining (or scratch), early-stopped on val
macro-F1 -> models/finetune/{best,last}.ckpt, metrics/finetune.json, plots/finetune/ (curves)."""

from __future__ import annotations

import pandas as pd

from sora.data.preprocess import check_no_leak
from sora.data.tasks import labeled_splits
from sora.data.vocab import Vocab, oov_rates
from sora.io import read_json, write_json
from sora.pipeline.entry import StageContext, read_frames, require, stage_main
from sora.pipeline.spec import fingerprint
from sora.training.classify import fit_and_score, initialise
from sora.training.fit import ResumableFit, class_count
from sora.training.modules import classifier_module
from sora.training.trainer import seed_and_threads


def run(ctx: StageContext) -> None:
    params, args, p = ctx.params, ctx.args, ctx.params.finetune
    seed_and_threads(params.trainer)
    require(args.vocab, args.baseline)
    vocab = Vocab.load(args.vocab)
    every_row = read_frames(args, "train", "val", "test")
    splits = labeled_splits(every_row)  # the primary task's rows
    require(args.pool)
    check_no_leak(
        pd.read_parquet(args.pool, columns=["text"])["text"], str(args.pool), every_row["val"], every_row["test"]
    )
    num_classes = class_count(splits["train"], splits["val"], splits["test"], where=str(args.train))
    multitask = len(params.tasks) > 1  # one head per task; a row trains the heads it has labels for
    module = classifier_module(params, vocab, num_classes, p.lr, multitask=multitask)
    encoder = args.encoder / "encoder.pt" if p.init == "pretrained" else None
    wide_fit = initialise(module, params, vocab, encoder, splits["train"], splits["val"])
    metrics, seconds = fit_and_score(
        params, module, vocab, every_row if multitask else splits, p.max_epochs, p.patience,
        ResumableFit(ctx.work_dir), fingerprint(params, ctx.spec), args.out, args.plots, read_json(args.baseline),
        ctx.lightning_loggers(),
    )  # fmt: skip
    if metrics is None:
        return
    metrics["wide_init"] = wide_fit
    metrics["oov"] = {
        split: {lang: {k: round(v, 5) for k, v in oov_rates(vocab, frame[frame["lang"] == lang]["tokens"]).items()}
                for lang in ("zh", "en")}
        for split, frame in splits.items()
    }  # fmt: skip
    write_json(args.metrics, metrics)
    ctx.log_metrics({**metrics, "train_seconds": round(seconds, 1)})
    ctx.log_artifact(args.vocab)
    print(f"finetune: {metrics}")


if __name__ == "__main__":
    stage_main("finetune", run)

"""pretrain: the foundation the classifier starts from, learned from the unlabeled pool only
-> models/pretrain/encoder.pt, metrics/pretrain.json, plots/pretrain/ (curves of the denoise objective).

objective ppmi: word vectors from co-occurrence counts in the token embedding (the default: it transfers, see
docs/experiments.md). objective denoise: a denoising autoencoder (BART-style) trains the whole encoder."""

from __future__ import annotations

import pandas as pd

from sora.data.vocab import Vocab
from sora.io import write_csv, write_json, write_torch
from sora.pipeline.entry import StageContext, require, stage_main
from sora.pipeline.spec import fingerprint
from sora.training.data import denoising_data, pretrain_corpus
from sora.training.fit import ResumableFit, fit_resumable
from sora.training.ppmi import nearest, ppmi_encoder
from sora.training.pretraining import PretrainModule
from sora.training.trainer import seed_and_threads

PROBES = ("好", "差", "失望", "good", "bad", "boring")  # printed with their nearest words, a readable check


def denoise(ctx: StageContext, vocab: Vocab, pool) -> tuple[dict, dict]:
    params, p, t = ctx.params, ctx.params.pretrain, ctx.params.trainer
    train, val = pretrain_corpus(pool, p.max_texts, t.seed)
    data = denoising_data(params, vocab, train, val)
    module = PretrainModule(
        len(vocab), vocab.pad_id, params.model, lr=p.lr, loss_fraction=p.loss_fraction, tie_output=p.tie_output
    )
    work = ResumableFit(ctx.work_dir)
    fp = fingerprint(params, ctx.spec)
    trainer, seconds = fit_resumable(
        module, data, t, p.max_epochs, work, fp, "val_loss", "min", loggers=ctx.lightning_loggers()
    )
    trainer.loggers = ctx.lightning_loggers()  # the validation below is not a point of the DVC curves
    best = trainer.validate(module, datamodule=data, ckpt_path="best", verbose=False)[0] if p.max_epochs else {}
    work.finish(ctx.args.out, ctx.args.plots)
    metrics = {
        "val": {"loss": round(best.get("val_loss", float("nan")), 5),
                "token_acc": round(best.get("val_token_acc", float("nan")), 5)},
        "train_texts": len(train),
        "train_seconds": round(seconds, 1),
    }  # fmt: skip
    return module.encoder_state_dict() if trainer.is_global_zero else None, metrics


def run(ctx: StageContext) -> None:
    params, args, p = ctx.params, ctx.args, ctx.params.pretrain
    seed_and_threads(params.trainer)
    require(args.vocab, args.pool)
    vocab = Vocab.load(args.vocab)
    pool = pd.read_parquet(args.pool, columns=["tokens", "lang"])
    if p.objective == "ppmi":
        encoder, found, spectrum = ppmi_encoder(vocab, pool["tokens"], params.model, p.window, params.trainer.seed)
        state = encoder.state_dict()
        metrics = {"pool_texts": len(pool), "vocab_with_vector": round(found, 5)}
        vectors = encoder.tok.weight.detach().numpy()
        for word in PROBES:
            print(f"pretrain: nearest to {word}: {' '.join(nearest(vectors, vocab, word))}")
        # No training curve for a closed-form objective; the spectrum shows how much of the PPMI matrix the
        # d_model dimensions keep (x is the component rank, named step to share the DVC plot definition).
        write_csv(
            args.plots / "ppmi_spectrum.tsv",
            pd.DataFrame({"step": range(len(spectrum)), "singular_value": spectrum}),
            sep="\t",
        )
    else:
        state, metrics = denoise(ctx, vocab, pool)
        if state is None:
            return
    payload = {
        "state_dict": {k: v.cpu() for k, v in state.items()},
        "vocab_size": len(vocab),
        "pad_id": vocab.pad_id,
        "model_params": params.model.model_dump(),
        "objective": p.objective,
    }
    write_torch(payload, args.out / "encoder.pt")
    write_json(args.metrics, metrics)
    ctx.log_metrics(metrics)
    print(f"pretrain ({p.objective}): {metrics}")


if __name__ == "__main__":
    stage_main("pretrain", run)

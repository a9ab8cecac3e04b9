"""baseline: the classical models on the same splits -> metrics/baseline.json: the ten-line TF-IDF baseline
(`test`) and the tuned two-view TF-IDF union with C picked on val (`tuned`). The tuned model is also the
n-gram half of the registered model: models/baseline/ngram (plain arrays), with its out-of-fold logits on the
train texts in models/baseline/train_logits.parquet (what `distill` trains the network's residual on)."""

from __future__ import annotations

import pandas as pd

from sora.evaluation.baseline import TunedClassical, evaluate_baseline
from sora.io import write_json, write_parquet
from sora.pipeline.entry import StageContext, require, stage_main


def run(ctx: StageContext) -> None:
    paths = {s: getattr(ctx.args, s) for s in ("train", "val", "test")}
    require(*paths.values())
    splits = {s: pd.read_parquet(p, columns=["text", "label", "lang"]) for s, p in paths.items()}
    p = ctx.params.baseline
    tuned = TunedClassical(p.tuned_Cs, p.max_iter, jobs=ctx.params.trainer.threads).fit(splits["train"], splits["val"])
    metrics = {
        "test": evaluate_baseline(splits, p.C, p.max_iter),
        "tuned": {"test": tuned.scores(splits["test"]), "val": tuned.scores(splits["val"]), "C": tuned.chosen_C},
    }
    test = splits["test"]
    num_classes = int(max(s["label"].max() for s in splits.values())) + 1
    # Per-example test predictions, so the champion can be compared with this model on the same texts (McNemar).
    write_parquet(
        ctx.args.predictions,
        test.assign(pred=tuned.predict_proba(test, num_classes).argmax(1))[["text", "lang", "label", "pred"]],
    )
    tuned.ngram_model(num_classes).save(ctx.args.ngram)
    train = splits["train"]
    oof = tuned.out_of_fold_logits(train, num_classes, seed=ctx.params.trainer.seed)
    write_parquet(ctx.args.train_logits, train[["text", "lang"]].assign(logits=list(oof)))
    write_json(ctx.args.metrics, metrics)
    ctx.log_metrics(metrics)
    for name, scores in (("baseline", metrics["test"]), ("tuned classical", metrics["tuned"]["test"])):
        print(f"{name} test accuracy: " + ", ".join(f"{lang} {m['acc']}" for lang, m in scores.items()))


if __name__ == "__main__":
    stage_main("baseline", run)

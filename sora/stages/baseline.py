"""baseline: the classical models on the same splits -> metrics/baseline.json: the ten-line TF-IDF baseline
(`test`), the tuned two-view TF-IDF union with C picked on val (`tuned`, what the registered model is compared
with) and the n-gram half of the registered model (`ngram_half`: the tuned model plus the sentiment lexicon's
features where they win on val): models/baseline/ngram (plain arrays), with its out-of-fold logits on the
train texts in models/baseline/train_logits.parquet (what `distill` trains the network's residual on). Every other
task gets its own ten-line baseline (`tasks`)."""

from __future__ import annotations

import pandas as pd

from sora.data.tasks import labeled_splits
from sora.evaluation.baseline import TunedClassical, evaluate_baseline
from sora.io import write_json, write_parquet
from sora.models.lexicon import LexiconFeatures
from sora.pipeline.entry import StageContext, read_frames, require, stage_main


def run(ctx: StageContext) -> None:
    params, p = ctx.params, ctx.params.baseline
    every_row = read_frames(ctx.args, "train", "val", "test", columns=["text", "lang", *params.columns])
    splits = {s: f[["text", "label", "lang"]] for s, f in labeled_splits(every_row).items()}
    require(ctx.args.lexicon)
    table = pd.read_parquet(ctx.args.lexicon)
    lexicons = {
        lang: LexiconFeatures(lang, part["term"].tolist(), part["polarity"].to_numpy())
        for lang, part in table.groupby("lang")
    }
    tuned = TunedClassical(p.tuned_Cs, p.max_iter, ctx.params.trainer.threads, lexicons, p.lexicon_scales)
    tuned.fit(splits["train"], splits["val"])
    reference = {split: tuned.scores(splits[split], reference=True) for split in ("test", "val")}
    half = {split: tuned.scores(splits[split], known=reference[split]) for split in ("test", "val")}
    metrics = {
        "test": evaluate_baseline(splits, p.C, p.max_iter, ctx.params.trainer.threads),
        "tasks": {
            name: evaluate_baseline(labeled_splits(every_row, column), p.C, p.max_iter, params.trainer.threads, column)
            for name, column in ((name, t.column) for name, t in params.other_tasks.items())
        },
        "tuned": {**reference, "C": tuned.chosen_C},
        "ngram_half": {
            **half,
            "lexicon_scale": tuned.lexicon_scale,
            "val_acc_by_lexicon_scale": tuned.lexicon_val,
            "lexicon_terms": {lang: len(lex.terms) for lang, lex in lexicons.items()},
        },
    }
    test = splits["test"]
    num_classes = int(max(s["label"].max() for s in splits.values())) + 1
    # Per-example test predictions, so the champion can be compared with this model on the same texts (McNemar).
    write_parquet(
        ctx.args.predictions,
        test.assign(pred=tuned.predict_proba(test, num_classes, reference=True).argmax(1))[
            ["text", "lang", "label", "pred"]
        ],
    )
    tuned.ngram_model(num_classes).save(ctx.args.ngram)
    train = splits["train"]
    oof = tuned.out_of_fold_logits(train, num_classes, folds=p.oof_folds, seed=ctx.params.trainer.seed)
    write_parquet(ctx.args.train_logits, train[["text", "lang"]].assign(logits=list(oof)))
    write_json(ctx.args.metrics, metrics)
    ctx.log_metrics(metrics)
    for name, block in (
        ("baseline", metrics["test"]),
        ("tuned classical", metrics["tuned"]["test"]),
        (f"n-gram half (lexicon scale {tuned.lexicon_scale})", metrics["ngram_half"]["test"]),
    ):
        print(f"{name} test accuracy: " + ", ".join(f"{lang} {m['acc']}" for lang, m in block.items()))
    for name, block in metrics["tasks"].items():
        print(f"baseline, task {name}: test accuracy " + ", ".join(f"{lang} {m['acc']}" for lang, m in block.items()))


if __name__ == "__main__":
    stage_main("baseline", run)

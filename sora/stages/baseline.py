"""baseline: TF-IDF + LogisticRegression per language on the same splits -> metrics/baseline.json."""

from __future__ import annotations

import pandas as pd

from sora.evaluation.baseline import evaluate_baseline
from sora.io import write_json
from sora.pipeline.entry import StageContext, require, stage_main


def run(ctx: StageContext) -> None:
    paths = {s: getattr(ctx.args, s) for s in ("train", "val", "test")}
    require(*paths.values())
    splits = {s: pd.read_parquet(p, columns=["text", "label", "lang"]) for s, p in paths.items()}
    metrics = {"test": evaluate_baseline(splits, ctx.params.baseline.C, ctx.params.baseline.max_iter)}
    write_json(ctx.args.metrics, metrics)
    ctx.log_metrics(metrics)
    print("baseline test accuracy: " + ", ".join(f"{lang} {m['acc']}" for lang, m in metrics["test"].items()))


if __name__ == "__main__":
    stage_main("baseline", run)

"""baseline: TF-IDF + LogisticRegression per language on the same splits -> metrics/baseline.json."""

from __future__ import annotations

import pandas as pd

from sora.config import Params
from sora.io import write_json
from sora.stages.common import METRICS, PROCESSED, main, require
from sora.tracking.runs import stage_run


def run_baseline(params: Params) -> dict:
    from sora.evaluation.baseline import evaluate_baseline

    paths = {s: PROCESSED / f"{s}.parquet" for s in ("train", "val", "test")}
    require(*paths.values())
    splits = {s: pd.read_parquet(p, columns=["text", "label", "lang"]) for s, p in paths.items()}
    metrics = evaluate_baseline(splits, params.baseline.C, params.baseline.max_iter)
    write_json(METRICS / "baseline.json", metrics)
    print("baseline: " + ", ".join(f"{k}={v}" for k, v in metrics.items() if k.endswith("test_acc")))
    return metrics


def run(params: Params) -> None:
    with stage_run("baseline", params, ("baseline",), inputs=["data/processed"]) as mlflow:
        mlflow.log_metrics(run_baseline(params))


if __name__ == "__main__":
    main(run)

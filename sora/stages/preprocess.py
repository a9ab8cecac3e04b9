"""preprocess: normalise, detect language, dedup, drop conflicts, tokenise, split -> data/processed/."""

from __future__ import annotations

import pandas as pd

from sora.config import Params
from sora.data.preprocess import REJECT_COLUMNS, add_tokens, clean_labeled, clean_unlabeled, stratified_split
from sora.data.sources import DataError
from sora.io import write_json, write_parquet
from sora.stages.common import METRICS, PROCESSED, RAW, main, progress, require
from sora.tracking.runs import stage_run

SPLITS = ("train", "val", "test")


def preprocess(params: Params) -> dict:
    p = params.preprocess
    require(RAW / "labeled.parquet", RAW / "unlabeled.parquet", RAW / "rejected.parquet")
    raw = pd.read_parquet(RAW / "labeled.parquet")
    cleaned = clean_labeled(raw, p.min_chars, p.max_chars)
    rows = cleaned.rows
    if rows.empty:
        raise DataError(f"{RAW / 'labeled.parquet'}: no rows left after cleaning ({len(cleaned.rejects)} rejected)")
    splits = stratified_split(rows, p.val_fraction, p.test_fraction, p.seed)
    for name, frame in splits.items():
        if frame.empty:
            raise DataError(
                f"{RAW / 'labeled.parquet'}: only {len(rows)} usable rows, the {name} split would be "
                "empty; add data or change preprocess.val_fraction/test_fraction"
            )
    eval_texts = set(splits["val"]["text"]) | set(splits["test"]["text"])
    unlabeled = clean_unlabeled(
        pd.read_parquet(RAW / "unlabeled.parquet"),
        p.min_chars,
        p.max_chars,
        exclude=eval_texts,
        limit=p.max_unlabeled,
        seed=p.seed,
    )

    total = len(rows) + len(unlabeled)
    with progress() as bar:
        task = bar.add_task("tokenising (spaCy zh+jieba / en)", total=total)
        step = lambda n: bar.advance(task, n)
        splits = {name: add_tokens(frame, step) for name, frame in splits.items()}
        unlabeled = add_tokens(unlabeled, step)

    ingest_rejects = pd.read_parquet(RAW / "rejected.parquet").reindex(columns=REJECT_COLUMNS)
    rejects = pd.concat([ingest_rejects, cleaned.rejects.reindex(columns=REJECT_COLUMNS)], ignore_index=True)
    columns = ["text", "label", "lang", "tokens", "source"]
    for name in SPLITS:
        write_parquet(PROCESSED / f"{name}.parquet", splits[name][columns])
    write_parquet(PROCESSED / "unlabeled.parquet", unlabeled)
    write_parquet(PROCESSED / "rejected.parquet", rejects.astype({"text": "string", "detail": "string"}))

    metrics: dict[str, int] = {
        "rows_in": len(raw) + len(ingest_rejects),
        "rows_kept": len(rows),
        "rejected_total": len(rejects),
        "unlabeled_kept": len(unlabeled),
        "lang_mismatch": cleaned.lang_mismatch,
        "conflicting_texts": cleaned.conflicting_texts,
    }
    for reason, n in rejects["reason"].value_counts().items():
        metrics[f"rejected_{_key(reason)}"] = int(n)
    for lang, n in rows["lang"].value_counts().items():
        metrics[f"lang_{lang}"] = int(n)
    for (lang, label), n in rows.groupby(["lang", "label"]).size().items():
        metrics[f"label_{lang}_{label}"] = int(n)
    for name in SPLITS:
        for lang, n in splits[name]["lang"].value_counts().items():
            metrics[f"split_{name}_{lang}"] = int(n)
    write_json(METRICS / "preprocess.json", metrics)
    print(
        f"preprocess: kept {len(rows)} labeled texts ({metrics.get('lang_zh', 0)} zh, {metrics.get('lang_en', 0)} en), "
        f"rejected {len(rejects)}, unlabeled {len(unlabeled)}"
    )
    return metrics


def _key(reason: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "_", str(reason).lower()).strip("_")[:60]


def run(params: Params) -> None:
    with stage_run("preprocess", params, ("preprocess",), inputs=["data/raw"]) as mlflow:
        metrics = preprocess(params)
        mlflow.log_metrics(metrics)


if __name__ == "__main__":
    main(run)

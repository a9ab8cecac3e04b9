"""preprocess: normalise, detect language, dedup, resolve conflicting labels, tokenise, split labeled rows ->
data/processed/ (one label column per task)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sora.config import Params
from sora.data.preprocess import REJECT_COLUMNS, REJECT_REASONS, add_tokens, clean_labeled, hash_split, near_duplicates
from sora.data.tasks import MISSING, label_counts
from sora.errors import DataError
from sora.io import write_json, write_parquet
from sora.pipeline.entry import StageContext, require, stage_main
from sora.progress import progress

SPLITS = ("train", "val", "test")
LANGS = ("zh", "en")


def preprocess(params: Params, raw_dir: Path, out: Path) -> dict:
    p = params.preprocess
    labeled_path = raw_dir / "labeled.parquet"
    require(labeled_path, raw_dir / "rejected.parquet")
    raw = pd.read_parquet(labeled_path)
    columns = params.columns
    cleaned = clean_labeled(raw, p.min_chars, p.max_chars, columns)
    rows = cleaned.rows
    if rows.empty:
        raise DataError(f"{labeled_path}: no rows left after cleaning ({len(cleaned.rejects)} rejected)")
    splits = hash_split(rows, p.val_fraction, p.test_fraction, p.seed)
    for name, frame in splits.items():
        if frame.empty:
            raise DataError(
                f"{labeled_path}: only {len(rows)} usable rows, the {name} split would be "
                "empty; add data or change preprocess.val_fraction/test_fraction"
            )

    with progress("tokenising (spaCy zh+jieba / en)", len(rows)) as bar:
        splits = {name: add_tokens(frame, bar.advance) for name, frame in splits.items()}

    ingest_rejects = pd.read_parquet(raw_dir / "rejected.parquet").reindex(columns=REJECT_COLUMNS)
    rejects = pd.concat([ingest_rejects, cleaned.rejects.reindex(columns=REJECT_COLUMNS)], ignore_index=True)
    for name in SPLITS:
        write_parquet(out / f"{name}.parquet", splits[name][["text", *columns, "lang", "tokens", "source"]])
    write_parquet(out / "rejected.parquet", rejects.astype({"text": "string", "detail": "string"}))

    metrics = {
        "rows": {"in": len(raw) + len(ingest_rejects), "kept": len(rows), "rejected": len(rejects)},
        "lang_mismatch": cleaned.lang_mismatch,
        # per task: texts seen with two labels (they lose that task's label; with no label left they are dropped)
        "conflicting_texts": {n: cleaned.conflicting_texts[t.column] for n, t in params.tasks.items()},
        # distinct texts that differ only in case, spacing or punctuation: each group shares one split
        "near_duplicates": near_duplicates(rows["text"]),
        "rejected": {reason: int((rejects["reason"] == reason).sum()) for reason in REJECT_REASONS},
        "labels": label_counts(rows, params),  # task -> lang -> class name -> texts
        "splits": {name: {lang: int((splits[name]["lang"] == lang).sum()) for lang in LANGS} for name in SPLITS},
        "task_splits": {  # texts with a label for the task
            task: {
                name: {lang: int(((f["lang"] == lang) & (f[t.column] != MISSING)).sum()) for lang in LANGS}
                for name, f in splits.items()
            }
            for task, t in params.tasks.items()
        },
    }
    counts = rows["lang"].value_counts()
    per_task = ", ".join(f"{task} {int((rows[t.column] != MISSING).sum())}" for task, t in params.tasks.items())
    print(
        f"preprocess: kept {len(rows)} labeled texts ({counts.get('zh', 0)} zh, {counts.get('en', 0)} en; "
        f"labeled for {per_task}), rejected {len(rejects)}"
    )
    return metrics


def run(ctx: StageContext) -> None:
    metrics = preprocess(ctx.params, ctx.args.raw, ctx.args.out)
    write_json(ctx.args.metrics, metrics)
    ctx.log_metrics(metrics)


if __name__ == "__main__":
    stage_main("preprocess", run)

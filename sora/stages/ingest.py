"""ingest: built-in package corpora, lexicons and user files -> data/raw/{labeled,unlabeled,rejected,lexicon}.parquet,
manifest.json."""

from __future__ import annotations

from sora.data.ingest import ingest
from sora.pipeline.entry import StageContext, stage_main


def run(ctx: StageContext) -> None:
    ctx.log_metrics(ingest(ctx.params, ctx.args.out))
    ctx.log_artifact(ctx.args.out / "manifest.json")


if __name__ == "__main__":
    stage_main("ingest", run)

"""pool: the unlabeled text the vocabulary and pretraining learn from -> data/pool/texts.parquet, metrics/pool.json.

Built-in corpora, the user's unlabeled globs and the built-in labeled texts without their labels; never a text
that is or could become a val/test text (its hash split must be train). Reads only data/raw/unlabeled.parquet,
so new or changed labeled files leave the pool, the vocabulary and pretraining as they are."""

from __future__ import annotations

import pandas as pd

from sora.data.preprocess import add_tokens, clean_unlabeled
from sora.errors import DataError
from sora.io import write_json, write_parquet
from sora.pipeline.entry import StageContext, require, stage_main
from sora.progress import progress


def run(ctx: StageContext) -> None:
    args, p, pool_p = ctx.args, ctx.params.preprocess, ctx.params.pool
    require(args.unlabeled)
    pool, dropped = clean_unlabeled(
        pd.read_parquet(args.unlabeled),
        p.min_chars,
        p.max_chars,
        p.val_fraction,
        p.test_fraction,
        p.seed,
        pool_p.max_texts,
    )
    if pool.empty:
        raise DataError(f"{args.unlabeled}: no unlabeled text left for the pool (dropped: {dropped})")
    with progress("tokenising the pool (spaCy zh+jieba / en)", len(pool)) as bar:
        pool = add_tokens(pool, bar.advance)
    write_parquet(args.out, pool)
    metrics = {
        "texts": {lang: int((pool["lang"] == lang).sum()) for lang in ("zh", "en")},
        "characters": {lang: int(pool.loc[pool["lang"] == lang, "text"].str.len().sum()) for lang in ("zh", "en")},
        "by_source": {str(k): int(v) for k, v in pool["source"].value_counts().items()},
        "dropped": dropped,
    }
    write_json(args.metrics, metrics)
    ctx.log_metrics(metrics)
    print(f"pool: {metrics['texts']} texts; dropped {dropped}")


if __name__ == "__main__":
    stage_main("pool", run)

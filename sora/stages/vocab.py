"""vocab: token vocabulary from the unlabeled pool only (labeled data never changes it) -> data/vocab.json,
sizes and pool coverage -> metrics/vocab.json. OOV rates on val/test are reported by finetune."""

from __future__ import annotations

import pandas as pd

from sora.data.vocab import Vocab, oov_rates
from sora.io import write_json
from sora.pipeline.entry import StageContext, require, stage_main


def run(ctx: StageContext) -> None:
    p, args = ctx.params.vocab, ctx.args
    require(args.pool)
    pool = pd.read_parquet(args.pool, columns=["lang", "tokens"])
    vocab = Vocab.build(pool["tokens"], p.specials, p.min_freq, p.max_size, p.hash_buckets)
    metrics = {
        "size": len(vocab),
        "pool_oov": {
            lang: {k: round(v, 5) for k, v in oov_rates(vocab, pool[pool["lang"] == lang]["tokens"]).items()}
            for lang in ("zh", "en")
        },
    }
    vocab.save(args.out)
    write_json(args.metrics, metrics)
    ctx.log_metrics(metrics)
    ctx.log_artifact(args.out)
    print(f"vocab: {len(vocab)} tokens; pool OOV {metrics['pool_oov']}")


if __name__ == "__main__":
    stage_main("vocab", run)

"""vocab: token vocabulary from the train split only -> data/vocab.json, OOV rates -> metrics/vocab.json."""

from __future__ import annotations

import pandas as pd

from sora.data.vocab import Vocab, oov_rates
from sora.io import write_json
from sora.pipeline.entry import StageContext, require, stage_main


def run(ctx: StageContext) -> None:
    p, args = ctx.params.vocab, ctx.args
    splits = {s: getattr(args, s) for s in ("train", "val", "test")}
    require(*splits.values())
    frames = {s: pd.read_parquet(path, columns=["lang", "tokens"]) for s, path in splits.items()}
    vocab = Vocab.build(frames["train"]["tokens"], p.specials, p.min_freq, p.max_size)
    metrics = {
        "size": len(vocab),
        "oov": {
            split: {
                lang: {k: round(v, 5) for k, v in oov_rates(vocab, frame[frame["lang"] == lang]["tokens"]).items()}
                for lang in ("zh", "en")
            }
            for split, frame in frames.items()
        },
    }
    vocab.save(args.out)
    write_json(args.metrics, metrics)
    ctx.log_metrics(metrics)
    ctx.log_artifact(args.out)
    test = metrics["oov"]["test"]
    print(f"vocab: {len(vocab)} tokens; test OOV zh {test['zh']['oov_rate']}, en {test['en']['oov_rate']}")


if __name__ == "__main__":
    stage_main("vocab", run)

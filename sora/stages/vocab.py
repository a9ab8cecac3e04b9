"""vocab: token vocabulary from the train split only -> data/vocab.json, OOV rates -> metrics/vocab.json."""

from __future__ import annotations

import pandas as pd

from sora.config import Params
from sora.data.vocab import Vocab, oov_rates
from sora.io import write_json
from sora.stages.common import METRICS, PROCESSED, VOCAB, main, require
from sora.tracking.runs import stage_run


def build_vocab(params: Params) -> dict:
    p = params.vocab
    require(*(PROCESSED / f"{s}.parquet" for s in ("train", "val", "test")))
    train = pd.read_parquet(PROCESSED / "train.parquet")
    vocab = Vocab.build(train["tokens"], p.specials, p.min_freq, p.max_size)
    metrics: dict[str, float] = {"size": len(vocab)}
    for split in ("train", "val", "test"):
        frame = train if split == "train" else pd.read_parquet(PROCESSED / f"{split}.parquet")
        for lang, group in frame.groupby("lang"):
            for key, value in oov_rates(vocab, group["tokens"]).items():
                metrics[f"{split}_{lang}_{key}"] = round(value, 5)
    vocab.save(VOCAB)
    write_json(METRICS / "vocab.json", metrics)
    print(
        f"vocab: {len(vocab)} tokens; test OOV zh {metrics.get('test_zh_oov_rate')}, en {metrics.get('test_en_oov_rate')}"
    )
    return metrics


def run(params: Params) -> None:
    with stage_run("vocab", params, ("vocab",), inputs=["data/processed"]) as mlflow:
        metrics = build_vocab(params)
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(VOCAB))


if __name__ == "__main__":
    main(run)

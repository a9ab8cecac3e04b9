"""fp32 / pruned / int8 side by side: size, latency, throughput, accuracy, accuracy under attack."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from sora.compression.measure import latency_p50_ms, size_on_disk_bytes, sparse_size_on_disk_bytes, throughput


def compare_variants(
    variants: dict[str, object],
    make_predictor: Callable[[object], object],
    test: pd.DataFrame,
    encoded: list,
    offsets,
    latency_batch: int,
    threads: int,
    score: Callable[[np.ndarray], dict],
    attack_accuracy: Callable[[object], float],
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One row per variant (the first is the reference) and each variant's predicted labels. `offsets`: the
    n-gram half's logits for the test texts (None without one); latency and throughput are the network's."""
    one, batch = encoded[len(encoded) // 2], encoded[:latency_batch]
    rows, preds = [], {}
    for name, model in variants.items():
        predictor = make_predictor(model)
        probs = predictor.predict_ids(encoded, offsets)
        preds[name] = probs.argmax(1)
        clean = score(probs)
        size = sparse_size_on_disk_bytes(model) if name == "pruned" else size_on_disk_bytes(model)
        rows.append(
            {
                "variant": name,
                "size_mb": round(size / 2**20, 3),
                "p50_ms_one_text": round(
                    latency_p50_ms(lambda ids, p=predictor: p.predict_ids([ids]), one, num_threads=threads), 3
                ),
                "texts_per_s_batch": round(
                    throughput(predictor.predict_ids, batch, num_threads=threads, n_items=len(batch)), 1
                ),
                "test_acc": clean["all"]["acc"],
                "test_f1": clean["all"]["f1"],
                "test_acc_zh": clean.get("zh", {}).get("acc"),
                "test_acc_en": clean.get("en", {}).get("acc"),
                "attack_acc": round(attack_accuracy(predictor), 5),
            }
        )
    return pd.DataFrame(rows), preds

"""fp32 vs pruned vs int8, side by side in one run: size on disk, model latency (p50, one text), batch
throughput, test accuracy and agreement with fp32; then end-to-end (strings in) latency and throughput of the
registered champion. Needs the pipeline outputs (`make pipeline`).

    python benchmarks/compress.py [--threads 1] [--texts 1000] [--profile]

--profile adds where the batch time goes, per operator, for fp32 and int8 (torch.profiler): dynamic int8 only
speeds up the matrix multiplies, so their share of fp32's time bounds what int8 can gain.
"""

from __future__ import annotations

import argparse
import statistics
import time


def operator_profile(models: dict, base, batch, calls: int = 10):
    """Self CPU ms per batch call by operator kind, one column per model (torch.profiler)."""
    import pandas as pd
    import torch
    from torch.profiler import ProfilerActivity, profile

    from sora.inference import Predictor

    kinds = {
        "aten::addmm": "matmul",
        "quantized::linear_dynamic": "matmul",
        "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
        "aten::gelu": "gelu",
        "aten::native_layer_norm": "layer norm",
        "aten::add": "add",
        "aten::embedding": "embedding",
        "aten::index_select": "embedding",
        "quantized::embedding_byte": "embedding",
    }
    columns = {}
    for name, model in models.items():
        predictor = Predictor(model, base.vocab, base.max_len)
        predictor.predict_ids(batch)
        with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                predictor.predict_ids(batch)
        per_kind: dict[str, float] = {}
        for event in prof.key_averages():
            kind = kinds.get(event.key, "other")
            per_kind[kind] = per_kind.get(kind, 0.0) + event.self_cpu_time_total / 1000 / calls
        columns[f"{name} ms"] = per_kind
    table = pd.DataFrame(columns).fillna(0.0)
    table.loc["total"] = table.sum()
    for name in models:
        table[f"{name} %"] = 100 * table[f"{name} ms"] / table.loc["total", f"{name} ms"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--champion", default="models:/sora@champion")
    parser.add_argument("--profile", action="store_true", help="time per operator kind, fp32 vs int8")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from sora.compression import (
        latency_p50_ms,
        quantize_dynamic_int8,
        size_on_disk_bytes,
        sparse_size_on_disk_bytes,
        sparsity_report,
        throughput,
    )
    from sora.inference import Predictor, load_bundle
    from sora.pipeline.entry import declared_args
    from sora.training.trainer import load_classifier

    torch.set_num_threads(args.threads)
    paths = declared_args("prune")  # the files the prune stage reads and writes
    from sora.data.tasks import labeled_for

    test = labeled_for(pd.read_parquet(paths.test))
    fp32, hp = load_classifier(paths.student / "best.ckpt")
    bundle = load_bundle(paths.out, quantize=False)  # the pruned fp32 weights, whatever is registered
    pruned = bundle.model
    int8 = quantize_dynamic_int8(pruned, quantize_embeddings=True)
    base = Predictor(fp32, bundle.vocab, hp["model_params"]["max_len"])
    encoded = base.encode(test["text"].tolist(), test["lang"].tolist())
    labels = test["label"].to_numpy()
    one, batch = encoded[len(encoded) // 2], encoded[:256]

    rows, preds = [], {}
    for name, model in (("fp32", fp32), ("pruned", pruned), ("int8", int8)):
        pred = Predictor(model, base.vocab, base.max_len)
        preds[name] = pred.predict_ids(encoded).argmax(1)
        size = sparse_size_on_disk_bytes(model) if name == "pruned" else size_on_disk_bytes(model)
        rows.append(
            {
                "variant": name,
                "size_MB": size / 2**20,
                "p50_ms_1_text": latency_p50_ms(
                    lambda ids, p=pred: p.predict_ids([ids]), one, num_threads=args.threads
                ),
                "texts/s_batch256": throughput(pred.predict_ids, batch, num_threads=args.threads, n_items=len(batch)),
                "test_acc": float((preds[name] == labels).mean()),
                "agree_fp32": float((preds[name] == preds["fp32"]).mean()),
            }
        )
    table = pd.DataFrame(rows).set_index("variant")
    ref = table.loc["fp32"]
    table["size_x_smaller"] = ref["size_MB"] / table["size_MB"]
    table["throughput_x"] = table["texts/s_batch256"] / ref["texts/s_batch256"]
    print(f"threads={args.threads}; global sparsity of pruned: {sparsity_report(pruned)['global']:.3f}")
    print(table.round(4).to_string())
    print("goals: sparsity >= 0.70 with <= 1 pt accuracy loss; int8 >= 2x throughput and >= 3x smaller")
    print(
        f"  accuracy loss pruned: {100 * (ref['test_acc'] - table.loc['pruned', 'test_acc']):.2f} pt; "
        f"int8 throughput {table.loc['int8', 'throughput_x']:.2f}x; "
        f"int8 size {table.loc['int8', 'size_x_smaller']:.2f}x"
    )

    if args.profile:
        print(operator_profile({"fp32": fp32, "int8": int8}, base, batch).round(1).to_string())

    # End to end, strings in: what `sora predict` / the served model costs.
    import mlflow

    from sora.config import load_params
    from sora.tracking.runs import setup_mlflow

    setup_mlflow(load_params())
    model = mlflow.pyfunc.load_model(args.champion)
    texts = test["text"].tolist()
    frame = pd.DataFrame({"text": texts[: args.texts]})
    model.predict(frame.head(8))
    one_text = pd.DataFrame({"text": [texts[0]]})
    lat = []
    for _ in range(30):
        start = time.perf_counter()
        model.predict(one_text)
        lat.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    model.predict(frame)
    rate = len(frame) / (time.perf_counter() - start)
    print(
        f"champion {args.champion}: p50 {statistics.median(lat):.1f} ms for one text; "
        f"{rate:,.0f} texts/s for {len(frame)} texts (tokenisation included)"
    )


if __name__ == "__main__":
    main()

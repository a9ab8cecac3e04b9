"""prune: gradual global magnitude pruning of the hardened classifier during a short recovery fine-tune
(masks active), made permanent; then dynamic int8 quantisation. Side by side for fp32 / pruned / int8: size on disk, CPU
latency (p50, one text) and batch throughput, clean accuracy, accuracy under attack
-> models/prune/ (model bundle), metrics/prune.json, plots/prune.csv."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from sora.config import Params
from sora.io import write_csv, write_json
from sora.stages.common import METRICS, MODELS, PLOTS, main, require
from sora.stages.training import WORK, load_splits, load_vocab, maybe_stage_run

HARDENED = MODELS / "harden" / "best.ckpt"
OUT = MODELS / "prune"


def attack_accuracy(predictor, test: pd.DataFrame, params: Params) -> float:
    """Worst case over the perturbation attacks ('all_perturbations'), both languages, on a capped seeded
    sample per language (the greedy attack is left to `evaluate`: too costly to repeat per variant)."""
    from sora.evaluation.attacks import run_suite

    e = params.evaluate
    sample = pd.concat(
        [g.sample(n=min(len(g), e.attack_max_examples), random_state=e.attack_seed) for _, g in test.groupby("lang")]
    )
    table = run_suite(
        sample["text"].tolist(),
        sample["label"].tolist(),
        sample["lang"].tolist(),
        predictor.predict_proba,
        budget=e.attack_budget,
        seed=e.attack_seed,
        include_greedy=False,
        batch_size=e.batch_size,
        progress=False,
    )
    worst = table[table["attack"] == "all_perturbations"]
    return float((worst["accuracy_under_attack"] * worst["n"]).sum() / worst["n"].sum())


def prune_and_recover(params: Params, model: torch.nn.Module, vocab, train: pd.DataFrame) -> None:
    """Gradual pruning to `prune.sparsity` in `prune.cuts` steps during a short recovery fine-tune (masks
    active, so pruned weights stay zero while the rest adapt); one-shot pruning when recovery_epochs is 0."""
    from sora.compression import global_magnitude_prune
    from sora.training.data import TextDataModule
    from sora.training.modules import ClassifierModule
    from sora.training.pruning import GradualPruning
    from sora.training.trainer import build_trainer

    p, t = params.prune, params.trainer
    if not p.recovery_epochs:
        global_magnitude_prune(model, p.sparsity, include_embeddings=p.include_embeddings, normalize=True)
        return
    module = ClassifierModule(
        vocab_size=len(vocab),
        pad_id=vocab.pad_id,
        model_params=params.model,
        num_classes=model.head.out_features,
        lr=p.lr,
        weight_decay=params.finetune.weight_decay,
        token_dropout=params.finetune.token_dropout,
        unk_id=vocab.unk_id,
    )
    module.model = model
    data = TextDataModule(
        train,
        vocab=vocab,
        max_len=params.model.max_len,
        batch_size=t.batch_size,
        num_workers=t.num_workers,
        seed=t.seed,
    )
    # One device: the masks are forward hooks on this process's module (nothing to gain from DDP here).
    single = t.model_copy(update={"devices": 1, "num_nodes": 1, "strategy": "auto"})
    build_trainer(
        single,
        p.recovery_epochs,
        WORK / "prune",
        logger=False,
        enable_checkpointing=False,
        callbacks=[GradualPruning(p.sparsity, p.cuts, p.include_embeddings)],
    ).fit(module, datamodule=data)
    model.eval()


def prune(params: Params) -> tuple[dict, pd.DataFrame]:
    from sora.compression import (
        latency_p50_ms,
        make_permanent,
        quantize_dynamic_int8,
        size_on_disk_bytes,
        sparse_size_on_disk_bytes,
        sparsity_report,
        throughput,
    )
    from sora.evaluation.report import clean_metrics
    from sora.inference import Predictor, save_bundle
    from sora.training.trainer import load_classifier, seed_and_threads

    p = params.prune
    seed_and_threads(params.trainer)
    require(HARDENED)
    splits = load_splits("train", "test")
    test = splits["test"]
    vocab = load_vocab()
    fp32, hp = load_classifier(HARDENED)
    max_len = hp["model_params"]["max_len"]

    pruned = copy.deepcopy(fp32)
    prune_and_recover(params, pruned, vocab, splits["train"])
    make_permanent(pruned)
    int8 = quantize_dynamic_int8(pruned, quantize_embeddings=True)
    sparsity = sparsity_report(pruned, include_embeddings=p.include_embeddings)["global"]

    encoded = Predictor(fp32, vocab, max_len).encode(test["text"].tolist(), test["lang"].tolist())
    one = encoded[len(encoded) // 2]
    batch = encoded[: p.latency_batch]
    rows, preds = [], {}
    threads = max(params.trainer.threads, 1)
    for name, model in (("fp32", fp32), ("pruned", pruned), ("int8", int8)):
        predictor = Predictor(model, vocab, max_len, params.evaluate.batch_size, cache_tokens=True)
        probs = predictor.predict_ids(encoded)
        preds[name] = probs.argmax(1)
        clean = clean_metrics(probs, test["label"].to_numpy(), test["lang"].to_numpy())
        size = size_on_disk_bytes(model) if name != "pruned" else sparse_size_on_disk_bytes(model)
        rows.append(
            {
                "variant": name,
                "size_mb": round(size / 2**20, 3),
                "p50_ms_one_text": round(
                    latency_p50_ms(lambda ids: predictor.predict_ids([ids]), one, num_threads=threads), 3
                ),
                "texts_per_s_batch": round(
                    throughput(predictor.predict_ids, batch, num_threads=threads, n_items=len(batch)), 1
                ),
                "test_acc": clean["all_acc"],
                "test_f1": clean["all_f1"],
                "test_acc_zh": clean.get("zh_acc"),
                "test_acc_en": clean.get("en_acc"),
                "attack_acc": round(attack_accuracy(predictor, test, params), 5),
            }
        )
    table = pd.DataFrame(rows)
    fp32_row = table.iloc[0]
    metrics: dict[str, float] = {
        "global_sparsity": round(float(sparsity), 5),
        "int8_agreement_with_fp32": round(float(np.mean(preds["int8"] == preds["fp32"])), 5),
        "int8_agreement_with_pruned": round(float(np.mean(preds["int8"] == preds["pruned"])), 5),
    }
    for row in rows:
        for key, value in row.items():
            if key != "variant" and value is not None:
                metrics[f"{row['variant']}_{key}"] = value
    metrics["pruned_acc_drop"] = round(float(fp32_row["test_acc"] - table.iloc[1]["test_acc"]), 5)
    metrics["int8_size_ratio"] = round(float(fp32_row["size_mb"] / table.iloc[2]["size_mb"]), 3)
    metrics["int8_throughput_ratio"] = round(
        float(table.iloc[2]["texts_per_s_batch"] / fp32_row["texts_per_s_batch"]), 3
    )

    config = {
        "vocab_size": len(vocab),
        "pad_id": vocab.pad_id,
        "model_params": hp["model_params"],
        "num_classes": hp["num_classes"],
        "quantize": "int8" if params.register_.variant == "int8" else None,
        "variant": params.register_.variant,
    }
    save_bundle(OUT, pruned, vocab, config)
    write_json(METRICS / "prune.json", metrics)
    write_csv(PLOTS / "prune.csv", table)
    print(table.to_string(index=False))
    return metrics, table


def run(params: Params) -> None:
    with maybe_stage_run("prune", params, ("prune", "evaluate"), inputs=["data/processed", "models/harden"]) as mlflow:
        metrics, table = prune(params)
        mlflow.log_metrics(metrics)
        mlflow.log_table(table, "prune_table.json")


if __name__ == "__main__":
    main(run)

"""prune: gradual global magnitude pruning of the distilled student's network during a short recovery
fine-tune (masks active; its n-gram half stays as it is), made permanent; then dynamic int8 quantisation.
fp32 / pruned / int8 side by side: size on disk, CPU latency of the network (p50, one text) and batch
throughput, clean accuracy, accuracy under attack -> models/prune/ (model bundle), metrics/prune.json,
plots/prune.csv."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from sora.compression import make_permanent, quantize_dynamic_int8, sparsity_report
from sora.compression.compare import compare_variants
from sora.config import MISSING_LABEL
from sora.data.tasks import labeled_splits
from sora.data.vocab import Vocab
from sora.errors import DataError
from sora.evaluation.assess import worst_case_accuracy
from sora.evaluation.behaviour import behaviour_report, load_cases
from sora.evaluation.report import clean_metrics, paired_comparison, task_scores
from sora.inference import Predictor, save_bundle
from sora.io import write_csv, write_json
from sora.models.ngram import NgramModel
from sora.pipeline.entry import StageContext, read_frames, require, stage_main
from sora.training.distill import read_train_logits
from sora.training.pruning import prune_and_recover
from sora.training.trainer import load_classifier, seed_and_threads


def variant_task_scores(models: dict, make_predictor, test: pd.DataFrame, tasks: dict[str, dict]) -> dict:
    """{task name: {variant: {all|zh|en: {acc, f1, n}}}} over the test rows labeled for each task."""
    prepared = make_predictor(next(iter(models.values()))).prepare(test["text"].tolist(), test["lang"].tolist())
    names = {column: task["name"] for column, task in tasks.items()}
    out: dict = {}
    for variant, model in models.items():
        probs = make_predictor(model).predict_tasks_ids(prepared.ids, prepared.offsets)
        for name, by_lang in task_scores(probs, test, names).items():
            out.setdefault(name, {})[variant] = by_lang
    return out


def run(ctx: StageContext) -> None:
    params, args, p = ctx.params, ctx.args, ctx.params.prune
    seed_and_threads(params.trainer)
    student = args.student / "best.ckpt"
    require(args.vocab, student, args.student / "ngram", args.train_logits, args.classical, args.cases)
    vocab = Vocab.load(args.vocab)
    every_row = read_frames(args, "train", "test")
    splits = labeled_splits(every_row)  # the primary task's rows
    test = splits["test"]
    fp32, hp = load_classifier(student)
    max_len = hp["model_params"]["max_len"]
    ngram = NgramModel.load(args.student / "ngram")
    train_logits = read_train_logits(args.train_logits, splits["train"], str(args.train))

    pruned = copy.deepcopy(fp32)
    # The network recovers as it was trained: on the n-gram half's out-of-fold residual (its own logits on the
    # texts labeled for other tasks only, which it was never fitted on), every head on its own labels.
    recover_on = splits["train"].assign(offset=list(train_logits))
    if hp.get("task_classes"):
        only = every_row["train"][every_row["train"]["label"] == MISSING_LABEL]
        only = only.assign(offset=list(ngram.logits(only["text"].tolist(), only["lang"].tolist())))
        recover_on = pd.concat([recover_on, only], ignore_index=True)
    prune_and_recover(params, pruned, vocab, recover_on)
    make_permanent(pruned)
    int8 = quantize_dynamic_int8(pruned, quantize_embeddings=True)

    make_predictor = lambda model: Predictor(
        model, vocab, max_len, params.evaluate.batch_size, cache_tokens=True, ngram=ngram
    )
    prepared = make_predictor(fp32).prepare(test["text"].tolist(), test["lang"].tolist())
    table, preds = compare_variants(
        {"fp32": fp32, "pruned": pruned, "int8": int8},
        make_predictor,
        test,
        prepared.ids,
        prepared.offsets,
        p.latency_batch,
        max(params.trainer.threads, 1),
        lambda probs: clean_metrics(probs, test["label"].to_numpy(), test["lang"].to_numpy()),
        lambda predictor: worst_case_accuracy(predictor, test, params.evaluate),
    )
    rows = table.set_index("variant")
    metrics = {
        "global_sparsity": round(float(sparsity_report(pruned, include_embeddings=p.include_embeddings)["global"]), 5),
        "int8_agreement": {o: round(float(np.mean(preds["int8"] == preds[o])), 5) for o in ("fp32", "pruned")},
        **{name: {k: v for k, v in row.items() if k != "texts_per_s_batch" and not k.startswith("p50")}
           for name, row in rows.to_dict("index").items()},
        "pruned_acc_drop": round(float(rows.loc["fp32", "test_acc"] - rows.loc["pruned", "test_acc"]), 5),
        "int8_size_ratio": round(float(rows.loc["fp32", "size_mb"] / rows.loc["int8", "size_mb"]), 3),
        # the n-gram half (terms as JSON, weights as npz) is kept as it is; the sizes above are the network's
        "ngram_size_mb": round(sum(f.stat().st_size for f in (args.student / "ngram").iterdir()) / 2**20, 3),
    }  # fmt: skip
    speed = {
        f"{name}.{k}": v for name, row in rows.to_dict("index").items() for k, v in row.items()
        if k == "texts_per_s_batch" or k.startswith("p50")
    }  # fmt: skip
    speed["int8_throughput_ratio"] = round(
        float(rows.loc["int8", "texts_per_s_batch"] / rows.loc["fp32", "texts_per_s_batch"]), 3
    )
    variant = params.register_.variant
    # The registered variant against the tuned classical model on the same test texts (exact McNemar), and on
    # the behavioural cases.
    classical = pd.read_parquet(args.classical)
    if not classical["text"].equals(test["text"]):
        raise DataError(f"{args.classical} holds another test split than {args.test}: rerun the baseline stage")
    outcome = lambda pred: pd.DataFrame(
        {
            "attack": "clean",
            "lang": test["lang"],
            "example": range(len(test)),
            "correct": pred == test["label"].to_numpy(),
        }
    )
    paired = paired_comparison(outcome(classical["pred"].to_numpy()), outcome(preds[variant]), "classical", variant)
    metrics["vs_tuned_classical"] = {
        r.lang: {"champion_acc": round(getattr(r, f"{variant}_acc"), 5), "classical_acc": round(r.classical_acc, 5),
                 "p_value": round(r.p_value, 5)}
        for r in paired.itertuples()
    }  # fmt: skip
    champion = {"fp32": fp32, "pruned": pruned, "int8": int8}[variant]
    metrics["behaviour"], cases = behaviour_report(load_cases(args.cases), make_predictor(champion).predict_proba)
    tasks = {t.column: {"name": name, "classes": t.names_for(hp["task_classes"][t.column])}
             for name, t in params.tasks.items() if t.column in hp.get("task_classes", {})}  # fmt: skip
    if tasks:  # every other task's test accuracy, per variant and language, on the texts labeled for it
        metrics["tasks"] = variant_task_scores({"fp32": fp32, "pruned": pruned, "int8": int8}, make_predictor,
                                       every_row["test"], tasks)  # fmt: skip
    config = {
        "vocab_size": len(vocab),
        "pad_id": vocab.pad_id,
        "model_params": hp["model_params"],
        "num_classes": hp["num_classes"],
        "class_names": params.primary.names_for(hp["num_classes"]),
        "tasks": tasks,
        "quantize": "int8" if variant == "int8" else None,
        "variant": variant,
    }
    save_bundle(args.out, pruned, vocab, config, ngram=ngram)
    write_json(args.metrics, metrics)
    write_csv(args.plot, table)
    print(table.to_string(index=False))
    print(f"prune: {variant} vs tuned classical {metrics['vs_tuned_classical']}; behaviour {metrics['behaviour']}")
    ctx.log_metrics({**metrics, **speed})
    if ctx.mlflow is not None:
        ctx.mlflow.log_table(table, "prune_table.json")


if __name__ == "__main__":
    stage_main("prune", run)

"""evaluate: the finetuned and the hardened model side by side on the test split — accuracy, macro-F1,
calibration, ROC/PR, confusion, and the bilingual attack suite (TextAttack-style table)
-> metrics/evaluate.json, plots/evaluate/*.csv (DVC plots), plots/evaluate/*.png (MLflow figures)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from sora.config import Params
from sora.io import write_csv, write_json
from sora.stages.common import METRICS, MODELS, PLOTS, main, require
from sora.stages.training import load_splits, load_vocab, maybe_stage_run

MODELS_TO_COMPARE = {"finetuned": MODELS / "finetune" / "best.ckpt", "hardened": MODELS / "harden" / "best.ckpt"}
OUT = PLOTS / "evaluate"


def load_predictor(ckpt: Path, vocab, batch_size: int):
    from sora.inference import Predictor
    from sora.training.trainer import load_classifier

    model, hp = load_classifier(ckpt)
    return Predictor(model, vocab, hp["model_params"]["max_len"], batch_size, cache_tokens=True)


def robustness_table(
    predictor, test: pd.DataFrame, params: Params, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The attack suite's table and each test example's outcome under every attack."""
    from sora.evaluation.attacks import run_suite

    e = params.evaluate
    return run_suite(
        test["text"].tolist(),
        test["label"].tolist(),
        test["lang"].tolist(),
        predictor.predict_proba,
        budget=e.attack_budget,
        seed=e.attack_seed,
        include_greedy=True,
        max_greedy_examples=e.attack_max_examples,
        batch_size=e.batch_size,
        progress=progress,
        with_outcomes=True,
    )


def assess(name: str, params: Params, threads: int, progress: bool) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """One model: clean test probabilities, its robustness table and per-example outcomes (clean included).
    Runs in a worker process of its own when evaluate.processes > 1, so it loads its own inputs (nothing large
    crosses the process boundary)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    test = load_splits("test")["test"]
    predictor = load_predictor(MODELS_TO_COMPARE[name], load_vocab(), params.evaluate.batch_size)
    probs = predictor.predict_proba(test["text"].tolist(), test["lang"].tolist())
    print(f"evaluate: attacking the {name} model", flush=True)
    table, outcomes = robustness_table(predictor, test, params, progress)
    clean = pd.DataFrame(
        {
            "attack": "clean",
            "lang": test["lang"].to_numpy(),
            "example": np.arange(len(test)),
            "correct": probs.argmax(1) == test["label"].to_numpy(),
        }
    )
    return probs, table.assign(model=name), pd.concat([clean, outcomes], ignore_index=True)


def assess_all(params: Params) -> dict[str, tuple[np.ndarray, pd.DataFrame, pd.DataFrame]]:
    """Both models, side by side in evaluate.processes worker processes (the attack suite is mostly
    single-threaded tokenisation, so one process per model uses the cores a single process leaves idle)."""
    names = list(MODELS_TO_COMPARE)
    processes = min(params.evaluate.processes, len(names))
    total_threads = params.trainer.threads or os.cpu_count() or 1
    if processes <= 1:
        return {name: assess(name, params, params.trainer.threads, True) for name in names}
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    threads = max(1, total_threads // processes)
    # spawn, not fork: a forked copy of a process that already runs torch's thread pool can deadlock.
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        # Only the first model draws a progress bar: two bars from two processes would garble the log.
        futures = {name: pool.submit(assess, name, params, threads, i == 0) for i, name in enumerate(names)}
        return {name: future.result() for name, future in futures.items()}


def flat_robustness(table: pd.DataFrame, model: str) -> dict[str, float]:
    out = {}
    for row in table.itertuples():
        key = f"{model}_attack_{row.attack}_{row.lang}"
        out[f"{key}_acc"] = round(float(row.accuracy_under_attack), 5)
        out[f"{key}_success_rate"] = round(float(row.attack_success_rate), 5)
    return out


def evaluate(params: Params) -> tuple[dict, list[Path]]:
    from sora.evaluation.report import clean_metrics, curves, figures, paired_comparison

    require(*MODELS_TO_COMPARE.values())
    test = load_splits("test")["test"]
    labels, langs = test["label"].to_numpy(), test["lang"].to_numpy()
    metrics: dict[str, float] = {"test_n": len(test)}
    results, robustness, outcomes = {}, [], {}
    for name, (probs, table, per_example) in assess_all(params).items():
        outcomes[name] = per_example
        metrics.update({f"{name}_{k}": v for k, v in clean_metrics(probs, labels, langs).items()})
        results[name] = {"probs": probs, "labels": labels, "curves": curves(probs, labels)}
        metrics.update(flat_robustness(table, name))
        robustness.append(table)
        for kind, frame in results[name]["curves"].items():
            write_csv(OUT / f"{kind}_{name}.csv", frame)
        write_csv(OUT / f"confusion_{name}.csv", pd.DataFrame({"actual": labels, "predicted": probs.argmax(1)}))
    robust = pd.concat(robustness, ignore_index=True)
    write_csv(OUT / "robustness.csv", robust)
    for name in MODELS_TO_COMPARE:
        for lang in ("zh", "en"):
            worst = robust[(robust.model == name) & (robust.lang == lang) & (robust.attack == "all_perturbations")]
            if len(worst):
                metrics[f"{name}_{lang}_drop_under_attack"] = round(
                    metrics[f"{name}_{lang}_acc"] - float(worst["accuracy_under_attack"].iloc[0]), 5
                )
    # Is the hardened model really better or worse under each attack, or within noise? (paired, same examples)
    paired = paired_comparison(outcomes["finetuned"], outcomes["hardened"], "finetuned", "hardened")
    write_csv(OUT / "paired.csv", paired)
    for row in paired.itertuples():
        metrics[f"paired_{row.attack}_{row.lang}_p_value"] = round(row.p_value, 5)
    write_json(METRICS / "evaluate.json", metrics)
    pngs = figures(results, robust, OUT)
    print(paired.round(4).to_string(index=False))
    return metrics, pngs


def run(params: Params) -> None:
    with maybe_stage_run(
        "evaluate", params, ("evaluate",), inputs=["data/processed", "models/finetune", "models/harden"]
    ) as mlflow:
        metrics, pngs = evaluate(params)
        mlflow.log_metrics(metrics)
        for png in pngs:
            mlflow.log_artifact(str(png), artifact_path="figures")
        mlflow.log_artifact(str(METRICS / "evaluate.json"))
        mlflow.log_artifact(str(OUT / "robustness.csv"))
        mlflow.log_artifact(str(OUT / "paired.csv"))


if __name__ == "__main__":
    main(run)

"""Scoring a classifier checkpoint on the test split under the attack suite, one model per worker process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from sora.config import EvaluateParams
from sora.data.tasks import labeled_for


def load_predictor(ckpt: Path, vocab, batch_size: int, cache_tokens: bool = True):
    """A checkpoint's predictor; with an `ngram` folder beside the checkpoint (a wide-and-deep model from
    `distill`), the n-gram half is part of it."""
    from sora.inference import Predictor
    from sora.models.ngram import NgramModel
    from sora.training.trainer import load_classifier

    model, hp = load_classifier(ckpt)
    ngram = NgramModel.load(ckpt.parent / "ngram") if (ckpt.parent / "ngram").is_dir() else None
    return Predictor(model, vocab, hp["model_params"]["max_len"], batch_size, cache_tokens=cache_tokens, ngram=ngram)


def attack_suite(
    predictor, test: pd.DataFrame, e: EvaluateParams, include_greedy: bool, progress: bool | str, **kwargs
):
    """The bilingual attack suite on `test` with evaluate's budget, seed and batch size."""
    from sora.evaluation.attacks import run_suite

    return run_suite(
        test["text"].tolist(),
        test["label"].tolist(),
        test["lang"].tolist(),
        predictor.predict_proba,
        budget=e.attack_budget,
        seed=e.attack_seed,
        include_greedy=include_greedy,
        max_greedy_examples=e.attack_max_examples,
        batch_size=e.batch_size,
        progress=progress,
        **kwargs,
    )


def task_attacks(predictor, every_row: pd.DataFrame, e: EvaluateParams, lang: str, tasks: dict[str, str]):
    """The perturbation attacks (no greedy search: too costly per task) on each other task's head, over a seeded
    sample of at most `e.task_attack_examples` test texts of `lang` labeled for the task: the suite's table with a
    `task` column. `tasks`: label column -> task name, the heads to attack."""
    from sora.config import MISSING_LABEL
    from sora.evaluation.attacks import run_suite

    tables = []
    for column, name in tasks.items():
        rows = every_row[(every_row[column] != MISSING_LABEL) & (every_row["lang"] == lang)]
        if rows.empty or not e.task_attack_examples:
            continue
        sample = rows.sample(n=min(len(rows), e.task_attack_examples), random_state=e.attack_seed)
        table = run_suite(
            sample["text"].tolist(), sample[column].tolist(), sample["lang"].tolist(),
            lambda texts, column=column: predictor.predict_task_proba(column, texts),
            budget=e.attack_budget, seed=e.attack_seed, include_greedy=False, batch_size=e.batch_size,
            progress=False, only_langs=[lang],
        )  # fmt: skip
        tables.append(table.assign(task=name))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def assess(
    ckpt: Path,
    test_path: Path,
    vocab_path: Path,
    e: EvaluateParams,
    threads: int,
    progress: bool | str,
    lang: str,
    tasks: dict[str, str],
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One model on the test texts of one language: their row positions, clean probabilities, the robustness
    table, per-example attack outcomes, and the robustness table of each other task's head (`task_attacks`).
    Runs in a worker process of its own when there are several, so it loads its own inputs (nothing large
    crosses the process boundary)."""
    import torch

    from sora.data.vocab import Vocab

    if threads > 0:
        torch.set_num_threads(threads)
    every_row = pd.read_parquet(test_path)
    test = labeled_for(every_row)
    rows = np.flatnonzero((test["lang"] == lang).to_numpy())
    predictor = load_predictor(ckpt, Vocab.load(vocab_path), e.batch_size)
    probs = predictor.predict_proba(test["text"].iloc[rows].tolist(), [lang] * len(rows))
    print(f"evaluate: attacking {ckpt} ({lang})", flush=True)
    table, outcomes = attack_suite(
        predictor, test, e, include_greedy=True, progress=progress, with_outcomes=True, only_langs=[lang]
    )
    heads = {c: n for c, n in tasks.items() if c in getattr(predictor.model, "task_heads", {})}
    return rows, probs, table, outcomes, task_attacks(predictor, every_row, e, lang, heads)


def assess_all(
    checkpoints: dict[str, Path],
    test_path: Path,
    vocab_path: Path,
    e: EvaluateParams,
    threads: int,
    processes: int,
    tasks: dict[str, str] | None = None,
) -> dict[str, tuple[np.ndarray, pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Every model: (clean test probabilities, robustness table, per-example outcomes with the clean ones, the
    other tasks' robustness table). `tasks`: label column -> name of the other tasks whose heads are attacked.
    One job per model and language, `processes` side by side (the attack suite is mostly single-threaded
    tokenisation, so one process per job uses the cores a single process leaves idle; with one job per model, a
    third model would run alone on one core). Chinese jobs, the longest, go first."""
    from sora.evaluation.attacks.suite import LANGS

    test = labeled_for(pd.read_parquet(test_path, columns=["label", "lang"]))
    # Longest first, so no long job starts last: a model with an n-gram half (scored by scikit-learn's
    # analyzers) before the networks alone.
    slowest_first = sorted(checkpoints, key=lambda n: not (checkpoints[n].parent / "ngram").is_dir())
    jobs = [(n, lang) for lang in LANGS if (test["lang"] == lang).any() for n in slowest_first]
    processes = min(processes, len(jobs))
    label = lambda n, lang: f"attacks on {n} ({lang})"
    if processes <= 1:
        results = {
            (n, lang): assess(checkpoints[n], test_path, vocab_path, e, threads, label(n, lang), lang, tasks or {})
            for n, lang in jobs
        }
    else:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        from sora.progress import on_terminal

        per_process = max(1, (threads or os.cpu_count() or 1) // processes)
        # spawn, not fork: a forked copy of a process that already runs torch's thread pool can deadlock.
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
            # On a terminal only the first job draws a bar (two bars from two processes would garble it);
            # progress lines name their model and language, so through a pipe every job reports.
            lines = not on_terminal()
            futures = {
                job: pool.submit(assess, checkpoints[job[0]], test_path, vocab_path, e, per_process,
                                 label(*job) if i == 0 or lines else False, job[1], tasks or {})
                for i, job in enumerate(jobs)
            }  # fmt: skip
            results = {job: f.result() for job, f in futures.items()}
    out = {}
    for n in checkpoints:
        parts = [results[(n, lang)] for lang in LANGS if (n, lang) in results]
        probs = np.zeros((len(test), parts[0][1].shape[1]))
        for rows, part_probs, *_ in parts:
            probs[rows] = part_probs
        clean = pd.DataFrame(
            {
                "attack": "clean",
                "lang": test["lang"].to_numpy(),
                "example": np.arange(len(test)),
                "correct": probs.argmax(1) == test["label"].to_numpy(),
            }
        )
        table = pd.concat([part[2] for part in parts], ignore_index=True).assign(model=n)
        task_table = pd.concat([part[4] for part in parts], ignore_index=True).assign(model=n)
        out[n] = (probs, table, pd.concat([clean, *(part[3] for part in parts)], ignore_index=True), task_table)
    return out


def attack_metrics(table: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """{attack: {lang: {acc, success_rate}}} from the suite's table."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in table.itertuples():
        out.setdefault(row.attack, {})[row.lang] = {
            "acc": round(float(row.accuracy_under_attack), 5),
            "success_rate": round(float(row.attack_success_rate), 5),
        }
    return out


def task_attack_metrics(table: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{task: {attack: {lang: {acc, success_rate}}}} from `task_attacks`' table, with the sample's clean accuracy
    and size under the pseudo-attack `clean`."""
    out = {}
    for task, rows in table.groupby("task", sort=False):
        first = rows.drop_duplicates("lang")
        clean = {r.lang: {"acc": round(float(r.clean_accuracy), 5), "n": int(r.n)} for r in first.itertuples()}
        out[task] = {"clean": clean, **attack_metrics(rows)}
    return out


def worst_case_accuracy(predictor, test: pd.DataFrame, e: EvaluateParams) -> float:
    """Accuracy under the worst perturbation per example ('all_perturbations'), both languages, on a capped
    seeded sample per language (the greedy attack is left to `evaluate`: too costly to repeat per variant)."""
    sample = pd.concat(
        [g.sample(n=min(len(g), e.attack_max_examples), random_state=e.attack_seed) for _, g in test.groupby("lang")]
    )
    table = attack_suite(predictor, sample, e, include_greedy=False, progress=False)
    worst = table[table["attack"] == "all_perturbations"]
    return float((worst["accuracy_under_attack"] * worst["n"]).sum() / worst["n"].sum())

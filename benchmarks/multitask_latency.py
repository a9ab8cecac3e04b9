"""What answering every task costs the served model: the same multi-task bundle asked for the primary task
only and for all tasks (one encoder pass, one extra linear head per task), side by side in one run. Batches of
test texts and single texts; token ids in (the network alone) and served (strings in, a table out: normalising,
tokenising and the n-gram half too, what `predict_frame` does for a request).

    python benchmarks/multitask_latency.py [BUNDLE] [--texts 512] [--rounds 7] [--threads 1]

BUNDLE defaults to what the `prune` stage writes (read from dvc.yaml), as registered (int8 by default); it must
answer several tasks (params `tasks` with more than one). Rounds alternate the two modes so drift hits both
alike; the median round is reported.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", nargs="?")
    parser.add_argument("--texts", type=int, default=512, help="test texts per language")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--single", type=int, default=200, help="single-text calls per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import pandas as pd
    import torch

    from sora.inference import load_bundle
    from sora.pipeline.entry import declared_args

    torch.set_num_threads(args.threads)
    stage = declared_args("prune")
    predictor = load_bundle(args.bundle or stage.out)
    if not predictor.tasks:
        raise SystemExit(f"{args.bundle or stage.out} answers one task: train several (params tasks)")
    test = pd.read_parquet(stage.test, columns=["text", "lang"])
    sample = pd.concat([g.head(args.texts) for _, g in test.groupby("lang")], ignore_index=True)
    texts, langs = sample["text"].tolist(), sample["lang"].tolist()
    ids = predictor.encode(texts, langs)
    singles = texts[: args.single]
    primary_only = copy.copy(predictor)  # the same model and n-gram half, answering the primary task alone
    primary_only.tasks = {}

    modes = {"primary only": False, f"all {1 + len(predictor.tasks)} tasks": True}
    runs = {
        "batch, ids in (ms per 256 texts)": lambda tasks: predictor.predict_tasks_ids(ids, tasks=tasks),
        "one text, ids in (ms per text)": lambda tasks: [
            predictor.predict_tasks_ids([x], tasks=tasks) for x in ids[: args.single]
        ],  # fmt: skip
        "one text, served (ms per text)": lambda tasks: [
            (predictor if tasks else primary_only).predict_frame([t]) for t in singles
        ],
    }
    scale = {
        "batch, ids in (ms per 256 texts)": 1000 * 256 / len(ids),
        "one text, ids in (ms per text)": 1000 / min(args.single, len(ids)),
        "one text, served (ms per text)": 1000 / len(singles),
    }
    for run in runs.values():  # warm-up: first calls allocate and fill caches
        for tasks in modes.values():
            run(tasks)
    print(f"{len(ids)} test texts, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'':36} {'primary only':>13} {list(modes)[1]:>13} {'ratio':>7}")
    for name, run in runs.items():
        seconds = {mode: [] for mode in modes}
        for _ in range(args.rounds):
            for mode, tasks in modes.items():
                seconds[mode].append(timed(lambda run=run, tasks=tasks: run(tasks)))
        one, every = (statistics.median(seconds[mode]) * scale[name] for mode in modes)
        print(f"{name:36} {one:13.3f} {every:13.3f} {every / one:7.3f}x")


if __name__ == "__main__":
    main()

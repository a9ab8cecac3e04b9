"""Multi-task against single-task fine-tuning: the `finetune` stage's classifier trained on the primary task
alone (sentiment) and with a head per task of `params.yaml` (topic, text type) on the same encoder, over seeds.
Sentiment accuracy per language on val (selection) and test (reporting), each other task's head beside its
TF-IDF baseline (`metrics/baseline.json`), and the paired difference per seed. Reads the pipeline's own outputs
(`dvc repro baseline pretrain` first); trains in-process under benchmarks/out/ablation-multitask-*, and writes
metrics/ablation_multitask.json.

    python benchmarks/ablation_multitask.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path


def run_arm(seed: int, multitask: bool) -> dict:
    from sora.config import load_params
    from sora.data.tasks import labeled_splits
    from sora.data.vocab import Vocab
    from sora.pipeline.entry import declared_args, read_frames
    from sora.training.classify import fit_and_score, initialise
    from sora.training.fit import ResumableFit
    from sora.training.modules import classifier_module
    from sora.training.trainer import seed_and_threads

    params = load_params()
    params = params.model_copy(update={"trainer": params.trainer.model_copy(update={"seed": seed})})
    seed_and_threads(params.trainer)
    args = declared_args("finetune")  # the files the finetune stage reads
    every_row = read_frames(args, "train", "val", "test")
    splits = labeled_splits(every_row)
    vocab = Vocab.load(args.vocab)
    module = classifier_module(params, vocab, int(splits["train"]["label"].max()) + 1, params.finetune.lr,
                               multitask=multitask)  # fmt: skip
    initialise(module, params, vocab, args.encoder / "encoder.pt", splits["train"], splits["val"])
    name = f"ablation-multitask-{'multi' if multitask else 'single'}-{seed}"
    out = Path("benchmarks/out") / name
    shutil.rmtree(out, ignore_errors=True)
    p = params.finetune
    metrics, seconds = fit_and_score(
        params, module, vocab, every_row if multitask else splits, p.max_epochs, p.patience,
        ResumableFit(out / "work"), name, out / "model", out / "curves", None, loggers=[],
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    return {**metrics, "seconds": round(seconds, 1)}


def main() -> None:
    from sora.io import read_json, write_json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    Path("benchmarks/out").mkdir(parents=True, exist_ok=True)
    runs = {"single": [], "multi": []}
    for seed in args.seeds:
        for arm in runs:
            runs[arm].append(run_arm(seed, multitask=arm == "multi"))
            r = runs[arm][-1]
            print(f"seed {seed} {arm}: val zh {r['val']['zh']['acc']} en {r['val']['en']['acc']}, test zh "
                  f"{r['test']['zh']['acc']} en {r['test']['en']['acc']} ({r['seconds']} s)", flush=True)  # fmt: skip

    stats = lambda xs: {"mean": round(statistics.mean(xs), 5), "sd": round(statistics.stdev(xs), 5) if len(xs) > 1
                        else 0.0}  # fmt: skip
    result = {"seeds": args.seeds, "sentiment": {}, "tasks": {}}
    print(f"\nsentiment accuracy, mean (sd) over seeds {args.seeds}; multi - single per seed")
    for split in ("val", "test"):
        for lang in ("zh", "en"):
            acc = {arm: [r[split][lang]["acc"] for r in runs[arm]] for arm in runs}
            diff = [m - s for m, s in zip(acc["multi"], acc["single"])]
            result["sentiment"].setdefault(split, {})[lang] = {
                **{arm: stats(v) for arm, v in acc.items()}, "multi_minus_single": stats(diff)}  # fmt: skip
            diffs = " ".join(f"{d:+.4f}" for d in diff)
            print(f"{split:5} {lang}: single {statistics.mean(acc['single']):.4f} multi "
                  f"{statistics.mean(acc['multi']):.4f}  differences {diffs}")  # fmt: skip
    baseline = read_json(Path("metrics/baseline.json")).get("tasks", {})
    print("\nother tasks, test accuracy: head (mean over seeds) vs TF-IDF baseline")
    for task, by_lang in baseline.items():
        for lang, base in by_lang.items():
            heads = [r["test"]["tasks"][task][lang]["acc"] for r in runs["multi"]
                     if lang in r["test"]["tasks"][task]]  # fmt: skip
            if not heads:
                continue
            result["tasks"].setdefault(task, {})[lang] = {"head": stats(heads), "tfidf": base["acc"], "n": base["n"]}
            print(f"{task} {lang} (n={base['n']}): head {statistics.mean(heads):.4f}, TF-IDF {base['acc']:.4f}")
    result["seconds"] = {arm: stats([r["seconds"] for r in rs]) for arm, rs in runs.items()}
    write_json(Path("metrics/ablation_multitask.json"), result)


if __name__ == "__main__":
    main()

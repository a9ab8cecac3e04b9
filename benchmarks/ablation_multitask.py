"""Multi-task against single-task fine-tuning: the `finetune` stage's classifier trained on the primary task
alone (sentiment) and with a head per task of `params.yaml` (topic, text type) on the same encoder, over seeds,
under each joint objective: static weights (`multi`), learned uncertainty weights (`uncertainty`,
finetune.task_weighting), static weights plus the denoising loss as an auxiliary task (`denoise`,
finetune.denoise_weight = 1). Sentiment accuracy per language on val (selection) and test (reporting), each
other task's head beside its TF-IDF baseline (`metrics/baseline.json`), and the paired difference to `single`
per seed. Reads the pipeline's own outputs (`dvc repro baseline pretrain` first); trains in-process under
benchmarks/out/ablation-multitask-*, and writes metrics/ablation_multitask.json.

    python benchmarks/ablation_multitask.py [--seeds 0 1 2] [--arms single multi uncertainty denoise]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path

# arm -> (multi-task, the finetune params it sets: whatever params.yaml says, each arm is the same objective)
ARMS = {
    "single": (False, {"task_weighting": "static", "denoise_weight": 0.0}),
    "multi": (True, {"task_weighting": "static", "denoise_weight": 0.0}),
    "uncertainty": (True, {"task_weighting": "uncertainty", "denoise_weight": 0.0}),
    "denoise": (True, {"task_weighting": "static", "denoise_weight": 1.0}),
}


def run_arm(seed: int, arm: str) -> dict:
    from sora.config import load_params
    from sora.data.tasks import labeled_splits
    from sora.data.vocab import Vocab
    from sora.pipeline.entry import declared_args, read_frames
    from sora.training.classify import fit_and_score, initialise
    from sora.training.fit import ResumableFit
    from sora.training.modules import classifier_module
    from sora.training.trainer import seed_and_threads

    multitask, changes = ARMS[arm]
    params = load_params()
    params = params.model_copy(update={"trainer": params.trainer.model_copy(update={"seed": seed}),
                                       "finetune": params.finetune.model_copy(update=changes)})  # fmt: skip
    seed_and_threads(params.trainer)
    args = declared_args("finetune")  # the files the finetune stage reads
    every_row = read_frames(args, "train", "val", "test")
    splits = labeled_splits(every_row)
    vocab = Vocab.load(args.vocab)
    module = classifier_module(params, vocab, int(splits["train"]["label"].max()) + 1, params.finetune.lr,
                               multitask=multitask)  # fmt: skip
    initialise(module, params, vocab, args.encoder / "encoder.pt", splits["train"], splits["val"])
    name = f"ablation-multitask-{arm}-{seed}"
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
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args()
    if "single" not in args.arms:
        parser.error("--arms must include single: every other arm is compared with it")
    Path("benchmarks/out").mkdir(parents=True, exist_ok=True)
    runs = {arm: [] for arm in args.arms}
    for seed in args.seeds:
        for arm in runs:
            runs[arm].append(run_arm(seed, arm))
            r = runs[arm][-1]
            print(f"seed {seed} {arm}: val zh {r['val']['zh']['acc']} en {r['val']['en']['acc']}, test zh "
                  f"{r['test']['zh']['acc']} en {r['test']['en']['acc']} ({r['seconds']} s)", flush=True)  # fmt: skip

    stats = lambda xs: {"mean": round(statistics.mean(xs), 5), "sd": round(statistics.stdev(xs), 5) if len(xs) > 1
                        else 0.0}  # fmt: skip
    result = {"seeds": args.seeds, "arms": {arm: ARMS[arm][1] for arm in runs}, "sentiment": {}, "tasks": {}}
    print(f"\nsentiment accuracy, mean over seeds {args.seeds}; each arm - single, per seed")
    for split in ("val", "test"):
        for lang in ("zh", "en"):
            acc = {arm: [r[split][lang]["acc"] for r in runs[arm]] for arm in runs}
            entry = result["sentiment"].setdefault(split, {}).setdefault(lang, {})
            entry |= {arm: stats(v) for arm, v in acc.items()}
            print(f"{split:5} {lang}: single {statistics.mean(acc['single']):.4f}")
            for arm in (a for a in runs if a != "single"):
                diff = [m - s for m, s in zip(acc[arm], acc["single"])]
                entry[f"{arm}_minus_single"] = stats(diff)
                diffs = " ".join(f"{d:+.4f}" for d in diff)
                print(f"           {arm} {statistics.mean(acc[arm]):.4f}  differences {diffs}")
    baseline = read_json(Path("metrics/baseline.json")).get("tasks", {})
    print("\nother tasks, test accuracy: head (mean over seeds) vs TF-IDF baseline")
    for task, by_lang in baseline.items():
        for lang, base in by_lang.items():
            for arm in (a for a in runs if a != "single"):
                heads = [r["test"]["tasks"][task][lang]["acc"] for r in runs[arm]
                         if lang in r["test"]["tasks"][task]]  # fmt: skip
                if not heads:
                    continue
                entry = result["tasks"].setdefault(task, {}).setdefault(lang, {"tfidf": base["acc"], "n": base["n"]})
                entry[arm] = stats(heads)
                print(
                    f"{task} {lang} (n={base['n']}) {arm}: head {statistics.mean(heads):.4f}, TF-IDF {base['acc']:.4f}"
                )
    result["seconds"] = {arm: stats([r["seconds"] for r in rs]) for arm, rs in runs.items()}
    write_json(Path("metrics/ablation_multitask.json"), result)


if __name__ == "__main__":
    main()

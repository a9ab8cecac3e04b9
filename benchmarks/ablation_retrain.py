"""What the costly steps of a retrain buy: finetune -> harden -> distill under parameter variants, over seeds.

Each variant (a set of params overrides) runs the three stages' own commands from dvc.yaml, in a workspace of
its own under benchmarks/out/ablation-retrain/, on the pipeline's outputs here (splits, pool, vocabulary,
pretrained encoder, the baseline stage's n-gram half): run it after `make pipeline`. Variants whose finetune
params and seed agree share one finetune run. Reported per variant and seed, on val (selection; test is not
read): the accuracy of the finetuned, hardened and distilled (the registered model before pruning) models, the
hardened and distilled models' accuracy under the perturbation attacks of the evaluation suite
(`all_perturbations`: every example under its worst perturbation; 500 val texts per language), the teacher's
weight on the hardened model, and each stage's wall time.
The summary gives means over seeds and each variant's paired difference from the first.

    python benchmarks/ablation_retrain.py [--seeds 0 1 2]
        [--variant NAME:key=value,key=value ...]   (default: pipeline, lean, leaner below)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "ablation-retrain"
STAGES = ("finetune", "harden", "distill")
# What the stages read and do not write: linked into every workspace.
SHARED = ("data", "models/pretrain", "models/baseline", "metrics/baseline.json", "dvc.yaml")
ROBUSTNESS_SAMPLE = 500  # val texts per language attacked (the whole suite but the costly greedy search)
FINETUNE_KEYS = ("finetune.", "trainer.", "model.", "vocab.", "pretrain.")
DEFAULT_VARIANTS = (
    "pipeline:",
    "lean:harden.method=none,finetune.max_epochs=1",
    "leaner:harden.method=none,finetune.max_epochs=1,harden.noise_augment=0.25",
)


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    name, _, body = text.partition(":")
    overrides = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def workspace(name: str, seed: int, overrides: dict[str, object]) -> Path:
    ws = OUT / f"{name}-{seed}"
    ws.mkdir(parents=True, exist_ok=True)
    for rel in SHARED:
        link = ws / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(ROOT / rel)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for key, value in {**overrides, "trainer.seed": seed}.items():
        block, _, field = key.partition(".")
        if field not in params.get(block, {}):
            sys.exit(f"--variant: {key} is not a params.yaml key")
        params[block][field] = value
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return ws


def run_stage(ws: Path, stage: str) -> float:
    from sora.pipeline.spec import stage_spec

    cmd = shlex.split(stage_spec(stage, ROOT / "dvc.yaml").cmd)
    # the workspace's own MLflow store, not the pipeline's
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{ws / 'mlflow.db'}"}
    start = time.perf_counter()
    with open(ws / f"{stage}.log", "w") as log:
        done = subprocess.run([sys.executable, *cmd[1:]], cwd=ws, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        sys.exit(f"{ws / (stage + '.log')}: {stage} failed (exit {done.returncode}); see the log")
    return round(time.perf_counter() - start, 1)


def robustness_on_val(ws: Path, model: str) -> dict[str, float]:
    """A model's accuracy under each example's worst perturbation, per language, on a seeded sample of val
    (the same texts for every variant and seed, so the comparison is paired)."""
    import pandas as pd

    from sora.config import load_params
    from sora.data.vocab import Vocab
    from sora.evaluation.assess import attack_suite, load_predictor

    params = load_params(ws / "params.yaml")
    from sora.data.tasks import labeled_for

    val = labeled_for(pd.read_parquet(ws / "data/processed/val.parquet"))
    val = pd.concat([g.sample(n=min(len(g), ROBUSTNESS_SAMPLE), random_state=0) for _, g in val.groupby("lang")])
    predictor = load_predictor(ws / "models" / model / "best.ckpt", Vocab.load(ws / "data/vocab.json"), 256)
    table = attack_suite(predictor, val, params.evaluate, include_greedy=False, progress=False)
    worst = table[table["attack"] == "all_perturbations"]
    return {row.lang: round(float(row.accuracy_under_attack), 5) for row in worst.itertuples()}


def val_acc(ws: Path, stage: str) -> dict[str, float]:
    metrics = json.loads((ws / "metrics" / f"{stage}.json").read_text())
    return {lang: metrics["val"][lang]["acc"] for lang in ("zh", "en")}


def run_variant(name: str, overrides: dict, seed: int, finetuned: dict[tuple, Path]) -> dict:
    ws = workspace(name, seed, overrides)
    key = (seed, *sorted((k, str(v)) for k, v in overrides.items() if k.startswith(FINETUNE_KEYS)))
    seconds = {}
    if key in finetuned and finetuned[key] != ws:
        for rel in ("models/finetune", "metrics/finetune.json"):
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "-a", str(finetuned[key] / rel), str(ws / rel)], check=True)
        seconds["finetune"] = json.loads((finetuned[key] / "result.json").read_text())["seconds"]["finetune"]
    else:
        seconds["finetune"] = run_stage(ws, "finetune")
        finetuned[key] = ws
    for stage in STAGES[1:]:
        seconds[stage] = run_stage(ws, stage)
    distill = json.loads((ws / "metrics/distill.json").read_text())
    result = {
        "variant": name,
        "seed": seed,
        "overrides": overrides,
        "val": {stage: val_acc(ws, stage) for stage in STAGES},
        "val_under_attack": {stage: robustness_on_val(ws, stage) for stage in STAGES[1:]},
        "teacher_weight_hardened": distill["teacher"]["weight_hardened"],
        "seconds": seconds,
    }
    (ws / "result.json").write_text(json.dumps(result, indent=1))
    return result


def summary(results: list[dict], names: list[str]) -> None:
    rows = [("finetuned", lambda r, lang: r["val"]["finetune"][lang]),
            ("hardened", lambda r, lang: r["val"]["harden"][lang]),
            ("hardened under attack", lambda r, lang: r["val_under_attack"]["harden"][lang]),
            ("distilled (registered)", lambda r, lang: r["val"]["distill"][lang]),
            ("distilled under attack", lambda r, lang: r["val_under_attack"]["distill"][lang])]  # fmt: skip
    by = {(r["variant"], r["seed"]): r for r in results}
    seeds = sorted({r["seed"] for r in results})
    first = names[0]
    print(f"\nval accuracy, mean over seeds {seeds}; in brackets the paired difference from '{first}' per seed")
    for label, get in rows:
        for lang in ("zh", "en"):
            cells = []
            for name in names:
                vals = [get(by[(name, s)], lang) for s in seeds]
                cell = f"{statistics.mean(vals):.4f}"
                if name != first:
                    diffs = [get(by[(name, s)], lang) - get(by[(first, s)], lang) for s in seeds]
                    cell += " [" + " ".join(f"{d:+.4f}" for d in diffs) + "]"
                cells.append(f"{name} {cell}")
            print(f"  {label:24} {lang}  " + " | ".join(cells))
    for name in names:
        secs = {st: statistics.mean(by[(name, s)]["seconds"][st] for s in seeds) for st in STAGES}
        total = sum(secs.values())
        print(f"  seconds {name:10} " + ", ".join(f"{st} {v:.0f}" for st, v in secs.items()) + f"; total {total:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--variant", action="append", help="NAME:key=value,... (repeat; the first is the reference)")
    args = parser.parse_args()
    for needed in SHARED:
        if not (ROOT / needed).exists():
            sys.exit(f"{ROOT / needed} is missing: run the pipeline here first (make pipeline)")
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    OUT.mkdir(parents=True, exist_ok=True)
    results, finetuned = [], {}
    for seed in args.seeds:
        for name, overrides in variants:
            results.append(run_variant(name, overrides, seed, finetuned))
            print(json.dumps(results[-1]), flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    summary(results, [name for name, _ in variants])


if __name__ == "__main__":
    main()

"""evaluate: the finetuned and the hardened model side by side on the test split — accuracy, macro-F1,
calibration, ROC/PR, confusion, and the bilingual attack suite (TextAttack-style table)
-> metrics/evaluate.json, plots/evaluate/*.csv (DVC plots), plots/evaluate/*.png (MLflow figures)."""

from __future__ import annotations

import pandas as pd

from sora.evaluation.assess import assess_all, attack_metrics
from sora.evaluation.report import clean_metrics, curves, figures, paired_comparison
from sora.io import write_csv, write_json
from sora.pipeline.entry import StageContext, read_frames, require, stage_main

MODELS = ("finetuned", "hardened")


def run(ctx: StageContext) -> None:
    args, e = ctx.args, ctx.params.evaluate
    checkpoints = {"finetuned": args.finetuned / "best.ckpt", "hardened": args.hardened / "best.ckpt"}
    require(args.vocab, *checkpoints.values())
    test = read_frames(args, "test")["test"]
    labels, langs = test["label"].to_numpy(), test["lang"].to_numpy()
    assessed = assess_all(
        checkpoints, args.test, args.vocab, e, threads=ctx.params.trainer.threads, processes=e.processes
    )
    out = args.plots
    metrics: dict = {"test_n": len(test)}
    results, robustness, outcomes = {}, [], {}
    for name, (probs, table, per_example) in assessed.items():
        outcomes[name] = per_example
        metrics[name] = {**clean_metrics(probs, labels, langs), "attack": attack_metrics(table)}
        results[name] = {"probs": probs, "labels": labels, "curves": curves(probs, labels)}
        robustness.append(table)
        for kind, frame in results[name]["curves"].items():
            write_csv(out / f"{kind}_{name}.csv", frame)
        write_csv(out / f"confusion_{name}.csv", pd.DataFrame({"actual": labels, "predicted": probs.argmax(1)}))
        worst = metrics[name]["attack"].get("all_perturbations", {})
        metrics[name]["drop_under_attack"] = {
            lang: round(metrics[name][lang]["acc"] - worst[lang]["acc"], 5) for lang in worst
        }
    robust = pd.concat(robustness, ignore_index=True)
    write_csv(out / "robustness.csv", robust)
    # Is the hardened model really better or worse under each attack, or within noise? (paired, same examples)
    paired = paired_comparison(outcomes["finetuned"], outcomes["hardened"], "finetuned", "hardened")
    write_csv(out / "paired.csv", paired)
    metrics["paired_p_value"] = {}
    for row in paired.itertuples():
        metrics["paired_p_value"].setdefault(row.attack, {})[row.lang] = round(row.p_value, 5)
    write_json(args.metrics, metrics)
    pngs = figures(results, robust, out)
    print(paired.round(4).to_string(index=False))
    ctx.log_metrics(metrics)
    for png in pngs:
        ctx.log_artifact(png, artifact_path="figures")
    for path in (args.metrics, out / "robustness.csv", out / "paired.csv"):
        ctx.log_artifact(path)


if __name__ == "__main__":
    stage_main("evaluate", run)

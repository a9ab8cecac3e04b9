"""evaluate: the finetuned, hardened and distilled models side by side on the test split — accuracy, macro-F1,
calibration, ROC/PR, confusion, the bilingual attack suite (TextAttack-style table) and the behavioural
(CheckList) cases for the primary task; accuracy, macro-F1, confusion and the perturbation attacks of every
other task's head -> metrics/evaluate.json, plots/evaluate/*.csv, plots/evaluate/tasks/*.csv (DVC plots),
plots/evaluate/*.png (MLflow figures)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sora.config import MISSING_LABEL
from sora.data.tasks import labeled_for
from sora.data.vocab import Vocab
from sora.evaluation.assess import assess_all, attack_metrics, load_predictor, task_attack_metrics
from sora.evaluation.behaviour import behaviour_figure, behaviour_report, load_cases
from sora.evaluation.report import clean_metrics, curves, figures, paired_comparison, task_scores
from sora.io import write_csv, write_json
from sora.pipeline.entry import StageContext, read_frames, require, stage_main

MODELS = ("finetuned", "hardened", "distilled")
PAIRS = (("finetuned", "hardened"), ("hardened", "distilled"))  # each pipeline step against the one before


def run(ctx: StageContext) -> None:
    args, e = ctx.args, ctx.params.evaluate
    checkpoints = {name: getattr(args, name) / "best.ckpt" for name in MODELS}
    require(args.vocab, args.cases, *checkpoints.values())
    cases = load_cases(args.cases)
    every_row = read_frames(args, "test")["test"]  # the other tasks' heads: every test text labeled for them
    test = labeled_for(every_row)  # the primary task's
    labels, langs = test["label"].to_numpy(), test["lang"].to_numpy()
    tasks = {t.column: (name, t) for name, t in ctx.params.other_tasks.items()}
    assessed = assess_all(
        checkpoints, args.test, args.vocab, e, ctx.params.trainer.threads, e.processes,
        {column: name for column, (name, _) in tasks.items()},
    )  # fmt: skip
    out = args.plots
    names = np.array(ctx.params.primary.names_for(next(iter(assessed.values()))[0].shape[1]))
    metrics: dict = {"test_n": len(test)}
    results, robustness, outcomes, task_robustness = {}, [], {}, []
    for name, (probs, table, per_example, task_table) in assessed.items():
        outcomes[name] = per_example
        metrics[name] = {**clean_metrics(probs, labels, langs), "attack": attack_metrics(table)}
        if not task_table.empty:  # each other task's head under the perturbation attacks
            metrics[name]["task_attack"] = task_attack_metrics(task_table)
            task_robustness.append(task_table)
        results[name] = {"probs": probs, "labels": labels, "curves": curves(probs, labels)}
        robustness.append(table)
        for kind, frame in results[name]["curves"].items():
            write_csv(out / f"{kind}_{name}.csv", frame)
        confusion = pd.DataFrame({"actual": names[labels], "predicted": names[probs.argmax(1)]})
        write_csv(out / f"confusion_{name}.csv", confusion)
        worst = metrics[name]["attack"].get("all_perturbations", {})
        metrics[name]["drop_under_attack"] = {
            lang: round(metrics[name][lang]["acc"] - worst[lang]["acc"], 5) for lang in worst
        }
    robust = pd.concat(robustness, ignore_index=True)
    write_csv(out / "robustness.csv", robust)
    if task_robustness:
        write_csv(out / "task_robustness.csv", pd.concat(task_robustness, ignore_index=True))
    # Is each step really better or worse under each attack, or within noise? (paired, same examples)
    metrics["paired_p_value"], paired_tables = {}, []
    for before, after in PAIRS:
        paired = paired_comparison(outcomes[before], outcomes[after], before, after)
        paired_tables.append(out / f"paired_{before}_{after}.csv")
        write_csv(paired_tables[-1], paired)
        print(paired.round(4).to_string(index=False))
        step = metrics["paired_p_value"].setdefault(f"{after}_vs_{before}", {})
        for row in paired.itertuples():
            step.setdefault(row.attack, {})[row.lang] = round(row.p_value, 5)
    vocab = Vocab.load(args.vocab)
    behaviour_tables, task_tables = [], []
    for name in MODELS:
        predictor = load_predictor(checkpoints[name], vocab, e.batch_size, cache_tokens=False)
        metrics[name]["behaviour"], table = behaviour_report(cases, predictor.predict_proba)
        behaviour_tables.append(table.assign(model=name))
        heads = [c for c in tasks if c in getattr(predictor.model, "task_heads", {})]
        if heads:
            probs = predictor.predict_tasks_ids(predictor.encode_tokens(every_row["tokens"]))
            metrics[name]["tasks"] = task_scores(probs, every_row, {c: tasks[c][0] for c in heads})
            for column in heads:
                task_name, task = tasks[column]
                rows = (every_row[column] != MISSING_LABEL).to_numpy()
                classes = np.array(task.names_for(probs[column].shape[1]))
                actual, predicted = every_row[column].to_numpy()[rows], probs[column][rows].argmax(1)
                task_tables.append(out / "tasks" / f"confusion_{name}_{task_name}.csv")
                write_csv(task_tables[-1], pd.DataFrame({"actual": classes[actual], "predicted": classes[predicted]}))
    write_csv(out / "behaviour.csv", pd.concat(behaviour_tables, ignore_index=True))
    write_json(args.metrics, metrics)
    pngs = figures(results, robust, out, list(names))
    pngs.append(behaviour_figure(metrics["distilled"]["behaviour"], out / "behaviour.png"))
    ctx.log_metrics(metrics)
    for png in pngs:
        ctx.log_artifact(png, artifact_path="figures")
    for path in (args.metrics, out / "robustness.csv", out / "behaviour.csv", *paired_tables):
        ctx.log_artifact(path)
    if task_robustness:
        ctx.log_artifact(out / "task_robustness.csv", artifact_path="tasks")
    for path in task_tables:
        ctx.log_artifact(path, artifact_path="tasks")


if __name__ == "__main__":
    stage_main("evaluate", run)

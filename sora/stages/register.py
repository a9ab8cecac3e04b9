"""register: log the pruned (int8) model bundle as an MLflow pyfunc, register a new version, alias it
`candidate`, and move `champion` only when the gate in params passes. The decision and its reason are
printed, logged to MLflow and written to metrics/register.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sora.config import Params
from sora.data.tasks import labeled_for
from sora.io import json_text, read_json, write_json
from sora.pipeline.entry import StageContext, require, stage_main
from sora.pipeline.imports import pinned_requirements, walk
from sora.tracking.runs import dvc_hashes, git_commit

EXAMPLE = ["这本书写得很好，推荐！", "The plot was dull and far too long."]
SERVED_MODULE = "sora.tracking.served_model"  # what `mlflow.pyfunc.load_model` runs, with everything it imports


def pip_requirements() -> list[str]:
    """The installed versions of every package the served code imports (read from its source), so the model
    installs from its own requirements into a clean environment."""
    return pinned_requirements(walk(SERVED_MODULE).packages)


def rescore_f1(model_uri: str, test_path: Path) -> float:
    """Macro-F1 of a registered version on the test split, from its bundle alone: the version's folder is
    read as data, so whatever else it holds (a pickle, a model file) never runs here."""
    from sklearn.metrics import f1_score

    from sora.tracking.pyfunc import load_sora_model

    test = labeled_for(pd.read_parquet(test_path, columns=["text", "label"]))
    predicted = load_sora_model(model_uri).predict_frame(test["text"].tolist())["label"]
    return round(float(f1_score(test["label"], predicted, average="macro")), 5)


LOUD_TOLERANCE = 0.05  # a baseline tolerance above this lets a clearly worse model through: say so loudly


def gate_inputs(scores: dict, baseline_metrics_path: Path, test_path: Path) -> tuple[dict, dict, dict]:
    """Per language: the candidate's test accuracy, the run's TF-IDF baseline's, and always-majority's."""
    test = labeled_for(pd.read_parquet(test_path, columns=["label", "lang"]))
    majority = {lang: float(g["label"].value_counts(normalize=True).max()) for lang, g in test.groupby("lang")}
    baseline = {lang: float(m["acc"]) for lang, m in read_json(baseline_metrics_path)["test"].items()}
    candidate = {lang: float(scores[f"test_acc_{lang}"]) for lang in baseline if f"test_acc_{lang}" in scores}
    return candidate, baseline, majority


def task_gate_inputs(params: Params, prune_metrics: dict, variant: str, baseline_metrics_path: Path, test_path: Path):
    """Per other task, over its labeled test texts (all languages): the candidate's accuracy, always-majority's,
    and the TF-IDF baseline's (its per-language accuracies weighted by their texts), for the gate and the record."""
    from sora.config import MISSING_LABEL

    scores = prune_metrics.get("tasks", {})
    baseline = read_json(baseline_metrics_path).get("tasks", {})
    test = pd.read_parquet(test_path, columns=[params.tasks[name].column for name in scores])
    out = {"candidate_acc": {}, "majority_acc": {}, "baseline_acc": {}}
    for name, variants in scores.items():
        labels = test[params.tasks[name].column]
        labels = labels[labels != MISSING_LABEL]
        if labels.empty:  # no test text to check the task on: the gate refuses (task_gate finds no accuracy)
            out["majority_acc"][name] = 1.0
            continue
        out["candidate_acc"][name] = float(variants[variant]["all"]["acc"])
        out["majority_acc"][name] = float(labels.value_counts(normalize=True).max())
        if by_lang := baseline.get(name):
            n = sum(m["n"] for m in by_lang.values())
            out["baseline_acc"][name] = round(sum(m["acc"] * m["n"] for m in by_lang.values()) / n, 5)
    return out


def version_description(variant: str, by_lang: dict, baseline_acc: dict, decision, hashes: dict) -> str:
    """What the registry shows for a version: the model, its test accuracy beside the TF-IDF baseline, the data
    it was trained and tested on (DVC hashes), and the gate's decision."""
    scores = "; ".join(
        f"{lang} {acc:.3f} (TF-IDF baseline {baseline_acc.get(lang, float('nan')):.3f})"
        for lang, acc in sorted(by_lang.items())
    )
    data = ", ".join(f"{path} {md5[:8]}" for path, md5 in sorted(hashes.items()) if md5)
    verdict = "promoted to champion" if decision.promote else "kept as candidate"
    return (
        f"Sora {variant} classifier (pruned, distilled wide-and-deep Transformer). Test accuracy: {scores}. "
        f"Data (DVC md5): {data}. Gate: {verdict}: {decision.reason}"
    )


def register(
    params: Params, mlflow, bundle: Path, prune_metrics_path: Path, baseline_metrics_path: Path, test_path: Path,
    lineage_paths, recorded_md5: str | None = None,
) -> dict:  # fmt: skip
    from mlflow.models import infer_signature

    from sora.inference import load_bundle
    from sora.tracking.pyfunc import model_files
    from sora.tracking.registry import (
        COMPLETE_TAG,
        PREVIOUS_CHAMPION_TAG,
        RESULT_TAG,
        Decision,
        absolute_gate,
        champion_metrics,
        decide,
        remove_incomplete_versions,
        task_gate,
        unrecorded_result,
    )

    r = params.register_
    require(bundle / "weights.pt", prune_metrics_path, baseline_metrics_path, test_path)
    variant = r.variant
    scores = read_json(prune_metrics_path)[variant]
    candidate = {k: float(scores[k]) for k in ("test_f1", "test_acc", "attack_acc")}
    by_lang, baseline_acc, majority_acc = gate_inputs(scores, baseline_metrics_path, test_path)
    if r.baseline_tolerance > LOUD_TOLERANCE:
        print(
            f"register: WARNING: register.baseline_tolerance is {r.baseline_tolerance}: a candidate "
            f"{r.baseline_tolerance * 100:.0f} accuracy points worse than TF-IDF + LR can become champion"
        )
    refusal = absolute_gate(by_lang, baseline_acc, majority_acc, r.baseline_tolerance, r.majority_margin)
    tasks = task_gate_inputs(params, read_json(prune_metrics_path), variant, baseline_metrics_path, test_path)
    refusal = refusal or task_gate(tasks["candidate_acc"], tasks["majority_acc"], r.majority_margin)
    client = mlflow.MlflowClient()
    remove_incomplete_versions(client, r.model_name)
    hashes = dvc_hashes(lineage_paths)
    if (again := unrecorded_result(client, r.model_name, hashes, recorded_md5)) is not None:
        print(
            f"register: version {again['version']} of {r.model_name} already registers these inputs (its run "
            "finished, but DVC never recorded the stage): its result is written again"
        )
        return again
    example = pd.DataFrame({"text": EXAMPLE})
    signature = infer_signature(example, load_bundle(bundle).predict_frame(EXAMPLE))
    info = mlflow.pyfunc.log_model(
        name=r.model_name,
        **model_files(bundle),
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=r.model_name,
    )
    version = str(info.registered_model_version)
    # the logged model's own metrics (MLflow 3): shown on its page and on the version's
    mlflow.log_metrics(
        {**candidate, **{f"test_acc_{lang}": acc for lang, acc in by_lang.items()}}, model_id=info.model_id
    )
    champion_version, champion = champion_metrics(client, r.model_name, f"dvc.md5.{test_path}")
    test_md5 = hashes.get(str(test_path))
    if champion_version and champion is None:
        decision = Decision(
            False,
            f"champion version {champion_version} carries no gate metrics (aliased by "
            "hand?): compare and move the alias yourself",
        )
    else:
        if champion and champion.get("test_md5") != test_md5:
            # Scores from another test split are not comparable: score the champion on this one.
            champion = {**champion, "test_f1": rescore_f1(f"models:/{r.model_name}/{champion_version}", test_path)}
            print(
                f"register: champion v{champion_version} re-scored on the current test split: "
                f"macro-F1 {champion['test_f1']:.4f}"
            )
        decision = decide(candidate, champion, r.f1_tolerance, r.attack_accuracy_floor, refusal)

    lineage = {
        "sora.test_f1": candidate["test_f1"],
        "sora.test_acc": candidate["test_acc"],
        "sora.attack_acc": candidate["attack_acc"],
        "sora.variant": variant,
        "sora.run_id": mlflow.active_run().info.run_id,
        "sora.promoted": str(decision.promote),
        "sora.decision": decision.reason,
        PREVIOUS_CHAMPION_TAG: champion_version or "",
    }
    if commit := git_commit():
        lineage["git.commit"] = commit
    for path, md5 in hashes.items():
        lineage[f"dvc.md5.{path}"] = md5
    for key, value in lineage.items():
        client.set_model_version_tag(r.model_name, version, key, str(value))
    client.update_model_version(
        r.model_name, version, description=version_description(variant, by_lang, baseline_acc, decision, hashes)
    )
    client.set_registered_model_alias(r.model_name, "candidate", version)
    if decision.promote:
        client.set_registered_model_alias(r.model_name, "champion", version)
    decision_text = "promoted" if decision.promote else "kept champion"
    mlflow.set_tags({"sora.decision": decision_text, "sora.decision_reason": decision.reason})
    verdict = "PROMOTED to champion" if decision.promote else "stays candidate"
    print(f"register: {r.model_name} version {version} {verdict}: {decision.reason}")
    # numbers only (the reason is a tag of the run and of the version); 0 = no champion
    result = {
        "version": int(version),
        "promoted": int(decision.promote),
        "champion_version": int(version if decision.promote else champion_version or 0),
        "previous_champion_version": int(champion_version or 0),
        "candidate": candidate,
        "gate": {
            "candidate_acc": by_lang,
            "baseline_acc": baseline_acc,
            "majority_acc": majority_acc,
            **({"tasks": tasks} if tasks["candidate_acc"] else {}),
        },  # fmt: skip
        "champion": {k: v for k, v in (champion or {}).items() if k != "test_md5"},
    }
    client.set_model_version_tag(r.model_name, version, RESULT_TAG, json_text(result))
    client.set_model_version_tag(r.model_name, version, COMPLETE_TAG, "true")
    return result


def run(ctx: StageContext) -> None:
    args = ctx.args
    recorded_md5 = dvc_hashes([str(args.metrics)]).get(str(args.metrics))
    result = register(
        ctx.params, ctx.mlflow, args.bundle, args.prune_metrics, args.baseline_metrics, args.test,
        ctx.spec.data_deps, recorded_md5,
    )  # fmt: skip
    write_json(args.metrics, result)
    ctx.log_metrics(result)
    ctx.mlflow.log_dict(result, "register_decision.json")


if __name__ == "__main__":
    stage_main("register", run)

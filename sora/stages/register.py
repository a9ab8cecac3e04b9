"""register: log the pruned (int8) model bundle as an MLflow pyfunc, register a new version, alias it
`candidate`, and move `champion` only when the gate in params passes. The decision and its reason are
printed, logged to MLflow and written to metrics/register.json."""

from __future__ import annotations

import importlib.metadata
import os

import pandas as pd

from sora.config import Params
from sora.io import read_json, write_json
from sora.stages.common import METRICS, MODELS, main, require
from sora.tracking.runs import dvc_hashes, git_commit, stage_run

BUNDLE = MODELS / "prune"
PIP_PACKAGES = (
    "torch",
    "numpy",
    "pandas",
    "spacy",
    "jieba",
    "scikit-learn",
    "pyyaml",
    "pydantic",
    "torchmetrics",
    "lightning",
    "mlflow",
)
EXAMPLE = ["这本书写得很好，推荐！", "The plot was dull and far too long."]


def pip_requirements() -> list[str]:
    """Pinned to what this environment runs (explicit, so log_model does not spend 10 s inferring them)."""
    out = []
    for name in PIP_PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        out.append(f"{name}=={version.split('+')[0]}")
    return out


def rescore_f1(model_uri: str) -> float:
    import mlflow
    from sklearn.metrics import f1_score

    test = pd.read_parquet("data/processed/test.parquet", columns=["text", "label"])
    predicted = mlflow.pyfunc.load_model(model_uri).predict(test[["text"]])["label"]
    return round(float(f1_score(test["label"], predicted, average="macro")), 5)


def register(params: Params, mlflow) -> dict:
    from mlflow.models import infer_signature

    from sora.inference import load_bundle
    from sora.tracking.pyfunc import SoraModel
    from sora.tracking.registry import Decision, champion_metrics, decide

    r = params.register_
    require(BUNDLE / "weights.pt", METRICS / "prune.json")
    prune_metrics = read_json(METRICS / "prune.json")
    variant = r.variant
    candidate = {
        "test_f1": float(prune_metrics[f"{variant}_test_f1"]),
        "test_acc": float(prune_metrics[f"{variant}_test_acc"]),
        "attack_acc": float(prune_metrics[f"{variant}_attack_acc"]),
    }
    example = pd.DataFrame({"text": EXAMPLE})
    signature = infer_signature(example, load_bundle(BUNDLE).predict_frame(EXAMPLE))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=SoraModel(),
        artifacts={"bundle": str(BUNDLE)},
        code_paths=[os.path.join(os.path.dirname(__file__), os.pardir)],
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        registered_model_name=r.model_name,
    )
    client = mlflow.MlflowClient()
    version = str(info.registered_model_version)
    champion_version, champion = champion_metrics(client, r.model_name)
    data_md5 = dvc_hashes(["data/processed"]).get("data/processed")
    if champion_version and champion is None:
        decision = Decision(
            False,
            f"champion version {champion_version} carries no gate metrics (aliased by "
            "hand?): compare and move the alias yourself",
        )
    else:
        if champion and champion.get("data_md5") != data_md5:
            # Scores from another test split are not comparable: score the champion on this one.
            champion = {**champion, "test_f1": rescore_f1(f"models:/{r.model_name}/{champion_version}")}
            print(
                f"register: champion v{champion_version} re-scored on the current test split: "
                f"macro-F1 {champion['test_f1']:.4f}"
            )
        decision = decide(candidate, champion, r.f1_tolerance, r.attack_accuracy_floor)

    lineage = {
        "sora.test_f1": candidate["test_f1"],
        "sora.test_acc": candidate["test_acc"],
        "sora.attack_acc": candidate["attack_acc"],
        "sora.variant": variant,
        "sora.run_id": mlflow.active_run().info.run_id,
        "sora.promoted": str(decision.promote),
        "sora.decision": decision.reason,
    }
    if commit := git_commit():
        lineage["git.commit"] = commit
    for path, md5 in dvc_hashes(["data/processed", "data/vocab.json", "models/prune"]).items():
        lineage[f"dvc.md5.{path}"] = md5
    for key, value in lineage.items():
        client.set_model_version_tag(r.model_name, version, key, str(value))
    client.set_registered_model_alias(r.model_name, "candidate", version)
    if decision.promote:
        client.set_registered_model_alias(r.model_name, "champion", version)
    champion_after = version if decision.promote else champion_version
    result = {
        "version": int(version),
        "promoted": int(decision.promote),
        "reason": decision.reason,
        "champion_version": int(champion_after) if champion_after else None,
        "previous_champion_version": int(champion_version) if champion_version else None,
        **{f"candidate_{k}": v for k, v in candidate.items()},
        **({f"champion_{k}": v for k, v in champion.items() if k != "data_md5"} if champion else {}),
    }
    mlflow.log_dict(result, "register_decision.json")
    mlflow.set_tags(
        {"sora.decision": "promoted" if decision.promote else "kept champion", "sora.decision_reason": decision.reason}
    )
    mlflow.log_metrics({"promoted": int(decision.promote), "version": int(version)})
    write_json(METRICS / "register.json", result)
    verdict = "PROMOTED to champion" if decision.promote else "stays candidate"
    print(f"register: {r.model_name} version {version} {verdict}: {decision.reason}")
    return result


def run(params: Params) -> None:
    with stage_run("register", params, ("register",), inputs=["models/prune"]) as mlflow:
        register(params, mlflow)


if __name__ == "__main__":
    main(run)

"""Registry gate: which version carries the `champion` alias. Pure decision logic + MLflow client calls."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Decision:
    promote: bool
    reason: str


def absolute_gate(
    candidate_acc: dict[str, float],
    baseline_acc: dict[str, float],
    majority_acc: dict[str, float],
    baseline_tolerance: float,
    majority_margin: float,
) -> str | None:
    """Why the candidate must not be served whatever the champion is, or None. Per language, its test accuracy
    must be at least the classical baseline's (fitted by the same run on the same split) minus the tolerance,
    and beat always answering the majority class by the margin. Without this, a first candidate (or one
    registered after the champion was deleted) was promoted however bad it was."""
    for lang in sorted(baseline_acc):
        acc = candidate_acc.get(lang)
        if acc is None:
            return f"no test accuracy for {lang}"
        if refusal := _below_majority(lang, acc, majority_acc[lang], majority_margin, "the"):
            return refusal
        if acc < (needed := baseline_acc[lang] - baseline_tolerance):
            return (
                f"{lang} test accuracy {acc:.4f} < the TF-IDF baseline's {baseline_acc[lang]:.4f} - tolerance "
                f"{baseline_tolerance} = {needed:.4f}"
            )
    return None


def task_gate(candidate_acc: dict[str, float], majority_acc: dict[str, float], majority_margin: float) -> str | None:
    """The other tasks' part of the absolute gate: each task's test accuracy (over its labeled test texts, all
    languages together: a task may have a handful of texts in one language) must beat always answering its
    majority class by the margin. None when every task does."""
    for task in sorted(majority_acc):
        acc = candidate_acc.get(task)
        if acc is None:
            return f"task {task}: no test accuracy (no labeled test texts?)"
        if refusal := _below_majority(f"task {task}:", acc, majority_acc[task], majority_margin, "its"):
            return refusal
    return None


def _below_majority(subject: str, acc: float, majority: float, margin: float, whose: str) -> str | None:
    if acc < (needed := majority + margin):
        return (
            f"{subject} test accuracy {acc:.4f} does not beat always answering {whose} majority class "
            f"({majority:.4f}) by the margin {margin}: needs {needed:.4f}"
        )
    return None


def decide(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    f1_tolerance: float,
    attack_floor: float,
    refusal: str | None = None,
) -> Decision:
    """Promote when the absolute gate found nothing (`refusal`), the candidate's accuracy under attack clears
    the floor and its test macro-F1 is at least the champion's minus the tolerance (or there is no champion)."""
    f1, attack = candidate["test_f1"], candidate["attack_acc"]
    if refusal:
        return Decision(False, refusal)
    if attack < attack_floor:
        return Decision(False, f"accuracy under attack {attack:.4f} is below the floor {attack_floor:.4f}")
    if champion is None:
        return Decision(
            True, f"no champion yet; beats the baseline gate; test macro-F1 {f1:.4f}, under attack {attack:.4f}"
        )
    needed = champion["test_f1"] - f1_tolerance
    if f1 < needed:
        return Decision(
            False,
            f"test macro-F1 {f1:.4f} < champion's {champion['test_f1']:.4f} - tolerance {f1_tolerance} = {needed:.4f}",
        )
    return Decision(
        True,
        f"test macro-F1 {f1:.4f} >= champion's {champion['test_f1']:.4f} - tolerance "
        f"{f1_tolerance}; under attack {attack:.4f} >= floor {attack_floor:.4f}",
    )


def champion_metrics(client, name: str, test_md5_tag: str) -> tuple[str | None, dict[str, float] | None]:
    """(version, gate metrics) of the current champion, read from the version's tags (metrics None when the
    champion carries none, e.g. it was aliased by hand)."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, "champion")
    except MlflowException as err:
        # No such model (RESOURCE_DOES_NOT_EXIST) or no such alias (INVALID_PARAMETER_VALUE, MLflow 3) means
        # "no champion yet"; anything else (a broken store) must not be read as that.
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        return None, None
    tags = version.tags
    if "sora.test_f1" not in tags:
        return version.version, None
    return version.version, {
        "test_f1": float(tags["sora.test_f1"]),
        "attack_acc": float(tags["sora.attack_acc"]),
        "test_md5": tags.get(test_md5_tag),
    }


COMPLETE_TAG = "sora.registered"  # set last: a version without it was left half-made by a killed register
RESULT_TAG = "sora.result"  # the stage's metrics file, as written, so an unrecorded registration can be reused
PREVIOUS_CHAMPION_TAG = "sora.previous_champion"  # set before the aliases move, so a kill can be undone
SORA_ALIASES = ("candidate", "champion")


def remove_incomplete_versions(client, name: str) -> list[str]:
    """Delete versions that a register run created but did not see through: no COMPLETE_TAG, or a run that
    ended KILLED/FAILED. A register killed after it marked its version complete still dies before DVC records
    its outputs, so the rerun registers again; the stage's run status is the one fact that says it finished.
    A RUNNING run is left alone (the stranded-run check closes a killed one first).

    The killed run may already have moved Sora's aliases: `candidate` goes with the version (the rerun sets
    it again) and `champion` goes back to the version it replaced. Versions not made by Sora's register
    stage, or carrying an alias someone else set, are left alone."""
    from mlflow.exceptions import MlflowException

    removed = []
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return removed
    for v in versions:
        if not v.run_id:
            continue
        try:
            run = client.get_run(v.run_id)
        except MlflowException:  # its run was deleted by hand (mlflow gc): nothing to judge it by
            continue
        if run.data.tags.get("sora.stage") != "register" or run.info.status == "RUNNING":
            continue
        if COMPLETE_TAG in v.tags and run.info.status == "FINISHED":
            continue
        aliases = client.get_model_version(name, v.version).aliases  # search results leave aliases out
        if set(aliases) - set(SORA_ALIASES):
            continue
        if "champion" in aliases:
            previous = v.tags.get(PREVIOUS_CHAMPION_TAG, "")
            if previous:
                client.set_registered_model_alias(name, "champion", previous)
                print(f"register: champion alias given back to version {previous} of {name}")
        client.delete_model_version(name, v.version)
        removed.append(str(v.version))
    if removed:
        print(f"register: removed version(s) {', '.join(removed)} of {name}, left incomplete by a killed run")
    return removed


def unrecorded_result(client, name: str, hashes: dict[str, str], recorded_md5: str | None) -> dict | None:
    """The metrics of the newest version when its register run finished but DVC never recorded the stage (a
    kill in between), and it registered these same inputs (`hashes`, DVC md5 per path). The rerun then writes
    that result again instead of registering the same bundle twice. A result whose bytes DVC did record
    (`recorded_md5`) means a forced rerun, which registers anew."""
    import hashlib
    import json

    from mlflow.exceptions import MlflowException

    if not hashes:  # inputs unknown (no dvc.lock): nothing to say they are the same
        return None
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    if not versions:
        return None
    newest = max(versions, key=lambda v: int(v.version))
    text = newest.tags.get(RESULT_TAG)
    if text is None or COMPLETE_TAG not in newest.tags:
        return None
    if any(newest.tags.get(f"dvc.md5.{path}") != md5 for path, md5 in hashes.items()):
        return None
    if hashlib.md5(text.encode("utf-8")).hexdigest() == recorded_md5:
        return None
    return json.loads(text)


def registry_mismatch(client, name: str, recorded: dict) -> str | None:
    """Why the registry does not hold what the last register stage recorded (metrics/register.json), or None.
    DVC sees only files: a deleted or replaced store would otherwise leave register 'up to date'."""
    from mlflow.exceptions import MlflowException

    version = recorded.get("version")
    if not version:
        return None
    try:
        v = client.get_model_version(name, str(version))
    except MlflowException:
        return f"model {name} version {version}, recorded in metrics/register.json, is not in the registry"
    if COMPLETE_TAG not in v.tags:
        return f"model {name} version {version} was never completed"
    champion = recorded.get("champion_version")
    if champion and recorded.get("promoted") and "champion" not in v.aliases:
        return f"model {name} version {version} lost its champion alias"
    return None

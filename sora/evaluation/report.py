"""Clean-data evaluation (accuracy, macro-F1, confusion matrix, ROC/PR, calibration) and figures.
Metrics come from scikit-learn and torchmetrics; nothing here knows about MLflow or DVC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_curve, roc_auc_score, roc_curve


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    return float(
        multiclass_calibration_error(
            torch.from_numpy(probs).float(),
            torch.from_numpy(labels).long(),
            num_classes=probs.shape[1],
            n_bins=n_bins,
            norm="l1",
        )
    )


def clean_metrics(probs: np.ndarray, labels: np.ndarray, langs: np.ndarray) -> dict[str, dict[str, float]]:
    """{all|zh|en: {acc, f1 (macro), ece, roc_auc (binary tasks)}}."""
    out: dict[str, dict[str, float]] = {}
    pred = probs.argmax(1)
    for lang in ("all", "zh", "en"):
        rows = np.ones(len(labels), bool) if lang == "all" else langs == lang
        if not rows.any():
            continue
        y, p = labels[rows], pred[rows]
        scores = {
            "acc": round(float(accuracy_score(y, p)), 5),
            "f1": round(float(f1_score(y, p, average="macro")), 5),
            "ece": round(expected_calibration_error(probs[rows], y), 5),
        }
        if probs.shape[1] == 2 and len(np.unique(y)) == 2:
            scores["roc_auc"] = round(float(roc_auc_score(y, probs[rows, 1])), 5)
        out[lang] = scores
    return out


def task_scores(probs: dict[str, np.ndarray], frame: pd.DataFrame, names: dict[str, str]) -> dict[str, dict]:
    """{task name: {all|zh|en: {acc, f1, n}}} of the other tasks' heads (`probs` by label column, as
    Predictor.predict_tasks_ids gives them), each over the rows of `frame` labeled for it."""
    from sora.config import MISSING_LABEL

    out = {}
    for column, name in names.items():
        rows = (frame[column] != MISSING_LABEL).to_numpy()
        langs = frame["lang"].to_numpy()[rows]
        scores = clean_metrics(probs[column][rows], frame[column].to_numpy()[rows], langs)
        count = {lang: int(len(langs) if lang == "all" else (langs == lang).sum()) for lang in scores}
        out[name] = {lang: {"acc": v["acc"], "f1": v["f1"], "n": count[lang]} for lang, v in scores.items()}
    return out


def curves(probs: np.ndarray, labels: np.ndarray) -> dict[str, pd.DataFrame]:
    """ROC, PR (positive class 1) and reliability curve tables, for DVC plots and figures."""
    out: dict[str, pd.DataFrame] = {}
    if probs.shape[1] == 2:
        fpr, tpr, _ = roc_curve(labels, probs[:, 1])
        out["roc"] = pd.DataFrame({"fpr": fpr, "tpr": tpr})
        precision, recall, _ = precision_recall_curve(labels, probs[:, 1])
        out["pr"] = pd.DataFrame({"recall": recall, "precision": precision})
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(float)
    bins = np.minimum((conf * 10).astype(int), 9)
    rel = (
        pd.DataFrame({"bin": bins, "confidence": conf, "accuracy": correct})
        .groupby("bin")
        .agg(confidence=("confidence", "mean"), accuracy=("accuracy", "mean"), n=("accuracy", "size"))
        .reset_index()
    )
    out["calibration"] = rel
    return out


def paired_comparison(outcomes_a: pd.DataFrame, outcomes_b: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Model a vs model b on the same examples, per (attack, lang): accuracies, how many examples only one of
    them gets right, and the exact McNemar p-value (a two-sided binomial test on those discordant examples), so
    a difference of a few tenths of a point can be told apart from noise. Inputs: frames of (attack, lang,
    example, correct) as `sora.evaluation.attacks.run_suite(..., with_outcomes=True)` returns."""
    from scipy.stats import binomtest

    keys = ["attack", "lang", "example"]
    both = outcomes_a.merge(outcomes_b, on=keys, suffixes=("_a", "_b"), validate="one_to_one")
    rows = []
    for (attack, lang), g in both.groupby(["attack", "lang"], sort=False):
        only_a = int((g.correct_a & ~g.correct_b).sum())
        only_b = int((g.correct_b & ~g.correct_a).sum())
        discordant = only_a + only_b
        rows.append(
            {
                "attack": attack,
                "lang": lang,
                "n": len(g),
                f"{a}_acc": float(g.correct_a.mean()),
                f"{b}_acc": float(g.correct_b.mean()),
                "difference": float(g.correct_b.mean() - g.correct_a.mean()),
                f"only_{a}_right": only_a,
                f"only_{b}_right": only_b,
                "p_value": float(binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0,
            }
        )
    return pd.DataFrame(rows)


def figures(
    results: dict[str, dict], robustness: pd.DataFrame, out_dir: Path, class_names: list[str] | None = None
) -> list[Path]:
    """PNG figures: confusion matrices (axes named by `class_names`), ROC, PR, reliability and robustness, one
    file each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    names = list(results)

    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4))
    for ax, name in zip(np.atleast_1d(axes), names):
        r = results[name]
        k = r["probs"].shape[1]
        cm = confusion_matrix(r["labels"], r["probs"].argmax(1), labels=range(k))
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ticks = class_names if class_names and len(class_names) == k else [str(c) for c in range(k)]
        ax.set_xticks(range(k), ticks)
        ax.set_yticks(range(k), ticks)
        ax.set(title=f"{name}: confusion", xlabel="predicted", ylabel="actual")
    paths.append(_save(fig, out_dir / "confusion.png"))

    for kind, (x, y), title in (
        ("roc", ("fpr", "tpr"), "ROC"),
        ("pr", ("recall", "precision"), "Precision-recall"),
        ("calibration", ("confidence", "accuracy"), "Reliability"),
    ):
        fig, ax = plt.subplots(figsize=(5, 4.5))
        for name in names:
            table = results[name]["curves"].get(kind)
            if table is not None:
                ax.plot(table[x], table[y], marker="o" if kind == "calibration" else None, label=name)
        if kind in ("roc", "calibration"):
            ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set(title=title, xlabel=x, ylabel=y)
        ax.legend()
        paths.append(_save(fig, out_dir / f"{kind}.png"))

    if not robustness.empty:
        table = robustness.pivot_table(index=["lang", "attack"], columns="model", values="accuracy_under_attack")
        table.index = [f"{lang}: {attack}" for lang, attack in table.index]
        fig, ax = plt.subplots(figsize=(10, 0.35 * len(table) + 1.5))
        table.plot.barh(ax=ax)
        ax.set(title="Accuracy under attack (test split)", xlabel="accuracy", xlim=(0, 1))
        paths.append(_save(fig, out_dir / "robustness.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from sora.io import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path

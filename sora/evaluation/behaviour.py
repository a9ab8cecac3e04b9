"""Behavioural tests in the manner of CheckList (Ribeiro et al., ACL 2020). Accuracy on a test split says little
about *which* linguistic abilities a model has, so hand-written cases probe them one at a time:

- minimum functionality (MFT): a short, unambiguous sentence must get its label (clear, negation, intensifier);
- invariance (INV): a label-preserving edit of a sentence must not change the prediction (typo, name,
  punctuation).

The cases live in data/behaviour/cases.jsonl. Nothing here knows about MLflow, DVC or Prefect."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sora.data.text import detect_lang
from sora.errors import DataError

LANGS = ("zh", "en")
MFT_CAPABILITIES = ("clear", "negation", "intensifier")
INV_CAPABILITIES = ("typo", "name", "punctuation")
DOMAINS = ("products", "hotels", "food", "films", "service")
COLUMNS = ["id", "kind", "lang", "capability", "domain", "text", "label", "variant"]
# Exact field sets: a misspelt key ("lable") would otherwise turn an MFT case into a confusing "missing" error
# or be silently ignored.
_FIELDS = {
    "mft": {"id", "lang", "capability", "domain", "text", "label"},
    "inv": {"id", "lang", "capability", "text", "variant"},
}


def load_cases(path: str | Path) -> pd.DataFrame:
    """Read and validate the cases file: one row per case with COLUMNS (domain and label are empty for INV
    cases, variant for MFT cases). Any bad line raises DataError naming the file, line and problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows: list[dict] = []
    seen: dict[tuple, int] = {}
    # Bytes, decoded line by line, so a bad byte is reported with its line like any other problem.
    for line_no, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")  # editors on Windows add a BOM
            if line.strip():
                rows.append(_parse_case(line, line_no, seen))
        except ValueError as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
            raise DataError(f"{path}:{line_no}: {err}") from None
    if not rows:
        raise DataError(f"{path}: no cases")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["label"] = frame["label"].astype("Int64")
    return frame


def _parse_case(line: str, line_no: int, seen: dict[tuple, int]) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    capability = rec.get("capability")
    kind = "mft" if capability in MFT_CAPABILITIES else "inv" if capability in INV_CAPABILITIES else None
    if kind is None:
        raise ValueError(f"capability {capability!r} is not one of {', '.join(MFT_CAPABILITIES + INV_CAPABILITIES)}")
    if missing := _FIELDS[kind] - rec.keys():
        raise ValueError(f"{capability} case lacks field(s) {', '.join(sorted(missing))}")
    if extra := rec.keys() - _FIELDS[kind]:
        raise ValueError(f"unexpected field(s) {', '.join(sorted(extra))} in a {capability} case")
    case_id, lang = rec["id"], rec["lang"]
    if not isinstance(case_id, str) or not case_id.strip():
        raise ValueError(f"id must be a non-empty string, got {case_id!r}")
    if lang not in LANGS:
        raise ValueError(f"lang {lang!r} is not one of {', '.join(LANGS)}")
    for field in ("text", "variant") if kind == "inv" else ("text",):
        value = rec[field]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{field} must be a non-empty string, got {value!r}")
        # The model picks its tokeniser by detected language, so a case filed under the wrong lang would be
        # scored in the wrong bucket and tokenised differently from what its author meant.
        if detect_lang(value) != lang:
            raise ValueError(f"{field} {value!r} is detected as {detect_lang(value)}, not {lang}")
    if kind == "mft":
        if rec["domain"] not in DOMAINS:
            raise ValueError(f"domain {rec['domain']!r} is not one of {', '.join(DOMAINS)}")
        if type(rec["label"]) is not int or rec["label"] not in (0, 1):  # JSON true and 1.0 are not labels
            raise ValueError(f"label must be 0 or 1, got {rec['label']!r}")
    elif rec["variant"] == rec["text"]:
        raise ValueError("variant is identical to text, so the case tests nothing")
    # A repeated MFT sentence would count twice in its pass rate.
    keys = [("id", case_id)] + ([("text", lang, rec["text"])] if kind == "mft" else [])
    for key in keys:
        if key in seen:
            raise ValueError(f"duplicate {key[0]} {key[-1]!r} (first on line {seen[key]})")
        seen[key] = line_no
    return {"kind": kind, **rec}


def behaviour_report(
    cases: pd.DataFrame, predict_proba: Callable[[list[str]], np.ndarray]
) -> tuple[dict[str, dict[str, dict[str, float | int]]], pd.DataFrame]:
    """Score a model on the cases. Returns ({lang: {capability | mft_all | inv_all: {pass_rate, n}}}, one row
    per case with its predictions and whether it passed). MFT passes when argmax == label, INV when the argmax
    of the text and of its variant agree; class 1 is positive."""
    if cases.empty:
        raise ValueError("no behaviour cases to score")
    table = cases.reset_index(drop=True)[COLUMNS].copy()
    n = len(table)
    inv = table["kind"].eq("inv").to_numpy()
    # One call for texts and variants together: the predictor batches them and pays its set-up once.
    texts = table["text"].tolist() + table.loc[inv, "variant"].tolist()
    probs = np.asarray(predict_proba(texts))
    if probs.ndim != 2 or probs.shape[0] != len(texts) or probs.shape[1] < 2:
        raise ValueError(f"predict_proba returned shape {probs.shape} for {len(texts)} texts; expected (n, 2)")
    pred = probs[:n].argmax(1)
    variant_pred = np.full(n, -1)
    variant_pred[inv] = probs[n:].argmax(1)
    variant_p = np.full(n, np.nan)
    variant_p[inv] = probs[n:, 1]

    table["pred"] = pred
    table["p_positive"] = probs[:n, 1].astype(float)
    table["variant_pred"] = pd.Series(variant_pred, dtype="Int64").mask(~inv)
    table["variant_p_positive"] = variant_p
    table["passed"] = np.where(inv, pred == variant_pred, pred == table["label"].fillna(-1).to_numpy(int))

    metrics: dict[str, dict[str, dict[str, float | int]]] = {}
    for lang in [lang for lang in LANGS if lang in set(table["lang"])]:
        rows = table[table["lang"] == lang]
        groups = [(c, rows["capability"] == c) for c in MFT_CAPABILITIES + INV_CAPABILITIES]
        groups += [(f"{kind}_all", rows["kind"] == kind) for kind in ("mft", "inv")]
        # Absent groups are left out rather than reported as NaN: metrics files must hold numbers only.
        metrics[lang] = {name: _rate(rows.loc[sel, "passed"]) for name, sel in groups if sel.any()}
    return metrics, table


def _rate(passed: pd.Series) -> dict[str, float | int]:
    return {"pass_rate": round(float(passed.mean()), 4), "n": int(len(passed))}


def behaviour_figure(metrics: dict[str, dict[str, dict[str, float | int]]], path: str | Path) -> Path:
    """Grouped bar chart of pass rate per capability (MFT left, INV right of the dotted line), one bar per
    language, each labelled with its rate and number of cases. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sora.evaluation.report import _save  # one place decides how figures are written (atomic, dpi)

    present = lambda caps: [c for c in caps if any(c in by_cap for by_cap in metrics.values())]
    mft, inv = present(MFT_CAPABILITIES), present(INV_CAPABILITIES)
    capabilities, langs = mft + inv, list(metrics)
    x, width = np.arange(len(capabilities)), 0.8 / max(len(langs), 1)
    fig, ax = plt.subplots(figsize=(1.3 * len(capabilities) + 2.5, 4.2))
    for i, lang in enumerate(langs):
        scores = [metrics[lang].get(c) for c in capabilities]
        rates = [s["pass_rate"] if s else np.nan for s in scores]
        bars = ax.bar(x + (i - (len(langs) - 1) / 2) * width, rates, width, label=lang)
        ax.bar_label(bars, [f"{s['pass_rate']:.2f}\nn={s['n']}" if s else "" for s in scores], fontsize=7)
    if mft and inv:
        ax.axvline(len(mft) - 0.5, color="grey", ls=":", lw=1)
    ax.set_xticks(x, capabilities)
    ax.set(title="Behavioural tests: MFT | INV", ylabel="pass rate", ylim=(0, 1.15))
    ax.legend(title="lang", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: bars reach 1.0
    return _save(fig, Path(path))

"""Runners with TextAttack-style numbers: one attack (:func:`run_attack`) or the whole suite (:func:`run_suite`).

Example ``i`` always uses ``random.Random(f"{seed}:{name}:{i}")``, so results do not depend on batching or on the
other examples. Query counts are the texts scored *by the attack*: the clean prediction of the original is not
counted (a perturbation attack costs 1 query per attacked example).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
import pandas as pd

from sora.evaluation.attacks.edits import perturb, split_pieces, word_indices
from sora.evaluation.attacks.greedy import greedy_attack
from sora.evaluation.attacks.registry import ATTACKS, EDITS, attacks_for
from sora.evaluation.attacks.results import SUITE_COLUMNS, AttackResult, AttackSummary, summarise, worst_case
from sora.evaluation.attacks.scoring import PredictProba, predict
from sora.progress import progress as progress_of

LANGS = ("zh", "en")

_Item = tuple[int, str, int, str]  # (global index, text, label, lang)


def run_attack(
    name: str,
    texts: Sequence[str],
    labels: Sequence[int],
    langs: Sequence[str],
    predict_proba: PredictProba,
    budget: float = 0.1,
    seed: int | str = 0,
    batch_size: int = 64,
    max_candidates: int = 32,
) -> AttackSummary:
    """Run one attack (a name from :data:`ATTACKS` or ``"greedy"``). A perturbation attack only sees the examples
    of its language; greedy attacks every 'zh'/'en' example. Examples with another lang are ignored."""
    items = _check_inputs(texts, labels, langs)
    if name == "greedy":
        present = sorted({it[3] for it in items})
        lang = present[0] if len(present) == 1 else "all"
    elif name in ATTACKS:
        lang = ATTACKS[name][0]
        items = [it for it in items if it[3] == lang]
    else:
        raise KeyError(f"unknown attack {name!r}; expected 'greedy' or one of {sorted(ATTACKS)}")
    clean = predict(predict_proba, [it[1] for it in items], batch_size)
    if name == "greedy":
        results = _run_greedy(items, clean, predict_proba, budget, seed, batch_size, max_candidates)
    else:
        results = _run_simple(name, items, clean, predict_proba, budget, seed, batch_size)
    return summarise(name, lang, results)


def run_suite(
    texts: Sequence[str],
    labels: Sequence[int],
    langs: Sequence[str],
    predict_proba: PredictProba,
    budget: float = 0.1,
    seed: int | str = 0,
    include_greedy: bool = True,
    max_greedy_examples: int | None = None,
    *,
    batch_size: int = 64,
    max_candidates: int = 32,
    progress: bool | str = True,
    with_outcomes: bool = False,
    only_langs: Sequence[str] | None = None,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Every perturbation attack of each language present, an ``all_perturbations`` worst-case row per language
    (an example is robust only if it survives every perturbation attack) and, optionally, the greedy attack on
    the first ``max_greedy_examples`` examples of each language. Clean predictions are computed once.
    Columns: :data:`SUITE_COLUMNS`. With ``with_outcomes``, also each example's outcome: a frame of (attack,
    lang, example = position in ``texts``, correct = right under that attack), for paired model comparisons.
    ``only_langs`` attacks only the examples of those languages, with the same perturbations and example positions
    as a whole run: the languages can be attacked in separate processes and the results concatenated."""
    items = _check_inputs(texts, labels, langs)
    outcomes: list[pd.DataFrame] = []

    def record(name: str, lang: str, attacked: list[_Item], results: list[AttackResult]) -> None:
        if with_outcomes:
            outcomes.append(
                pd.DataFrame(
                    {
                        "attack": name,
                        "lang": lang,
                        "example": [it[0] for it in attacked],
                        "correct": [r.perturbed_pred == r.label for r in results],
                    }
                )
            )

    by_lang = {lg: [j for j, it in enumerate(items) if it[3] == lg] for lg in LANGS if lg in (only_langs or LANGS)}
    by_lang = {lg: js for lg, js in by_lang.items() if js}
    wanted = [j for js in by_lang.values() for j in js]
    clean_all = np.zeros((len(items), 0))
    if wanted:
        clean = predict(predict_proba, [items[j][1] for j in wanted], batch_size)
        clean_all = np.zeros((len(items), clean.shape[1]))
        clean_all[wanted] = clean

    def greedy_js(js: list[int]) -> list[int]:
        return js if max_greedy_examples is None else js[: max(0, int(max_greedy_examples))]

    total = sum(len(js) * len(attacks_for(lg)) for lg, js in by_lang.items())
    if include_greedy:
        total += sum(len(greedy_js(js)) for js in by_lang.values())

    rows: list[dict] = []
    label = progress if isinstance(progress, str) else "attacks"  # a str names whose attacks these are
    with progress_of(label, total) if progress else nullcontext() as bar:

        def tick(k: int) -> None:
            if bar is not None:
                bar.advance(k)

        for lg, js in by_lang.items():
            sub = [items[j] for j in js]
            clean = clean_all[js]
            per_attack = []
            for name in attacks_for(lg):
                if bar is not None:
                    bar.describe(f"{label}: {name}")
                res = _run_simple(name, sub, clean, predict_proba, budget, seed, batch_size, tick)
                per_attack.append(res)
                rows.append(summarise(name, lg, res).as_row())
                record(name, lg, sub, res)
            worst = worst_case(per_attack)
            rows.append(summarise("all_perturbations", lg, worst).as_row())
            record("all_perturbations", lg, sub, worst)
            if include_greedy:
                gj = greedy_js(js)
                if bar is not None:
                    bar.describe(f"{label}: greedy ({lg})")
                greedy_items = [items[j] for j in gj]
                res = _run_greedy(
                    greedy_items, clean_all[gj], predict_proba, budget, seed, batch_size, max_candidates, tick
                )
                rows.append(summarise("greedy", lg, res).as_row())
                record("greedy", lg, greedy_items, res)
    table = pd.DataFrame(rows, columns=SUITE_COLUMNS)
    if not with_outcomes:
        return table
    columns = ["attack", "lang", "example", "correct"]
    return table, pd.concat(outcomes, ignore_index=True) if outcomes else pd.DataFrame(columns=columns)


def _check_inputs(texts, labels, langs) -> list[_Item]:
    texts, labels, langs = list(texts), list(labels), list(langs)
    if not (len(texts) == len(labels) == len(langs)):
        raise ValueError(f"texts/labels/langs lengths differ: {len(texts)}, {len(labels)}, {len(langs)}")
    return [(i, t, int(y), lg) for i, (t, y, lg) in enumerate(zip(texts, labels, langs)) if lg in LANGS]


def _run_simple(
    name: str,
    items: list[_Item],
    clean: np.ndarray,
    predict_proba: PredictProba,
    budget: float,
    seed,
    batch_size: int,
    tick: Callable[[int], None] = lambda k: None,
) -> list[AttackResult]:
    """One perturbation attack on the examples the model gets right, all perturbed texts scored in one pass."""
    edit = EDITS[name][1]
    perturbed: dict[int, tuple[str, int, int]] = {}
    for pos, (i, text, label, lang) in enumerate(items):
        if int(np.argmax(clean[pos])) == label:
            perturbed[pos] = perturb(text, lang, budget, random.Random(f"{seed}:{name}:{i}"), edit)
        tick(1)
    keys = list(perturbed)
    probs = predict(predict_proba, [perturbed[p][0] for p in keys], batch_size) if keys else None
    new_pred = {p: int(np.argmax(probs[j])) for j, p in enumerate(keys)}
    results = []
    for pos, (_, text, label, lang) in enumerate(items):
        p0 = int(np.argmax(clean[pos]))
        if pos not in perturbed:
            n_tok = len(word_indices(split_pieces(text, lang))) if text.strip() else 0
            results.append(AttackResult(text, text, label, p0, p0, False, True, 0, n_tok, 0))
            continue
        t, changed, n_tok = perturbed[pos]
        pred = new_pred[pos]
        results.append(AttackResult(text, t, label, p0, pred, pred != label, False, changed, n_tok, 1))
    return results


def _run_greedy(
    items: list[_Item],
    clean: np.ndarray,
    predict_proba: PredictProba,
    budget: float,
    seed,
    batch_size: int,
    max_candidates: int,
    tick: Callable[[int], None] = lambda k: None,
) -> list[AttackResult]:
    results = []
    for pos, (i, text, label, lang) in enumerate(items):
        rng = random.Random(f"{seed}:greedy:{i}")
        results.append(
            greedy_attack(
                text,
                lang,
                label,
                predict_proba,
                budget,
                rng,
                max_candidates,
                batch_size=batch_size,
                original_proba=clean[pos],
            )
        )
        tick(1)
    return results

"""Greedy attack (TextFooler-like, without embeddings): delete-one importance ranking, then greedy replacement
of the most important tokens by the candidate that hurts the true class most."""

from __future__ import annotations

import math
import random
import re

import numpy as np

from sora.evaluation.attacks import en, zh
from sora.evaluation.attacks.edits import (
    copy_pieces,
    dedup,
    default_rng,
    delete_piece,
    join,
    max_edits,
    set_piece,
    split_pieces,
    word_indices,
)
from sora.evaluation.attacks.results import AttackResult
from sora.evaluation.attacks.scoring import PredictProba, QueryCounter, predict


def greedy_attack(
    text: str,
    lang: str,
    label: int,
    predict_proba: PredictProba,
    budget: float = 0.1,
    rng: random.Random | None = None,
    max_candidates: int = 32,
    *,
    batch_size: int = 64,
    original_proba: np.ndarray | None = None,
) -> AttackResult:
    """TextFooler-like greedy attack. Tokens are ranked by importance (true-class probability drop when the token
    is deleted; one batched query of all deletions), then each in turn is replaced by the candidate (at most
    ``max_candidates``, sampled by ``rng``) that lowers the true-class probability most — a candidate that flips
    the prediction is preferred — if it lowers it at all. Stops when the prediction flips or
    ``max_edits(budget, n_tokens)`` tokens were changed. ``queries`` counts texts scored by the attack (the clean
    prediction is not counted; pass ``original_proba`` to avoid computing it again). Examples the model already
    gets wrong are skipped (0 queries)."""
    rng = default_rng(rng)
    label = int(label)
    p0 = (
        np.asarray(original_proba, dtype=float)
        if original_proba is not None
        else predict(predict_proba, [text], batch_size)[0]
    )
    orig_pred = int(np.argmax(p0))
    pieces = split_pieces(text, lang) if text.strip() else []
    words = word_indices(pieces)
    n = len(words)

    def result(perturbed: str, pred: int, changed: int, queries: int, skipped: bool = False) -> AttackResult:
        return AttackResult(
            original=text,
            perturbed=perturbed,
            label=label,
            original_pred=orig_pred,
            perturbed_pred=pred,
            success=(not skipped) and pred != label,
            skipped=skipped,
            tokens_changed=changed,
            n_tokens=n,
            queries=queries,
        )

    if orig_pred != label:
        return result(text, orig_pred, 0, 0, skipped=True)
    k = max_edits(budget, n)
    if k == 0:
        return result(text, orig_pred, 0, 0)
    score = QueryCounter(predict_proba, batch_size)

    # 1. importance ranking by deletion
    importance = {i: -math.inf for i in words}
    del_texts, del_idx = [], []
    for i in words:
        trial = copy_pieces(pieces)
        delete_piece(trial, i)
        t = join(trial)
        if t.strip():
            del_texts.append(t)
            del_idx.append(i)
    if del_texts:
        probs = score(del_texts)
        for i, p in zip(del_idx, probs):
            importance[i] = float(p0[label] - p[label])
    order = sorted(words, key=lambda i: (-importance[i], i))

    # 2. greedy replacement
    current, cur_p, cur_pred, changed = text, p0, orig_pred, 0
    for i in order:
        if changed >= k or cur_pred != label:
            break
        cands = _candidates(pieces[i][0], lang)
        if len(cands) > max_candidates:
            cands = rng.sample(cands, max_candidates)
        texts, trials = [], []
        for c in cands:
            trial = copy_pieces(pieces)
            set_piece(trial, i, c)
            t = join(trial)
            if t.strip() and t != current and t not in texts:
                texts.append(t)
                trials.append(trial)
        if not texts:
            continue
        probs = score(texts)
        flips = np.argmax(probs, axis=1) != label
        best = min(range(len(texts)), key=lambda j: (not flips[j], probs[j, label], j))
        if flips[best] or probs[best, label] < cur_p[label]:
            pieces, current, cur_p = trials[best], texts[best], probs[best]
            cur_pred = int(np.argmax(cur_p))
            changed += 1
    return result(current, cur_pred, changed, score.queries)


def _candidates(w: str, lang: str) -> list[str]:
    """Replacement candidates for one token ('' = delete it). Latin tokens inside Chinese text also get the
    English variants."""
    cands: list[str] = []
    if lang == "zh":
        for fn in (
            zh.delete_variants,
            zh.swap_variants,
            zh.homophone_variants,
            zh.traditional_variants,
            zh.width_variants,
            zh.duplicate_variants,
        ):
            cands.extend(fn(w))
    if lang == "en" or re.search(r"[A-Za-z]", w):
        for vs in en.typo_ops(w).values():
            cands.extend(vs)
        cands.extend(en.case_variants(w))
        if any(ch.isalnum() for ch in w):
            cands.extend(w + p for p in en.PUNCT)
    cands.append("")
    return dedup(cands, w)

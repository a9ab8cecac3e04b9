"""Deterministic, seeded adversarial attacks for robustness evaluation (in the spirit of TextAttack).

Two kinds of attack, both working on any ``predict_proba(list[str]) -> np.ndarray (N, C)`` callable:

* **Perturbation attacks** — model-agnostic random edits ``fn(text, lang, budget, rng) -> str``. ``budget`` is
  the largest share of tokens (spaCy tokens, jieba words for zh: the same tokens as
  :func:`sora.data.text.tokenise`) that may be edited: ``max_edits(budget, n) = max(1, floor(budget * n))``
  edits when ``budget > 0``. Edits are applied in place on the original text (untouched parts, case and spacing
  are kept byte for byte) and never leave an empty / whitespace-only text (such an edit is skipped).
* **Greedy attack** (:func:`greedy_attack`, TextFooler-like without embeddings) — ranks tokens by importance
  (drop of the true-class probability when the token is deleted), then replaces them in that order by the
  candidate (char/word perturbations above) that lowers the true-class probability most, until the prediction
  flips or the budget is spent.

:func:`run_attack` and :func:`run_suite` report TextAttack-style numbers. Example ``i`` always uses
``random.Random(f"{seed}:{name}:{i}")`` so results do not depend on batching or on the other examples.
Query counts are the number of texts scored *by the attack*; the clean prediction of the original text is
not counted (for perturbation attacks: 1 query per attacked example).
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from sora.data.text import _HAN, parse_cached

PredictProba = Callable[[list[str]], np.ndarray]
Perturbation = Callable[..., str]

__all__ = [
    "ATTACKS",
    "SUITE_COLUMNS",
    "AttackResult",
    "AttackSummary",
    "attacks_for",
    "greedy_attack",
    "homophones",
    "max_edits",
    "run_attack",
    "run_suite",
]

SUITE_COLUMNS = [
    "attack",
    "lang",
    "n",
    "clean_accuracy",
    "accuracy_under_attack",
    "attack_success_rate",
    "avg_perturbed_pct",
    "avg_queries",
]
LANGS = ("zh", "en")



def _is_han(ch: str) -> bool:
    return bool(_HAN.fullmatch(ch))


def max_edits(budget: float, n_tokens: int) -> int:
    """Number of tokens an attack may change: 0 if ``budget <= 0`` or no tokens, else
    ``max(1, floor(min(budget, 1) * n_tokens))`` (with a tiny epsilon against float noise like 0.29*100)."""
    if budget <= 0 or n_tokens <= 0:
        return 0
    return max(1, math.floor(min(float(budget), 1.0) * n_tokens + 1e-9))


# --------------------------------------------------------------------------------------------------------------
# Token "pieces": [text, trailing_whitespace, is_space] per spaCy token; joining them gives back the text exactly.


def _pieces(text: str, lang: str) -> list[list]:
    # Through the shared parse cache: every attack (and the predictors in evaluate) re-parse the same originals.
    return [list(p) for p in parse_cached(text, lang)]


def _join(pieces: list[list]) -> str:
    return "".join(p[0] + p[1] for p in pieces)


def _copy(pieces: list[list]) -> list[list]:
    return [p[:] for p in pieces]


def _word_indices(pieces: list[list]) -> list[int]:
    return [i for i, p in enumerate(pieces) if not p[2]]


def _delete_piece(pieces: list[list], i: int) -> None:
    """Delete token ``i`` and at most one adjoining space without gluing its neighbours together:
    'a b c' -> 'a c', 'a b.' -> 'a.', 'do n't you' -> 'do you'."""
    pieces[i][0] = ""
    j = i - 1
    while j >= 0 and pieces[j][0] == "" and not pieces[j][1]:
        j -= 1
    prev = j if j >= 0 and not pieces[j][2] and pieces[j][0] else None
    if pieces[i][1]:
        if prev is None or pieces[prev][1]:  # previous token not glued to this one: drop this token's space
            pieces[i][1] = ""
        return
    k = i + 1
    while k < len(pieces) and pieces[k][0] == "":
        k += 1
    if prev is not None and pieces[prev][1] and (k >= len(pieces) or _is_punct_text(pieces[k][0])):
        pieces[prev][1] = ""  # 'a b.' -> 'a.'; 'a b' -> 'a'


def _set_piece(pieces: list[list], i: int, new: str) -> None:
    if new == "":
        _delete_piece(pieces, i)
    else:
        pieces[i][0] = new


def _dedup(items: Iterable[str], exclude: str) -> list[str]:
    return [x for x in dict.fromkeys(items) if x != exclude]


# --------------------------------------------------------------------------------------------------------------
# Chinese character-level variants.


@lru_cache(maxsize=1)
def _gb2312_level1() -> tuple[str, ...]:
    """The 3755 common (GB2312 level-1) characters, in GB2312 (pinyin) order."""
    chars = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            if hi == 0xD7 and lo > 0xF9:
                break
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:  # pragma: no cover - the range is fully assigned
                continue
    return tuple(chars)


@lru_cache(maxsize=1)
def _homophone_table() -> dict[str, tuple[str, ...]]:
    from pypinyin import lazy_pinyin

    chars = _gb2312_level1()
    table: dict[str, list[str]] = {}
    for ch, py in zip(chars, lazy_pinyin(list(chars))):  # a list = pre-segmented: one reading per char
        table.setdefault(py, []).append(ch)
    return {py: tuple(cs) for py, cs in table.items()}


@lru_cache(maxsize=8192)
def _toneless(ch: str) -> str:
    from pypinyin import lazy_pinyin

    return lazy_pinyin(ch)[0]


def homophones(ch: str) -> tuple[str, ...]:
    """Common characters with the same toneless pinyin as ``ch`` (``lazy_pinyin``), ``ch`` itself excluded."""
    if not _is_han(ch):
        return ()
    return tuple(c for c in _homophone_table().get(_toneless(ch), ()) if c != ch)


def _zh_delete_variants(w: str) -> list[str]:
    return _dedup((w[:j] + w[j + 1 :] for j, ch in enumerate(w) if _is_han(ch)), w)


def _zh_duplicate_variants(w: str) -> list[str]:
    return _dedup((w[: j + 1] + ch + w[j + 1 :] for j, ch in enumerate(w) if _is_han(ch)), w)


def _zh_swap_variants(w: str) -> list[str]:
    out = []
    for j in range(len(w) - 1):
        a, b = w[j], w[j + 1]
        if a != b and _is_han(a) and _is_han(b):
            out.append(w[:j] + b + a + w[j + 2 :])
    return _dedup(out, w)


def _zh_homophone_variants(w: str) -> list[str]:
    return _dedup((w[:j] + c + w[j + 1 :] for j, ch in enumerate(w) for c in homophones(ch)), w)


_ZH_TO_HALF = {"，": ",", "。": ".", "！": "!", "？": "?"}
_HALF_TO_ZH = {",": "，", ".": "。", "!": "！", "?": "？"}


def _flip_char(ch: str) -> str:
    if ch in _ZH_TO_HALF:
        return _ZH_TO_HALF[ch]
    if ch in _HALF_TO_ZH:
        return _HALF_TO_ZH[ch]
    o = ord(ch)
    if 0x21 <= o <= 0x7E:  # half-width ASCII -> full-width form
        return chr(o + 0xFEE0)
    if 0xFF01 <= o <= 0xFF5E:  # full-width form -> half-width ASCII
        return chr(o - 0xFEE0)
    return ch


def _zh_width_variants(w: str) -> list[str]:
    return _dedup(["".join(_flip_char(ch) for ch in w)], w)


@lru_cache(maxsize=2)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


def _zh_traditional_variants(w: str) -> list[str]:
    if not _HAN.search(w):
        return []
    t = _opencc("s2t").convert(w)
    if t == w or _opencc("t2s").convert(t) != w:  # only reversible conversions: the edit is purely the script
        return []
    return [t]


# --------------------------------------------------------------------------------------------------------------
# English word-level variants.

_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ROW_OFFSET = (0.0, 0.25, 0.75)


@lru_cache(maxsize=1)
def _keyboard_neighbours() -> dict[str, str]:
    pos = {ch: (c + _ROW_OFFSET[r], r) for r, row in enumerate(_QWERTY_ROWS) for c, ch in enumerate(row)}
    out = {}
    for a, (xa, ya) in pos.items():
        out[a] = "".join(b for b, (xb, yb) in pos.items() if b != a and (xa - xb) ** 2 + (ya - yb) ** 2 <= 1.6)
    return out


def _match_case(letter: str, like: str) -> str:
    return letter.upper() if like.isupper() else letter


def _typo_ops(w: str) -> dict[str, list[str]]:
    """All typo variants of ``w`` grouped by operation; only letters change, and a word keeps >= 1 letter."""
    letters = [j for j, ch in enumerate(w) if ch.isalpha()]
    if not letters:
        return {}
    ops: dict[str, list[str]] = {}
    swaps = [
        w[:j] + w[j + 1] + w[j] + w[j + 2 :]
        for j in range(len(w) - 1)
        if w[j].isalpha() and w[j + 1].isalpha() and w[j] != w[j + 1]
    ]
    if swaps:
        ops["swap"] = _dedup(swaps, w)
    inserts = []
    for j in range(len(w) + 1):
        near = w[j - 1] if j > 0 and w[j - 1].isalpha() else (w[j] if j < len(w) and w[j].isalpha() else None)
        if near is None:
            continue
        inserts.extend(w[:j] + _match_case(c, near) + w[j:] for c in "abcdefghijklmnopqrstuvwxyz")
    ops["insert"] = _dedup(inserts, w)
    if len(letters) >= 2:
        ops["delete"] = _dedup((w[:j] + w[j + 1 :] for j in letters), w)
    nb = _keyboard_neighbours()
    repl = [
        w[:j] + _match_case(c, w[j]) + w[j + 1 :] for j in letters if w[j].lower() in nb for c in nb[w[j].lower()]
    ]
    if repl:
        ops["keyboard"] = _dedup(repl, w)
    return {k: v for k, v in ops.items() if v}


def _case_variants(w: str) -> list[str]:
    return _dedup([w.upper(), w.lower(), w.title(), w.capitalize(), w.swapcase()], w)


_EN_PUNCT = ",.!?;:"


def _is_punct_text(s: str) -> bool:
    return bool(s) and all(unicodedata.category(ch).startswith("P") for ch in s)


# --------------------------------------------------------------------------------------------------------------
# Perturbation attacks.

EditFn = Callable[[list, int, random.Random], bool]


def _perturb(text: str, lang: str, budget: float, rng: random.Random, edit: EditFn) -> tuple[str, int, int]:
    """Apply ``edit`` to randomly ordered tokens until ``max_edits`` succeeded. Returns (text, changed, n_tokens)."""
    if not text or not text.strip():
        return text, 0, 0
    pieces = _pieces(text, lang)
    words = _word_indices(pieces)
    k = max_edits(budget, len(words))
    if k == 0:
        return text, 0, len(words)
    order = words[:]
    rng.shuffle(order)
    changed = 0
    current = text
    for i in order:
        if changed >= k:
            break
        trial = _copy(pieces)
        if not edit(trial, i, rng):
            continue
        new = _join(trial)
        if not new.strip() or new == current:  # never empty the text; an edit must change something
            continue
        pieces, current = trial, new
        changed += 1
    return current, changed, len(words)


def _token_edit(pick: Callable[[str, random.Random], str | None]) -> EditFn:
    def edit(pieces: list, i: int, rng: random.Random) -> bool:
        w = pieces[i][0]
        if not w:
            return False
        new = pick(w, rng)
        if new is None or new == w:
            return False
        _set_piece(pieces, i, new)
        return True

    return edit


def _choice_of(variants: Callable[[str], list[str]]) -> Callable[[str, random.Random], str | None]:
    def pick(w: str, rng: random.Random) -> str | None:
        vs = variants(w)
        return rng.choice(vs) if vs else None

    return pick


def _pick_homophone(w: str, rng: random.Random) -> str | None:
    positions = [(j, hs) for j, ch in enumerate(w) if (hs := homophones(ch))]
    if not positions:
        return None
    j, hs = rng.choice(positions)
    return w[:j] + rng.choice(hs) + w[j + 1 :]


def _pick_typo(w: str, rng: random.Random) -> str | None:
    ops = _typo_ops(w)
    if not ops:
        return None
    op = rng.choice(sorted(ops))
    return rng.choice(ops[op])


def _pick_word_delete(w: str, rng: random.Random) -> str | None:
    return "" if any(ch.isalnum() for ch in w) else None


def _edit_case_punct(pieces: list, i: int, rng: random.Random) -> bool:
    w = pieces[i][0]
    if not w or not any(ch.isalnum() for ch in w):
        return False
    options = []
    cases = _case_variants(w)
    if cases:
        options.append("case")
    options.append("insert")
    nxt = i + 1
    # attached punctuation right after the word, followed by a space or the end (so no two words are merged)
    if (
        not pieces[i][1]
        and nxt < len(pieces)
        and _is_punct_text(pieces[nxt][0])
        and (pieces[nxt][1] or nxt == len(pieces) - 1)
    ):
        options.append("remove")
    op = rng.choice(options)
    if op == "case":
        pieces[i][0] = rng.choice(cases)
    elif op == "insert":
        pieces[i][0] = w + rng.choice(_EN_PUNCT)
    else:
        pieces[i][1] = pieces[nxt][1]
        pieces[nxt][0] = pieces[nxt][1] = ""
    return True


def _rng(rng: random.Random | None) -> random.Random:
    return rng if rng is not None else random.Random(0)


def _attack(name: str, default_lang: str, edit: EditFn, doc: str) -> Perturbation:
    """A perturbation ``fn(text, lang, budget=0.1, rng=None) -> str`` that applies ``edit`` to ``max_edits``
    randomly chosen tokens."""
    def perturb(text: str, lang: str = default_lang, budget: float = 0.1, rng: random.Random | None = None) -> str:
        return _perturb(text, lang, budget, _rng(rng), edit)[0]

    perturb.__name__ = perturb.__qualname__ = name
    perturb.__doc__ = doc
    return perturb


# name -> (language, edit applied to each chosen token, what it does)
_EDITS: dict[str, tuple[str, EditFn, str]] = {
    "zh_char_delete": ("zh", _token_edit(_choice_of(_zh_delete_variants)),
                       "Delete one Han character inside each chosen word (a 1-char word disappears)."),
    "zh_char_duplicate": ("zh", _token_edit(_choice_of(_zh_duplicate_variants)),
                          "Duplicate one Han character inside each chosen word ('很好' -> '很很好')."),
    "zh_char_swap": ("zh", _token_edit(_choice_of(_zh_swap_variants)),
                     "Swap two adjacent, different Han characters within each chosen word."),
    "zh_homophone": ("zh", _token_edit(_pick_homophone),
                     "Replace one Han character of each chosen word by a different common character with the same "
                     "toneless pinyin (pypinyin.lazy_pinyin; table built from GB2312 level 1)."),
    "zh_width_flip": ("zh", _token_edit(_choice_of(_zh_width_variants)),
                      "Flip the width of every ASCII letter/digit/punctuation of each chosen token (half <-> full "
                      "width) and Chinese ，。！？ <-> , . ! ?"),
    "zh_traditional": ("zh", _token_edit(_choice_of(_zh_traditional_variants)),
                       "Convert chosen words from simplified to traditional (OpenCC s2t; only words whose t2s "
                       "round-trips)."),
    "en_typo": ("en", _token_edit(_pick_typo),
                "One typo per chosen word: swap adjacent letters, insert a letter, delete a letter (words keep >= 1 "
                "letter) or replace a letter by a QWERTY neighbour (case kept)."),
    "en_word_delete": ("en", _token_edit(_pick_word_delete),
                       "Delete chosen words (tokens with a letter or digit) with one adjoining space."),
    "en_case_punct": ("en", _edit_case_punct,
                      "Per chosen word: change its case (upper/lower/title/capitalise/swap), append a punctuation "
                      "mark, or remove the punctuation attached right after it."),
}

ATTACKS: dict[str, tuple[str, Perturbation]] = {
    name: (lang, _attack(name, lang, edit, doc)) for name, (lang, edit, doc) in _EDITS.items()
}


def attacks_for(lang: str) -> list[str]:
    """Names of the perturbation attacks for ``lang`` ('zh' or 'en'), in registry order."""
    return [name for name, (lg, _) in ATTACKS.items() if lg == lang]


# --------------------------------------------------------------------------------------------------------------
# Results.


@dataclass
class AttackResult:
    original: str
    perturbed: str
    label: int
    original_pred: int
    perturbed_pred: int
    success: bool  # originally correct, now wrong
    skipped: bool  # originally wrong: not attacked
    tokens_changed: int
    n_tokens: int
    queries: int


@dataclass
class AttackSummary:
    attack: str
    lang: str
    n: int
    clean_accuracy: float
    accuracy_under_attack: float
    attack_success_rate: float  # successes / originally correct
    avg_perturbed_pct: float  # mean % of tokens changed over attacked (originally correct) examples
    avg_queries: float  # mean queries over attacked examples
    results: list[AttackResult] = field(default_factory=list, repr=False)

    def as_row(self) -> dict:
        return {c: getattr(self, c) for c in SUITE_COLUMNS}


def _summarise(attack: str, lang: str, results: list[AttackResult]) -> AttackSummary:
    n = len(results)
    attacked = [r for r in results if not r.skipped]
    nan = float("nan")
    clean = len(attacked) / n if n else nan
    robust = sum(1 for r in attacked if not r.success)
    pcts = [100.0 * r.tokens_changed / r.n_tokens for r in attacked if r.n_tokens > 0]
    return AttackSummary(
        attack=attack,
        lang=lang,
        n=n,
        clean_accuracy=clean,
        accuracy_under_attack=robust / n if n else nan,
        attack_success_rate=sum(r.success for r in attacked) / len(attacked) if attacked else nan,
        avg_perturbed_pct=float(np.mean(pcts)) if pcts else nan,
        avg_queries=float(np.mean([r.queries for r in attacked])) if attacked else nan,
        results=results,
    )


# --------------------------------------------------------------------------------------------------------------
# Model queries.


def _predict(predict_proba: PredictProba, texts: Sequence[str], batch_size: int) -> np.ndarray:
    out = []
    bs = max(1, int(batch_size))
    for s in range(0, len(texts), bs):
        chunk = list(texts[s : s + bs])
        p = np.asarray(predict_proba(chunk), dtype=float)
        if p.ndim != 2 or p.shape[0] != len(chunk):
            raise ValueError(f"predict_proba must return an (N, C) array; got shape {p.shape} for N={len(chunk)}")
        out.append(p)
    return np.concatenate(out) if out else np.zeros((0, 0))


class _Counter:
    def __init__(self, predict_proba: PredictProba, batch_size: int):
        self.predict_proba, self.batch_size, self.queries = predict_proba, batch_size, 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.queries += len(texts)
        return _predict(self.predict_proba, texts, self.batch_size)


# --------------------------------------------------------------------------------------------------------------
# Greedy attack.


def _greedy_candidates(w: str, lang: str) -> list[str]:
    """Replacement candidates for one token ('' = delete it)."""
    cands: list[str] = []
    if lang == "zh":
        for fn in (
            _zh_delete_variants,
            _zh_swap_variants,
            _zh_homophone_variants,
            _zh_traditional_variants,
            _zh_width_variants,
            _zh_duplicate_variants,
        ):
            cands.extend(fn(w))
    if lang == "en" or re.search(r"[A-Za-z]", w):
        for vs in _typo_ops(w).values():
            cands.extend(vs)
        cands.extend(_case_variants(w))
        if any(ch.isalnum() for ch in w):
            cands.extend(w + p for p in _EN_PUNCT)
    cands.append("")
    return _dedup(cands, w)


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
    rng = _rng(rng)
    label = int(label)
    p0 = (
        np.asarray(original_proba, dtype=float)
        if original_proba is not None
        else _predict(predict_proba, [text], batch_size)[0]
    )
    orig_pred = int(np.argmax(p0))
    pieces = _pieces(text, lang) if text.strip() else []
    words = _word_indices(pieces)
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
    predict = _Counter(predict_proba, batch_size)

    # 1. importance ranking by deletion
    importance = {i: -math.inf for i in words}
    del_texts, del_idx = [], []
    for i in words:
        trial = _copy(pieces)
        _delete_piece(trial, i)
        t = _join(trial)
        if t.strip():
            del_texts.append(t)
            del_idx.append(i)
    if del_texts:
        probs = predict(del_texts)
        for i, p in zip(del_idx, probs):
            importance[i] = float(p0[label] - p[label])
    order = sorted(words, key=lambda i: (-importance[i], i))

    # 2. greedy replacement
    current, cur_p, cur_pred, changed = text, p0, orig_pred, 0
    for i in order:
        if changed >= k or cur_pred != label:
            break
        cands = _greedy_candidates(pieces[i][0], lang)
        if len(cands) > max_candidates:
            cands = rng.sample(cands, max_candidates)
        texts, trials = [], []
        for c in cands:
            trial = _copy(pieces)
            _set_piece(trial, i, c)
            t = _join(trial)
            if t.strip() and t != current and t not in texts:
                texts.append(t)
                trials.append(trial)
        if not texts:
            continue
        probs = predict(texts)
        flips = np.argmax(probs, axis=1) != label
        best = min(range(len(texts)), key=lambda j: (not flips[j], probs[j, label], j))
        if flips[best] or probs[best, label] < cur_p[label]:
            pieces, current, cur_p = trials[best], texts[best], probs[best]
            cur_pred = int(np.argmax(cur_p))
            changed += 1
    return result(current, cur_pred, changed, predict.queries)


# --------------------------------------------------------------------------------------------------------------
# Runners.

_Item = tuple[int, str, int, str]  # (global index, text, label, lang)


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
    edit = _EDITS[name][1]
    perturbed: dict[int, tuple[str, int, int]] = {}
    for pos, (i, text, label, lang) in enumerate(items):
        if int(np.argmax(clean[pos])) == label:
            perturbed[pos] = _perturb(text, lang, budget, random.Random(f"{seed}:{name}:{i}"), edit)
        tick(1)
    keys = list(perturbed)
    probs = _predict(predict_proba, [perturbed[p][0] for p in keys], batch_size) if keys else None
    new_pred = {p: int(np.argmax(probs[j])) for j, p in enumerate(keys)}
    results = []
    for pos, (i, text, label, lang) in enumerate(items):
        p0 = int(np.argmax(clean[pos]))
        if pos not in perturbed:
            n_tok = len(_word_indices(_pieces(text, lang))) if text.strip() else 0
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
        results.append(
            greedy_attack(
                text,
                lang,
                label,
                predict_proba,
                budget,
                random.Random(f"{seed}:greedy:{i}"),
                max_candidates,
                batch_size=batch_size,
                original_proba=clean[pos],
            )
        )
        tick(1)
    return results


def _worst_case(per_attack: list[list[AttackResult]]) -> list[AttackResult]:
    """Combine simple attacks per example: robust only if it survives every attack. The reported perturbation is
    the cheapest successful one, or else the largest one survived; queries are summed."""
    combined = []
    for rs in zip(*per_attack):
        first = rs[0]
        if first.skipped:
            combined.append(first)
            continue

        def pct(r: AttackResult) -> float:
            return r.tokens_changed / r.n_tokens if r.n_tokens else 0.0

        wins = [r for r in rs if r.success]
        pick = min(wins, key=pct) if wins else max(rs, key=pct)
        combined.append(
            AttackResult(
                original=first.original,
                perturbed=pick.perturbed,
                label=first.label,
                original_pred=first.original_pred,
                perturbed_pred=pick.perturbed_pred,
                success=bool(wins),
                skipped=False,
                tokens_changed=pick.tokens_changed,
                n_tokens=pick.n_tokens,
                queries=sum(r.queries for r in rs),
            )
        )
    return combined


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
    clean = _predict(predict_proba, [it[1] for it in items], batch_size)
    if name == "greedy":
        results = _run_greedy(items, clean, predict_proba, budget, seed, batch_size, max_candidates)
    else:
        results = _run_simple(name, items, clean, predict_proba, budget, seed, batch_size)
    return _summarise(name, lang, results)


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
    progress: bool = True,
    with_outcomes: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Every perturbation attack of each language present, an ``all_perturbations`` worst-case row per language
    (an example is robust only if it survives every perturbation attack) and, optionally, the greedy attack on
    the first ``max_greedy_examples`` examples of each language. Clean predictions are computed once.
    Columns: :data:`SUITE_COLUMNS`. With ``with_outcomes``, also each example's outcome: a frame of (attack,
    lang, example = position in ``texts``, correct = right under that attack), for paired model comparisons."""
    items = _check_inputs(texts, labels, langs)
    outcomes: list[pd.DataFrame] = []

    def record(name: str, lang: str, attacked: list[_Item], results: list[AttackResult]) -> None:
        if with_outcomes:
            outcomes.append(pd.DataFrame({"attack": name, "lang": lang, "example": [it[0] for it in attacked],
                                          "correct": [r.perturbed_pred == r.label for r in results]}))

    clean_all = _predict(predict_proba, [it[1] for it in items], batch_size)
    by_lang = {lg: [j for j, it in enumerate(items) if it[3] == lg] for lg in LANGS}
    by_lang = {lg: js for lg, js in by_lang.items() if js}

    def greedy_js(js: list[int]) -> list[int]:
        return js if max_greedy_examples is None else js[: max(0, int(max_greedy_examples))]

    total = sum(len(js) * len(attacks_for(lg)) for lg, js in by_lang.items())
    if include_greedy:
        total += sum(len(greedy_js(js)) for js in by_lang.values())

    rows: list[dict] = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
        bar.start()
    task = bar.add_task("attacks", total=total) if bar else None

    def tick(k: int) -> None:
        if bar is not None:
            bar.advance(task, k)

    try:
        for lg, js in by_lang.items():
            sub = [items[j] for j in js]
            clean = clean_all[js]
            per_attack = []
            for name in attacks_for(lg):
                if bar is not None:
                    bar.update(task, description=f"{name}")
                res = _run_simple(name, sub, clean, predict_proba, budget, seed, batch_size, tick)
                per_attack.append(res)
                rows.append(_summarise(name, lg, res).as_row())
                record(name, lg, sub, res)
            worst = _worst_case(per_attack)
            rows.append(_summarise("all_perturbations", lg, worst).as_row())
            record("all_perturbations", lg, sub, worst)
            if include_greedy:
                gj = greedy_js(js)
                if bar is not None:
                    bar.update(task, description=f"greedy ({lg})")
                greedy_items = [items[j] for j in gj]
                res = _run_greedy(
                    greedy_items, clean_all[gj], predict_proba, budget, seed, batch_size, max_candidates, tick,
                )
                rows.append(_summarise("greedy", lg, res).as_row())
                record("greedy", lg, greedy_items, res)
    finally:
        if bar is not None:
            bar.stop()
    table = pd.DataFrame(rows, columns=SUITE_COLUMNS)
    if not with_outcomes:
        return table
    columns = ["attack", "lang", "example", "correct"]
    return table, pd.concat(outcomes, ignore_index=True) if outcomes else pd.DataFrame(columns=columns)

"""Token-level editing shared by the perturbation attacks and the greedy attack.

A text is edited as its token "pieces": ``[text, trailing_whitespace, is_space]`` per spaCy token (the tokens of
:func:`sora.data.text.tokenise`: jieba words for zh). Joining the pieces gives back the text exactly, so whatever
an edit does not touch keeps its case and spacing byte for byte.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Callable, Iterable

from sora.data.text import parse_cached

Pieces = list[list]
# Edits token i of the pieces in place; False when it cannot edit that token.
EditFn = Callable[[Pieces, int, random.Random], bool]
# A replacement for one token's text, or None when there is none.
Pick = Callable[[str, random.Random], str | None]


def max_edits(budget: float, n_tokens: int) -> int:
    """Number of tokens an attack may change: 0 if ``budget <= 0`` or no tokens, else
    ``max(1, floor(min(budget, 1) * n_tokens))`` (with a tiny epsilon against float noise like 0.29*100)."""
    if budget <= 0 or n_tokens <= 0:
        return 0
    return max(1, math.floor(min(float(budget), 1.0) * n_tokens + 1e-9))


def perturb(text: str, lang: str, budget: float, rng: random.Random, edit: EditFn) -> tuple[str, int, int]:
    """Apply ``edit`` to randomly ordered tokens until ``max_edits`` succeeded. Returns (text, changed, n_tokens)."""
    if not text or not text.strip():
        return text, 0, 0
    pieces = split_pieces(text, lang)
    words = word_indices(pieces)
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
        trial = copy_pieces(pieces)
        if not edit(trial, i, rng):
            continue
        new = join(trial)
        if not new.strip() or new == current:  # never empty the text; an edit must change something
            continue
        pieces, current = trial, new
        changed += 1
    return current, changed, len(words)


def token_edit(pick: Pick) -> EditFn:
    """An edit that replaces the chosen token's text by ``pick(text, rng)`` ('' deletes the token)."""

    def edit(pieces: Pieces, i: int, rng: random.Random) -> bool:
        w = pieces[i][0]
        if not w:
            return False
        new = pick(w, rng)
        if new is None or new == w:
            return False
        set_piece(pieces, i, new)
        return True

    return edit


def choice_of(variants: Callable[[str], list[str]]) -> Pick:
    """A pick that draws uniformly from ``variants(token)``."""

    def pick(w: str, rng: random.Random) -> str | None:
        vs = variants(w)
        return rng.choice(vs) if vs else None

    return pick


def default_rng(rng: random.Random | None) -> random.Random:
    return rng if rng is not None else random.Random(0)


# --------------------------------------------------------------------------------------------------------------
# Pieces.


def split_pieces(text: str, lang: str) -> Pieces:
    # Through the shared parse cache: every attack (and the predictors in evaluate) re-parse the same originals.
    return [list(p) for p in parse_cached(text, lang)]


def join(pieces: Pieces) -> str:
    return "".join(p[0] + p[1] for p in pieces)


def copy_pieces(pieces: Pieces) -> Pieces:
    return [p[:] for p in pieces]


def word_indices(pieces: Pieces) -> list[int]:
    return [i for i, p in enumerate(pieces) if not p[2]]


def set_piece(pieces: Pieces, i: int, new: str) -> None:
    if new == "":
        delete_piece(pieces, i)
    else:
        pieces[i][0] = new


def delete_piece(pieces: Pieces, i: int) -> None:
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
    if prev is not None and pieces[prev][1] and (k >= len(pieces) or is_punct_text(pieces[k][0])):
        pieces[prev][1] = ""  # 'a b.' -> 'a.'; 'a b' -> 'a'


def is_punct_text(s: str) -> bool:
    return bool(s) and all(unicodedata.category(ch).startswith("P") for ch in s)


def dedup(items: Iterable[str], exclude: str) -> list[str]:
    """``items`` without repeats and without ``exclude``, in first-seen order (rng draws depend on the order)."""
    return [x for x in dict.fromkeys(items) if x != exclude]

"""English perturbations: typos, case and punctuation changes and word deletion, on one word (spaCy token) at a
time. Also the variants the greedy attack tries on tokens with Latin letters."""

from __future__ import annotations

import random
from functools import lru_cache

from sora.evaluation.attacks.edits import Pieces, dedup, is_punct_text

PUNCT = ",.!?;:"


def typo_ops(w: str) -> dict[str, list[str]]:
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
        ops["swap"] = dedup(swaps, w)
    inserts = []
    for j in range(len(w) + 1):
        near = w[j - 1] if j > 0 and w[j - 1].isalpha() else (w[j] if j < len(w) and w[j].isalpha() else None)
        if near is None:
            continue
        inserts.extend(w[:j] + _match_case(c, near) + w[j:] for c in "abcdefghijklmnopqrstuvwxyz")
    ops["insert"] = dedup(inserts, w)
    if len(letters) >= 2:
        ops["delete"] = dedup((w[:j] + w[j + 1 :] for j in letters), w)
    nb = _keyboard_neighbours()
    repl = [w[:j] + _match_case(c, w[j]) + w[j + 1 :] for j in letters if w[j].lower() in nb for c in nb[w[j].lower()]]
    if repl:
        ops["keyboard"] = dedup(repl, w)
    return {k: v for k, v in ops.items() if v}


def case_variants(w: str) -> list[str]:
    return dedup([w.upper(), w.lower(), w.title(), w.capitalize(), w.swapcase()], w)


def pick_typo(w: str, rng: random.Random) -> str | None:
    """One typo: an operation first, then one of its variants, so inserts (26 per position) do not crowd out
    the other operations."""
    ops = typo_ops(w)
    if not ops:
        return None
    op = rng.choice(sorted(ops))
    return rng.choice(ops[op])


def pick_word_delete(w: str, rng: random.Random) -> str | None:
    return "" if any(ch.isalnum() for ch in w) else None


def edit_case_punct(pieces: Pieces, i: int, rng: random.Random) -> bool:
    """Change the case of word ``i``, append a punctuation mark to it, or remove the punctuation attached to it."""
    w = pieces[i][0]
    if not w or not any(ch.isalnum() for ch in w):
        return False
    options = []
    cases = case_variants(w)
    if cases:
        options.append("case")
    options.append("insert")
    nxt = i + 1
    # attached punctuation right after the word, followed by a space or the end (so no two words are merged)
    if (
        not pieces[i][1]
        and nxt < len(pieces)
        and is_punct_text(pieces[nxt][0])
        and (pieces[nxt][1] or nxt == len(pieces) - 1)
    ):
        options.append("remove")
    op = rng.choice(options)
    if op == "case":
        pieces[i][0] = rng.choice(cases)
    elif op == "insert":
        pieces[i][0] = w + rng.choice(PUNCT)
    else:
        pieces[i][1] = pieces[nxt][1]
        pieces[nxt][0] = pieces[nxt][1] = ""
    return True


# --------------------------------------------------------------------------------------------------------------
# QWERTY neighbours.

_QWERTY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ROW_OFFSET = (0.0, 0.25, 0.75)  # horizontal stagger of each row, in keys


@lru_cache(maxsize=1)
def _keyboard_neighbours() -> dict[str, str]:
    pos = {ch: (c + _ROW_OFFSET[r], r) for r, row in enumerate(_QWERTY_ROWS) for c, ch in enumerate(row)}
    out = {}
    for a, (xa, ya) in pos.items():
        out[a] = "".join(b for b, (xb, yb) in pos.items() if b != a and (xa - xb) ** 2 + (ya - yb) ** 2 <= 1.6)
    return out


def _match_case(letter: str, like: str) -> str:
    return letter.upper() if like.isupper() else letter

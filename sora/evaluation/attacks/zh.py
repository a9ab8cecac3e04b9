"""Chinese perturbations: the variants of one word (jieba token) that the zh attacks and the greedy attack draw
from. Character edits only touch Han characters, so digits, Latin words and punctuation inside a token stay."""

from __future__ import annotations

import random
from functools import lru_cache

from sora.data.text import HAN, is_han
from sora.evaluation.attacks.edits import dedup


def homophones(ch: str) -> tuple[str, ...]:
    """Common characters with the same toneless pinyin as ``ch`` (``lazy_pinyin``), ``ch`` itself excluded."""
    if not is_han(ch):
        return ()
    return tuple(c for c in _homophone_table().get(_toneless(ch), ()) if c != ch)


def delete_variants(w: str) -> list[str]:
    return dedup((w[:j] + w[j + 1 :] for j, ch in enumerate(w) if is_han(ch)), w)


def duplicate_variants(w: str) -> list[str]:
    return dedup((w[: j + 1] + ch + w[j + 1 :] for j, ch in enumerate(w) if is_han(ch)), w)


def swap_variants(w: str) -> list[str]:
    out = []
    for j in range(len(w) - 1):
        a, b = w[j], w[j + 1]
        if a != b and is_han(a) and is_han(b):
            out.append(w[:j] + b + a + w[j + 2 :])
    return dedup(out, w)


def homophone_variants(w: str) -> list[str]:
    return dedup((w[:j] + c + w[j + 1 :] for j, ch in enumerate(w) for c in homophones(ch)), w)


def width_variants(w: str) -> list[str]:
    return dedup(["".join(_flip_char(ch) for ch in w)], w)


def traditional_variants(w: str) -> list[str]:
    if not HAN.search(w):
        return []
    t = _opencc("s2t").convert(w)
    if t == w or _opencc("t2s").convert(t) != w:  # only reversible conversions: the edit is purely the script
        return []
    return [t]


def pick_homophone(w: str, rng: random.Random) -> str | None:
    """One homophone swap: a position first, then its homophone, so characters with many homophones are not
    favoured over the others."""
    positions = [(j, hs) for j, ch in enumerate(w) if (hs := homophones(ch))]
    if not positions:
        return None
    j, hs = rng.choice(positions)
    return w[:j] + rng.choice(hs) + w[j + 1 :]


# --------------------------------------------------------------------------------------------------------------
# Tables.

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


@lru_cache(maxsize=1)
def _homophone_table() -> dict[str, tuple[str, ...]]:
    from pypinyin import lazy_pinyin

    chars = _gb2312_level1()
    table: dict[str, list[str]] = {}
    for ch, py in zip(chars, lazy_pinyin(list(chars))):  # a list = pre-segmented: one reading per char
        table.setdefault(py, []).append(ch)
    return {py: tuple(cs) for py, cs in table.items()}


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


@lru_cache(maxsize=8192)
def _toneless(ch: str) -> str:
    from pypinyin import lazy_pinyin

    return lazy_pinyin(ch)[0]


@lru_cache(maxsize=2)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)

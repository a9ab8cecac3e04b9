"""The perturbation attacks by name: ``ATTACKS[name] = (lang, fn)``, ``fn(text, lang, budget=0.1, rng=None)``.

Each attack applies one edit to ``max_edits(budget, n_tokens)`` randomly chosen tokens (see
:func:`sora.evaluation.attacks.edits.perturb`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sora.evaluation.attacks import en, zh
from sora.evaluation.attacks.edits import EditFn, choice_of, default_rng, perturb, token_edit

Perturbation = Callable[..., str]

# name -> (language, edit applied to each chosen token, what it does); the order is the report order.
EDITS: dict[str, tuple[str, EditFn, str]] = {
    "zh_char_delete": (
        "zh",
        token_edit(choice_of(zh.delete_variants)),
        "Delete one Han character inside each chosen word (a 1-char word disappears).",
    ),
    "zh_char_duplicate": (
        "zh",
        token_edit(choice_of(zh.duplicate_variants)),
        "Duplicate one Han character inside each chosen word ('很好' -> '很很好').",
    ),
    "zh_char_swap": (
        "zh",
        token_edit(choice_of(zh.swap_variants)),
        "Swap two adjacent, different Han characters within each chosen word.",
    ),
    "zh_homophone": (
        "zh",
        token_edit(zh.pick_homophone),
        "Replace one Han character of each chosen word by a different common character with the same "
        "toneless pinyin (pypinyin.lazy_pinyin; table built from GB2312 level 1).",
    ),
    "zh_width_flip": (
        "zh",
        token_edit(choice_of(zh.width_variants)),
        "Flip the width of every ASCII letter/digit/punctuation of each chosen token (half <-> full "
        "width) and Chinese ，。！？ <-> , . ! ?",
    ),
    "zh_traditional": (
        "zh",
        token_edit(choice_of(zh.traditional_variants)),
        "Convert chosen words from simplified to traditional (OpenCC s2t; only words whose t2s round-trips).",
    ),
    "en_typo": (
        "en",
        token_edit(en.pick_typo),
        "One typo per chosen word: swap adjacent letters, insert a letter, delete a letter (words keep >= 1 "
        "letter) or replace a letter by a QWERTY neighbour (case kept).",
    ),
    "en_word_delete": (
        "en",
        token_edit(en.pick_word_delete),
        "Delete chosen words (tokens with a letter or digit) with one adjoining space.",
    ),
    "en_case_punct": (
        "en",
        en.edit_case_punct,
        "Per chosen word: change its case (upper/lower/title/capitalise/swap), append a punctuation "
        "mark, or remove the punctuation attached right after it.",
    ),
}


def attacks_for(lang: str) -> list[str]:
    """Names of the perturbation attacks for ``lang`` ('zh' or 'en'), in registry order."""
    return [name for name, (lg, _) in ATTACKS.items() if lg == lang]


def _attack(name: str, default_lang: str, edit: EditFn, doc: str) -> Perturbation:
    """A perturbation ``fn(text, lang, budget=0.1, rng=None) -> str`` that applies ``edit`` to ``max_edits``
    randomly chosen tokens."""

    def attack(text: str, lang: str = default_lang, budget: float = 0.1, rng: random.Random | None = None) -> str:
        return perturb(text, lang, budget, default_rng(rng), edit)[0]

    attack.__name__ = attack.__qualname__ = name
    attack.__doc__ = doc
    return attack


ATTACKS: dict[str, tuple[str, Perturbation]] = {
    name: (lang, _attack(name, lang, edit, doc)) for name, (lang, edit, doc) in EDITS.items()
}

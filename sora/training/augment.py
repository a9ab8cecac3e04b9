"""Text-level noise augmentation for adversarial training: perturbed copies of train rows made with the
bilingual attack suite, so the model sees the discrete edits (typos, homophones, ...) no embedding ball holds."""

from __future__ import annotations

import random

import pandas as pd


def augment_with_attacks(
    train: pd.DataFrame, share: float, budget: float, seed: int, exclude: set[str] = frozenset()
) -> pd.DataFrame:
    """Perturbed copies of a seeded `share` of the train rows, one random suite attack each, re-tokenised, with
    the row's labels (every task's). A copy that equals an existing text (train, or `exclude`: val/test) is
    dropped, so no split leaks."""
    from sora.data.preprocess import add_tokens
    from sora.data.text import normalise
    from sora.evaluation.attacks import ATTACKS, attacks_for

    if share <= 0:
        return train
    picked = train.sample(frac=share, random_state=seed)
    labels = [c for c in train.columns if c not in ("text", "lang", "tokens", "source")]  # every task's column
    rows = []
    for i, (text, lang, *label) in enumerate(zip(picked["text"], picked["lang"], *(picked[c] for c in labels))):
        rng = random.Random(f"augment:{seed}:{i}")
        name = rng.choice(attacks_for(lang))
        perturbed = normalise(ATTACKS[name][1](text, lang, budget, rng))
        rows.append({"text": perturbed, **dict(zip(labels, label)), "lang": lang, "source": f"augment:{name}"})
    extra = pd.DataFrame(rows, columns=["text", *labels, "lang", "source"])
    extra = extra[~extra["text"].isin(set(train["text"]) | set(exclude))].drop_duplicates("text")
    if extra.empty:
        return train
    extra = add_tokens(extra.reset_index(drop=True))
    return pd.concat([train, extra[train.columns]], ignore_index=True)

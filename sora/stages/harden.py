"""harden: adversarial fine-tuning from the finetune checkpoint. Embedding-space attacks (FGM / PGD / FreeLB,
`harden.method`) make the decision boundary smooth around each example; two discrete terms cover edits that
no embedding ball contains: text-level noise augmentation (`harden.noise_augment`: that share of train texts
perturbed by the bilingual attack suite, with a seed different from evaluation's) and a token adversary
(`harden.token_budget`: each batch also trained with its most salient tokens hidden behind <unk>, the words a
greedy attacker goes for first).
-> models/harden/{best,last}.ckpt, metrics/harden.json, plots/harden.csv."""

from __future__ import annotations

import random

import pandas as pd

from sora.config import Params
from sora.stages.common import MODELS, PROCESSED, VOCAB, main, require
from sora.stages.finetune import fit_classifier, report
from sora.stages.training import load_splits, load_vocab, log_final, maybe_stage_run

FINETUNED = MODELS / "finetune" / "best.ckpt"
AUGMENT_SEED_OFFSET = 1_000_003  # keeps augmentation noise apart from evaluation's attack_seed


def augment_with_attacks(
    train: pd.DataFrame, share: float, budget: float, seed: int, exclude: set[str] = frozenset()
) -> pd.DataFrame:
    """Perturbed copies of a seeded `share` of the train rows, one random suite attack each, re-tokenised.
    A copy that equals an existing text (train, or `exclude`: val/test) is dropped, so no split leaks."""
    from sora.data.preprocess import add_tokens
    from sora.data.text import normalise
    from sora.evaluation.attacks import ATTACKS, attacks_for

    if share <= 0:
        return train
    picked = train.sample(frac=share, random_state=seed)
    rows = []
    for i, (text, lang, label) in enumerate(zip(picked["text"], picked["lang"], picked["label"])):
        rng = random.Random(f"augment:{seed}:{i}")
        name = rng.choice(attacks_for(lang))
        perturbed = normalise(ATTACKS[name][1](text, lang, budget, rng))
        rows.append({"text": perturbed, "label": label, "lang": lang, "source": f"augment:{name}"})
    extra = pd.DataFrame(rows, columns=["text", "label", "lang", "source"])
    extra = extra[~extra["text"].isin(set(train["text"]) | set(exclude))].drop_duplicates("text")
    if extra.empty:
        return train
    extra = add_tokens(extra.reset_index(drop=True))
    return pd.concat([train, extra[train.columns]], ignore_index=True)


def harden(params: Params, mlflow=None) -> dict:
    from sora.training.modules import ClassifierModule
    from sora.training.trainer import classifier_state, load_checkpoint, seed_and_threads

    h = params.harden
    seed_and_threads(params.trainer)
    require(FINETUNED)
    splits = load_splits("train", "val", "test")
    vocab = load_vocab()
    finetuned = load_checkpoint(FINETUNED)  # once: weights, hparams and optimizer state
    state, hp = classifier_state(finetuned)
    module = ClassifierModule(
        len(vocab),
        vocab.pad_id,
        params.model,
        num_classes=hp["num_classes"],
        lr=h.lr,
        weight_decay=params.finetune.weight_decay,
        adv_method=h.method,
        adv_epsilon=h.epsilon,
        adv_steps=h.steps,
        adv_step_size=h.step_size,
        token_dropout=params.finetune.token_dropout,
        unk_id=vocab.unk_id,
        adv_token_budget=h.token_budget,
    )
    module.model.load_state_dict(state)
    if h.continue_optimizer:  # finetune's Adam moments: a fresh Adam knocks the converged model off (warm_start)
        module.warm_optimizer_state = finetuned["optimizer_states"][0]
    train = augment_with_attacks(
        splits["train"],
        h.noise_augment,
        params.evaluate.attack_budget,
        params.evaluate.attack_seed + AUGMENT_SEED_OFFSET,
        exclude=set(splits["val"]["text"]) | set(splits["test"]["text"]),
    )
    metrics = fit_classifier(
        params,
        "harden",
        module,
        vocab,
        train,
        splits["val"],
        splits["test"],
        h.max_epochs,
        None,
        [VOCAB, PROCESSED, FINETUNED],
        mlflow,
        h.val_checks_per_epoch,
    )
    return report("harden", metrics, label=f" ({h.method})")


def run(params: Params) -> None:
    with maybe_stage_run(
        "harden",
        params,
        ("model", "trainer", "harden"),
        inputs=["data/processed", "data/vocab.json", "models/finetune"],
    ) as mlflow:
        log_final(mlflow, harden(params, mlflow))


if __name__ == "__main__":
    main(run)

"""Fit a classifier resumably and score its best checkpoint: what finetune and harden share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sora.config import MISSING_LABEL, Params
from sora.errors import DataError
from sora.evaluation.baseline import baseline_gap
from sora.training.data import TextDataModule
from sora.training.fit import ResumableFit, fit_resumable
from sora.training.trainer import load_checkpoint


def initialise(module, params: Params, vocab, encoder: Path | None, train: pd.DataFrame, val: pd.DataFrame) -> dict:
    """What finetune and distill start from: the pretrained encoder (when `encoder` is given) and, with a wide
    part, the logistic regression on its n-gram features fitted on train with C picked on val. Returns the
    wide fit's {C, val_acc} (empty without a wide part)."""
    import torch

    from sora.training.wide import fit_wide

    if encoder is not None:
        state = torch.load(encoder, map_location="cpu", weights_only=True)
        # The wide part is beside the encoder, so its size may differ (distill's network has none).
        shape = lambda model_params: {k: v for k, v in model_params.items() if k != "wide_buckets"}
        if state["vocab_size"] != len(vocab) or shape(state["model_params"]) != shape(params.model.model_dump()):
            raise DataError(f"{encoder} was pretrained with another vocabulary or model shape: rerun pretrain")
        module.load_encoder_state(state["state_dict"])
    if not params.model.wide_buckets:
        return {}
    from sora.models.classifier import MAX_CHAR_GRAMS

    table = vocab.char_ngram_table(params.model.wide_buckets, MAX_CHAR_GRAMS)
    module.model.set_char_ngrams(torch.tensor(table, dtype=torch.long))
    max_len = params.model.max_len
    ids = {
        name: [vocab.encode(list(t), max_len) for t in frame["tokens"]]
        for name, frame in (("train", train), ("val", val))
    }
    return fit_wide(
        module.model, ids["train"], train["label"].to_numpy(), ids["val"], val["label"].to_numpy(),
        params.finetune.wide_Cs, jobs=params.trainer.threads,
    )  # fmt: skip


def fit_and_score(
    params: Params,
    module,
    vocab,
    splits: dict[str, pd.DataFrame],
    max_epochs: int,
    patience: int | None,
    work: ResumableFit,
    fp: str,
    out: Path,
    plots: Path,
    baseline: dict | None,
    loggers: list,
    val_checks_per_epoch: int = 1,
) -> tuple[dict | None, float]:
    """Fit on splits['train'] (early stopping on val_score: the primary task's macro-F1, averaged with the other
    tasks' accuracy when there are several), copy best/last checkpoints to
    `out` and the curves to `plots`, and return (nested val/test metrics of the best checkpoint beside the
    baseline, wall seconds). The metrics are None off global rank zero. With other tasks' heads, the splits
    may hold rows labeled for those tasks only (primary label -1)."""
    t = params.trainer
    data = TextDataModule(
        splits["train"],
        splits["val"],
        splits["test"],
        vocab=vocab,
        max_len=params.model.max_len,
        batch_size=t.batch_size,
        num_workers=t.num_workers,
        mode="classify",
        seed=t.seed,
        task_columns=list(module.hparams.get("task_classes", {})),
    )
    trainer, seconds = fit_resumable(
        module, data, t, max_epochs, work, fp, "val_score", "max", patience, loggers, val_checks_per_epoch
    )
    if not trainer.is_global_zero:
        return None, seconds
    names = {t.column: name for name, t in params.tasks.items()}  # reported by name, as `baseline` does
    metrics = score_checkpoint(work.dir / "best.ckpt", {"val": splits["val"], "test": splits["test"]}, vocab, names)
    if baseline:
        metrics["test_minus_baseline"] = baseline_gap(metrics["test"], baseline["test"])
    metrics["train_examples"] = len(splits["train"])
    best = load_checkpoint(work.dir / "best.ckpt")  # read once, for its epoch and its learned objective
    metrics["epochs"] = {"run": int(trainer.current_epoch), "to_best": int(best["epoch"]) + 1}
    module.load_objective_state(best["state_dict"])
    # Each task's learned uncertainty in the best checkpoint (a large one pulls the shared encoder less).
    if sigmas := module.objective.sigmas():
        metrics["task_sigma"] = {names.get(term, term): round(v, 5) for term, v in sigmas.items()}
    work.finish(out, plots)
    return metrics, seconds


def score_checkpoint(
    ckpt: Path, splits: dict[str, pd.DataFrame], vocab, names: dict[str, str] | None = None
) -> dict[str, dict]:
    """{split: {all|zh|en: {acc, f1}}} of a classifier checkpoint's primary task, scored on one process (under
    DDP the distributed sampler pads the last batches with repeats, which would skew trainer.validate's
    numbers); with other tasks' heads, also {split: {tasks: {name: {all|zh|en: {acc, f1, n}}}}} over the rows
    labeled for each (`names`: label column -> task name, by default the column). A frame with an `offset`
    column (another model's logits) is scored on network + offset, as it trained."""
    from sora.evaluation.report import clean_metrics, task_scores
    from sora.inference import Predictor
    from sora.training.trainer import load_classifier

    model, hp = load_classifier(ckpt)
    predictor = Predictor(model, vocab, hp["model_params"]["max_len"])
    columns = list(hp.get("task_classes", {}))
    out: dict[str, dict] = {}
    for split, frame in splits.items():
        ids = predictor.encode_tokens(frame["tokens"])
        offsets = np.stack(frame["offset"].to_numpy()) if "offset" in frame else None
        probs = predictor.predict_tasks_ids(ids, offsets, tasks=bool(columns))
        labeled = (frame["label"] != MISSING_LABEL).to_numpy()
        scores = clean_metrics(probs["primary"][labeled], frame["label"].to_numpy()[labeled],
                               frame["lang"].to_numpy()[labeled])  # fmt: skip
        out[split] = {lang: {m: by_lang[m] for m in ("acc", "f1")} for lang, by_lang in scores.items()}
        if columns:
            out[split]["tasks"] = task_scores(probs, frame, {c: (names or {}).get(c, c) for c in columns})
    return out

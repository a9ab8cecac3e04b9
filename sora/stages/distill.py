"""distill: the model that is pruned and registered, wide and deep. Its n-gram half comes from `baseline` (the
tuned classical model, plus sentiment-lexicon features where val chose them); its network learns the residual:
its logits are added to the n-gram model's, which on the train texts are out-of-fold. The network learns the
probabilities of a teacher ensemble (hardened Transformer + the n-gram model, mixed with the weight best on val)
on the train texts and on unlabeled pool texts, with harden's embedding-space adversary if it has one
-> models/distill/{best,last}.ckpt + models/distill/ngram (the whole model), metrics/distill.json (teacher,
student, its network alone, and the hardened model it replaces, on val and test), plots/distill/ (curves)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from scipy.special import softmax

from sora.config import MISSING_LABEL
from sora.data.preprocess import check_no_leak
from sora.data.tasks import labeled_splits
from sora.data.vocab import Vocab
from sora.evaluation.report import clean_metrics
from sora.inference import Predictor
from sora.io import read_json, write_json
from sora.models.ngram import NgramModel
from sora.pipeline.entry import StageContext, read_frames, require, stage_main
from sora.pipeline.spec import fingerprint
from sora.training.classify import fit_and_score, initialise, score_checkpoint
from sora.training.distill import pick_weight, read_train_logits, transfer_set, unlabeled_part
from sora.training.fit import ResumableFit
from sora.training.modules import classifier_module
from sora.training.trainer import load_classifier, seed_and_threads


def accuracy(probs, frame: pd.DataFrame) -> dict:
    scores = clean_metrics(probs, frame["label"].to_numpy(), frame["lang"].to_numpy())
    return {lang: {m: s[m] for m in ("acc", "f1")} for lang, s in scores.items()}


def run(ctx: StageContext) -> None:
    params, args, d = ctx.params, ctx.args, ctx.params.distill
    seed_and_threads(params.trainer)
    hardened_ckpt = args.hardened / "best.ckpt"
    require(args.vocab, args.pool, hardened_ckpt, args.baseline, args.ngram, args.train_logits)
    vocab = Vocab.load(args.vocab)
    every_row = read_frames(args, "train", "val", "test")
    splits = labeled_splits(every_row)  # the primary task's rows
    pool = pd.read_parquet(args.pool, columns=["text", "tokens", "lang"])
    check_no_leak(pool["text"], str(args.pool), every_row["val"], every_row["test"])
    pool = unlabeled_part(pool, every_row["train"], d.max_pool_texts, params.trainer.seed)
    # With other tasks, the student has their heads too and learns every head's teacher on every text: train
    # texts labeled for other tasks only learn the primary task's teacher as pool texts do.
    others = [t.column for t in params.other_tasks.values()]
    multitask = bool(others)
    train = every_row["train"]
    other_only = train[train["label"] == MISSING_LABEL].reset_index(drop=True) if multitask else train.iloc[:0]

    ngram = NgramModel.load(args.ngram)
    frames = {"train": splits["train"], "val": splits["val"], "test": splits["test"], "pool": pool}
    if multitask:
        frames["other_only"] = other_only
    # The n-gram model's logits: out-of-fold on train (it has seen those texts), its own everywhere else. On val
    # and test every text gets them (the student is scored on every task's rows); the primary task's are a subset.
    held = {s: ngram.logits(every_row[s]["text"].tolist(), every_row[s]["lang"].tolist()) for s in ("val", "test")}
    offsets = {"train": read_train_logits(args.train_logits, splits["train"], str(args.train))}
    offsets |= {s: logits[(every_row[s]["label"] != MISSING_LABEL).to_numpy()] for s, logits in held.items()}
    offsets |= {n: ngram.logits(f["text"].tolist(), f["lang"].tolist()) for n, f in frames.items() if n not in offsets}

    hardened, hp = load_classifier(hardened_ckpt)
    predictor = Predictor(hardened, vocab, hp["model_params"]["max_len"], params.evaluate.batch_size)

    task_teacher: dict[str, dict] = {}  # the other tasks' teacher: the hardened model's heads (no n-gram half)

    def members(names: list[str]) -> dict[str, tuple]:
        print(f"distill: the hardened model predicts {sum(len(frames[n]) for n in names)} texts", flush=True)
        out = {}
        for n in names:
            probs = predictor.predict_tasks_ids(predictor.encode_tokens(frames[n]["tokens"]), tasks=multitask)
            task_teacher[n] = {column: p for column, p in probs.items() if column != "primary"}
            out[n] = (probs["primary"], softmax(offsets[n], axis=1))
        return out

    scored = members(["val", "test"])
    w, _ = pick_weight(*scored["val"], splits["val"]["label"].to_numpy())
    # The train and pool texts need the hardened model's answers only if the teacher gives it a weight, or for
    # the other tasks.
    rest = [n for n in frames if n not in scored]
    scored |= members(rest) if w > 0 or multitask else {n: (None, softmax(offsets[n], axis=1)) for n in rest}
    teacher = {name: wide if deep is None else w * deep + (1 - w) * wide for name, (deep, wide) in scored.items()}
    print(f"distill: teacher = {w:.1f} x hardened + {1 - w:.1f} x n-gram model (weight picked on val)")

    # The network needs no n-gram tables of its own: the n-gram model is its wide half.
    params = params.model_copy(update={"model": params.model.model_copy(update={"wide_buckets": 0})})
    module = classifier_module(params, vocab, hp["num_classes"], params.finetune.lr, adversarial=True,
                               multitask=multitask)  # fmt: skip
    initialise(module, params, vocab, args.encoder / "encoder.pt", splits["train"], splits["val"])
    unlabeled = pd.concat([other_only, pool], ignore_index=True)
    stack = lambda parts: np.concatenate([parts[n] for n in ("other_only", "pool") if n in frames])
    student_splits = {
        "train": transfer_set(
            splits["train"],
            teacher["train"],
            unlabeled,
            stack(teacher),
            d.hard_weight,
            offsets["train"],
            stack(offsets),
            others,
            (task_teacher.get("train", {}), {c: stack({n: task_teacher[n][c] for n in frames}) for c in others}),
        ),  # fmt: skip
    }
    for s in ("val", "test"):  # scored on every task's rows: the primary task's on its own (score_checkpoint)
        rows, logits = (every_row[s], held[s]) if multitask else (splits[s], offsets[s])
        student_splits[s] = rows.assign(offset=list(logits))
    metrics, seconds = fit_and_score(
        params, module, vocab, student_splits, d.max_epochs, d.patience, ResumableFit(ctx.work_dir),
        fingerprint(params, ctx.spec), args.out, args.plots, read_json(args.baseline), ctx.lightning_loggers(),
    )  # fmt: skip
    if metrics is None:
        return
    metrics["teacher"] = {
        "weight_hardened": round(w, 3),
        **{split: accuracy(teacher[split], splits[split]) for split in ("val", "test")},
    }
    metrics["hardened"] = {split: accuracy(scored[split][0], splits[split]) for split in ("val", "test")}
    metrics["ngram_half"] = {split: accuracy(scored[split][1], splits[split]) for split in ("val", "test")}
    # What the network adds: the student without its n-gram half
    metrics["network_alone"] = score_checkpoint(args.out / "best.ckpt", {s: splits[s] for s in ("val", "test")}, vocab)
    metrics["transfer"] = {"labeled": len(splits["train"]), "other_tasks_only": len(other_only), "unlabeled": len(pool)}
    shutil.copytree(args.ngram, args.out / "ngram", dirs_exist_ok=True)
    write_json(args.metrics, metrics)
    ctx.log_metrics({**metrics, "train_seconds": round(seconds, 1)})
    test = metrics["test"]
    print(
        f"distill: student test zh {test['zh']['acc']} / en {test['en']['acc']}; teacher "
        f"{metrics['teacher']['test']['zh']['acc']} / {metrics['teacher']['test']['en']['acc']}; hardened "
        f"{metrics['hardened']['test']['zh']['acc']} / {metrics['hardened']['test']['en']['acc']}"
    )


if __name__ == "__main__":
    stage_main("distill", run)

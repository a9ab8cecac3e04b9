"""What we tried to beat the TF-IDF baseline: a "wide and deep" classifier that adds a bag of hashed n-grams
(the baseline's own features: word 1-2 grams, and Chinese character 1-3 grams) beside the Transformer's pooled
state, trained jointly, against the plain Transformer classifier, on the same split, with the same training loop
(finetune's params: epochs, lr, weight decay, token dropout, warmup-linear schedule; no pretraining, so the arms
differ only in the model). Prints test accuracy per language beside the baseline's. Needs `dvc repro vocab
baseline` first. Each arm takes 2-4 minutes on 2 CPU cores.

    python benchmarks/ablation_features.py [--arms transformer wide bag] [--seed 0] [--bag-lr 0.01]

The wide model is not in the pipeline: on the default split it gains ~1 point on zh and none on en over the
baseline (README "Where the numbers stand"), at twice the training time and 4x the parameters.
"""

from __future__ import annotations

import argparse
import math
import random
import time
import zlib
from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import nn

BUCKETS = 1 << 18  # hashed n-gram rows of the bag
BAG_DIM = 64


def hashed_ngrams(tokens: list[str]) -> list[int]:
    """Word unigrams and bigrams (lower-cased) and, for Chinese, character 1-3 grams over the whole text."""
    words = [t.lower() for t in tokens]
    grams = [f"w {w}" for w in words] + [f"w2 {a} {b}" for a, b in zip(words, words[1:])]
    text = "".join(words)
    if any("\u4e00" <= c <= "\u9fff" for c in text):
        grams += [f"c{n} {text[i : i + n]}" for n in (1, 2, 3) for i in range(len(text) - n + 1)]
    return [zlib.crc32(g.encode()) % BUCKETS for g in grams] or [0]


class WideAndDeep(nn.Module):
    """[mean-pooled Transformer state (optional) ; mean of hashed n-gram embeddings] -> linear head."""

    def __init__(self, transformer, num_classes: int, dropout: float):
        super().__init__()
        self.transformer = transformer  # a sora Classifier, or None for the bag alone
        self.bag = nn.EmbeddingBag(BUCKETS, BAG_DIM, mode="mean")
        nn.init.normal_(self.bag.weight, std=0.02)
        width = BAG_DIM + (transformer.encoder.d_model if transformer is not None else 0)
        self.drop, self.head = nn.Dropout(dropout), nn.Linear(width, num_classes)

    def forward(self, ids, grams, offsets):
        parts = [self.bag(grams, offsets)]
        if self.transformer is not None:
            h = self.transformer.encoder(ids)
            keep = ids.ne(self.transformer.encoder.pad_id).unsqueeze(-1).to(h.dtype)
            parts.insert(0, (h * keep).sum(1) / keep.sum(1).clamp(min=1.0))
        return self.head(self.drop(torch.cat(parts, -1)))


class TransformerOnly(nn.Module):
    """The plain classifier behind the (ids, grams, offsets) call used for every arm."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, ids, grams, offsets):
        return self.classifier(ids)


def encode(frame, vocab, max_len):
    tokens = [list(t) for t in frame["tokens"]]
    return {
        "ids": [vocab.encode(t, max_len) for t in tokens],
        "grams": [hashed_ngrams(t) for t in tokens],
        "label": frame["label"].astype(int).tolist(),
        "lang": frame["lang"].tolist(),
    }


def batches(data, batch_size, pad_id, rng=None):
    """Length-bucketed batches (as in training), shuffled when rng is given."""
    from sora.models.classifier import pad_ids

    order = list(range(len(data["ids"])))
    if rng:
        rng.shuffle(order)
    chunk = batch_size * 50
    groups = [sorted(order[s : s + chunk], key=lambda j: len(data["ids"][j])) for s in range(0, len(order), chunk)]
    cut = [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]
    if rng:
        rng.shuffle(cut)
    for rows in cut:
        grams = [data["grams"][j] for j in rows]
        yield (
            rows,
            pad_ids([data["ids"][j] for j in rows], pad_id),
            torch.tensor([g for gs in grams for g in gs]),
            torch.tensor([0, *accumulate(len(gs) for gs in grams)][:-1]),
            torch.tensor([data["label"][j] for j in rows]),
        )


def accuracy_per_language(model, data, pad_id) -> dict[str, float]:
    model.eval()
    right: dict[str, int] = {}
    seen: dict[str, int] = {}
    with torch.no_grad():
        for rows, ids, grams, offsets, labels in batches(data, 256, pad_id):
            for j, ok in zip(rows, model(ids, grams, offsets).argmax(-1).eq(labels).tolist()):
                lang = data["lang"][j]
                right[lang], seen[lang] = right.get(lang, 0) + ok, seen.get(lang, 0) + 1
    model.train()
    return {lang: round(right[lang] / seen[lang], 4) for lang in sorted(seen)}


def train_arm(arm: str, seed: int, bag_lr: float) -> dict:
    from sora.config import load_params
    from sora.data.tasks import labeled_splits
    from sora.data.vocab import Vocab
    from sora.models.classifier import build_classifier
    from sora.pipeline.entry import declared_args, read_frames

    params = load_params()
    p, batch_size = params.finetune, params.trainer.batch_size
    torch.manual_seed(seed)
    torch.set_num_threads(params.trainer.threads or torch.get_num_threads())
    rng = random.Random(seed)
    args = declared_args("finetune")  # the files the finetune stage reads
    vocab = Vocab.load(args.vocab)
    splits = {
        name: encode(frame, vocab, params.model.max_len)
        for name, frame in labeled_splits(read_frames(args, "train", "val", "test")).items()
    }
    transformer = build_classifier(len(vocab), vocab.pad_id, params.model, 2) if arm != "bag" else None
    model = TransformerOnly(transformer) if arm == "transformer" else WideAndDeep(transformer, 2, params.model.dropout)
    # finetune's optimiser groups: decay on matrices only; the bag gets its own (higher) rate, as fastText does
    decay, no_decay, bag = [], [], []
    for name, w in model.named_parameters():
        group = (
            bag
            if name.startswith("bag.")
            else decay
            if w.ndim >= 2 and not name.endswith(("tok.weight", "pos.weight"))
            else no_decay
        )
        group.append(w)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": p.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
            {"params": bag, "weight_decay": 0.0, "lr": bag_lr},
        ],
        lr=p.lr,
    )
    total = p.max_epochs * math.ceil(len(splits["train"]["ids"]) / batch_size)
    warmup = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    start = time.perf_counter()
    for _ in range(p.max_epochs):
        for _, ids, grams, offsets, labels in batches(splits["train"], batch_size, vocab.pad_id, rng):
            hide = torch.rand(ids.shape) < p.token_dropout  # finetune's word dropout, on both inputs
            hide[:, 0] = False
            ids = ids.masked_fill(hide & ids.ne(vocab.pad_id), vocab.unk_id)
            grams = grams.masked_fill(torch.rand(grams.shape) < p.token_dropout, 0)
            loss = F.cross_entropy(model(ids, grams, offsets), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    test, val = (accuracy_per_language(model, splits[s], vocab.pad_id) for s in ("test", "val"))
    return {
        "test_acc_zh": test["zh"],
        "test_acc_en": test["en"],
        "val_acc_zh": val["zh"],
        "val_acc_en": val["en"],
        "train_seconds": round(seconds, 1),
        "parameters": sum(w.numel() for w in model.parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["transformer", "wide"], choices=["transformer", "wide", "bag"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bag-lr", type=float, default=0.01, help="learning rate of the n-gram bag")
    args = parser.parse_args()
    from sora.io import read_json
    from sora.pipeline.entry import declared_args

    baseline = read_json(declared_args("finetune").baseline)
    results = {arm: train_arm(arm, args.seed, args.bag_lr) for arm in args.arms}
    results["baseline"] = {f"test_acc_{lang}": baseline["test"][lang]["acc"] for lang in ("zh", "en")}
    keys = ["test_acc_zh", "test_acc_en", "val_acc_zh", "val_acc_en", "train_seconds", "parameters"]
    print(f"{'metric':14s}" + "".join(f"{arm:>13s}" for arm in results))
    for key in keys:
        print(f"{key:14s}" + "".join(f"{results[arm].get(key, float('nan')):>13}" for arm in results))


if __name__ == "__main__":
    main()

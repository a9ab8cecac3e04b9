"""Datasets, collate functions and the LightningDataModule shared by pretraining and fine-tuning."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from sora.config import Params
from sora.data.vocab import Vocab
from sora.models.autoencoder import corrupt
from sora.models.classifier import pad_ids

LANG_IDS = {"zh": 0, "en": 1}


class EncodedDataset(Dataset):
    """Rows of a DataFrame (tokens, [label], [lang], [soft], [offset], [task columns]) encoded once up front.
    Missing label/lang -> -1. `soft`: a teacher's class probabilities per row, the target a distilled student
    learns from. `offset`: another model's logits per row, added to the network's (it then learns the
    residual). `task_columns`: the other tasks' label columns, as one `tasks` list per row (-1 = no label)."""

    def __init__(self, frame: pd.DataFrame, vocab: Vocab, max_len: int, task_columns: Sequence[str] = ()):
        self.ids = [vocab.encode(list(toks), max_len) for toks in frame["tokens"]]
        n = len(frame)
        self.labels = frame["label"].astype(int).tolist() if "label" in frame else [-1] * n
        self.langs = [LANG_IDS.get(x, -1) for x in frame["lang"]] if "lang" in frame else [-1] * n
        self.soft = [list(map(float, p)) for p in frame["soft"]] if "soft" in frame else None
        self.offset = [list(map(float, z)) for z in frame["offset"]] if "offset" in frame else None
        self.tasks = frame[list(task_columns)].astype(int).to_numpy().tolist() if task_columns else None
        # A distilled student's soft targets for the other tasks (`soft_<column>`), where the frame has them
        self.task_soft = {
            c: [list(map(float, p)) for p in frame[f"soft_{c}"]] for c in task_columns if f"soft_{c}" in frame
        }

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {"ids": self.ids[i], "label": self.labels[i], "lang_id": self.langs[i]}
        if self.soft is not None:
            item["soft"] = self.soft[i]
        if self.offset is not None:
            item["offset"] = self.offset[i]
        if self.tasks is not None:
            item["tasks"] = self.tasks[i]
        if self.task_soft:
            item["task_soft"] = {c: soft[i] for c, soft in self.task_soft.items()}
        return item


def collate_batch(items: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    batch = {
        "ids": pad_ids([it["ids"] for it in items], pad_id),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "lang_id": torch.tensor([it["lang_id"] for it in items], dtype=torch.long),
    }
    if "soft" in items[0]:
        batch["soft"] = torch.tensor([it["soft"] for it in items], dtype=torch.float32)
    if "offset" in items[0]:
        batch["offset"] = torch.tensor([it["offset"] for it in items], dtype=torch.float32)
    if "tasks" in items[0]:
        batch["tasks"] = torch.tensor([it["tasks"] for it in items], dtype=torch.long)
    if "task_soft" in items[0]:
        batch["task_soft"] = {
            c: torch.tensor([it["task_soft"][c] for it in items], dtype=torch.float32) for c in items[0]["task_soft"]
        }
    return batch


class DenoisingDataset(Dataset):
    """(noisy, target) pairs. The noise for item i depends only on (seed, epoch, i), so it changes every
    epoch but is reproducible whatever the worker count or shuffling; call set_epoch() each epoch."""

    def __init__(
        self,
        frame: pd.DataFrame,
        vocab: Vocab,
        max_len: int,
        mask_rate: float = 0.15,
        delete_rate: float = 0.05,
        span_rate: float = 0.05,
        max_span: int = 3,
        seed: int = 0,
    ):
        encoded = (vocab.encode(list(toks), max_len) for toks in frame["tokens"])
        self.ids = [ids for ids in encoded if len(ids) >= 2]  # CLS alone has nothing to reconstruct
        self.noise = dict(
            mask_rate=mask_rate, delete_rate=delete_rate, span_rate=span_rate, max_span=max_span, mask_id=vocab.mask_id
        )
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], list[int]]:
        rng = random.Random(f"{self.seed}-{self.epoch}-{i}")  # str seeds are stable across processes
        target = self.ids[i]
        return corrupt(target, rng=rng, **self.noise), target


def collate_denoise(items: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    return {"noisy": pad_ids([n for n, _ in items], pad_id), "target": pad_ids([t for _, t in items], pad_id)}


class _Collate:
    """Picklable collate (a lambda would break ddp_spawn and worker processes)."""

    def __init__(self, fn, pad_id: int):
        self.fn, self.pad_id = fn, pad_id

    def __call__(self, items):
        return self.fn(items, self.pad_id)


class LengthBucketedBatches(Dataset):
    """Whole batches of similar-length items (shuffle, cut into chunks of `bucket_factor` batches, sort each
    chunk by length, slice into batches). Padding per batch drops to a few tokens, which on CPU roughly
    halves step time for texts whose lengths vary as much as reviews do. Each item is a batch, so
    DataLoader(batch_size=None, shuffle=True) reorders batches every epoch and DDP's DistributedSampler
    splits whole batches across ranks."""

    def __init__(
        self, dataset: Dataset, lengths: list[int], batch_size: int, collate, seed: int = 0, bucket_factor: int = 50
    ):
        self.dataset, self.collate = dataset, collate
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
        chunk = batch_size * bucket_factor
        self.batches: list[list[int]] = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start : start + chunk], key=lengths.__getitem__)
            self.batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.collate([self.dataset[j] for j in self.batches[i]])


class TextDataModule(L.LightningDataModule):
    """mode='classify' -> batches {ids, label, lang_id}; mode='denoise' -> batches {noisy, target}.
    Loaders use plain shuffle=True for training: under DDP Lightning swaps in a DistributedSampler."""

    def __init__(
        self,
        train: pd.DataFrame | None,
        val: pd.DataFrame | None = None,
        test: pd.DataFrame | None = None,
        *,
        vocab: Vocab,
        max_len: int,
        batch_size: int,
        num_workers: int = 0,
        mode: str = "classify",
        mask_rate: float = 0.15,
        delete_rate: float = 0.05,
        span_rate: float = 0.05,
        max_span: int = 3,
        seed: int = 0,
        task_columns: Sequence[str] = (),
    ):
        super().__init__()
        if mode not in ("classify", "denoise"):
            raise ValueError(f"mode must be 'classify' or 'denoise', got {mode!r}")
        self.frames = {"train": train, "val": val, "test": test}
        self.vocab, self.max_len, self.batch_size, self.num_workers = vocab, max_len, batch_size, num_workers
        self.mode, self.seed, self.task_columns = mode, seed, tuple(task_columns)
        self.noise = dict(mask_rate=mask_rate, delete_rate=delete_rate, span_rate=span_rate, max_span=max_span)
        self.datasets: dict[str, Dataset] = {}

    def _dataset(self, split: str) -> Dataset:
        frame = self.frames[split]
        if frame is None:
            raise ValueError(f"no {split} DataFrame was given to TextDataModule")
        if split not in self.datasets:
            if self.mode == "classify":
                self.datasets[split] = EncodedDataset(frame, self.vocab, self.max_len, self.task_columns)
            else:
                # Validation noise is fixed (epoch stays 0) so val_loss is comparable across epochs.
                self.datasets[split] = DenoisingDataset(frame, self.vocab, self.max_len, seed=self.seed, **self.noise)
        return self.datasets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        fn = _Collate(collate_batch if self.mode == "classify" else collate_denoise, self.vocab.pad_id)
        dataset = self._dataset(split)
        # Every split is length-bucketed (evaluation order does not matter, and it is 2x cheaper too).
        lengths = [len(x) for x in dataset.ids]
        batches = LengthBucketedBatches(dataset, lengths, self.batch_size, fn, seed=self.seed)
        return DataLoader(batches, batch_size=None, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        # No val frame -> no validation loop (Lightning skips an empty list).
        return [] if self.frames["val"] is None else self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def pretrain_corpus(pool: pd.DataFrame, max_texts: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, val) for the autoencoder: a seeded sample of at most max_texts pool texts, and 5 % of the pool
    held out so the reconstruction loss is measured on texts it did not learn from."""
    texts = pool[["tokens", "lang"]].sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_val = max(1, len(texts) // 20)
    return texts.iloc[n_val:].head(max_texts), texts.iloc[:n_val]


def denoising_data(params: Params, vocab: Vocab, texts: pd.DataFrame, val: pd.DataFrame | None) -> TextDataModule:
    """Batches of (noisy, clean) token sequences for the autoencoder, with the noise `pretrain` sets."""
    p, t = params.pretrain, params.trainer
    return TextDataModule(
        texts,
        val,
        vocab=vocab,
        max_len=min(p.max_len, params.model.max_len),
        batch_size=t.batch_size,
        num_workers=t.num_workers,
        mode="denoise",
        mask_rate=p.mask_rate,
        delete_rate=p.delete_rate,
        span_rate=p.span_rate,
        max_span=p.max_span,
        seed=t.seed,
    )

"""Strings in, probabilities out: the classifier + vocabulary + tokeniser as one object. Used by evaluation,
the attack suite, the MLflow pyfunc model and `sora predict`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from sora.data.text import detect_lang, normalise, parse_cached, tokenise_many, tokens_of
from sora.data.vocab import Vocab
from sora.models.classifier import pad_ids

THREADS_ENV = "SORA_THREADS"


def inference_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count for predicting: `threads`, else $SORA_THREADS, else 1; returns it.

    One thread by default because a served request is one short text: its matrices are too small to split
    well, and each extra thread has to be scheduled for every operator. When another process is busy on the
    cores those threads wait on each other: one text went from 3.8 ms to 57-216 ms with torch's default
    (one thread per core) on a 2-core machine (benchmarks/serving_latency.py measures it). Large batches
    (`sora predict --input` with many texts) may gain from more threads: `--threads` or SORA_THREADS."""
    source = "threads"
    if threads is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        source = f"{THREADS_ENV}={raw}"
        try:
            threads = int(raw) if raw else 1
        except ValueError:
            threads = 0
    if threads < 1:
        raise ValueError(f"{source}: the number of threads must be a whole number >= 1")
    torch.set_num_threads(threads)
    return threads


def empty_text_rows(texts: Sequence) -> list[int]:
    """Positions (from 0) of the texts with nothing to classify: None, a missing value (NaN, pd.NA), or only
    whitespace. The model would still answer for them (the [CLS] token alone gets a label), so `sora predict`
    and the served model both refuse them; other values are classified as their string form."""
    import pandas as pd

    return [
        i
        for i, t in enumerate(texts)
        if (not t.strip() if isinstance(t, str) else pd.api.types.is_scalar(t) and bool(pd.isna(t)))
    ]


class Prepared(NamedTuple):
    langs: list[str | None]
    ids: list[list[int]]
    truncated: list[bool]
    offsets: np.ndarray | None


class Predictor:
    """`cache_tokens=True` tokenises through the process-wide parse cache (`sora.data.text.parse_cached`) that
    the attack suite also uses: it asks both evaluated models about the same perturbed texts, and jieba is most
    of its cost. Off by default, so a long-running server does not hold on to the texts it has seen."""

    def __init__(
        self,
        model: torch.nn.Module,
        vocab: Vocab,
        max_len: int,
        batch_size: int = 256,
        cache_tokens: bool = False,
        max_batch_tokens: int = 1024,
        class_names: Sequence[str] | None = None,
        ngram=None,
        tasks: dict[str, dict] | None = None,
    ):
        self.model = model.eval()
        # The other tasks' heads: label column -> {"name": task name, "classes": class names}, as the bundle's
        # config holds them; predict_frame answers each beside the primary task.
        self.tasks = dict(tasks or {})
        # The n-gram half of a wide-and-deep bundle (sora.models.ngram.NgramModel): its logits, computed from
        # the normalised text, are added to the network's.
        self.ngram = ngram
        self.class_names = list(class_names) if class_names else None
        self.vocab, self.max_len, self.batch_size, self.cache_tokens = vocab, max_len, batch_size, cache_tokens
        # Padded tokens per forward pass. Small batches keep activations in cache and off fresh pages: at 8,192
        # tokens a (tokens x 384) fp32 buffer is 12 MB and every layer paid page faults on it (one thread, 256
        # test texts: fp32 1,610 -> 2,680 texts/s, int8 2,830 -> 3,950 going from 8,192 to 1,024 tokens).
        self.max_batch_tokens = max_batch_tokens

    def encode(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[list[int]]:
        """Normalise, detect language where not given (unknown scripts are tokenised as English: the model
        still answers, `sora predict` warns), tokenise per language, map to ids."""
        return self.prepare(texts, langs, ngram=False).ids

    def encode_tokens(self, token_lists) -> list[list[int]]:
        """Ids of texts tokenised already (a split's `tokens` column), cut to the model's window."""
        return [self.vocab.encode(list(tokens), self.max_len) for tokens in token_lists]

    def prepare(self, texts: Sequence[str], langs: Sequence[str | None] | None = None, ngram: bool = True) -> Prepared:
        """Everything predict_ids needs for `texts`, and what the output table reports: languages (detected
        where not given; None = neither Chinese nor English), ids, truncated (longer than the model reads:
        max_len ids, [CLS] included) and the n-gram half's logits (None without one, or with `ngram` False)."""
        # Only the first max_len tokens are used: cut very long texts before the (costly) normaliser and tokeniser.
        char_limit = self.max_len * 16
        norm = [normalise(t[: char_limit * 2])[:char_limit] for t in texts]
        langs = list(langs) if langs is not None else [detect_lang(t) for t in norm]
        ids: list[list[int]] = [[] for _ in norm]
        truncated = [False] * len(norm)
        tokenise_as = [lang if lang in ("zh", "en") else "en" for lang in langs]
        for lang in ("zh", "en"):
            idx = [i for i, lg in enumerate(tokenise_as) if lg == lang]
            texts_of_lang = [norm[i] for i in idx]
            tokens = (
                (tokens_of(parse_cached(t, lang)) for t in texts_of_lang)
                if self.cache_tokens
                else tokenise_many(texts_of_lang, lang)
            )
            for i, toks in zip(idx, tokens):
                # One id over the window tells a cut text from one that fits exactly.
                longer = self.vocab.encode(list(toks), self.max_len + 1)
                ids[i], truncated[i] = longer[: self.max_len], len(longer) > self.max_len
        offsets = self.ngram.logits(norm, tokenise_as) if self.ngram is not None and ngram else None
        return Prepared(langs, ids, truncated, offsets)

    def predict_ids(self, ids: list[list[int]], offsets: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities of encoded texts; `offsets` (n, classes): logits added to the network's (the
        n-gram model's, from `prepare()`)."""
        return self.predict_tasks_ids(ids, offsets, tasks=False)["primary"]

    @torch.inference_mode()
    def predict_tasks_ids(
        self, ids: list[list[int]], offsets: np.ndarray | None = None, tasks: bool = True
    ) -> dict[str, np.ndarray]:
        """Every task's class probabilities from one pass per batch: the primary task's under `primary`
        (with `offsets` added to its logits), each other task's under its label column."""
        out: dict[str, list[np.ndarray]] = {}
        # Sort by length so each batch pads little; restore the order afterwards.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        done = 0
        for chunk in self._batches([ids[i] for i in order]):
            batch = pad_ids(chunk, self.vocab.pad_id)
            logits = self.model.all_tasks(batch) if tasks else {"primary": self.model(batch)}
            if offsets is not None:
                rows = order[done : done + len(chunk)]
                logits["primary"] = logits["primary"] + torch.as_tensor(offsets[rows], dtype=logits["primary"].dtype)
            done += len(chunk)
            for name, z in logits.items():
                out.setdefault(name, []).append(torch.softmax(z, dim=-1).float().numpy())
        if not out:  # no texts: empty answers of each head's width
            heads = {"primary": self.model.head, **(dict(getattr(self.model, "task_heads", {})) if tasks else {})}
            return {name: np.zeros((0, head.out_features), dtype=np.float32) for name, head in heads.items()}
        result = {}
        for name, parts in out.items():
            probs = np.concatenate(parts)
            result[name] = np.empty_like(probs)
            result[name][order] = probs
        return result

    def _batches(self, sorted_ids: list[list[int]]):
        """Consecutive batches of length-sorted sequences, each at most batch_size texts and max_batch_tokens
        padded tokens (a longer text goes alone): a few long texts never pad a whole batch of short ones."""
        budget = self.max_batch_tokens
        start = 0
        while start < len(sorted_ids):
            end = start + 1
            while (
                end < len(sorted_ids)
                and end - start < self.batch_size
                and (end - start + 1) * max(len(sorted_ids[end]), 1) <= budget
            ):
                end += 1
            yield sorted_ids[start:end]
            start = end

    def predict_proba(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        prepared = self.prepare(texts, langs)
        return self.predict_ids(prepared.ids, prepared.offsets)

    def predict_task_proba(self, column: str, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities of the head of the task on label column `column` (no n-gram half: that is the
        primary task's)."""
        ids = self.prepare(texts, ngram=False).ids
        return self.predict_tasks_ids(ids)[column]

    def predict_frame(self, texts: Sequence[str]):
        """What `sora predict` and the MLflow pyfunc return: label (0, 1, ...), label_name and prob_<name> (the
        class names the bundle carries, else the numbers), probability, the same for every other task prefixed
        with its name (topic_label, topic_label_name, topic_probability, topic_prob_<name>), detected lang
        ('unknown' for neither Chinese nor English) and truncated (the text is longer than the model reads, so
        only its beginning was classified) per text, as a DataFrame."""
        import pandas as pd

        langs, ids, truncated, offsets = self.prepare(texts)  # the languages serve the tokeniser and the table
        every = self.predict_tasks_ids(ids, offsets, tasks=bool(self.tasks))  # one encoder pass for all tasks
        columns: dict[str, object] = {}  # built as one frame: adding columns one by one costs more than the model
        answers = [("", every["primary"], self.class_names)]
        answers += [(f"{task['name']}_", every[column], task["classes"]) for column, task in self.tasks.items()]
        for prefix, probs, names in answers:
            names = names or [str(k) for k in range(probs.shape[1])]
            label = probs.argmax(1).astype("int64")
            columns[f"{prefix}label"] = label
            columns[f"{prefix}label_name"] = [names[k] for k in label]
            columns[f"{prefix}probability"] = probs.max(1).astype("float64")
            for k in range(probs.shape[1]):
                columns[f"{prefix}prob_{names[k]}"] = probs[:, k].astype("float64")
        columns["lang"] = [lang or "unknown" for lang in langs]
        columns["truncated"] = truncated
        return pd.DataFrame(columns)


# A model bundle is a folder: weights.pt (sparse-aware state dict, loads with weights_only=True), config.json
# (shape, classes, whether to quantise at load), vocab.json, and for a wide-and-deep model the n-gram half
# (ngram.json + ngram.npz, plain arrays). It is what `prune` writes, what the MLflow pyfunc carries as its
# artifact, and what `sora predict --model DIR` reads.
BUNDLE_FILES = ("weights.pt", "config.json", "vocab.json")


def save_bundle(directory, model: torch.nn.Module, vocab: Vocab, config: dict, ngram=None) -> None:
    """`ngram`: the n-gram half of a wide-and-deep model (NgramModel), saved beside the weights."""
    import json
    from pathlib import Path

    from sora.compression import save_sparse_state_dict
    from sora.io import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_sparse_state_dict(model, directory / "weights.pt")
    if ngram is not None:
        ngram.save(directory)
    vocab.save(directory / "vocab.json")
    with atomic_path(directory / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))


def load_bundle(directory, batch_size: int = 256, quantize: bool | None = None) -> Predictor:
    """Predictor from a bundle; `quantize` overrides the bundle's own setting (None = as saved)."""
    import json
    from pathlib import Path

    from sora.compression import load_sparse_state_dict, quantize_dynamic_int8
    from sora.models.classifier import build_classifier
    from sora.models.ngram import FILES as NGRAM_FILES
    from sora.models.ngram import NgramModel

    directory = Path(directory)
    for name in BUNDLE_FILES:
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a Sora model bundle: {name} is missing")
    config = json.loads((directory / "config.json").read_text())
    tasks = config.get("tasks", {})
    model = build_classifier(config["vocab_size"], config["pad_id"], config["model_params"], config["num_classes"],
                             {column: len(task["classes"]) for column, task in tasks.items()})  # fmt: skip
    model.load_state_dict(load_sparse_state_dict(directory / "weights.pt"))
    model.eval()
    if (config.get("quantize") == "int8") if quantize is None else quantize:
        model = quantize_dynamic_int8(model, quantize_embeddings=True)
    max_len = config["model_params"]["max_len"]
    vocab = Vocab.load(directory / "vocab.json")
    ngram = NgramModel.load(directory) if (directory / NGRAM_FILES[0]).is_file() else None
    return Predictor(model, vocab, max_len, batch_size, class_names=config.get("class_names"), ngram=ngram, tasks=tasks)

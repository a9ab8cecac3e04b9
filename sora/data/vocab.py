"""Token vocabulary built from the unlabeled pool. An out-of-vocabulary word still reaches the model as meaningful
pieces instead of one <unk>: a Chinese word as its characters; an English word as the word one typo away if
there is one, else as hashed character trigrams (fastText's subword trick) in a fixed set of bucket tokens."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sora.data.text import is_han
from sora.io import read_json, write_json

PAD, UNK, CLS, MASK = "<pad>", "<unk>", "<cls>", "<mask>"


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _edits1(word: str) -> set[str]:
    """Every string one edit away (delete, adjacent swap, replace, insert): Norvig's spelling corrector."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
    inserts = {a + c + b for a, b in splits for c in _LETTERS}
    return deletes | swaps | replaces | inserts


def trigrams(word: str) -> list[str]:
    """Character trigrams with word boundaries: 'cat' -> ['<ca', 'cat', 'at>']."""
    marked = f"<{word}>"
    return [marked[i : i + 3] for i in range(len(marked) - 2)]


@dataclass
class Vocab:
    itos: list[str]
    specials: list[str]
    hash_buckets: int = 0  # the last hash_buckets ids stand for hashed character trigrams of unknown words

    def __post_init__(self) -> None:
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self._corrections: dict[str, int | None] = {}
        self.pad_id, self.unk_id = self.stoi[PAD], self.stoi[UNK]
        self.cls_id, self.mask_id = self.stoi[CLS], self.stoi[MASK]

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def ids(self, tokens: Iterable[str]) -> list[int]:
        """Token ids with character fallback for unknown CJK words."""
        out: list[int] = []
        for tok in tokens:
            i = self.stoi.get(tok)
            if i is not None:
                out.append(i)
            elif len(tok) > 1 and any(is_han(c) for c in tok):
                out.extend(self.stoi.get(c, self.unk_id) for c in tok)
            else:
                corrected = self.correct(tok)
                if corrected is not None:
                    out.append(corrected)
                elif self.hash_buckets and tok.isascii() and tok.isalpha():
                    out.extend(self.bucket(g) for g in trigrams(tok.lower()))
                else:
                    out.append(self.unk_id)
        return out

    def bucket(self, gram: str) -> int:
        # crc32, not hash(): Python salts str hashes per process, and ids must be the same in every run.
        return len(self.itos) - self.hash_buckets + zlib.crc32(gram.encode()) % self.hash_buckets

    def correct(self, token: str) -> int | None:
        """Id of the most frequent vocabulary word one edit away from an unknown lower-case word (>= 4
        letters), else None. Typos (real ones and adversarial ones) then reach the model as the word they
        spoil instead of <unk>. Ids are in frequency order, so the smallest id is the most frequent."""
        if len(token) < 4 or not token.isascii() or not token.isalpha():
            return None
        if token not in self._corrections:
            found = [self.stoi[w] for w in _edits1(token) if w in self.stoi]
            self._corrections[token] = min(found) if found else None
        return self._corrections[token]

    def encode(self, tokens: Sequence[str], max_len: int) -> list[int]:
        """[CLS] + ids, truncated to max_len (no padding; the collate function pads)."""
        return [self.cls_id] + self.ids(tokens)[: max_len - 1]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        specials: list[str],
        min_freq: int,
        max_size: int,
        hash_buckets: int = 0,
    ) -> Vocab:
        words: Counter[str] = Counter()
        chars: Counter[str] = Counter()
        for toks in token_lists:
            words.update(toks)
            for tok in toks:
                if len(tok) > 1:
                    chars.update(c for c in tok if is_han(c))
        budget = max_size - len(specials) - hash_buckets
        if budget < 0:
            raise ValueError(
                f"max_size {max_size} leaves no room for {len(specials)} specials + {hash_buckets} hash buckets"
            )
        # Characters first (bounded to a quarter of the budget) so every word can fall back to them.
        char_part = [c for c, n in chars.most_common(budget // 4) if n >= min_freq and c not in specials]
        seen = set(specials) | set(char_part)
        word_part = [w for w, n in words.most_common() if n >= min_freq and w not in seen]
        itos = list(specials) + char_part + word_part[: budget - len(char_part)]
        itos += [f"<#{i}>" for i in range(hash_buckets)]
        return cls(itos=itos, specials=list(specials), hash_buckets=hash_buckets)

    def char_ngram_table(self, buckets: int, width: int) -> list[list[int]]:
        """Per token id, hashed character n-grams (bucket ids in [0, buckets)), padded with `buckets` to
        `width`: English words their 2-5-grams with word boundaries (scikit-learn's char_wb), Chinese words of
        two or more characters their characters and character pairs. Specials and hash buckets get none."""
        table = []
        for i, tok in enumerate(self.itos):
            grams: list[str] = []
            if i >= len(self.specials) and i < len(self.itos) - self.hash_buckets:
                if tok.isascii() and tok.isalpha():
                    marked = f" {tok.lower()} "
                    grams = [marked[j : j + n] for n in (2, 3, 4, 5) for j in range(len(marked) - n + 1)]
                elif len(tok) > 1 and any(is_han(c) for c in tok):
                    grams = [tok[j : j + n] for n in (1, 2) for j in range(len(tok) - n + 1)]
            ids = [zlib.crc32(f"c:{g}".encode()) % buckets for g in grams[:width]]
            table.append(ids + [buckets] * (width - len(ids)))
        return table

    def to_dict(self) -> dict:
        return {"specials": self.specials, "hash_buckets": self.hash_buckets, "tokens": self.itos}

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        return cls(itos=list(data["tokens"]), specials=list(data["specials"]), hash_buckets=data.get("hash_buckets", 0))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_dict(read_json(path))


def oov_rates(vocab: Vocab, token_lists: Iterable[Sequence[str]]) -> dict[str, float]:
    """Share of tokens not in the vocabulary as whole tokens, and share of ids that end up <unk> (after the
    character, typo and trigram fallbacks)."""
    total = missing = ids_total = unk = 0
    for toks in token_lists:
        total += len(toks)
        missing += sum(t not in vocab for t in toks)
        ids = vocab.ids(toks)
        ids_total += len(ids)
        unk += sum(i == vocab.unk_id for i in ids)
    return {"oov_rate": missing / max(total, 1), "unk_rate": unk / max(ids_total, 1)}

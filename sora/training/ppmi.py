"""Word vectors from co-occurrence counts: positive pointwise mutual information (PPMI) over a symmetric
window, reduced by truncated SVD (Levy, Goldberg & Dagan, TACL 2015).

Why this and not a neural objective: at the scale Sora pretrains on (tens of thousands of short texts, two CPU
cores), a denoising autoencoder or masked LM learns next to nothing in a reasonable time, while counting
co-occurrences over the whole pool takes under a minute and gives words that occur in the same contexts
("差劲" and "失望", "awful" and "terrible") nearby vectors. Those vectors initialise, and stay frozen in, the
classifier's token embedding, so words seen only in unlabeled text still land near their labeled neighbours.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import sparse
from sklearn.utils.extmath import randomized_svd


def cooccurrence(
    id_lists: Iterable[Sequence[int]], vocab_size: int, window: int, ignore: set[int]
) -> sparse.csr_matrix:
    """Symmetric counts weighted 1/distance within `window`; ids in `ignore` (padding, [CLS], <unk>) count
    as neither word nor context."""
    # One flat array with `window` separators between texts: every pair closer than the window that crosses
    # a text boundary then has a separator at one end, so it is dropped with the ignored ids.
    sep = -1
    chunks = []
    for ids in id_lists:
        chunks.append(np.asarray(ids, dtype=np.int64))
        chunks.append(np.full(window, sep, dtype=np.int64))
    flat = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    valid = flat >= 0
    for i in ignore:
        valid &= flat != i
    rows, cols, weights = [], [], []
    for d in range(1, window + 1):
        keep = valid[:-d] & valid[d:]
        rows.append(flat[:-d][keep])
        cols.append(flat[d:][keep])
        weights.append(np.full(int(keep.sum()), 1.0 / d))
    r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    counts = sparse.coo_matrix((w, (r, c)), shape=(vocab_size, vocab_size)).tocsr()
    return counts + counts.T


def ppmi(counts: sparse.csr_matrix, alpha: float = 0.75) -> sparse.csr_matrix:
    """max(0, log p(w,c) / (p(w) p_alpha(c))). Context counts raised to `alpha` (< 1) so rare contexts do not
    get inflated PMI: the smoothing that makes PPMI competitive with word2vec."""
    counts = counts.tocoo()
    total = counts.sum()
    word = np.asarray(counts.sum(axis=1)).ravel()
    context = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    context /= context.sum()
    pmi = np.log(counts.data / total) - np.log(word[counts.row] / total) - np.log(context[counts.col])
    keep = pmi > 0
    return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)


def ppmi_vectors(
    id_lists: Iterable[Sequence[int]],
    vocab_size: int,
    dim: int,
    window: int,
    ignore: set[int],
    seed: int,
    norm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors (vocab_size, dim) float32, found (vocab_size,) bool, singular values). Rows are U * sqrt(S) of
    the PPMI matrix, rescaled to L2 norm `norm`; a word with no counted context gets a small random vector and
    found=False."""
    matrix = ppmi(cooccurrence(id_lists, vocab_size, window, ignore))
    k = min(dim, max(1, min(matrix.shape) - 1))
    u, s, _ = randomized_svd(matrix, n_components=k, random_state=seed)
    vectors = np.zeros((vocab_size, dim), dtype=np.float64)
    vectors[:, :k] = u * np.sqrt(s)
    found = matrix.getnnz(axis=1) > 0
    lengths = np.linalg.norm(vectors, axis=1)
    vectors[found] *= norm / lengths[found, None]
    rng = np.random.default_rng(seed)
    vectors[~found] = rng.normal(0, 0.02, size=(int((~found).sum()), dim))
    return vectors.astype(np.float32), found, s


def ppmi_encoder(vocab, token_lists: Iterable[Sequence[str]], model_params, window: int, seed: int):
    """A fresh encoder (seeded) whose token embedding holds the PPMI vectors of `token_lists`; the rest of the
    encoder is left at its initialisation for fine-tuning to learn. Returns (encoder, share of the vocabulary
    that got a vector). Rows are scaled to norm 1, several times the positions' initial norm, so that with
    frozen embeddings the word, not its position, dominates the input."""
    import torch

    from sora.models.classifier import build_encoder

    torch.manual_seed(seed)
    encoder = build_encoder(len(vocab), vocab.pad_id, model_params)
    ids = [vocab.ids(list(tokens)) for tokens in token_lists]
    ignore = {vocab.pad_id, vocab.unk_id, vocab.cls_id}
    vectors, found, spectrum = ppmi_vectors(ids, len(vocab), encoder.d_model, window, ignore, seed, norm=1.0)
    vectors[vocab.pad_id] = 0.0
    with torch.no_grad():
        encoder.tok.weight.copy_(torch.from_numpy(vectors))
    return encoder, float(found.mean()), spectrum


def nearest(vectors, vocab, word: str, k: int = 5) -> list[str]:
    """The k words whose vectors have the highest cosine with `word`'s (for a readable sanity check)."""
    if word not in vocab:
        return []
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    sims = v @ v[vocab.stoi[word]]
    order = [i for i in np.argsort(-sims) if i != vocab.stoi[word] and i >= len(vocab.specials)]
    return [vocab.itos[i] for i in order[:k]]

"""Predictor: strings in, probabilities out."""

import numpy as np
import torch

from sora.data.text import parse_cached
from sora.data.vocab import Vocab
from sora.inference import Predictor
from sora.models.classifier import build_classifier

SPECIALS = ["<pad>", "<unk>", "<cls>", "<mask>"]


def shape(tiny_model, **changes) -> dict:
    return tiny_model.model_copy(update={"d_model": 8, "ff_dim": 16, **changes}).model_dump()


def test_predictor_token_cache_encodes_like_the_uncached_path(tiny_model):
    texts = ["这部电影真的很好看！", "The plot was dull, the acting great.", "质量太差了 not worth it", ""]
    vocab = Vocab.build(
        [["这部", "电影", "好看", "the", "plot", "dull", "质量"]] * 2, SPECIALS, min_freq=1, max_size=100
    )
    model = build_classifier(len(vocab), vocab.pad_id, shape(tiny_model, max_len=16), 2)
    plain = Predictor(model, vocab, 16).encode(texts)
    cached = Predictor(model, vocab, 16, cache_tokens=True)
    assert cached.encode(texts) == plain
    hits = parse_cached.cache_info().hits
    assert cached.encode(texts) == plain
    assert parse_cached.cache_info().hits == hits + len(texts)  # the second pass tokenised nothing
    assert torch.allclose(
        torch.from_numpy(cached.predict_proba(texts)),
        torch.from_numpy(Predictor(model, vocab, 16).predict_proba(texts)),
    )


def test_length_bucketed_batches_predict_like_one_text_at_a_time(tiny_model):
    vocab = Vocab.build([[f"w{i}" for i in range(50)]] * 2, SPECIALS, min_freq=1, max_size=100)
    model = build_classifier(
        len(vocab),
        vocab.pad_id,
        shape(tiny_model, max_len=64, dropout=0.0),
        2,
    )
    generator = torch.Generator().manual_seed(0)
    lengths = [1, 64, 3, 5, 40, 2, 64, 7, 9, 1, 30, 12]
    ids = [torch.randint(4, len(vocab), (n,), generator=generator).tolist() for n in lengths]
    predictor = Predictor(model, vocab, 64, batch_size=4, max_batch_tokens=100)
    batches = list(predictor._batches(sorted(ids, key=len)))
    assert sum(len(b) for b in batches) == len(ids)
    for batch in batches:  # at most batch_size texts, and over the token budget only as a batch of one
        assert len(batch) <= 4
        assert len(batch) == 1 or len(batch) * max(map(len, batch)) <= 100
    together = predictor.predict_ids(ids)
    alone = [Predictor(model, vocab, 64, batch_size=1).predict_ids([seq])[0] for seq in ids]
    assert torch.allclose(torch.from_numpy(together), torch.from_numpy(np.stack(alone)), atol=1e-5)

"""Predictor: strings in, probabilities out."""

import torch

from sora.data.vocab import Vocab
from sora.inference import Predictor, _cached_tokens
from sora.models.classifier import build_classifier

SPECIALS = ["<pad>", "<unk>", "<cls>", "<mask>"]


def test_predictor_token_cache_encodes_like_the_uncached_path():
    texts = ["这部电影真的很好看！", "The plot was dull, the acting great.", "质量太差了 not worth it", ""]
    vocab = Vocab.build([["这部", "电影", "好看", "the", "plot", "dull", "质量"]] * 2, SPECIALS, min_freq=1,
                        max_size=100)
    model = build_classifier(len(vocab), vocab.pad_id, {"d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 16,
                                                         "max_len": 16}, 2)
    plain = Predictor(model, vocab, 16).encode(texts)
    cached = Predictor(model, vocab, 16, cache_tokens=True)
    assert cached.encode(texts) == plain
    hits = _cached_tokens.cache_info().hits
    assert cached.encode(texts) == plain
    assert _cached_tokens.cache_info().hits == hits + len(texts)  # the second pass tokenised nothing
    assert torch.allclose(torch.from_numpy(cached.predict_proba(texts)),
                          torch.from_numpy(Predictor(model, vocab, 16).predict_proba(texts)))

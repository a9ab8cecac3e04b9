import random

import pandas as pd
import pytest
import torch

from sora.data.vocab import Vocab
from sora.models.autoencoder import DenoisingAutoencoder, corrupt
from sora.models.classifier import Classifier
from sora.models.encoder import TransformerEncoder
from sora.training.data import DenoisingDataset, collate_denoise

SPECIALS = ["<pad>", "<unk>", "<cls>", "<mask>", "<bos>", "<eos>"]
WORDS = [f"w{i}" for i in range(20)]


def tiny_vocab() -> Vocab:
    return Vocab.build([WORDS, WORDS], SPECIALS, min_freq=1, max_size=100)


def tiny_encoder(vocab: Vocab, dropout: float = 0.0) -> TransformerEncoder:
    return TransformerEncoder(
        len(vocab), d_model=16, n_heads=2, n_layers=2, ff_dim=32, dropout=dropout, max_len=32, pad_id=vocab.pad_id
    )


def test_shapes_and_embed():
    vocab = tiny_vocab()
    enc = tiny_encoder(vocab)
    ids = torch.randint(6, len(vocab), (3, 7))
    assert enc.embed(ids).shape == (3, 7, 16)
    assert enc(ids).shape == (3, 7, 16)
    # embeds= replaces the token embeddings: feeding embed(ids) back gives the same output
    enc.eval()
    assert torch.allclose(enc(ids), enc(ids, embeds=enc.embed(ids)))
    clf = Classifier(enc, num_classes=3, dropout=0.1)
    assert clf(ids).shape == (3, 3)
    ae = DenoisingAutoencoder(tiny_encoder(vocab), len(vocab), n_decoder_layers=1, dropout=0.0, tie_output=True)
    assert ae(ids[:, :5], ids).shape == (3, 6, len(vocab))


def test_classifier_padding_invariance():
    torch.manual_seed(0)
    vocab = tiny_vocab()
    clf = Classifier(tiny_encoder(vocab, dropout=0.1), num_classes=2, dropout=0.1).eval()
    ids = torch.randint(6, len(vocab), (2, 5))
    padded = torch.cat([ids, torch.full((2, 4), vocab.pad_id)], dim=1)
    with torch.no_grad():
        assert torch.allclose(clf(ids), clf(padded), atol=1e-5)


def test_corrupt_properties():
    ids = [2] + list(range(10, 20))
    out = corrupt(ids, 0.3, 0.3, 0.3, 3, mask_id=3, rng=random.Random(1))
    assert out[0] == 2 and len(out) >= 2
    assert out == corrupt(ids, 0.3, 0.3, 0.3, 3, mask_id=3, rng=random.Random(1))
    # extreme noise still leaves CLS + one token
    for seed in range(20):
        assert len(corrupt([2, 10, 11], 0, 1.0, 0, 3, 3, random.Random(seed))) == 2
    assert corrupt([2], 0.5, 0.5, 0.5, 3, 3, random.Random(0)) == [2]


def test_corrupt_rates_on_long_input():
    n = 20000
    ids = [2] + [10 + i % 50 for i in range(n)]
    masked = corrupt(ids, 0.15, 0, 0, 3, 3, random.Random(0))
    assert len(masked) == n + 1 and abs(masked.count(3) / n - 0.15) < 0.01
    deleted = corrupt(ids, 0, 0.1, 0, 3, 3, random.Random(0))
    assert abs(1 - len(deleted[1:]) / n - 0.1) < 0.01 and 3 not in deleted
    spans = corrupt(ids, 0, 0, 0.1, 3, 3, random.Random(0))
    # span starts ~ 0.1 per consumed token; each removes 1..3 (mean 2) tokens and leaves one mask
    starts = spans.count(3)
    kept = len(spans) - 1 - starts
    assert abs(starts / (kept + starts) - 0.1) < 0.01  # one draw per span start or kept token
    assert abs((n - kept) / starts - 2.0) < 0.1  # mean span length = (1+max_span)/2


def test_denoising_dataset_epoch_determinism():
    vocab = tiny_vocab()
    frame = pd.DataFrame({"tokens": [WORDS[:15]] * 4})
    ds = DenoisingDataset(frame, vocab, 32, mask_rate=0.3, delete_rate=0.1, span_rate=0.1, seed=0)
    a = [ds[i][0] for i in range(4)]
    assert a == [ds[i][0] for i in range(4)]
    ds.set_epoch(1)
    assert a != [ds[i][0] for i in range(4)]
    assert ds[0][1] == vocab.encode(WORDS[:15], 32)


def test_autoencoder_loss_decreases():
    torch.manual_seed(0)
    vocab = tiny_vocab()
    ae = DenoisingAutoencoder(tiny_encoder(vocab), len(vocab), n_decoder_layers=1, dropout=0.0, tie_output=True)
    rng = random.Random(0)
    targets = [vocab.encode(rng.sample(WORDS, 8), 32) for _ in range(4)]
    items = [(corrupt(t, 0.2, 0.1, 0.1, 2, vocab.mask_id, rng), t) for t in targets]
    batch = collate_denoise(items, vocab.pad_id)
    opt = torch.optim.AdamW(ae.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        loss, acc = ae.loss_and_accuracy(batch["noisy"], batch["target"], vocab.pad_id)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert 0.0 <= acc.item() <= 1.0


def _copy_task_after_training(tie_output: bool) -> tuple[float, float]:
    """Copy (no noise) with a vocabulary far larger than the tokens in use, as in real text, where most of a
    30k vocabulary is rare: (token accuracy, mean cosine between unused embedding rows before and after)."""
    torch.manual_seed(0)
    vocab_size, pad, cls = 5000, 0, 2
    enc = TransformerEncoder(
        vocab_size, d_model=32, n_heads=2, n_layers=2, ff_dim=64, dropout=0.0, max_len=16, pad_id=pad
    )
    ae = DenoisingAutoencoder(enc, vocab_size, n_decoder_layers=1, dropout=0.0, tie_output=tie_output)
    unused_before = enc.tok.weight[1000:].detach().clone()
    opt = torch.optim.AdamW(ae.parameters(), lr=3e-3)
    rng = random.Random(0)

    def batch(n):
        seqs = [[cls] + [rng.randrange(6, 26) for _ in range(rng.randint(3, 10))] for _ in range(n)]
        return collate_denoise([(s, s) for s in seqs], pad)

    for _ in range(300):
        b = batch(32)
        loss, _ = ae.loss_and_accuracy(b["noisy"], b["target"], pad)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ae.eval()
    b = batch(256)
    with torch.no_grad():
        _, acc = ae.loss_and_accuracy(b["noisy"], b["target"], pad)
    drift = torch.nn.functional.cosine_similarity(enc.tok.weight[1000:].detach(), unused_before, dim=-1)
    return acc.item(), drift.mean().item()


def test_untied_autoencoder_copies_and_leaves_unused_embeddings_alone():
    acc, kept = _copy_task_after_training(tie_output=False)
    assert acc > 0.9
    assert kept > 0.99  # rows of tokens never read move only by weight decay


@pytest.mark.slow
def test_tied_output_drags_unused_embeddings_together():
    """Why `pretrain.tie_output: false` exists: tied, the softmax moves every unused row every step."""
    acc, kept = _copy_task_after_training(tie_output=True)
    assert kept < 0.9 and acc < 0.9


def test_dropout_keeps_the_expectation_and_is_off_in_eval():
    from sora.models.encoder import Dropout

    torch.manual_seed(0)
    drop, x = Dropout(0.3), torch.ones(200_000)
    y = drop(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - 0.3) < 0.01  # about p of the entries dropped
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))  # the rest scaled so the mean stays
    assert torch.equal(drop.eval()(x), x)


def test_keep_mask_keeps_one_minus_p_of_any_shape_and_follows_the_seed():
    from sora.models.encoder import keep_mask

    for p in (0.05, 0.2, 0.5, 0.9):
        torch.manual_seed(1)
        mask = keep_mask((7, 50_001), p)  # 350,007 entries: not a multiple of the four per random draw
        assert mask.shape == (7, 50_001) and mask.dtype == torch.bool
        assert abs(mask.float().mean().item() - (1 - p)) < 0.004, p
        torch.manual_seed(1)
        assert torch.equal(keep_mask((7, 50_001), p), mask)
    assert keep_mask((1000,), 0.0).all() and not keep_mask((1000,), 1.0).any()


def test_training_attention_on_cpu_equals_the_fused_kernel_without_dropout():
    from sora.models.encoder import EncoderLayer

    torch.manual_seed(0)
    layer = EncoderLayer(16, 2, 32, dropout=0.0)
    x = torch.randn(3, 7, 16)
    keep = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    keep[1, ..., 4:] = False  # padding: the written-out attention must mask it as the kernel does
    layer.dropout = 1e-9  # takes the written-out path, drops (almost surely) nothing
    written_out = layer.train()(x, keep)
    fused = layer.eval()(x, keep)
    assert torch.allclose(written_out, fused, atol=1e-5)

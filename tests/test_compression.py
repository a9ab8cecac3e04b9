"""Pruning, dynamic int8 quantisation and measurement on a tiny Sora classifier."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from sora.compression import (
    detach_masked_weights,
    global_magnitude_prune,
    is_pruned,
    latency_p50_ms,
    load_sparse_state_dict,
    make_permanent,
    prunable_parameters,
    quantization_summary,
    quantize_dynamic_int8,
    save_sparse_state_dict,
    size_on_disk_bytes,
    sparse_size_on_disk_bytes,
    sparsity_report,
    throughput,
)
from sora.models.classifier import build_classifier

VOCAB, SEQ, PAD = 1000, 12, 0
LAYER_LINEARS = ("qkv", "out", "ff1", "ff2")


@pytest.fixture
def build(tiny_model):
    """build(vocab=VOCAB, seed=0): a freshly initialised two-class Sora classifier of the tiny shape."""

    def make(vocab: int = VOCAB, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return build_classifier(vocab, PAD, tiny_model, num_classes=2)

    return make


@pytest.fixture
def model(build) -> nn.Module:
    return build()


def layer_linears(n_layers: int) -> set[str]:
    return {f"encoder.layers.{i}.{name}" for i in range(n_layers) for name in LAYER_LINEARS}


def ids(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, VOCAB, (n, SEQ), generator=g)


def masked_reference(pruned: nn.Module) -> nn.Module:
    """A plain copy whose weights are the pruned model's orig * mask (what it should compute with)."""
    ref = copy.deepcopy(detach_masked_weights(pruned))
    make_permanent(ref)
    return ref


def test_prunable_parameters_cover_weights_not_biases(model, tiny_model):
    names = {id(m): n for n, m in model.named_modules()}
    got = {f"{names[id(m)]}.{n}" for m, n in prunable_parameters(model)}
    linears = {f"{name}.weight" for name in layer_linears(tiny_model.n_layers)} | {"head.weight"}
    assert got == linears | {"encoder.tok.weight", "encoder.pos.weight"}
    no_emb = {f"{names[id(m)]}.{n}" for m, n in prunable_parameters(model, include_embeddings=False)}
    assert no_emb == linears


@pytest.mark.parametrize("normalize", [False, True])
def test_global_prune_reaches_target_and_survives_make_permanent(model, normalize):
    x = ids(16)
    untouched = {k: v.clone() for k, v in model.state_dict().items() if "bias" in k or "norm" in k}
    global_magnitude_prune(model, 0.7, normalize=normalize)
    assert is_pruned(model)
    assert abs(sparsity_report(model)["global"] - 0.7) <= 0.01
    # Biases and LayerNorm untouched.
    for k, v in untouched.items():
        assert torch.equal(model.state_dict()[k], v), k
    # Forward works in train and eval and matches a plain model holding the masked weights.
    ref = masked_reference(model)
    for mode in (True, False):
        model.train(mode), ref.train(mode)
        with torch.no_grad():
            torch.testing.assert_close(model(x), ref(x))
    before = model.eval()(x).detach()
    make_permanent(model)
    assert not is_pruned(model)
    assert not any(k.endswith(("_orig", "_mask")) for k in model.state_dict())
    assert abs(sparsity_report(model)["global"] - 0.7) <= 0.01
    with torch.inference_mode():
        torch.testing.assert_close(model(x), before)
    assert model(x).shape == (16, 2)


def test_pruning_changes_outputs_consistently(model):
    x = ids(16)
    with torch.no_grad():
        dense = model.eval()(x)
    global_magnitude_prune(model, 0.7)
    with torch.no_grad():
        pruned = model(x)
    assert not torch.allclose(dense, pruned)


def test_masks_keep_pruned_weights_zero_during_finetune(model):
    global_magnitude_prune(model, 0.7, normalize=True)  # every tensor keeps some live weights
    masks = {name: mod.weight_mask.clone() for name, mod in model.named_modules() if hasattr(mod, "weight_mask")}
    assert len(masks) == len(prunable_parameters(model))
    out_before = model.encoder.layers[0].out.weight_orig.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = ids(32), torch.randint(0, 2, (32,))
    model.train()
    for _ in range(3):  # several optimizer steps, each followed by a forward through the masks
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # The weights did train, so the zeros below are held by the masks and not by a frozen model.
    assert not torch.equal(model.encoder.layers[0].out.weight_orig, out_before)
    assert sparsity_report(model)["global"] >= 0.7 - 0.01
    for name, mask in masks.items():
        assert torch.all(model.get_submodule(name).weight[mask == 0] == 0), name
    # The forward computes with the *updated* weights, masked.
    ref = masked_reference(model)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref.eval()(x))
    make_permanent(model)
    assert abs(sparsity_report(model)["global"] - 0.7) <= 0.01


def test_unnormalized_global_prune_warns_about_dead_tensors(build):
    # Embeddings ~N(0, 0.02) vs Linear ~U(+-1/sqrt(32)): with a small vocabulary the embeddings are a small
    # share of the weights and the raw global threshold takes every one of them.
    with pytest.warns(UserWarning, match="removed every weight"):
        global_magnitude_prune(small := build(vocab=50), 0.7)
    per = sparsity_report(small)["per_parameter"]
    assert per["encoder.tok.weight"] == per["encoder.pos.weight"] == 1.0
    fresh = build(vocab=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        global_magnitude_prune(fresh, 0.7, normalize=True)
    assert not [w for w in caught if "removed every weight" in str(w.message)]
    per = sparsity_report(fresh)["per_parameter"]
    assert max(per.values()) < 0.9 and abs(sparsity_report(fresh)["global"] - 0.7) <= 0.01


def test_iterative_prune_targets_total_sparsity(model):
    global_magnitude_prune(model, 0.5, normalize=True)
    assert abs(sparsity_report(model)["global"] - 0.5) <= 0.01
    global_magnitude_prune(model, 0.7, normalize=True)
    assert abs(sparsity_report(model)["global"] - 0.7) <= 0.01


def test_tied_weights_are_skipped(model):
    # An output projection tied to the token embedding, as the denoising autoencoder's decoder has.
    model.head2 = nn.Linear(model.encoder.d_model, VOCAB, bias=False)
    model.head2.weight = model.encoder.tok.weight
    with pytest.warns(UserWarning, match="tied"):
        params = prunable_parameters(model)
    owners = [m for m, _ in params]
    assert all(m is not model.encoder.tok and m is not model.head2 for m in owners)
    assert any(m is model.head for m in owners) and any(m is model.encoder.pos for m in owners)


@pytest.mark.parametrize("quantize_embeddings", [True, False])
def test_quantized_outputs_close_and_smaller(model, tiny_model, quantize_embeddings):
    model.eval()
    x = ids(256, seed=2)
    q = quantize_dynamic_int8(model, quantize_embeddings=quantize_embeddings)
    assert not model.training and type(model.head) is nn.Linear  # original untouched
    with torch.inference_mode():
        ref, out = model(x), q(x)
    agree = (ref.argmax(1) == out.argmax(1)).float().mean().item()
    max_diff = (ref - out).abs().max().item()
    print(
        f"quantize_embeddings={quantize_embeddings}: argmax agreement {agree:.3f}, "
        f"max |logit diff| {max_diff:.4f}, size {size_on_disk_bytes(model)} -> {size_on_disk_bytes(q)}"
    )
    assert agree >= 0.95
    assert max_diff < 0.1
    ratio = size_on_disk_bytes(model) / size_on_disk_bytes(q)
    assert ratio >= (2.0 if quantize_embeddings else 1.0)

    summary = quantization_summary(q)
    quantized = set(summary["quantized_modules"])
    assert layer_linears(tiny_model.n_layers) | {"head"} <= quantized
    assert ("encoder.tok" in quantized) == ("encoder.pos" in quantized) == quantize_embeddings
    # Every matrix multiply is int8: only the LayerNorms (and unquantised embeddings) stay fp32.
    norms = {
        f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, nn.LayerNorm) for p in ("weight", "bias")
    }
    embeddings = set() if quantize_embeddings else {"encoder.tok.weight", "encoder.pos.weight"}
    assert set(summary["float_parameters"]) == norms | embeddings


def test_quantize_pruned_model_and_reload(model, build):
    global_magnitude_prune(model, 0.7)  # masks still active: quantize makes its copy permanent
    q = quantize_dynamic_int8(model)
    assert is_pruned(model)
    with torch.inference_mode():
        out = q(ids(8))
    assert torch.isfinite(out).all()
    # The quantised state dict loads into a freshly quantised model of the same architecture.
    fresh = quantize_dynamic_int8(build(seed=1))
    fresh.load_state_dict(q.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(fresh(ids(8)), out)


def test_sparse_save_is_smaller_and_roundtrips(model, build, tmp_path):
    global_magnitude_prune(model, 0.7)
    make_permanent(model)
    dense, sparse = size_on_disk_bytes(model), sparse_size_on_disk_bytes(model)
    print(f"pruned 0.7: dense {dense} B, sparse {sparse} B ({dense / sparse:.2f}x)")
    assert sparse < 0.6 * dense
    path = tmp_path / "sparse.pt"
    save_sparse_state_dict(model, path)
    loaded = load_sparse_state_dict(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded[k], v), k
    fresh = build(seed=1)
    fresh.load_state_dict(loaded)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(ids(8)), model.eval()(ids(8)))


def test_latency_and_throughput_positive_and_restore_threads(model):
    model.eval()
    prev = torch.get_num_threads()
    other = 2 if prev == 1 else 1
    try:
        lat = latency_p50_ms(model, ids(1), repeats=5, warmup=1, num_threads=other)
        assert torch.get_num_threads() == prev
        tput = throughput(model, ids(16), repeats=2, num_threads=other)
        assert torch.get_num_threads() == prev
    finally:
        torch.set_num_threads(prev)
    assert lat > 0 and math.isfinite(lat)
    assert tput > 0 and math.isfinite(tput)
    q = quantize_dynamic_int8(model)
    assert latency_p50_ms(q, ids(1), repeats=3, warmup=1) > 0


def test_saved_weights_depend_only_on_the_state(tmp_path):
    """torch names the archive inside a file after the file: atomic writes through temp names gave every save
    other bytes, so DVC saw a changed output (and reran what follows) after an identical rerun."""
    import torch

    from sora.compression import save_sparse_state_dict

    state = {"w": torch.zeros(8, 8), "b": torch.ones(8)}
    save_sparse_state_dict(state, tmp_path / "one.pt")
    save_sparse_state_dict(state, tmp_path / "two.pt")
    assert (tmp_path / "one.pt").read_bytes() == (tmp_path / "two.pt").read_bytes()

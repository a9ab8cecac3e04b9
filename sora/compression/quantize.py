"""Post-training dynamic int8 quantisation (CPU inference) with ``torch.ao.quantization``.

What gets quantised:

* ``nn.Linear`` -> ``DynamicQuantizedLinear`` (int8 weights, activations quantised on the fly). Sora's
  encoder layers (``sora.models.encoder.EncoderLayer``) are built from plain Linears, so this covers the
  attention projections, the feed-forward and the head: every matrix multiply but attention itself.
* ``nn.Embedding`` -> ``QuantizedEmbedding`` (quint8 rows with per-row float scale/zero-point,
  ``float_qparams_weight_only_qconfig``) when ``quantize_embeddings=True``. These dominate the size of
  a 30k-vocabulary model, so this is what makes a >3x smaller state dict possible.
* Stays fp32: LayerNorms (and the embeddings when ``quantize_embeddings=False``).
  :func:`quantization_summary` reports the exact split.

A quantised state dict only loads into a model that was quantised the same way: rebuild the float
model, run :func:`quantize_dynamic_int8` on it, then ``load_state_dict`` (or pickle the whole module).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from sora.compression.prune import detach_masked_weights, is_pruned, make_permanent

__all__ = ["quantize_dynamic_int8", "quantization_summary"]


def quantize_dynamic_int8(model: nn.Module, quantize_embeddings: bool = True) -> nn.Module:
    """A dynamically int8-quantised *copy* of ``model`` in eval mode (``model`` is left untouched).

    ``torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).eval(), ...)`` with ``nn.Linear`` ->
    qint8 (``default_dynamic_qconfig``) and, if ``quantize_embeddings``, ``nn.Embedding`` -> quint8 rows
    (``float_qparams_weight_only_qconfig``). A copy that still carries pruning masks is made permanent
    first. The result is for CPU inference only (no autograd through quantised weights).
    """
    from torch.ao.quantization import default_dynamic_qconfig, float_qparams_weight_only_qconfig, quantize_dynamic

    work = copy.deepcopy(detach_masked_weights(model)).eval()
    if is_pruned(work):
        make_permanent(work)
    spec: dict = {nn.Linear: default_dynamic_qconfig}
    if quantize_embeddings:
        spec[nn.Embedding] = float_qparams_weight_only_qconfig
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; nothing a caller can act on here.
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_channel.*deprecated.*")
        qmodel = quantize_dynamic(work, spec, dtype=torch.qint8)
    return qmodel


def _is_quantized_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.ao.nn.quantized")


def quantization_summary(model: nn.Module) -> dict:
    """Which modules are quantised and which parameters remain floating point.

    Returns ``{"quantized_modules": {name: e.g. "DynamicQuantizedLinear"}, "float_parameters": {name: numel},
    "float_numel": int, "float_bytes": int}``. Pass a quantised model; on a float model everything is
    listed as float.
    """
    quantized = {
        name: m._get_name()
        for name, m in model.named_modules()
        if _is_quantized_module(m) and not name.endswith("_packed_params")
    }
    floats = {name: p.numel() for name, p in model.named_parameters() if p.is_floating_point()}
    float_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.is_floating_point())
    return {
        "quantized_modules": quantized,
        "float_parameters": floats,
        "float_numel": sum(floats.values()),
        "float_bytes": float_bytes,
    }

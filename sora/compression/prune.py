"""Global magnitude (L1, unstructured) pruning for any ``torch.nn.Module``.

Typical use (the recovery fine-tune happens *between* pruning and making it permanent)::

    global_magnitude_prune(model, 0.7)   # masks + forward pre-hooks; pruned weights read as 0
    fine_tune(model)                     # masks stay active: pruned weights stay exactly 0
    make_permanent(model)                # bake masks into plain Parameters, drop hooks/buffers
    sparsity_report(model)               # {'global': 0.70, 'per_parameter': {...}}

While pruned-but-not-permanent, each pruned parameter ``p`` lives as ``p_orig`` (Parameter, trained)
and ``p_mask`` (buffer); ``p`` itself is recomputed as ``p_orig * p_mask`` by a forward pre-hook.
Deep-copying or pickling a pruned model needs :func:`detach_masked_weights` first (after any
grad-enabled forward). The state dict then has ``*_orig``/``*_mask`` keys: call :func:`make_permanent`
before saving a model that an unpruned architecture has to load.

Masks are applied by forward pre-hooks, so they hold for a weight only while the module that owns it
computes through its own ``forward`` (true of every Linear and Embedding in Sora's models).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.utils.prune as prune
from torch import nn

__all__ = [
    "prunable_parameters",
    "global_magnitude_prune",
    "make_permanent",
    "is_pruned",
    "detach_masked_weights",
    "sparsity_report",
]


def _current_param(module: nn.Module, name: str) -> torch.Tensor:
    """The tensor a parameter slot holds: the trained Parameter (``name_orig`` when pruned)."""
    orig = getattr(module, name + "_orig", None)
    return orig if orig is not None else getattr(module, name)


def _effective(module: nn.Module, name: str) -> torch.Tensor:
    """The weight the model computes with: ``orig * mask`` when pruned (never a stale attribute)."""
    mask = getattr(module, name + "_mask", None)
    if mask is None:
        return getattr(module, name).detach()
    return (getattr(module, name + "_orig") * mask).detach()


def prunable_parameters(model: nn.Module, include_embeddings: bool = True) -> list[tuple[nn.Module, str]]:
    """(module, name) pairs for every Linear weight and, optionally, every Embedding weight. Biases,
    LayerNorm and anything else are never included.

    Works on already-pruned models (the slot is found through ``name_orig``). A Parameter shared by two
    modules (tied weights) is skipped with a warning: masking it through one owner would leave the other
    alias unmasked, so the tie would silently break.
    """
    kinds = (nn.Linear, nn.Embedding) if include_embeddings else (nn.Linear,)
    candidates = [(module, "weight") for module in model.modules() if isinstance(module, kinds)]
    # Count every owner of each Parameter in the whole model to detect ties.
    owners: dict[int, int] = {}
    for module in model.modules():
        for p in module._parameters.values():
            if p is not None:
                owners[id(p)] = owners.get(id(p), 0) + 1
    out = []
    for module, name in candidates:
        p = _current_param(module, name)
        if p is None:
            continue
        if owners.get(id(p), 0) > 1:
            warnings.warn(
                f"skipping tied parameter {type(module).__name__}.{name} "
                f"(shared by {owners[id(p)]} modules) from pruning",
                stacklevel=2,
            )
            continue
        out.append((module, name))
    return out


def _has_pruning_hook(module: nn.Module) -> bool:
    return any(isinstance(h, prune.BasePruningMethod) for h in module._forward_pre_hooks.values())


def global_magnitude_prune(
    model: nn.Module, sparsity: float, include_embeddings: bool = True, normalize: bool = False
) -> nn.Module:
    """Zero the globally smallest-|w| fraction ``sparsity`` of :func:`prunable_parameters` (one threshold
    across all of them, via ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured``).

    ``sparsity`` is the *total* target fraction: on an already-pruned model only the difference is pruned
    (so ``0.5`` then ``0.7`` gives 0.7, not PyTorch's 1 - 0.5*0.3). Masks stay active (forward pre-hooks)
    so the caller can fine-tune to recover accuracy before :func:`make_permanent`. Returns ``model``
    (modified in place).

    Scale caveat: one global threshold compares raw magnitudes across tensors. Sora's embeddings are
    initialised N(0, 0.02) while its Linear weights are ~U(+-1/sqrt(fan_in)), so on an untrained model the
    threshold takes embedding weights first, and when they are a small share of the model it can take
    *every* one of them (an untrained Sora classifier with a 50-token vocabulary loses both embedding
    tables at 0.7). ``normalize=True`` ranks ``|w| / rms(w)`` per
    tensor instead (still one global threshold, passed as ``importance_scores``), which keeps every tensor
    alive. A warning is emitted whenever some tensor ends up fully pruned.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    params = prunable_parameters(model, include_embeddings)
    if not params:
        raise ValueError("model has no prunable parameters")
    total = sum(_current_param(m, n).numel() for m, n in params)
    already = sum(int((getattr(m, n + "_mask") == 0).sum()) for m, n in params if hasattr(m, n + "_mask"))
    amount = int(round(sparsity * total)) - already  # absolute count among the still-unmasked weights
    if amount <= 0:
        return model
    scores = None
    if normalize:
        scores = {}
        for m, n in params:
            w = _effective(m, n)
            nz = w[w != 0]
            rms = nz.pow(2).mean().sqrt() if nz.numel() else w.new_tensor(1.0)
            scores[(m, n)] = w / rms.clamp(min=1e-12)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, importance_scores=scores, amount=amount)
    report = sparsity_report(model, include_embeddings)["per_parameter"]
    dead = [name for name, s in report.items() if s >= 1.0]
    if dead:
        warnings.warn(
            f"global magnitude pruning removed every weight of {dead}; consider "
            "normalize=True or include_embeddings=False",
            stacklevel=2,
        )
    return detach_masked_weights(model)


def is_pruned(model: nn.Module) -> bool:
    """True while any module still carries a pruning reparametrisation (masks + hooks)."""
    return any(_has_pruning_hook(m) for m in model.modules())


def detach_masked_weights(model: nn.Module) -> nn.Module:
    """Replace every masked-weight attribute (``p = p_orig * p_mask``, a non-leaf autograd tensor after a
    grad-enabled forward) by a detached copy, so ``copy.deepcopy``/pickling a pruned model works
    (otherwise: "Only Tensors created explicitly by the user (graph leaves) support the deepcopy
    protocol"). Harmless: the pruning hooks recompute the attribute at the next forward. Returns ``model``."""
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                name = hook._tensor_name
                masked = getattr(module, name + "_orig") * getattr(module, name + "_mask")
                setattr(module, name, masked.detach())
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """``prune.remove`` on every pruned parameter: ``p = p_orig * p_mask`` becomes a plain Parameter again,
    the ``_orig``/``_mask`` tensors and hooks go away, and the state dict has the original key names.
    Zeros stay zero but are no longer enforced (further training may revive them). Returns ``model``."""
    for module in model.modules():
        names = [h._tensor_name for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]
        for name in names:
            prune.remove(module, name)
    return model


def sparsity_report(model: nn.Module, include_embeddings: bool = True) -> dict:
    """Sparsity (fraction of exact zeros) of the effective weights of :func:`prunable_parameters`.

    Returns ``{"global": float, "zeros": int, "total": int, "per_parameter": {qualified_name: float}}``.
    Uses ``orig * mask`` for pruned parameters, so it is exact also between optimizer steps.
    """
    names = {id(m): n for n, m in model.named_modules()}
    per: dict[str, float] = {}
    zeros = total = 0
    for module, name in prunable_parameters(model, include_embeddings):
        w = _effective(module, name)
        z, n = int((w == 0).sum()), w.numel()
        zeros, total = zeros + z, total + n
        prefix = names[id(module)]
        per[f"{prefix}.{name}" if prefix else name] = z / n if n else 0.0
    return {"global": zeros / total if total else 0.0, "zeros": zeros, "total": total, "per_parameter": per}

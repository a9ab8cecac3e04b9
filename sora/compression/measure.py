"""Size on disk, latency and throughput measurements for (compressed) models.

Latency/throughput run under ``torch.inference_mode()`` with a fixed ``torch.set_num_threads`` value
(restored afterwards) so numbers are comparable between the float, pruned and quantised models.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from sora.io import write_torch

__all__ = [
    "size_on_disk_bytes",
    "sparse_size_on_disk_bytes",
    "save_sparse_state_dict",
    "load_sparse_state_dict",
    "latency_p50_ms",
    "throughput",
]

_SPARSE_TAG = "__sora_sparse__"


def _file_size(save: Callable[[str], None]) -> int:
    fd, path = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
        save(path)
        return os.path.getsize(path)
    finally:
        os.remove(path)


def _state_dict(model_or_state: nn.Module | Mapping[str, Any]) -> Mapping[str, Any]:
    return model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state


def size_on_disk_bytes(model: nn.Module | Mapping[str, Any]) -> int:
    """Bytes of ``torch.save(model.state_dict())`` (works for float, pruned and quantised models).

    A pruned model that was not made permanent stores ``*_orig`` *and* ``*_mask`` (twice the size):
    call ``make_permanent`` first for a meaningful number."""
    state = _state_dict(model)
    return _file_size(lambda p: torch.save(state, p))


def _compress(t: torch.Tensor) -> dict:
    """Dense float tensor -> {shape, dtype, packed bit mask of non-zeros (uint8), non-zero values}."""
    flat = t.detach().cpu().reshape(-1)
    nz = flat != 0
    bits = np.packbits(nz.numpy())
    return {
        _SPARSE_TAG: True,
        "shape": list(t.shape),
        "dtype": str(t.dtype).removeprefix("torch."),
        "mask": torch.from_numpy(bits),
        "values": flat[nz].clone(),
    }


def _decompress(entry: dict) -> torch.Tensor:
    shape = entry["shape"]
    n = int(np.prod(shape)) if shape else 1
    nz = torch.from_numpy(np.unpackbits(entry["mask"].numpy(), count=n).astype(bool))
    out = torch.zeros(n, dtype=getattr(torch, entry["dtype"]))
    out[nz] = entry["values"]
    return out.reshape(shape)


def save_sparse_state_dict(
    model: nn.Module | Mapping[str, Any], path: str | os.PathLike, min_zero_fraction: float = 0.5
) -> None:
    """``torch.save`` a state dict in which every floating tensor with >= 2 dims and more than
    ``min_zero_fraction`` exact zeros is stored as a bit mask (1 bit/element) plus its non-zero values.
    At 70% sparsity that is ~0.125 + 0.3*4 bytes per element instead of 4 (~3x smaller). Other entries
    are stored unchanged. Read back with :func:`load_sparse_state_dict` (``weights_only`` safe). Written
    atomically, the same bytes for the same state."""
    out = {}
    for key, value in _state_dict(model).items():
        if (
            isinstance(value, torch.Tensor)
            and value.is_floating_point()
            and value.dim() >= 2
            and not value.is_sparse
            and value.numel() > 0
            and float((value == 0).sum()) / value.numel() > min_zero_fraction
        ):
            out[key] = _compress(value)
        else:
            out[key] = value
    write_torch(out, path)


def load_sparse_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Inverse of :func:`save_sparse_state_dict`: a plain dense state dict for ``load_state_dict``."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return {k: _decompress(v) if isinstance(v, dict) and v.get(_SPARSE_TAG) else v for k, v in raw.items()}


def sparse_size_on_disk_bytes(model: nn.Module | Mapping[str, Any], min_zero_fraction: float = 0.5) -> int:
    """Bytes of :func:`save_sparse_state_dict` output: what pruning saves on disk
    (call ``make_permanent`` first)."""
    state = _state_dict(model)
    return _file_size(lambda p: save_sparse_state_dict(state, p, min_zero_fraction))


class _Threads:
    """Set ``torch.set_num_threads(n)`` for a block and restore the previous value."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"num_threads must be >= 1, got {n}")
        self.n, self.prev = n, None

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)
        return False


def latency_p50_ms(
    fn: Callable[[Any], Any], example: Any, repeats: int = 50, warmup: int = 5, num_threads: int = 1
) -> float:
    """Median wall time in milliseconds of ``fn(example)`` over ``repeats`` calls after ``warmup`` calls,
    under ``torch.inference_mode()`` with ``num_threads`` intra-op threads (restored afterwards).
    Pass e.g. ``model`` and a single-example batch ``ids[:1]``; wrap multi-argument calls in a lambda."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    times = []
    with _Threads(num_threads), torch.inference_mode():
        for _ in range(warmup):
            fn(example)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(example)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, Mapping):
        return _batch_len(next(iter(batch.values())))
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].shape[0]
    return len(batch)


def throughput(
    fn: Callable[[Any], Any],
    batch: Any,
    repeats: int = 10,
    num_threads: int = 1,
    warmup: int = 1,
    n_items: int | None = None,
) -> float:
    """Items per second of ``fn(batch)``: ``n_items`` / the median time of ``repeats`` calls after ``warmup``
    calls, under ``torch.inference_mode()`` with ``num_threads`` threads (restored afterwards). The median, not
    the mean: on a shared machine one call slowed by another process would otherwise move the figure (the
    prune stage's 2-thread int8/fp32 ratio read 0.8x to 1.6x between runs with the mean of 5). ``n_items``
    defaults to the batch's leading dimension (first tensor of a tuple/list/dict)."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    items = _batch_len(batch) if n_items is None else n_items
    times = []
    with _Threads(num_threads), torch.inference_mode():
        for _ in range(warmup):
            fn(batch)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(batch)
            times.append(time.perf_counter() - t0)
    return items / max(statistics.median(times), 1e-12)

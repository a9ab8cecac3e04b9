"""Model compression: global magnitude pruning, dynamic int8 quantisation, size/latency measurement.

Pure PyTorch (no training framework): works on any ``torch.nn.Module``.
"""

from sora.compression.measure import (
    latency_p50_ms,
    load_sparse_state_dict,
    save_sparse_state_dict,
    size_on_disk_bytes,
    sparse_size_on_disk_bytes,
    throughput,
)
from sora.compression.prune import (
    detach_masked_weights,
    global_magnitude_prune,
    is_pruned,
    make_permanent,
    prunable_parameters,
    sparsity_report,
)
from sora.compression.quantize import quantization_summary, quantize_dynamic_int8

__all__ = [
    "prunable_parameters",
    "global_magnitude_prune",
    "make_permanent",
    "is_pruned",
    "detach_masked_weights",
    "sparsity_report",
    "quantize_dynamic_int8",
    "quantization_summary",
    "size_on_disk_bytes",
    "sparse_size_on_disk_bytes",
    "save_sparse_state_dict",
    "load_sparse_state_dict",
    "latency_p50_ms",
    "throughput",
]

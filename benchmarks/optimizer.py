"""The optimizer step on CPU: torch's default AdamW (multi-tensor "foreach" kernel) against the fused kernel that
sora.training.modules.adamw uses, side by side in one run, on the default classifier (params.yaml model, with
its embedding and wide n-gram tables) and synthetic batches of the default shape (batch 64, 40 tokens).
Prints the optimizer step alone and the whole training step.

    python benchmarks/optimizer.py [--steps 40] [--threads 2]
"""

from __future__ import annotations

import argparse

from synthetic_steps import default_batches, new_classifier, timed_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from sora.training.modules import adamw

    params, batches = default_batches(args.steps, 40, args.threads)
    kinds = {
        "foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-3),
        "fused": lambda ps: adamw(ps, 1e-3),
    }
    results = {}
    for name in ("foreach", "fused", "foreach"):  # the default twice: the first run also warms the allocator
        model = new_classifier(params)
        step, total = timed_steps(model, batches, kinds[name](model.parameters()), args.steps)
        results[name] = min(results.get(name, (step, total)), (step, total))
        print(f"{name:8s} optimizer step {step * 1000:6.1f} ms, training step {total * 1000:6.1f} ms", flush=True)
    (f_step, f_total), (d_step, d_total) = results["fused"], results["foreach"]
    n = sum(p.numel() for p in model.parameters())
    print(f"fused / foreach ({n / 1e6:.1f}M parameters, {args.threads} threads): optimizer step "
          f"{f_step / d_step:.2f}x, training step {f_total / d_total:.2f}x the time")  # fmt: skip


if __name__ == "__main__":
    main()

"""Shared by the training-step benchmarks (dropout.py, optimizer.py): the default classifier (params.yaml model)
on synthetic batches of the default shape, and a timed training loop. Run from the repository root."""

from __future__ import annotations

import time


def default_batches(steps: int, tokens: int, threads: int):
    """(params, batches): steps + 5 warm-up batches of (token ids, labels), batch size from params.yaml."""
    import torch

    from sora.config import load_params

    torch.set_num_threads(threads)
    params = load_params("params.yaml")
    vocab_size, batch = params.vocab.max_size, params.trainer.batch_size
    gen = torch.Generator().manual_seed(0)
    batches = [
        (torch.randint(6, vocab_size, (batch, tokens), generator=gen), torch.randint(0, 2, (batch,), generator=gen))
        for _ in range(steps + 5)
    ]
    return params, batches


def new_classifier(params):
    import torch

    from sora.models.classifier import build_classifier

    torch.manual_seed(0)
    return build_classifier(params.vocab.max_size, 0, params.model, 2)


def timed_steps(model, batches, opt, steps: int) -> tuple[float, float]:
    """(seconds per optimizer step, seconds per training step), after 5 warm-up steps."""
    import torch

    model.train()
    in_step = 0.0
    for i, (ids, labels) in enumerate(batches[: steps + 5]):
        if i == 5:
            start, in_step = time.perf_counter(), 0.0
        loss = torch.nn.functional.cross_entropy(model(ids), labels)
        opt.zero_grad()
        loss.backward()
        before = time.perf_counter()
        opt.step()
        in_step += time.perf_counter() - before
    return in_step / steps, (time.perf_counter() - start) / steps

"""CPU training step of the default classifier: torch's dropout (F.dropout, and the dropout inside
scaled_dot_product_attention, both drawing masks with bernoulli_) against sora's (a torch.rand mask), side by side
in one run. Synthetic batches of the default shape (params.yaml model, batch 64, 40 tokens).

    python benchmarks/dropout.py [--steps 40] [--tokens 40] [--threads 2]
"""

from __future__ import annotations

import argparse
import time


def step_seconds(model, batches, steps: int) -> float:
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for i, (ids, labels) in enumerate(batches[: steps + 5]):
        if i == 5:  # warm-up steps excluded
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(ids), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=40, help="tokens per text (the bucketed batches are ~30-45)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    import sora.models.encoder as encoder
    from sora.config import load_params
    from sora.models.classifier import build_classifier

    torch.set_num_threads(args.threads)
    params = load_params("params.yaml")
    vocab_size, batch = params.vocab.max_size, params.trainer.batch_size
    gen = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randint(6, vocab_size, (batch, args.tokens), generator=gen),
            torch.randint(0, 2, (batch,), generator=gen),
        )
        for _ in range(args.steps + 5)
    ]
    ours, attend = encoder.dropout, encoder.EncoderLayer.attend

    def torch_attend(self, q, k, v, keep):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=self.dropout if self.training else 0.0)

    results = {}
    for name in ("torch", "sora", "torch again"):  # torch twice: the first run also warms the allocator
        if name.startswith("torch"):
            encoder.dropout = lambda x, p, training: F.dropout(x, p, training)
            encoder.EncoderLayer.attend = torch_attend
        else:
            encoder.dropout, encoder.EncoderLayer.attend = ours, attend
        torch.manual_seed(0)
        model = build_classifier(vocab_size, 0, params.model, 2)
        results[name] = step_seconds(model, batches, args.steps)
        print(f"{name:12s} {results[name] * 1000:7.1f} ms per training step", flush=True)
    encoder.dropout, encoder.EncoderLayer.attend = ours, attend
    torch_best = min(results["torch"], results["torch again"])
    print(f"sora / torch: {results['sora'] / torch_best:.2f}x the time per step ({args.threads} threads)")


if __name__ == "__main__":
    main()

"""CPU training step of the default classifier: torch's dropout (F.dropout, and the dropout inside
scaled_dot_product_attention, both drawing masks with bernoulli_) against sora's (a torch.rand mask), side by side
in one run. Synthetic batches of the default shape (params.yaml model, batch 64, 40 tokens).

    python benchmarks/dropout.py [--steps 40] [--tokens 40] [--threads 2]
"""

from __future__ import annotations

import argparse

from synthetic_steps import default_batches, new_classifier, timed_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=40, help="tokens per text (the bucketed batches are ~30-45)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    import sora.models.encoder as encoder

    params, batches = default_batches(args.steps, args.tokens, args.threads)
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
        model = new_classifier(params)
        results[name] = timed_steps(model, batches, torch.optim.AdamW(model.parameters(), lr=1e-3), args.steps)[1]
        print(f"{name:12s} {results[name] * 1000:7.1f} ms per training step", flush=True)
    encoder.dropout, encoder.EncoderLayer.attend = ours, attend
    torch_best = min(results["torch"], results["torch again"])
    print(f"sora / torch: {results['sora'] / torch_best:.2f}x the time per step ({args.threads} threads)")


if __name__ == "__main__":
    main()

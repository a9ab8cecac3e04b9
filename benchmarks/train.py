"""Training throughput and peak memory for the default setting (params.yaml), pretraining and fine-tuning,
measured on the real processed data (run `dvc repro vocab` first).

    python benchmarks/train.py [--steps 30] [--precision 16-mixed --accelerator gpu]
"""

from __future__ import annotations

import argparse
import resource
import time


class Throughput:
    """Lightning callback: samples/s over training batches after a warm-up."""

    def __new__(cls, *args, **kwargs):
        import lightning as L

        class _Cb(L.Callback):
            def __init__(self, warmup: int = 3):
                self.warmup, self.samples, self.start, self.seen = warmup, 0, None, 0

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if self.seen == self.warmup:
                    if module.device.type == "cuda":
                        import torch

                        torch.cuda.synchronize()
                    self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                self.seen += 1
                if self.start is not None:
                    self.samples += len(next(iter(batch.values())))

            def rate(self, device_type: str) -> float:
                if device_type == "cuda":
                    import torch

                    torch.cuda.synchronize()
                return self.samples / (time.perf_counter() - self.start)

        return _Cb(*args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--precision", default=None)
    parser.add_argument("--accelerator", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    args = parser.parse_args()

    import torch

    from sora.config import load_params
    from sora.data.tasks import labeled_splits
    from sora.data.vocab import Vocab
    from sora.pipeline.entry import declared_args, read_frames
    from sora.training.data import TextDataModule, denoising_data, pretrain_corpus
    from sora.training.modules import classifier_module
    from sora.training.pretraining import PretrainModule
    from sora.training.trainer import build_trainer, seed_and_threads

    overrides = {
        "trainer": {
            k: v
            for k, v in (
                ("precision", args.precision),
                ("accelerator", args.accelerator),
                ("batch_size", args.batch_size),
            )
            if v is not None
        }
    }
    params = load_params(overrides=overrides)
    t, p = params.trainer, params.pretrain
    seed_and_threads(t)
    args = declared_args("pretrain")  # the files the pretrain stage reads
    vocab = Vocab.load(args.vocab)
    rows = []

    pool = read_frames(args, "pool")["pool"]
    train, _ = pretrain_corpus(pool, p.max_texts, t.seed)
    data = denoising_data(params, vocab, train, None)
    module = PretrainModule(
        len(vocab), vocab.pad_id, params.model, lr=p.lr, loss_fraction=p.loss_fraction, tie_output=p.tie_output
    )
    rows.append(("pretrain (denoising AE)", module, data))

    splits = labeled_splits(read_frames(declared_args("finetune"), "train"))
    data = TextDataModule(
        splits["train"], None, vocab=vocab, max_len=params.model.max_len, batch_size=t.batch_size, mode="classify"
    )
    h = params.harden
    # The cost of each hardening method, alone and with the discrete token adversary (harden.token_budget;
    # off by default, so timed at 0.1 then: its cost hardly depends on the budget).
    timed_budget = h.token_budget or 0.1
    variants = [(m, 0.0) for m in ("none", "fgm", "pgd", "freelb")] + [("none", timed_budget), ("fgm", timed_budget)]
    for method, token_budget in variants:
        module = classifier_module(
            params, vocab, 2, params.finetune.lr, adversarial=True, adv_method=method, adv_token_budget=token_budget
        )
        tokens = f"+tokens {token_budget:g}" if token_budget else ""
        rows.append((f"finetune/harden (adv={method}{tokens})", module, data))

    print(
        f"setting: accelerator={t.accelerator} precision={t.precision} batch={t.batch_size} "
        f"threads={t.threads} model d={params.model.d_model} layers={params.model.n_layers} vocab={len(vocab)}"
    )
    print(f"{'phase':40s} {'samples/s':>10s} {'x none':>7s} {'peak RSS MiB':>13s} {'peak GPU MiB':>13s}")
    rates = {}
    for name, module, data in rows:
        cb = Throughput()
        trainer = build_trainer(
            t,
            1,
            "benchmarks/out",
            callbacks=[cb],
            enable_progress_bar=False,
            enable_checkpointing=False,
            limit_train_batches=args.steps,
            limit_val_batches=0,
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(t.seed)  # the same batch order for every phase: step cost depends on batch lengths
        trainer.fit(module, datamodule=data)
        device = module.device.type
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan")
        rates[name] = cb.rate(device)
        slow = rates.get("finetune/harden (adv=none)", rates[name]) / rates[name]
        print(f"{name:40s} {rates[name]:10.1f} {slow:7.2f} {rss:13.0f} {gpu:13.0f}")


if __name__ == "__main__":
    main()

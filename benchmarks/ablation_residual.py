"""What the network adds to the n-gram half: the tuned n-gram model alone vs n-gram model + a Transformer
trained on its out-of-fold residual (labels only, no teacher, no adversary: the residual in isolation), over
seeds, on val (selection) and test (reporting), with the network alone beside them. Reads the pipeline's own
outputs (`dvc repro baseline pretrain` first); trains in-process under benchmarks/out/ablation-residual-*.

    python benchmarks/ablation_residual.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def accuracy(probs, frame) -> dict[str, float]:
    pred, labels = probs.argmax(1), frame["label"].to_numpy()
    return {lang: round(float((pred[m] == labels[m]).mean()), 5) for lang in ("zh", "en")
            if (m := (frame["lang"] == lang).to_numpy()).any()}  # fmt: skip


def run_seed(seed: int) -> dict:
    from scipy.special import softmax

    from sora.config import load_params
    from sora.data.tasks import labeled_splits
    from sora.data.vocab import Vocab
    from sora.inference import Predictor
    from sora.models.ngram import NgramModel
    from sora.pipeline.entry import declared_args, read_frames
    from sora.training.classify import fit_and_score, initialise
    from sora.training.distill import read_train_logits
    from sora.training.fit import ResumableFit
    from sora.training.modules import classifier_module
    from sora.training.trainer import load_classifier, seed_and_threads

    params = load_params()
    params = params.model_copy(update={"trainer": params.trainer.model_copy(update={"seed": seed}),
                                       "model": params.model.model_copy(update={"wide_buckets": 0})})  # fmt: skip
    seed_and_threads(params.trainer)
    args = declared_args("distill")  # the files the distill stage reads
    splits = labeled_splits(read_frames(args, "train", "val", "test"))
    vocab = Vocab.load(args.vocab)
    ngram = NgramModel.load(args.ngram)
    offsets = {"train": read_train_logits(args.train_logits, splits["train"], str(args.train))}
    offsets |= {s: ngram.logits(splits[s]["text"].tolist(), splits[s]["lang"].tolist()) for s in ("val", "test")}
    module = classifier_module(params, vocab, int(splits["train"]["label"].max()) + 1, params.finetune.lr)
    initialise(module, params, vocab, args.encoder / "encoder.pt", splits["train"], splits["val"])
    out = Path("benchmarks/out") / f"ablation-residual-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    with_offsets = {s: f.assign(offset=list(offsets[s])) for s, f in splits.items()}
    p = params.finetune
    fit_and_score(params, module, vocab, with_offsets, p.max_epochs, p.patience, ResumableFit(out / "work"),
                  f"ablation-residual-{seed}", out / "model", out / "curve.csv", None, loggers=[])  # fmt: skip
    model, hp = load_classifier(out / "model" / "best.ckpt")
    network = Predictor(model, vocab, hp["model_params"]["max_len"])
    result = {"seed": seed}
    for s in ("val", "test"):
        ids = [vocab.encode(list(t), network.max_len) for t in splits[s]["tokens"]]
        result[s] = {
            "ngram": accuracy(softmax(offsets[s], axis=1), splits[s]),
            "ngram+network": accuracy(network.predict_ids(ids, offsets[s]), splits[s]),
            "network": accuracy(network.predict_ids(ids), splits[s]),
        }
    shutil.rmtree(out / "model", ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    Path("benchmarks/out").mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed))
        print(json.dumps(results[-1]), flush=True)
    print(f"\nmean over seeds {args.seeds} (n-gram alone does not depend on the seed)")
    print(f"{'split':6} {'lang':4} {'ngram':>8} {'ngram+network':>14} {'network':>8}")
    for split in ("val", "test"):
        for lang in ("zh", "en"):
            mean = lambda arm: sum(r[split][arm][lang] for r in results) / len(results)  # noqa: B023
            print(f"{split:6} {lang:4} {mean('ngram'):8.4f} {mean('ngram+network'):14.4f} {mean('network'):8.4f}")


if __name__ == "__main__":
    main()

"""harden: fine-tuning against attacks, from the finetune checkpoint. Text-level noise augmentation
(`harden.noise_augment`: train texts edited by the attack suite's perturbations, beside the originals) covers
edits that no embedding ball contains; optionally an embedding-space adversary (FGM / PGD / FreeLB,
`harden.method`) smooths the decision boundary around each example, and a token adversary (`harden.token_budget`)
trains each batch also with its most salient tokens hidden behind <unk>.
-> models/harden/{best,last}.ckpt, metrics/harden.json, plots/harden/ (curves)."""

from __future__ import annotations

from sora.data.tasks import labeled_splits
from sora.data.vocab import Vocab
from sora.io import read_json, write_json
from sora.pipeline.entry import StageContext, read_frames, require, stage_main
from sora.pipeline.spec import fingerprint
from sora.training.augment import augment_with_attacks
from sora.training.classify import fit_and_score
from sora.training.fit import ResumableFit
from sora.training.modules import classifier_module
from sora.training.trainer import classifier_state, load_checkpoint, seed_and_threads

AUGMENT_SEED_OFFSET = 1_000_003  # keeps augmentation noise apart from evaluation's attack_seed


def run(ctx: StageContext) -> None:
    params, args, h = ctx.params, ctx.args, ctx.params.harden
    seed_and_threads(params.trainer)
    finetuned_ckpt = args.finetuned / "best.ckpt"
    require(args.vocab, args.baseline, finetuned_ckpt)
    vocab = Vocab.load(args.vocab)
    finetuned = load_checkpoint(finetuned_ckpt)  # once: weights, hparams and optimizer state
    state, hp = classifier_state(finetuned)
    multitask = bool(hp.get("task_classes"))  # trains every head, on the rows finetune trained them on
    every_row = read_frames(args, "train", "val", "test")
    splits = every_row if multitask else labeled_splits(every_row)
    module = classifier_module(params, vocab, hp["num_classes"], h.lr, adversarial=True, multitask=multitask)
    module.model.load_state_dict(state)
    module.load_objective_state(finetuned["state_dict"])  # learned task weights, the denoising decoder
    if h.continue_optimizer:  # a fresh Adam moves every weight by about lr at first and knocks the model off
        module.warm_optimizer_state = finetuned["optimizer_states"][0]
    splits["train"] = augment_with_attacks(
        splits["train"],
        h.noise_augment,
        params.evaluate.attack_budget,
        params.evaluate.attack_seed + AUGMENT_SEED_OFFSET,
        exclude=set(splits["val"]["text"]) | set(splits["test"]["text"]),
    )
    metrics, seconds = fit_and_score(
        params, module, vocab, splits, h.max_epochs, None, ResumableFit(ctx.work_dir), fingerprint(params, ctx.spec),
        args.out, args.plots, read_json(args.baseline), ctx.lightning_loggers(), h.val_checks_per_epoch,
    )  # fmt: skip
    if metrics is None:
        return
    write_json(args.metrics, metrics)
    ctx.log_metrics({**metrics, "train_seconds": round(seconds, 1)})
    print(f"harden ({h.method}): {metrics}")


if __name__ == "__main__":
    stage_main("harden", run)

import numpy as np
import pandas as pd
import pytest
import torch

from sora.training.data import TextDataModule
from sora.training.modules import ClassifierModule, build_classifier
from sora.training.pretraining import PretrainModule
from sora.training.trainer import (
    build_trainer,
    checkpoint_callbacks,
    load_classifier,
    load_classifier_state,
    seed_and_threads,
)


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic


def make_dm(data, model, batch_size=4):
    train, val, vocab = data
    return TextDataModule(train, val, val, vocab=vocab, max_len=model.max_len, batch_size=batch_size)


def make_module(vocab, model, **kw):
    return ClassifierModule(len(vocab), vocab.pad_id, model, num_classes=2, lr=1e-2, **kw)


def test_fit_checkpoint_roundtrip(data, tmp_path, tiny_model, trainer_params):
    _, _, vocab = data
    params = trainer_params(seed=0, log_every_n_steps=1)
    seed_and_threads(params)
    module = make_module(vocab, tiny_model)
    ckpt_dir = tmp_path / "ckpt"
    trainer = build_trainer(
        params,
        max_epochs=2,
        default_root_dir=tmp_path,
        callbacks=checkpoint_callbacks(ckpt_dir, "val_acc", "max", patience=2),
        enable_progress_bar=False,
    )
    dm = make_dm(data, tiny_model)
    trainer.fit(module, datamodule=dm)
    m = trainer.callback_metrics
    assert m["val_acc"] > 0.9, dict(m)
    for key in ("val_f1", "val_acc_zh", "val_f1_zh", "val_acc_en", "val_f1_en", "train_loss"):
        assert key in m

    test = trainer.test(module, datamodule=dm, verbose=False)[0]
    assert {"test_acc", "test_f1", "test_acc_zh", "test_acc_en"} <= set(test)

    # Checkpoints hold plain types only: weights_only=True loading works.
    assert (ckpt_dir / "best.ckpt").is_file() and (ckpt_dir / "last.ckpt").is_file()
    torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    state, hparams = load_classifier_state(ckpt_dir / "best.ckpt")
    assert hparams["model_params"]["d_model"] == 32 and hparams["adv_method"] == "none"
    clf = build_classifier(hparams["vocab_size"], hparams["pad_id"], hparams["model_params"], hparams["num_classes"])
    clf.load_state_dict(state)
    clf2, _ = load_classifier(ckpt_dir / "best.ckpt")
    ids = next(iter(dm.val_dataloader()))["ids"]
    module.eval()
    with torch.no_grad():
        expected = module.model(ids)
        assert torch.allclose(clf.eval()(ids), expected, atol=1e-6)
        assert torch.allclose(clf2(ids), expected, atol=1e-6)

    # Resuming from last.ckpt continues the run (Lightning's own loader copes with our checkpoint).
    trainer = build_trainer(
        params,
        max_epochs=3,
        default_root_dir=tmp_path,
        callbacks=checkpoint_callbacks(ckpt_dir, "val_acc", "max"),
        enable_progress_bar=False,
    )
    trainer.fit(
        make_module(vocab, tiny_model),
        datamodule=make_dm(data, tiny_model),
        ckpt_path=str(ckpt_dir / "last.ckpt"),
        weights_only=True,
    )
    assert trainer.current_epoch == 3


@pytest.mark.parametrize("method", ["fgm", "freelb"])
def test_adversarial_fit(data, tmp_path, method, tiny_model, trainer_params):
    _, _, vocab = data
    seed_and_threads(trainer_params(seed=0))
    module = make_module(vocab, tiny_model, adv_method=method, adv_epsilon=0.5, adv_steps=2, adv_step_size=0.3)
    trainer = build_trainer(
        trainer_params(),
        max_epochs=1,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        limit_train_batches=3,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=make_dm(data, tiny_model))
    assert torch.isfinite(trainer.callback_metrics["train_loss"])


def test_pretrain_then_init_classifier(data, tmp_path, tiny_model, trainer_params):
    train, val, vocab = data
    seed_and_threads(trainer_params(seed=0))
    dm = TextDataModule(
        train,
        val,
        vocab=vocab,
        max_len=tiny_model.max_len,
        batch_size=16,
        mode="denoise",
        mask_rate=0.2,
        delete_rate=0.05,
        span_rate=0.05,
        max_span=2,
        seed=0,
    )
    module = PretrainModule(len(vocab), vocab.pad_id, tiny_model, lr=3e-3)
    trainer = build_trainer(
        trainer_params(),
        max_epochs=2,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        callbacks=checkpoint_callbacks(tmp_path / "pre", "val_loss", "min"),
    )
    trainer.fit(module, datamodule=dm)
    m = trainer.callback_metrics
    assert {"train_loss", "val_loss", "val_token_acc"} <= set(m)
    assert dm.datasets["train"].epoch == 1  # noise was re-drawn for the second epoch

    clf = make_module(vocab, tiny_model)
    clf.load_encoder_state(module.encoder_state_dict())
    assert torch.equal(clf.model.encoder.tok.weight, module.autoencoder.encoder.tok.weight)


def test_ddp_spawn_two_processes(data, tmp_path, tiny_model, trainer_params):
    _, _, vocab = data
    params = trainer_params(accelerator="cpu", devices=2, strategy="ddp_spawn", threads=1, seed=0)
    seed_and_threads(params)
    trainer = build_trainer(
        params, max_epochs=1, default_root_dir=tmp_path, enable_progress_bar=False, num_sanity_val_steps=0
    )
    trainer.fit(make_module(vocab, tiny_model), datamodule=make_dm(data, tiny_model))
    assert "val_acc" in trainer.callback_metrics and "val_acc_zh" in trainer.callback_metrics


def test_finetune_refuses_labels_with_an_unseen_class():
    import pandas as pd

    from sora.errors import DataError
    from sora.training.fit import class_count

    def split(labels):
        return pd.DataFrame({"label": labels})

    assert class_count(split([0, 1, 1]), split([1]), split([0])) == 2
    with pytest.raises(DataError, match=r"no examples of label\(s\) \[2, 3, 4, 5, 6\]"):
        class_count(split([0, 1, 7]), split([1]), split([0]))
    with pytest.raises(DataError, match=r"label\(s\) \[2\]"):  # a class only val/test know is unseen too
        class_count(split([0, 1]), split([2]), split([0]))


def test_warm_start_carries_adam_moments_and_sets_this_runs_lr():
    """harden continues finetune's optimizer: its Adam moments come over, its learning rate does not, and a
    scheduler built afterwards starts from the new rate (not the old run's initial_lr)."""
    from sora.training.modules import warm_start

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    old = torch.optim.AdamW(model.parameters(), lr=1e-3)
    torch.optim.lr_scheduler.LambdaLR(old, lambda step: 0.0)  # leaves initial_lr=1e-3 and lr=0 in the state
    model(torch.randn(8, 4)).sum().backward()
    old.step()
    saved = old.state_dict()

    new = torch.optim.AdamW(model.parameters(), lr=5.0)
    warm_start(new, saved, lr=1e-4)
    for p in model.parameters():
        assert torch.equal(new.state[p]["exp_avg"], old.state[p]["exp_avg"])
        assert torch.equal(new.state[p]["exp_avg_sq"], old.state[p]["exp_avg_sq"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(new, lambda step: 1.0)
    assert [g["lr"] for g in new.param_groups] == [1e-4] and scheduler.get_last_lr() == [1e-4]


def _with_topic(frame, seed):
    """A second task on the cue-word rows: topic 1 when the text has the filler word 'today' (今天), else 0;
    a third of the rows lose their sentiment label, another third their topic."""
    import random

    rng = random.Random(seed)
    out = frame.copy()
    out["topic"] = [int("today" in t or "今天" in t) for t in out["tokens"]]
    drop = [rng.randrange(3) for _ in range(len(out))]
    out.loc[[d == 0 for d in drop], "label"] = -1
    out.loc[[d == 1 for d in drop], "topic"] = -1
    return out


UNCERTAINTY_AND_DENOISING = {
    "task_weighting": "uncertainty",
    "denoise_weight": 0.5,
    "noise": {"mask_rate": 0.15, "delete_rate": 0.05, "span_rate": 0.05, "max_span": 3, "loss_fraction": 0.5},
}


@pytest.mark.parametrize("objective", [{}, UNCERTAINTY_AND_DENOISING], ids=["static", "uncertainty+denoise"])
def test_multitask_heads_learn_from_the_rows_labeled_for_them(data, tmp_path, tiny_model, trainer_params, objective):
    from sora.inference import Predictor
    from sora.training.data import EncodedDataset

    train, val, vocab = data
    train, val = _with_topic(pd.concat([train] * 4, ignore_index=True), 0), _with_topic(val, 1)
    seed_and_threads(trainer_params(seed=0))
    if objective:
        objective = objective | {"noise": objective["noise"] | {"mask_id": vocab.mask_id}}
    module = make_module(
        vocab, tiny_model, task_classes={"topic": 2}, task_weights={"label": 1.0, "topic": 1.0}, **objective
    )
    dm = TextDataModule(train, val, val, vocab=vocab, max_len=tiny_model.max_len, batch_size=8, task_columns=["topic"])
    trainer = build_trainer(
        trainer_params(seed=0, log_every_n_steps=1),
        max_epochs=6,
        default_root_dir=tmp_path,
        callbacks=checkpoint_callbacks(tmp_path / "ckpt", "val_f1", "max", patience=6),
        enable_progress_bar=False,
    )
    trainer.fit(module, datamodule=dm)
    m = trainer.callback_metrics
    assert m["val_acc"] > 0.9 and m["val_topic_acc"] > 0.9, dict(m)
    if objective:  # the learned uncertainties and the reconstruction loss are logged
        assert {"sigma_label", "sigma_topic", "sigma_denoise", "train_denoise_loss"} <= set(m), dict(m)

    model, hp = load_classifier(tmp_path / "ckpt/best.ckpt")
    assert hp["task_classes"] == {"topic": 2} and set(model.task_heads) == {"topic"}
    ids = EncodedDataset(val, vocab, tiny_model.max_len).ids
    probs = Predictor(model, vocab, tiny_model.max_len).predict_tasks_ids(ids)
    assert set(probs) == {"primary", "topic"} and probs["topic"].shape == (len(val), 2)
    has_topic = (val["topic"] != -1).to_numpy()
    assert (probs["topic"].argmax(1)[has_topic] == val["topic"][has_topic]).mean() > 0.9
    # The primary task's probabilities are what the single-task path gives: the heads change nothing there.
    np.testing.assert_allclose(Predictor(model, vocab, tiny_model.max_len).predict_ids(ids), probs["primary"])


def test_a_batch_without_labels_for_a_task_adds_nothing_to_its_loss():
    from sora.training.objective import masked_cross_entropy as _masked_cross_entropy

    logits = torch.randn(4, 3, requires_grad=True)
    assert _masked_cross_entropy(logits, torch.full((4,), -1)).item() == 0.0
    labels = torch.tensor([0, -1, 2, -1])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert torch.allclose(_masked_cross_entropy(logits, labels), expected)

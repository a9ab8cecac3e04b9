"""The joint objective: static and uncertainty weights, the denoising term, and the classifier module built on it."""

from __future__ import annotations

import math

import pytest
import torch

from sora.models.classifier import build_encoder, pad_ids
from sora.training.modules import ClassifierModule
from sora.training.objective import DENOISE, JointObjective

NOISE = {"mask_rate": 0.15, "delete_rate": 0.05, "span_rate": 0.05, "max_span": 3, "loss_fraction": 1.0, "mask_id": 3}


def test_static_weights_sum_the_weighted_terms():
    objective = JointObjective({"label": 1.0, "topic": 0.5})
    total = objective({"label": torch.tensor(2.0), "topic": torch.tensor(4.0)}, {})
    assert total.item() == pytest.approx(2.0 + 0.5 * 4.0)
    assert list(objective.parameters()) == [] and objective.sigmas() == {}


def test_uncertainty_weights_follow_kendall_and_skip_the_regulariser_of_an_absent_term():
    objective = JointObjective({"label": 1.0, "topic": 2.0}, "uncertainty")
    with torch.no_grad():
        objective.log_vars.copy_(torch.tensor([0.5, -1.0]))
    losses = {"label": torch.tensor(3.0), "topic": torch.tensor(0.0)}  # no topic rows in this batch
    total = objective(losses, {"label": True, "topic": False})
    assert total.item() == pytest.approx(math.exp(-0.5) * 3.0 + 0.25)
    both = objective({"label": torch.tensor(3.0), "topic": torch.tensor(1.0)}, {"label": True, "topic": True})
    assert both.item() == pytest.approx(math.exp(-0.5) * 3.0 + 0.25 + 2.0 * (math.exp(1.0) * 1.0 - 0.5))
    assert objective.sigmas() == pytest.approx({"label": math.exp(0.25), "topic": math.exp(-0.5)})


def test_a_single_term_is_weighted_statically():
    objective = JointObjective({"label": 1.0}, "uncertainty")  # nothing to balance: s would only rescale the lr
    assert objective.weighting == "static" and list(objective.parameters()) == []


def test_a_term_with_a_high_loss_learns_a_larger_uncertainty():
    objective = JointObjective({"easy": 1.0, "hard": 1.0}, "uncertainty")
    opt = torch.optim.SGD(objective.parameters(), lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        objective({"easy": torch.tensor(0.1), "hard": torch.tensor(2.0)}, {}).backward()
        opt.step()
    # The optimum of exp(-s) L + s / 2 is s = log(2 L).
    assert objective.log_vars.detach().tolist() == pytest.approx([math.log(0.2), math.log(4.0)], abs=0.05)


def test_unknown_weighting_and_denoising_without_an_encoder_are_refused():
    with pytest.raises(ValueError, match="weighting must be one of"):
        JointObjective({"label": 1.0}, "learned")
    with pytest.raises(ValueError, match="encoder"):
        JointObjective({"label": 1.0, DENOISE: 1.0})


def test_denoising_loss_trains_the_shared_encoder(tiny_model):
    torch.manual_seed(0)
    encoder = build_encoder(50, 0, tiny_model)
    objective = JointObjective({"label": 1.0, DENOISE: 1.0}, encoder=encoder, noise=NOISE)
    ids = torch.tensor([[2, 10, 11, 12, 13, 0, 0], [2, 20, 21, 22, 23, 24, 25]])
    loss = objective.denoising_loss(ids, pad_id=0)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert encoder.tok.weight.grad is not None and encoder.tok.weight.grad.abs().sum() > 0
    # The decoder shares the encoder, so the objective holds no second copy of its weights to learn.
    assert objective.denoiser.encoder is encoder


def test_classifier_module_trains_with_uncertainty_and_denoising(synthetic, tiny_model):
    train, _, vocab = synthetic
    noise = NOISE | {"mask_id": vocab.mask_id}
    kwargs = {"task_weighting": "uncertainty", "denoise_weight": 0.5, "noise": noise}
    module = ClassifierModule(len(vocab), vocab.pad_id, tiny_model, num_classes=2, lr=1e-2, **kwargs)
    assert module.objective.terms == ["label", DENOISE]
    rows = train.iloc[:4]
    ids = pad_ids([vocab.encode(list(t), tiny_model.max_len) for t in rows["tokens"]], vocab.pad_id)
    batch = {"ids": ids, "label": torch.tensor(rows["label"].tolist()), "lang_id": torch.zeros(4, dtype=torch.long)}
    module.log = lambda *a, **k: None  # outside a Trainer
    loss = module.training_step(batch, 0)
    loss.backward()
    assert module.objective.log_vars.grad is not None and module.objective.log_vars.grad.abs().sum() > 0
    # Its learned parts travel to a module built the same way (harden continues finetune's objective).
    with torch.no_grad():
        module.objective.log_vars.fill_(0.7)
    other = ClassifierModule(len(vocab), vocab.pad_id, tiny_model, num_classes=2, lr=1e-2, **kwargs)
    other.load_objective_state(module.state_dict())
    assert other.objective.log_vars.tolist() == pytest.approx([0.7, 0.7])
    # A module with the static objective has nothing of its own to load.
    plain = ClassifierModule(len(vocab), vocab.pad_id, tiny_model, num_classes=2, lr=1e-2)
    plain.load_objective_state(plain.state_dict())
    assert not any(k.startswith("objective.") for k in plain.state_dict())

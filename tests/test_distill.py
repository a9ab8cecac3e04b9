"""Distillation: the teacher mixture's weight, the transfer set, the unlabeled part, and soft targets in
training (EncodedDataset / collate_batch / ClassifierModule.training_step)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sora.data.vocab import Vocab
from sora.training.data import EncodedDataset, collate_batch
from sora.training.distill import pick_weight, transfer_set, unlabeled_part
from sora.training.modules import ClassifierModule

# ---------------------------------------------------------------- pick_weight


def test_pick_weight_finds_the_mixture_that_beats_both_models():
    labels = np.array([0, 1])
    first = np.array([[0.9, 0.1], [0.6, 0.4]])  # right on 0, wrong on 1
    second = np.array([[0.4, 0.6], [0.1, 0.9]])  # wrong on 0, right on 1
    w, acc = pick_weight(first, second, labels, grid=11)
    assert acc == 1.0 and w == pytest.approx(0.5)
    assert pick_weight(first, second, labels, grid=3) == (0.5, 1.0)
    assert pick_weight(first, second, labels, grid=2)[1] == 0.5  # only the pure models
    # The accuracies it compared: each pure model gets one of the two wrong.
    assert ((first.argmax(1) == labels).mean(), (second.argmax(1) == labels).mean()) == (0.5, 0.5)


def test_pick_weight_ties_go_to_the_weight_nearest_one_half():
    labels = np.array([1, 1])
    # Example 0 is right iff w > 1/1.6, example 1 iff w < 1/1.2: w in {0.7, 0.8} both score 1.0, and
    # 0.5 does not (the best weight is not simply the middle).
    first = np.array([[0.2, 0.8], [0.6, 0.4]])
    second = np.array([[1.0, 0.0], [0.0, 1.0]])
    w, acc = pick_weight(first, second, labels, grid=11)
    assert acc == 1.0 and w == pytest.approx(0.7)
    # Swapping the models mirrors the weight: {0.2, 0.3} -> 0.3.
    w, acc = pick_weight(second, first, labels, grid=11)
    assert acc == 1.0 and w == pytest.approx(0.3)
    # Identical models: every weight ties, and the least tuned one wins.
    assert pick_weight(first, first, labels, grid=11)[0] == pytest.approx(0.5)


def test_pick_weight_prefers_accuracy_over_closeness_to_one_half():
    labels = np.array([1, 1, 1])
    first = np.array([[0.4, 0.6], [0.4, 0.6], [0.4, 0.6]])
    second = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    w, acc = pick_weight(first, second, labels, grid=11)
    # class 1 wins iff 0.6w + 0.1(1-w) > 0.4w + 0.9(1-w) iff w > 0.8
    assert acc == 1.0 and w == pytest.approx(0.9)


# ---------------------------------------------------------------- transfer set and unlabeled part


@pytest.fixture
def frames():
    train = pd.DataFrame(
        {
            "text": ["good film", "bad film", "很好"],
            "tokens": [["good", "film"], ["bad", "film"], ["很好"]],
            "lang": ["en", "en", "zh"],
            "label": [1, 0, 1],
            "extra": [0, 0, 0],
        }
    )
    pool = pd.DataFrame(
        {
            "text": [f"pool text {i}" for i in range(10)] + ["good film", "很好"],
            "tokens": [["pool", "text", str(i)] for i in range(10)] + [["good", "film"], ["很好"]],
            "lang": ["en"] * 11 + ["zh"],
        }
    )
    return train, pool


def test_transfer_set_mixes_hard_labels_into_the_teacher(frames):
    train, pool = frames
    train_teacher = np.array([[0.3, 0.7], [0.2, 0.8], [0.9, 0.1]])  # wrong on the last two
    pool_teacher = np.tile([0.25, 0.75], (len(pool), 1))
    out = transfer_set(train, train_teacher, pool, pool_teacher, hard_weight=0.6)
    assert len(out) == len(train) + len(pool) and list(out.index) == list(range(len(out)))
    assert set(out.columns) == {"text", "tokens", "lang", "label", "soft"}
    soft = np.stack(out["soft"].to_numpy())
    onehot = np.eye(2)[train["label"]]
    np.testing.assert_allclose(soft[:3], 0.6 * onehot + 0.4 * train_teacher)
    np.testing.assert_allclose(soft[:3], [[0.12, 0.88], [0.68, 0.32], [0.36, 0.64]])
    np.testing.assert_allclose(soft.sum(1), 1.0)
    assert out["label"].tolist() == [1, 0, 1] + [-1] * len(pool)
    np.testing.assert_allclose(soft[3:], pool_teacher)
    assert out["text"].tolist() == train["text"].tolist() + pool["text"].tolist()
    # hard_weight 1: the labels alone; 0: the teacher alone.
    np.testing.assert_allclose(
        np.stack(transfer_set(train, train_teacher, pool, pool_teacher, 1.0)["soft"])[:3], onehot
    )
    np.testing.assert_allclose(
        np.stack(transfer_set(train, train_teacher, pool, pool_teacher, 0.0)["soft"])[:3], train_teacher
    )


def test_unlabeled_part_drops_train_texts_and_caps_with_a_seeded_sample(frames):
    train, pool = frames
    rest = unlabeled_part(pool, train, max_texts=100, seed=0)
    assert sorted(rest["text"]) == sorted(f"pool text {i}" for i in range(10))
    capped = unlabeled_part(pool, train, max_texts=4, seed=0)
    assert len(capped) == 4 and not set(capped["text"]) & set(train["text"])
    assert set(capped["text"]) <= set(rest["text"])
    assert capped["text"].tolist() == unlabeled_part(pool, train, max_texts=4, seed=0)["text"].tolist()
    samples = {tuple(unlabeled_part(pool, train, max_texts=4, seed=s)["text"]) for s in range(5)}
    assert len(samples) > 1  # the seed decides the sample
    assert len(unlabeled_part(pool, train, max_texts=10, seed=0)) == 10  # exactly the rest: no sampling


# ---------------------------------------------------------------- soft targets in training


@pytest.fixture(scope="module")
def vocab(specials):
    return Vocab.build([["good", "bad", "film", "很好"]], specials, min_freq=1, max_size=50)


def test_encoded_dataset_and_collate_carry_soft_targets(frames, vocab):
    train, pool = frames
    out = transfer_set(train, np.full((3, 2), 0.5), pool, np.full((len(pool), 2), 0.5), hard_weight=0.5)
    dataset = EncodedDataset(out, vocab, max_len=16)
    assert dataset[0]["soft"] == [0.25, 0.75] and dataset[5]["label"] == -1
    batch = collate_batch([dataset[i] for i in range(4)], vocab.pad_id)
    assert batch["soft"].dtype == torch.float32 and batch["soft"].shape == (4, 2)
    assert torch.allclose(batch["soft"], torch.tensor([[0.25, 0.75], [0.75, 0.25], [0.25, 0.75], [0.5, 0.5]]))
    plain = EncodedDataset(train, vocab, max_len=16)
    assert "soft" not in plain[0] and "soft" not in collate_batch([plain[0], plain[1]], vocab.pad_id)


def training_loss(module: ClassifierModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with warnings.catch_warnings():  # self.log() outside a Trainer only warns
        warnings.simplefilter("ignore")
        return module.training_step(batch, 0)


def test_training_step_learns_soft_targets(vocab, tiny_model):
    torch.manual_seed(0)
    module = ClassifierModule(len(vocab), vocab.pad_id, tiny_model, num_classes=2, adv_method="none", token_dropout=0.0)
    module.train()  # dropout is 0 in tiny_model, so train mode is deterministic
    frame = pd.DataFrame(
        {
            "tokens": [["good", "film"], ["bad"], ["很好", "film", "good"]],
            "label": [1, 0, 1],
            "lang": ["en", "en", "zh"],
        }
    )
    hard = collate_batch([EncodedDataset(frame, vocab, 16)[i] for i in range(3)], vocab.pad_id)
    soft = dict(hard, soft=torch.full((3, 2), 0.5))

    logits = module.model(hard["ids"])
    hard_loss, soft_loss = training_loss(module, hard), training_loss(module, soft)
    assert hard_loss.requires_grad and soft_loss.requires_grad
    assert torch.allclose(hard_loss, F.cross_entropy(logits, hard["label"]), atol=1e-6)
    assert torch.allclose(soft_loss, F.cross_entropy(logits, soft["soft"]), atol=1e-6)
    assert not torch.allclose(soft_loss, hard_loss, atol=1e-4)
    # One-hot soft targets are the hard labels; the label column is not used when soft is there.
    onehot = dict(hard, soft=F.one_hot(hard["label"], 2).float(), label=torch.full((3,), -1))
    assert torch.allclose(training_loss(module, onehot), hard_loss, atol=1e-6)


def test_offsets_reach_the_batch_and_the_loss(frames, vocab):
    """The n-gram half's logits ride along per row and are added to the network's in the loss: the network
    is trained on the residual."""
    import torch.nn.functional as F

    from sora.training.modules import _with_offset

    train, pool = frames
    train_off, pool_off = np.arange(6.0).reshape(3, 2), np.zeros((len(pool), 2))
    out = transfer_set(train, np.full((3, 2), 0.5), pool, np.full((len(pool), 2), 0.5), 0.5, train_off, pool_off)
    batch = collate_batch([EncodedDataset(out, vocab, max_len=16)[i] for i in range(4)], vocab.pad_id)
    assert torch.equal(batch["offset"], torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [0.0, 0.0]]))
    logits = torch.zeros(4, 2)
    target = torch.tensor([0, 0, 0, 0])
    assert torch.isclose(_with_offset(batch["offset"])(logits, target), F.cross_entropy(batch["offset"], target))
    assert _with_offset(None) is F.cross_entropy


def test_transfer_set_carries_the_other_tasks_labels():
    train = pd.DataFrame(
        {"text": ["a", "b"], "tokens": [["a"], ["b"]], "lang": ["en", "en"], "label": [0, 1], "topic": [2, -1]}
    )
    pool = pd.DataFrame({"text": ["c", "d"], "tokens": [["c"], ["d"]], "lang": ["en", "zh"], "topic": [1, -1]})
    out = transfer_set(train, np.full((2, 2), 0.5), pool, np.full((2, 2), 0.5), 0.5, task_columns=["topic"])
    assert out["topic"].tolist() == [2, -1, 1, -1] and out["label"].tolist() == [0, 1, -1, -1]
    no_topic = transfer_set(train, np.full((2, 2), 0.5), pool.drop(columns="topic"), np.full((2, 2), 0.5), 0.5,
                            task_columns=["topic"])  # fmt: skip
    assert no_topic["topic"].tolist() == [2, -1, -1, -1]
    gaps = pd.concat([pool, pool.drop(columns="topic")], ignore_index=True)  # NaN where a frame had no column
    mixed = transfer_set(train, np.full((2, 2), 0.5), gaps, np.full((4, 2), 0.5), 0.5, task_columns=["topic"])
    assert mixed["topic"].tolist() == [2, -1, 1, -1, -1, -1]


def test_each_other_task_gets_the_teachers_probabilities_mixed_with_its_label():
    train = pd.DataFrame(
        {"text": ["a", "b"], "tokens": [["a"], ["b"]], "lang": ["en", "en"], "label": [0, 1], "topic": [2, -1]}
    )
    pool = pd.DataFrame({"text": ["c"], "tokens": [["c"]], "lang": ["en"], "topic": [0]})
    teacher = ({"topic": np.full((2, 3), 1 / 3)}, {"topic": np.array([[0.2, 0.5, 0.3]])})
    out = transfer_set(train, np.full((2, 2), 0.5), pool, np.full((1, 2), 0.5), 0.4, task_columns=["topic"],
                       task_teacher=teacher)  # fmt: skip
    soft = np.stack(out["soft_topic"])
    np.testing.assert_allclose(soft[0], 0.4 * np.eye(3)[2] + 0.6 / 3)  # labeled: label and teacher mixed
    np.testing.assert_allclose(soft[1], np.full(3, 1 / 3))  # no topic label: the teacher alone
    np.testing.assert_allclose(soft[2], 0.4 * np.eye(3)[0] + 0.6 * np.array([0.2, 0.5, 0.3]))

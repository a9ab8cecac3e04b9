"""Noise augmentation for hardening: only new inputs, labels kept, deterministic, no split leak."""

import pandas as pd

from sora.data.preprocess import add_tokens
from sora.data.text import normalise
from sora.training.augment import augment_with_attacks

ZH = [
    "这个手机的屏幕非常清楚，电池也很耐用",
    "质量太差了，用了两天就坏了，不推荐购买",
    "物流很快，包装完好，客服态度也不错",
    "价格便宜但是声音很小，总体一般般吧",
    "酒店房间干净整洁，早餐种类丰富",
]
EN = [
    "The movie was a delight from start to finish",
    "Terrible service and the food was cold",
    "I would happily buy this blender again",
    "The plot drags and the acting is wooden",
]


def _train() -> pd.DataFrame:
    # One label per language, so a copy's label can be checked against its language's.
    frame = pd.DataFrame(
        {
            "text": ZH + EN,
            "label": [1] * len(ZH) + [0] * len(EN),
            "lang": ["zh"] * len(ZH) + ["en"] * len(EN),
            "source": "test",
        }
    )
    return add_tokens(frame)


def test_every_copy_is_a_new_input_with_its_label():
    train = _train()
    out = augment_with_attacks(train, share=1.0, budget=0.3, seed=7)
    extra = out.iloc[len(train) :]
    assert len(extra) >= len(train) // 2
    originals = dict(zip(train["text"], train["label"]))
    assert not set(extra["text"]) & set(originals)
    assert all(normalise(t) == t for t in extra["text"])  # what the model will see, not undone later
    assert set(extra["source"]) <= {
        f"augment:{n}"
        for n in (
            "zh_char_delete",
            "zh_char_duplicate",
            "zh_char_swap",
            "zh_homophone",
            "zh_width_flip",
            "zh_traditional",
            "en_typo",
            "en_word_delete",
            "en_case_punct",
        )
    }
    assert extra["tokens"].map(len).gt(0).all()
    assert (extra["label"] == extra["lang"].map({"zh": 1, "en": 0})).all()


def test_deterministic_and_excludes_held_out_texts():
    train = _train()
    first = augment_with_attacks(train, share=1.0, budget=0.3, seed=7)
    again = augment_with_attacks(train, share=1.0, budget=0.3, seed=7)
    pd.testing.assert_frame_equal(first, again)
    held_out = set(first.iloc[len(train) :]["text"][:2])
    without = augment_with_attacks(train, share=1.0, budget=0.3, seed=7, exclude=held_out)
    assert not held_out & set(without["text"])
    assert augment_with_attacks(train, share=0.0, budget=0.3, seed=7) is train

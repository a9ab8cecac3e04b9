"""The one Han-character check (sora.data.text.is_han) and the code that relies on it."""

from __future__ import annotations

import pytest

from sora.data.text import HAN, detect_lang, is_han
from sora.data.vocab import Vocab
from sora.evaluation.attacks import homophones


@pytest.mark.parametrize("ch", ["好", "㐀", "鿿", "豈", "𠀀", "𪛟"])  # basic, extension A, compatibility, extension B
def test_han(ch):
    assert is_han(ch) and HAN.search(f"a{ch}b")


@pytest.mark.parametrize("ch", ["a", "1", "，", "。", "Ａ", "の", "한", "䷀", "", "好好"])
def test_not_one_han_character(ch):
    assert not is_han(ch)


def test_users_agree_on_extension_b():
    assert detect_lang("𠀀𠀁𠀂") == "zh"
    vocab = Vocab.build([["𠀀𠀁"], ["𠀀𠀁"]], ["<pad>", "<unk>", "<cls>", "<mask>"], min_freq=1, max_size=100)
    assert "𠀀" in vocab and vocab.decode(vocab.ids(["𠀁𠀀"])) == ["𠀁", "𠀀"]  # unknown word -> its characters
    assert homophones("a") == ()

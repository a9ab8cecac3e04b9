from sora.data.vocab import Vocab, oov_rates

SPECIALS = ["<pad>", "<unk>", "<cls>", "<mask>"]


def test_build_min_freq_max_size_and_specials_first():
    tokens = [["好", "书"], ["好", "电影"], ["good", "good", "movie"], ["rare"]]
    vocab = Vocab.build(tokens, SPECIALS, min_freq=2, max_size=100)
    assert vocab.itos[:4] == SPECIALS
    assert "good" in vocab and "好" in vocab and "rare" not in vocab
    small = Vocab.build(tokens, SPECIALS, min_freq=1, max_size=6)
    assert len(small) == 6


def test_unknown_chinese_word_falls_back_to_characters():
    vocab = Vocab.build([["喜欢", "欢乐"], ["喜欢", "欢乐"]], SPECIALS, min_freq=1, max_size=100)
    assert "喜" in vocab and "乐" in vocab
    ids = vocab.ids(["喜乐", "zzz"])
    assert vocab.decode(ids) == ["喜", "乐", "<unk>"]
    assert vocab.encode(["喜欢"] * 10, max_len=4)[0] == vocab.cls_id and len(vocab.encode(["喜欢"] * 10, 4)) == 4


def test_save_load_roundtrip_and_oov(tmp_path):
    vocab = Vocab.build([["a", "b"], ["a"]], SPECIALS, min_freq=1, max_size=10)
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.itos == vocab.itos
    rates = oov_rates(again, [["a", "c"], ["b", "d"]])
    assert rates["oov_rate"] == 0.5 and rates["unk_rate"] == 0.5


def test_typos_map_to_the_most_frequent_word_one_edit_away():
    vocab = Vocab.build([["great", "movie", "great", "grease", "movie"]] * 2, SPECIALS, min_freq=1, max_size=50)
    assert vocab.decode(vocab.ids(["graet", "moive", "movei", "grat"])) == ["great", "movie", "movie", "great"]
    assert vocab.decode(vocab.ids(["xyzzy", "gr8", "abc"])) == ["<unk>", "<unk>", "<unk>"]  # no guess

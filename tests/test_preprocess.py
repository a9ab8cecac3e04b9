import pandas as pd

from sora.data.preprocess import clean_labeled, clean_unlabeled, stratified_split


def _raw(rows):
    return pd.DataFrame(rows, columns=["text", "label", "lang_hint", "source", "ref"])


def test_dedup_on_normalised_text_and_conflicts_dropped_with_reasons():
    raw = _raw(
        [
            ("好看", 1, "zh", "s", "a:1"),
            ("好看 ", 1, "zh", "s", "a:2"),  # duplicate after whitespace normalisation
            ("ＧＯＯＤ movie", 1, "en", "s", "a:3"),
            ("GOOD movie", 1, "en", "s", "a:4"),  # duplicate after full-width folding
            ("一般般吧", 0, "zh", "s", "a:5"),
            ("一般般吧", 1, "zh", "s", "a:6"),  # same text, other label -> conflict (both copies)
            ("これは日本語です", 0, "zh", "s", "a:7"),  # not zh/en
            ("x", 0, "en", "s", "a:8"),  # too short
        ]
    )
    cleaned = clean_labeled(raw, min_chars=2, max_chars=100)
    assert sorted(cleaned.rows["text"]) == ["GOOD movie", "好看"]
    reasons = cleaned.rejects.groupby("reason")["ref"].apply(sorted).to_dict()
    assert reasons["duplicate"] == ["a:2", "a:4"]
    assert reasons["conflicting_labels"] == ["a:5", "a:6"]
    assert reasons["language_not_zh_or_en"] == ["a:7"]
    assert reasons["too_short"] == ["a:8"]
    assert cleaned.conflicting_texts == 1
    assert len(cleaned.rows) + len(cleaned.rejects) == len(raw)  # nothing dropped silently


def test_language_detected_per_row_not_trusted_from_file():
    raw = _raw([("This is English in the zh file", 1, "zh", "s", "a:1")])
    cleaned = clean_labeled(raw, 2, 100)
    assert cleaned.rows["lang"].tolist() == ["en"] and cleaned.lang_mismatch == 1


def _frame(n_per_group=50):
    rows = []
    for lang in ("zh", "en"):
        for label in (0, 1):
            rows += [{"text": f"{lang}{label}-{i}", "label": label, "lang": lang} for i in range(n_per_group)]
    return pd.DataFrame(rows)


def test_split_no_leakage_and_stratified():
    frame = _frame()
    splits = stratified_split(frame, val_fraction=0.1, test_fraction=0.2, seed=0)
    texts = {k: set(v["text"]) for k, v in splits.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    assert sum(len(v) for v in splits.values()) == len(frame)
    for split in splits.values():
        counts = split.groupby(["lang", "label"]).size()
        assert len(counts) == 4 and counts.max() - counts.min() == 0  # every (lang,label) equally present
    assert len(splits["test"]) == 40 and len(splits["val"]) == 20


def test_split_is_seeded():
    frame = _frame()
    a = stratified_split(frame, 0.1, 0.2, seed=1)["test"]["text"].tolist()
    b = stratified_split(frame, 0.1, 0.2, seed=1)["test"]["text"].tolist()
    c = stratified_split(frame, 0.1, 0.2, seed=2)["test"]["text"].tolist()
    assert a == b and set(a) != set(c)


def test_unlabeled_excludes_eval_texts_and_caps():
    raw = pd.DataFrame({"text": ["测试文本一", "测试文本二", "测试文本二", "held out text"], "source": "u"})
    out = clean_unlabeled(raw, 2, 100, exclude={"held out text"}, limit=10, seed=0)
    assert sorted(out["text"]) == ["测试文本一", "测试文本二"]
    assert len(clean_unlabeled(raw, 2, 100, exclude=set(), limit=1, seed=0)) == 1

import pandas as pd
import pytest

from sora.data.preprocess import check_no_leak, clean_labeled, clean_unlabeled, hash_split, split_of
from sora.errors import DataError


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
    assert cleaned.conflicting_texts == {"label": 1}
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


def test_split_no_leakage_and_about_the_asked_fractions():
    frame = _frame()
    splits = hash_split(frame, val_fraction=0.1, test_fraction=0.2, seed=0)
    texts = {k: set(v["text"]) for k, v in splits.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    assert sum(len(v) for v in splits.values()) == len(frame)
    assert abs(len(splits["test"]) / len(frame) - 0.2) < 0.08 and abs(len(splits["val"]) / len(frame) - 0.1) < 0.06


def test_split_is_seeded_and_appending_rows_moves_no_text():
    frame = _frame()
    a = hash_split(frame, 0.1, 0.2, seed=1)
    c = hash_split(frame, 0.1, 0.2, seed=2)["test"]["text"].tolist()
    assert set(a["test"]["text"]) != set(c)
    more = pd.concat([frame, frame.assign(text=frame["text"] + "，再来一条")], ignore_index=True)
    b = hash_split(more, 0.1, 0.2, seed=1)
    for name in ("train", "val", "test"):
        assert set(a[name]["text"]) <= set(b[name]["text"])


def test_pool_keeps_only_train_hash_texts_dedups_and_caps():
    texts = [f"测试文本{i}号" for i in range(200)]
    raw = pd.DataFrame({"text": texts + texts[:5] + ["これは日本語です"], "source": "u"})
    pool, dropped = clean_unlabeled(raw, 2, 100, 0.1, 0.2, seed=0, limit=1000)
    which = split_of(pd.Series(texts), 0.1, 0.2, 0)
    assert sorted(pool["text"]) == sorted(t for t, w in zip(texts, which) if w == "train")
    assert dropped["duplicate"] == 5 and dropped["language_not_zh_or_en"] == 1
    assert dropped["val_or_test_text"] == int((which != "train").sum()) > 0
    capped, dropped = clean_unlabeled(raw, 2, 100, 0.1, 0.2, seed=0, limit=3)
    assert len(capped) == 3 and dropped["over_limit"] == len(pool) - 3


def test_leak_check_names_the_leaked_text():
    val = pd.DataFrame({"text": ["好看的电影", "难看"]})
    check_no_leak(pd.Series(["别的文本"]), "pool.parquet", val)
    with pytest.raises(DataError, match=r"pool.parquet: 1 val/test texts .*好看的电影"):
        check_no_leak(pd.Series(["好看的电影", "别的文本"]), "pool.parquet", val)


def test_case_and_punctuation_variants_share_a_split():
    """28 pairs like "NERVOUS as HELL" / "Nervous as hell" sat in train and test: near-duplicates are grouped."""
    from sora.data.preprocess import group_key, near_duplicates, split_of

    variants = pd.Series([f"Nervous as hell {i}" for i in range(200)] + [f"NERVOUS  as HELL {i}!" for i in range(200)])
    which = split_of(variants, 0.1, 0.2, seed=0)
    assert (which.iloc[:200].to_numpy() == which.iloc[200:].to_numpy()).all()
    assert set(which) == {"train", "val", "test"}
    assert group_key("这本书，很好！") == group_key("这本书很好") and group_key("!!!") == "!!!"
    assert near_duplicates(pd.Series(["Good film", "good film!", "GOOD FILM", "bad", "worse"])) == {
        "groups": 1,
        "texts": 3,
    }


def test_leak_check_catches_a_case_variant_of_a_test_text():
    from sora.data.preprocess import check_no_leak
    from sora.errors import DataError

    with pytest.raises(DataError, match="1 val/test texts are in the unlabeled pool"):
        check_no_leak(pd.Series(["nervous as hell", "fine"]), "finetune", pd.DataFrame({"text": ["NERVOUS as HELL"]}))


def test_each_task_keeps_its_labels_through_conflicts_and_duplicates():
    # Two tasks: `label` (sentiment) and `topic`; -1 = no label for that task.
    raw = pd.DataFrame(
        [
            ("股市大涨", -1, 3, "zh", "s", "a:1"),
            ("股市大涨", 1, -1, "zh", "s", "a:2"),  # same text from another file: merges into one row, both labels
            ("球队输了", 0, 7, "zh", "s", "a:3"),
            ("球队输了", 1, 7, "zh", "s", "a:4"),  # sentiment conflicts: the text keeps its topic only
            ("楼市降温", -1, 5, "zh", "s", "a:5"),
            ("楼市降温", -1, 6, "zh", "s", "a:6"),  # its only task conflicts: dropped, both copies
        ],
        columns=["text", "label", "topic", "lang_hint", "source", "ref"],
    )
    cleaned = clean_labeled(raw, 2, 100, ["label", "topic"])
    rows = cleaned.rows.set_index("text")
    assert rows.loc["股市大涨", ["label", "topic"]].tolist() == [1, 3]
    assert rows.loc["球队输了", ["label", "topic"]].tolist() == [-1, 7]
    assert "楼市降温" not in rows.index
    assert cleaned.conflicting_texts == {"label": 1, "topic": 1}
    reasons = cleaned.rejects.groupby("reason")["ref"].apply(sorted).to_dict()
    assert reasons == {"conflicting_labels": ["a:5", "a:6"], "duplicate": ["a:2", "a:4"]}
    assert len(cleaned.rows) + len(cleaned.rejects) == len(raw)

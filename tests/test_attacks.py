"""Tests for sora.evaluation.attacks: determinism, budgets, claimed edits only, greedy attack, suite."""

from __future__ import annotations

import difflib
import math
import random
import re
import unicodedata

import numpy as np
import pandas as pd
import pytest
from pypinyin import lazy_pinyin

from sora.data.text import is_han, spacy_pipeline, tokenise
from sora.evaluation.attacks import (
    ATTACKS,
    SUITE_COLUMNS,
    AttackResult,
    attacks_for,
    greedy_attack,
    homophones,
    max_edits,
    run_attack,
    run_suite,
)

ZH_TEXTS = [
    "我今天心情很好，这部电影的质量不错。",
    "这里发生了什么？我们的头发很干净！iPhone12 真的很好用。",
    "他们在公园里散步，天气非常晴朗，孩子们都很开心。",
    "这个问题很复杂，专家们讨论了三个小时。",
    "价格是100元，很便宜。买吧！真的吗？好的，谢谢，再见。",
]
EN_TEXTS = [
    "This movie was really good, and the music was lovely.",
    "The acting is great and the plot twists are fun!",
    "I would not watch it again. Terrible script, boring characters.",
    "Quick brown foxes jump over lazy dogs near the river bank.",
]
BUDGETS = (0.25, 0.5, 1.0)
TEXTS = {"zh": ZH_TEXTS, "en": EN_TEXTS}


def allowed(text: str, lang: str, budget: float) -> int:
    n = len(tokenise(text, lang))
    expected = max(1, math.floor(budget * n))
    assert max_edits(budget, n) == expected
    return expected


def is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def changed_token_count(original: str, perturbed: str, lang: str) -> int:
    """For length-preserving edits: number of original tokens containing a changed character."""
    assert len(original) == len(perturbed)
    doc = spacy_pipeline(lang)(original)
    diff = {j for j, (a, b) in enumerate(zip(original, perturbed)) if a != b}
    return sum(1 for t in doc if not t.is_space and any(t.idx <= j < t.idx + len(t.text) for j in diff))


def strip_punct_words(s: str) -> list[str]:
    return re.sub(r"[^\w\s]", "", s.lower()).split()


# ---------------------------------------------------------------------------------------------- registry


def test_registry_and_attacks_for():
    assert attacks_for("zh") == [
        "zh_char_delete",
        "zh_char_duplicate",
        "zh_char_swap",
        "zh_homophone",
        "zh_width_flip",
        "zh_traditional",
    ]
    assert attacks_for("en") == ["en_typo", "en_word_delete", "en_case_punct"]
    for name, (lang, fn) in ATTACKS.items():
        assert lang in ("zh", "en") and callable(fn) and fn.__name__ == name


def test_max_edits():
    assert max_edits(0.0, 10) == 0
    assert max_edits(0.1, 0) == 0
    assert max_edits(0.01, 10) == 1
    assert max_edits(0.29, 100) == 29  # float noise: 0.29 * 100 = 28.999999999999996
    assert max_edits(5.0, 7) == 7


# ---------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", list(ATTACKS))
def test_deterministic_for_seed_and_seed_sensitive(name):
    lang, fn = ATTACKS[name]
    outputs_by_text = []
    for text in TEXTS[lang]:
        a = fn(text, lang, 0.25, random.Random("7"))
        b = fn(text, lang, 0.25, random.Random("7"))
        assert a == b
        outputs_by_text.append({fn(text, lang, 0.25, random.Random(s)) for s in range(8)})
    assert any(len(outs) > 1 for outs in outputs_by_text), f"{name}: seed has no effect"


# ---------------------------------------------------------------------------------------------- budgets + claims


@pytest.mark.parametrize("budget", BUDGETS)
def test_zh_char_delete(budget):
    fn = ATTACKS["zh_char_delete"][1]
    for i, text in enumerate(ZH_TEXTS):
        out = fn(text, "zh", budget, random.Random(i))
        k = allowed(text, "zh", budget)
        assert is_subsequence(out, text)
        assert 1 <= len(text) - len(out) <= k
        ops = difflib.SequenceMatcher(None, text, out, autojunk=False).get_opcodes()
        for tag, i1, i2, _, _ in ops:
            assert tag in ("equal", "delete")
            if tag == "delete":
                assert all(is_han(ch) for ch in text[i1:i2])


@pytest.mark.parametrize("budget", BUDGETS)
def test_zh_char_duplicate(budget):
    fn = ATTACKS["zh_char_duplicate"][1]
    for i, text in enumerate(ZH_TEXTS):
        out = fn(text, "zh", budget, random.Random(i))
        assert is_subsequence(text, out)
        assert 1 <= len(out) - len(text) <= allowed(text, "zh", budget)
        # removing one copy of each inserted char gives back the text: every insertion duplicates a neighbour
        ops = difflib.SequenceMatcher(None, text, out, autojunk=False).get_opcodes()
        for tag, _, _, j1, j2 in ops:
            assert tag in ("equal", "insert")
            if tag == "insert":
                for j in range(j1, j2):
                    assert is_han(out[j]) and (out[j] == out[j - 1] or out[j] == out[j + 1 if j + 1 < len(out) else j])


@pytest.mark.parametrize("budget", BUDGETS)
def test_zh_char_swap(budget):
    fn = ATTACKS["zh_char_swap"][1]
    for i, text in enumerate(ZH_TEXTS):
        out = fn(text, "zh", budget, random.Random(i))
        k = allowed(text, "zh", budget)
        assert len(out) == len(text) and sorted(out) == sorted(text)
        diff = [j for j, (a, b) in enumerate(zip(text, out)) if a != b]
        assert 2 <= len(diff) <= 2 * k and len(diff) % 2 == 0
        for p in diff[::2]:  # adjacent Han pairs, swapped
            assert out[p] == text[p + 1] and out[p + 1] == text[p] and is_han(text[p]) and is_han(text[p + 1])
        assert changed_token_count(text, out, "zh") <= k


@pytest.mark.parametrize("budget", BUDGETS)
def test_zh_homophone(budget):
    fn = ATTACKS["zh_homophone"][1]
    for i, text in enumerate(ZH_TEXTS):
        out = fn(text, "zh", budget, random.Random(i))
        k = allowed(text, "zh", budget)
        assert len(out) == len(text)
        pairs = [(a, b) for a, b in zip(text, out) if a != b]
        assert 1 <= len(pairs) <= k
        for a, b in pairs:
            assert is_han(a) and is_han(b)
            assert lazy_pinyin(a) == lazy_pinyin(b)
        assert changed_token_count(text, out, "zh") <= k


def test_homophones_table():
    hs = homophones("好")
    assert hs and "好" not in hs
    assert all(lazy_pinyin(c) == ["hao"] for c in hs)
    assert homophones("a") == () and homophones("，") == ()


def _width_fold(s: str) -> str:
    return unicodedata.normalize("NFKC", s).replace("。", ".")


@pytest.mark.parametrize("budget", BUDGETS)
def test_zh_width_flip(budget):
    fn = ATTACKS["zh_width_flip"][1]
    texts = ZH_TEXTS + ["ＡＢＣ公司的股票涨了１０％，真的吗？", "价格是100元, 很便宜. 买吧!"]
    for i, text in enumerate(texts):
        out = fn(text, "zh", budget, random.Random(i))
        assert out != text
        assert _width_fold(out) == _width_fold(text)
        assert 1 <= changed_token_count(text, out, "zh") <= allowed(text, "zh", budget)


@pytest.mark.parametrize("budget", BUDGETS)
def test_zh_traditional(budget):
    import opencc

    t2s = opencc.OpenCC("t2s")
    fn = ATTACKS["zh_traditional"][1]
    for i, text in enumerate(ZH_TEXTS):
        out = fn(text, "zh", budget, random.Random(i))
        assert out != text
        assert t2s.convert(out) == text
        if len(out) == len(text):
            assert 1 <= changed_token_count(text, out, "zh") <= allowed(text, "zh", budget)


@pytest.mark.parametrize("budget", BUDGETS)
def test_en_typo(budget):
    fn = ATTACKS["en_typo"][1]
    for i, text in enumerate(EN_TEXTS):
        out = fn(text, "en", budget, random.Random(i))
        words_in, words_out = text.split(), out.split()
        assert len(words_in) == len(words_out)
        diff = [(a, b) for a, b in zip(words_in, words_out) if a != b]
        assert 1 <= len(diff) <= allowed(text, "en", budget)
        for a, b in diff:
            assert re.sub(r"[A-Za-z]", "", a) == re.sub(r"[A-Za-z]", "", b)  # only letters change
            assert abs(len(a) - len(b)) <= 1 and re.search(r"[A-Za-z]", b)


@pytest.mark.parametrize("budget", BUDGETS)
def test_en_word_delete(budget):
    fn = ATTACKS["en_word_delete"][1]
    for i, text in enumerate(EN_TEXTS):
        out = fn(text, "en", budget, random.Random(i))
        w_in, w_out = re.findall(r"\w+", text), re.findall(r"\w+", out)
        sm = difflib.SequenceMatcher(None, w_in, w_out, autojunk=False)
        assert all(tag in ("equal", "delete") for tag, *_ in sm.get_opcodes())
        assert 1 <= len(w_in) - len(w_out) <= allowed(text, "en", budget)
        assert "  " not in out and out == out.strip()
        assert not re.search(r"\s[,.!?]", out)  # no space left dangling before punctuation


@pytest.mark.parametrize("budget", BUDGETS)
def test_en_case_punct(budget):
    fn = ATTACKS["en_case_punct"][1]
    for i, text in enumerate(EN_TEXTS + ["Hello, world. It is fine, really!"]):
        out = fn(text, "en", budget, random.Random(i))
        assert out != text
        assert strip_punct_words(out) == strip_punct_words(text)
        words_in, words_out = text.split(), out.split()
        assert len(words_in) == len(words_out)
        assert sum(a != b for a, b in zip(words_in, words_out)) <= allowed(text, "en", budget)


def test_en_case_punct_removes_attached_punctuation():
    outs = {ATTACKS["en_case_punct"][1]("Hi, you", "en", 1.0, random.Random(s)) for s in range(40)}
    assert any("," not in o and strip_punct_words(o) == ["hi", "you"] for o in outs)


@pytest.mark.parametrize("name", list(ATTACKS))
@pytest.mark.parametrize("text", ["好", "我", "。", "a", "good", "!", "Hi.", "  ok "])
def test_never_empty(name, text):
    lang, fn = ATTACKS[name]
    for seed in range(5):
        out = fn(text, lang, 1.0, random.Random(seed))
        assert out.strip()


def test_zero_budget_and_empty_text_unchanged():
    for lang, fn in ATTACKS.values():
        text = TEXTS[lang][0]
        assert fn(text, lang, 0.0, random.Random(0)) == text
        assert fn("", lang, 0.5, random.Random(0)) == ""


def test_single_word_delete_is_skipped():
    assert ATTACKS["en_word_delete"][1]("good", "en", 1.0, random.Random(0)) == "good"
    assert ATTACKS["zh_char_delete"][1]("好", "zh", 1.0, random.Random(0)) == "好"


# ---------------------------------------------------------------------------------------------- greedy


class KeywordModel:
    """P(positive) = 0.9 if the word 'good' (en, whitespace word) or '好' (zh) is present else 0.2. Counts texts."""

    def __init__(self):
        self.calls = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        pos = np.array([0.9 if ("good" in re.findall(r"[a-z]+", t.lower()) or "好" in t) else 0.2 for t in texts])
        return np.stack([1 - pos, pos], axis=1)


@pytest.mark.parametrize(
    "text,lang",
    [("this movie is really good and fun", "en"), ("这部电影很好看，演员也不错", "zh")],
)
def test_greedy_flips_keyword_model(text, lang):
    model = KeywordModel()
    res = greedy_attack(text, lang, 1, model, budget=0.2, rng=random.Random(0), max_candidates=16)
    assert isinstance(res, AttackResult)
    assert res.original == text and res.original_pred == 1 and not res.skipped
    assert res.success and res.perturbed_pred == 0
    assert model([res.perturbed])[0].argmax() == 0
    assert 1 <= res.tokens_changed <= max_edits(0.2, res.n_tokens)
    assert res.n_tokens == len(tokenise(text, lang))
    assert res.queries == model.calls - 2  # minus the clean prediction and our own check above
    assert res.queries >= res.n_tokens  # the importance ranking scores every deletion
    again = greedy_attack(text, lang, 1, KeywordModel(), budget=0.2, rng=random.Random(0), max_candidates=16)
    assert again == res


def test_greedy_respects_budget():
    model = KeywordModel()
    text = "good good good good good good"
    res = greedy_attack(text, "en", 1, model, budget=0.34, rng=random.Random(0))
    assert not res.success and res.perturbed_pred == 1
    assert res.tokens_changed <= max_edits(0.34, 6) == 2
    assert sum(w == "good" for w in res.perturbed.split()) >= 4


def test_greedy_skips_misclassified():
    model = KeywordModel()
    res = greedy_attack("this movie is good", "en", 0, model, budget=0.5, rng=random.Random(0))
    assert res.skipped and not res.success
    assert res.queries == 0 and model.calls == 1  # only the clean prediction
    assert res.perturbed == res.original and res.tokens_changed == 0


def test_greedy_uses_given_original_proba():
    model = KeywordModel()
    p = model(["good film"])[0]
    model.calls = 0
    res = greedy_attack("good film", "en", 1, model, 0.5, random.Random(0), original_proba=p)
    assert res.success and res.queries == model.calls


# ---------------------------------------------------------------------------------------------- runners

SUITE_TEXTS = [
    "这部电影很好看",
    "剧情太差了，浪费时间",
    "演员表演很好，值得一看",
    "this movie is good",
    "terrible plot and bad acting",
    "a good film with a great cast",
    "good grief what a mess",  # misclassified (label 0, model says 1)
]
SUITE_LABELS = [1, 0, 1, 1, 0, 1, 0]
SUITE_LANGS = ["zh", "zh", "zh", "en", "en", "en", "en"]


def test_run_attack_simple():
    model = KeywordModel()
    s = run_attack("en_word_delete", SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, model, budget=0.5, seed=3)
    assert s.attack == "en_word_delete" and s.lang == "en" and s.n == 4 and len(s.results) == 4
    assert s.clean_accuracy == pytest.approx(0.75)
    attacked = [r for r in s.results if not r.skipped]
    assert all(r.queries == 1 for r in attacked) and s.avg_queries == 1.0
    assert s.results[3].skipped and s.results[3].queries == 0
    assert s.accuracy_under_attack <= s.clean_accuracy
    n_success = sum(r.success for r in s.results)
    assert s.attack_success_rate == pytest.approx(n_success / 3)
    pct = np.mean([100 * r.tokens_changed / r.n_tokens for r in attacked])
    assert s.avg_perturbed_pct == pytest.approx(pct)
    # seeding is per example: batch size does not matter, results are reproducible
    s1 = run_attack("en_word_delete", SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, model, 0.5, 3, batch_size=1)
    assert [r.perturbed for r in s1.results] == [r.perturbed for r in s.results]
    s2 = run_attack("en_word_delete", SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, model, 0.5, 4)
    assert len(s2.results) == 4
    with pytest.raises(KeyError):
        run_attack("nope", SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, model)


def test_run_attack_greedy():
    s = run_attack("greedy", SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, KeywordModel(), budget=0.5, seed=0)
    assert s.n == len(SUITE_TEXTS) and s.lang == "all"
    assert s.clean_accuracy == pytest.approx(6 / 7)
    # every originally-correct positive example contains the keyword and gets flipped
    for r, y in zip(s.results, SUITE_LABELS):
        if y == 1:
            assert r.success
        assert r.tokens_changed <= max_edits(0.5, r.n_tokens)
    assert s.accuracy_under_attack <= s.clean_accuracy
    assert s.avg_queries > 1


def test_run_suite():
    model = KeywordModel()
    df = run_suite(
        SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, model, budget=0.5, seed=0, max_greedy_examples=3, progress=False
    )
    assert isinstance(df, pd.DataFrame) and list(df.columns) == SUITE_COLUMNS
    expected = {(a, "zh") for a in attacks_for("zh")} | {(a, "en") for a in attacks_for("en")}
    expected |= {("all_perturbations", "zh"), ("all_perturbations", "en"), ("greedy", "zh"), ("greedy", "en")}
    assert set(zip(df.attack, df.lang)) == expected and len(df) == len(expected)
    assert (df.accuracy_under_attack <= df.clean_accuracy + 1e-12).all()
    for lang in ("zh", "en"):
        sub = df[df.lang == lang].set_index("attack")
        simple = sub.loc[attacks_for(lang)]
        worst = sub.loc["all_perturbations"]
        assert worst.accuracy_under_attack <= simple.accuracy_under_attack.min() + 1e-12
        assert worst.attack_success_rate >= simple.attack_success_rate.max() - 1e-12
        assert worst.avg_queries == pytest.approx(len(attacks_for(lang)))
        assert (simple.avg_queries == 1.0).all()
        # greedy on the first 3 examples of each language: both positives (labels 1, 0, 1) lose their keyword
        assert sub.loc["greedy", "n"] == 3 and sub.loc["greedy", "attack_success_rate"] == pytest.approx(2 / 3)
    assert df[df.lang == "en"].n.iloc[0] == 4
    again = run_suite(
        SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, KeywordModel(), 0.5, 0, max_greedy_examples=3, progress=False
    )
    pd.testing.assert_frame_equal(df, again)
    no_greedy = run_suite(SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, model, 0.5, 0, include_greedy=False, progress=False)
    assert "greedy" not in set(no_greedy.attack)


def test_run_suite_outcomes_agree_with_its_table():
    table, outcomes = run_suite(
        SUITE_TEXTS,
        SUITE_LABELS,
        SUITE_LANGS,
        KeywordModel(),
        0.5,
        0,
        max_greedy_examples=3,
        progress=False,
        with_outcomes=True,
    )
    pd.testing.assert_frame_equal(
        table,
        run_suite(
            SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, KeywordModel(), 0.5, 0, max_greedy_examples=3, progress=False
        ),
    )
    assert list(outcomes.columns) == ["attack", "lang", "example", "correct"]
    for row in table.itertuples():
        mine = outcomes[(outcomes.attack == row.attack) & (outcomes.lang == row.lang)]
        assert len(mine) == row.n and mine.example.is_unique
        assert mine.correct.mean() == pytest.approx(row.accuracy_under_attack)
        assert (np.array(SUITE_LANGS)[mine.example] == row.lang).all()  # positions index the inputs


def test_run_suite_one_language_at_a_time_adds_up_to_the_whole_run():
    args = (SUITE_TEXTS, SUITE_LABELS, SUITE_LANGS, KeywordModel(), 0.5, 0)
    kwargs = dict(max_greedy_examples=3, progress=False, with_outcomes=True)
    table, outcomes = run_suite(*args, **kwargs)
    parts = [run_suite(*args, **kwargs, only_langs=[lang]) for lang in ("zh", "en")]
    assert [set(t.lang) for t, _ in parts] == [{"zh"}, {"en"}]
    pd.testing.assert_frame_equal(table, pd.concat([t for t, _ in parts], ignore_index=True))
    pd.testing.assert_frame_equal(outcomes, pd.concat([o for _, o in parts], ignore_index=True))

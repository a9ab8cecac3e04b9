"""What pretraining (and self-training on the unlabeled pool) buys, label budget by label budget.

For 500, 1k, 2k, 5k and all labels per language (seeded samples of the train split; the unlabeled pool, the
vocabulary and the pretrained foundation fixed), 3 seeds each, on the same val and test splits:
- tfidf: the ten-line TF-IDF + logistic regression baseline (the `baseline` stage's model);
- scratch: Sora's wide-and-deep classifier, randomly initialised;
- pretrained: the same classifier starting from the pretrained foundation (`pretrain`);
- self-trained: a student of the pretrained model on those labels plus the unlabeled pool (the `distill`
  stage's recipe, with the pretrained model as the only teacher).
Model selection uses val only; test accuracy is reported. Writes metrics/learning_curve.json (mean and spread
per arm), plots/learning_curve/{zh,en}.csv (DVC plots: `dvc plots show`), a PNG, and logs them all to an
MLflow run (tag sora.kind=benchmark). Needs the pipeline's outputs (`make pipeline`).

    python benchmarks/learning_curve.py [--sizes 500,1000,2000,5000,0] [--seeds 0,1,2]
        [--arms tfidf,scratch,pretrained,self-trained] [--self-train-sizes 1000]      (size 0 = all labels)

Self-training costs a pass over the pool per model, so by default it runs at 1,000 labels only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

ARMS = ("tfidf", "scratch", "pretrained", "self-trained")


def sample(train: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    if not size:
        return train
    return pd.concat(
        [g.sample(n=min(size, len(g)), random_state=seed) for _, g in train.groupby("lang", sort=True)],
        ignore_index=True,
    )


def tfidf_scores(params, train, test) -> dict:
    from sora.evaluation.baseline import tfidf_baseline

    out = {}
    for lang in ("zh", "en"):
        tr, te = train[train["lang"] == lang], test[test["lang"] == lang]
        model = tfidf_baseline(lang, params.baseline.C, params.baseline.max_iter).fit(tr["text"], tr["label"])
        out[lang] = float((model.predict(te["text"]) == te["label"]).mean())
    return out


def neural(params, vocab, splits, encoder, epochs: int, patience: int, work: Path, soft_from=None, pool=None):
    """Fit one classifier; returns (test accuracy per language, the best checkpoint's path)."""
    from sora.inference import Predictor
    from sora.training.classify import fit_and_score, initialise
    from sora.training.distill import transfer_set, unlabeled_part
    from sora.training.fit import ResumableFit
    from sora.training.modules import classifier_module
    from sora.training.trainer import load_classifier, seed_and_threads

    seed_and_threads(params.trainer)
    module = classifier_module(params, vocab, 2, params.finetune.lr)
    initialise(module, params, vocab, encoder, splits["train"], splits["val"])
    if soft_from is not None:  # self-training: the teacher labels the pool, the student learns both
        teacher, _ = load_classifier(soft_from)
        predictor = Predictor(teacher, vocab, params.model.max_len)
        probs = lambda f: predictor.predict_ids([vocab.encode(list(t), params.model.max_len) for t in f["tokens"]])
        rest = unlabeled_part(pool, splits["train"], params.distill.max_pool_texts, params.trainer.seed)
        splits = {**splits, "train": transfer_set(splits["train"], probs(splits["train"]), rest, probs(rest),
                                                  params.distill.hard_weight)}  # fmt: skip
    metrics, _ = fit_and_score(
        params, module, vocab, splits, epochs, patience, ResumableFit(work / "fit"), "bench", work / "out",
        work / "plots", None, [],
    )  # fmt: skip
    return {lang: metrics["test"][lang]["acc"] for lang in ("zh", "en")}, work / "out" / "best.ckpt"


def figure(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, lang in zip(axes, ("zh", "en")):
        part = table[table["lang"] == lang]
        for arm, g in part.groupby("arm", sort=False):
            ax.errorbar(g["labels_per_lang"], g["acc_mean"], yerr=g["acc_std"], marker="o", capsize=3, label=arm)
        ax.set(xscale="log", title=f"{lang}: test accuracy vs labels (mean ± sd, 3 seeds)",
               xlabel="labels per language (log)", ylabel="accuracy")  # fmt: skip
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="500,1000,2000,5000,0", help="labels per language; 0 = all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--self-train-sizes", default="1000", help="label budgets that get the self-trained arm")
    parser.add_argument("--out", type=Path, default=Path("metrics/learning_curve.json"))
    parser.add_argument("--plots", type=Path, default=Path("plots/learning_curve"), help="{zh,en}.csv (DVC plots), png")
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/out/learning_curve_runs.jsonl"),
                        help="one line per (arm, size, seed, lang) is appended here; the tables aggregate every "
                        "line in it, so shards started in parallel (e.g. by --sizes) end in one table")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process (trainer.threads)")
    args = parser.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    unknown = set(arms) - set(ARMS)
    if unknown:
        parser.error(f"unknown arms {sorted(unknown)}; choose from {', '.join(ARMS)}")

    from sora.config import load_params
    from sora.data.vocab import Vocab
    from sora.io import write_csv, write_json
    from sora.pipeline.entry import declared_args, require

    params = load_params("params.yaml")
    if args.threads:
        params = params.model_copy(update={"trainer": params.trainer.model_copy(update={"threads": args.threads})})
    paths = declared_args("distill")
    require(paths.train, paths.val, paths.test, paths.pool, paths.vocab, paths.encoder / "encoder.pt")
    vocab = Vocab.load(paths.vocab)
    from sora.data.tasks import labeled_for

    frames = {s: labeled_for(pd.read_parquet(getattr(paths, s))) for s in ("train", "val", "test")}
    pool = pd.read_parquet(paths.pool, columns=["text", "tokens", "lang"])
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    self_train_sizes = {int(s) for s in args.self_train_sizes.split(",") if s}
    rows, started = [], time.time()
    print(f"learning curve: sizes {sizes}, seeds {seeds}, arms {arms}; output every (size, seed)", flush=True)
    for size in sizes:
        for seed in seeds:
            p = params.model_copy(update={"trainer": params.trainer.model_copy(update={"seed": seed})})
            train = sample(frames["train"], size, seed)
            splits = {"train": train, "val": frames["val"], "test": frames["test"]}
            # Few labels: more epochs and patience, as the steps per epoch shrink with the data.
            epochs, patience = (
                (8, 2) if size and size <= 2000 else (4, 2) if size else (p.finetune.max_epochs, p.finetune.patience)
            )
            scores = {}
            with tempfile.TemporaryDirectory() as tmp:
                tmp = Path(tmp)
                if "tfidf" in arms:
                    scores["tfidf"] = tfidf_scores(p, train, frames["test"])
                if "scratch" in arms:
                    scores["scratch"], _ = neural(p, vocab, splits, None, epochs, patience, tmp / "scratch")
                self_train = "self-trained" in arms and size in self_train_sizes
                if "pretrained" in arms or self_train:
                    scores["pretrained"], ckpt = neural(
                        p, vocab, splits, paths.encoder / "encoder.pt", epochs, patience, tmp / "pretrained"
                    )
                if self_train:
                    scores["self-trained"], _ = neural(
                        p, vocab, splits, paths.encoder / "encoder.pt", p.distill.max_epochs, p.distill.patience,
                        tmp / "student",
                        soft_from=ckpt, pool=pool,
                    )  # fmt: skip
            new = [{"arm": arm, "labels_per_lang": size or int((train["lang"] == lang).sum()), "size": size,
                    "seed": seed, "lang": lang, "acc": acc} for arm, by_lang in scores.items()
                   for lang, acc in by_lang.items()]  # fmt: skip
            args.runs.parent.mkdir(parents=True, exist_ok=True)
            with open(args.runs, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in new)
            rows += new
            shown = json.dumps({a: {k: round(v, 4) for k, v in s.items()} for a, s in scores.items()})
            print(f"[{time.time() - started:6.0f}s] labels {size or 'all'} seed {seed}: {shown}", flush=True)
    runs = pd.read_json(args.runs, lines=True).drop_duplicates(["arm", "size", "seed", "lang"], keep="last")
    order = {a: i for i, a in enumerate(ARMS)}
    runs["size"] = runs["size"].replace(0, 10**9)  # "all" sorts last
    runs = runs.sort_values(["arm", "size", "seed"], key=lambda c: c.map(order) if c.name == "arm" else c)
    table = (
        runs.groupby(["arm", "size", "lang"], sort=False)
        .agg(
            labels_per_lang=("labels_per_lang", "first"),
            acc_mean=("acc", "mean"),
            acc_std=("acc", "std"),
            n=("acc", "size"),
        )
        .reset_index()
    )
    table[["acc_mean", "acc_std"]] = table[["acc_mean", "acc_std"]].round(5)
    table["size"] = table["size"].replace(10**9, 0)
    metrics = {
        arm: {lang: {str(r.size or "all"): {"mean": r.acc_mean, "std": r.acc_std, "seeds": int(r.n)}
                     for r in table[(table["arm"] == arm) & (table["lang"] == lang)].itertuples()}
              for lang in ("zh", "en")}
        for arm in table["arm"].unique()
    }  # fmt: skip
    write_json(args.out, metrics)
    csvs = []
    for lang in ("zh", "en"):
        # One column per arm over the label budgets: the shape `dvc plots show` draws as one line per arm.
        wide = table[table["lang"] == lang].pivot(index="labels_per_lang", columns="arm", values="acc_mean")
        csvs.append(args.plots / f"{lang}.csv")
        write_csv(csvs[-1], wide[[a for a in ARMS if a in wide and wide[a].notna().all()]].reset_index())
    png = figure(table, args.plots / "learning_curve.png")
    print(table.to_string(index=False))
    print(f"wrote {args.out}, {', '.join(map(str, csvs))}, {png}")
    log_to_mlflow(params, args.out, csvs, png, metrics)


def log_to_mlflow(params, metrics_path: Path, csvs: list[Path], png: Path, metrics: dict) -> None:
    import mlflow

    from sora.tracking.runs import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(params))
    mlflow.set_experiment(params.tracking.experiment)
    with mlflow.start_run(run_name="learning-curve"):
        mlflow.set_tag("sora.kind", "benchmark")
        for arm, by_lang in metrics.items():
            for lang, by_size in by_lang.items():
                for size, stats in by_size.items():
                    mlflow.log_metric(f"{arm}.{lang}.{size}.mean", stats["mean"])
        mlflow.log_artifact(str(metrics_path))
        for csv in csvs:
            mlflow.log_artifact(str(csv))
        mlflow.log_artifact(str(png), artifact_path="figures")


if __name__ == "__main__":
    main()

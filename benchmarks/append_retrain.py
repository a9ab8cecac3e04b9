"""What a scheduled retrain costs after new labeled data arrives: append N labeled rows, then `sora run`.

Run it in a clone made for the purpose, after the pipeline has run there: it adds a user file and edits that
clone's params.yaml.

    git clone . /tmp/bench && cd /tmp/bench && make pipeline && .venv/bin/python benchmarks/append_retrain.py

The new rows are perturbed copies (one random attack of the evaluation suite each) of a seeded sample of train
texts, half Chinese and half English, with their labels: new texts, so every stage downstream of the data has
work to do. Like any appended text, each lands in train, val or test by the hash of its text. It is a timing
probe, not data to keep. Prints the wall-clock time of `sora run`, each stage's seconds (from the MLflow
parent run), which stages ran, and whether pretraining stayed cached.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

BUDGET_SECONDS = 600  # what a retrain on 2 cores may take after appending 1,000 rows
FOUNDATION = ("pool", "vocab", "pretrain")  # must stay cached: they depend on unlabeled text only


def new_rows(train, rows: int, seed: int):
    """rows // 2 perturbed copies per language: harden's attack-noise augmentation, kept apart from train."""
    import pandas as pd

    from sora.training.augment import augment_with_attacks

    parts = []
    for _, group in train.groupby("lang", sort=True):
        share = min(1.0, 2 * (rows // 2) / len(group))  # twice what is needed: a copy equal to a text is dropped
        added = augment_with_attacks(group, share, 0.2, seed).iloc[len(group) :]
        parts.append(added.head(rows // 2))
    return pd.concat(parts, ignore_index=True)[["text", "label", "lang"]]


def list_user_file(params: Path, path: str) -> None:
    """Add `path` to ingest.user_files, keeping the file's comments; an inline list only."""
    text = params.read_text(encoding="utf-8")
    match = re.search(r"^(  user_files: )\[(.*?)\]", text, flags=re.M)
    if match is None:
        sys.exit(f"{params}: ingest.user_files is not an inline list [...]; add {path} to it and run `sora run`")
    items = [s.strip() for s in match.group(2).split(",") if s.strip()]
    if path not in items:
        items.append(path)
    params.write_text(text[: match.start()] + f"{match.group(1)}[{', '.join(items)}]" + text[match.end() :])


def stage_seconds(parent_run_id: str) -> dict[str, tuple[str, float]]:
    import mlflow

    from sora.config import load_params
    from sora.tracking.runs import tracking_uri

    run = mlflow.MlflowClient(tracking_uri=tracking_uri(load_params("params.yaml"))).get_run(parent_run_id)
    seconds = {k.split(".", 1)[1]: v for k, v in run.data.metrics.items() if k.startswith("stage_seconds.")}
    status = {k.split(".", 2)[2]: v for k, v in run.data.tags.items() if k.startswith("sora.stage.")}
    return {stage: (status.get(stage, "?"), s) for stage, s in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1000, help="labeled rows to append (half zh, half en)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import pandas as pd

    train_path = Path("data/processed/train.parquet")
    if not train_path.is_file():
        sys.exit(f"{train_path} is missing: run the pipeline here first (make pipeline)")
    out = Path(f"data/user/append_{args.rows}.csv")
    if out.exists():
        sys.exit(f"{out} exists: this clone has had its append already; make a fresh one")
    from sora.data.tasks import labeled_for

    rows = new_rows(labeled_for(pd.read_parquet(train_path, columns=["text", "label", "lang"])), args.rows, args.seed)
    rows.to_csv(out, index=False)
    list_user_file(Path("params.yaml"), out.as_posix())
    print(f"appended {len(rows)} labeled rows ({out}); running `sora run`", flush=True)

    start, lines = time.monotonic(), []
    # sora run's own progress lines pass through; its last line is the summary with the MLflow parent run
    with subprocess.Popen([str(Path(sys.executable).with_name("sora")), "run"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:  # fmt: skip
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.strip())
    wall = time.monotonic() - start
    if proc.returncode:
        sys.exit(f"sora run failed (exit {proc.returncode}): see its output above")
    summary = next(line for line in reversed(lines) if line.startswith("retrain "))
    parent = re.search(r"MLflow parent run (\w+)", summary)
    print(summary)
    stages = stage_seconds(parent.group(1)) if parent else {}
    for stage, (status, seconds) in stages.items():
        print(f"  {stage:10s} {status:8s} {seconds:7.1f} s")
    reran = [s for s in FOUNDATION if stages.get(s, ("?",))[0] == "ran"]
    print(f"sora run after appending {len(rows)} rows: {wall:.0f} s (budget {BUDGET_SECONDS} s: "
          f"{'within' if wall <= BUDGET_SECONDS else 'OVER'}); "
          f"foundation stages rerun: {', '.join(reran) or 'none'}")  # fmt: skip


if __name__ == "__main__":
    main()

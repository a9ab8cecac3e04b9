"""Single-text latency of the served model: torch's default thread count vs one thread, each on an idle machine
and with a competing process busy on every core, side by side in one run (p50 and p95, Chinese and English).

    python benchmarks/serving_latency.py [MODEL] [--calls 300] [--seconds 20]

MODEL is a bundle folder (default: what the `prune` stage writes, read from dvc.yaml) or a Sora MLflow model
folder. Each call is what a served request does: SoraModel.predict on a one-row DataFrame. A configuration
stops after `--calls` calls per language or `--seconds`, whichever comes first, so the run stays under about
two minutes even when the busy machine makes calls slow.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

ZH = [
    "这家酒店服务很好，房间也干净。",
    "质量太差了，用了两天就坏。",
    "这本书写得很好，推荐！",
    "快递很慢，客服也不回复。",
]
EN = [
    "The plot was dull and far too long.",
    "Great value, the room was clean and quiet.",
    "The battery died after two days.",
    "A lovely film with a wonderful cast.",
]


def spin() -> None:
    """The competing load: one core kept busy until terminated."""
    while True:
        pass


def load_served_model(path: str):
    """SoraModel around the bundle, without load_context (which would set the thread count this script varies)."""
    from pathlib import Path

    from sora.inference import load_bundle
    from sora.tracking.pyfunc import SoraModel, load_sora_model

    folder = Path(path)
    model = SoraModel()
    model.predictor = load_bundle(folder) if (folder / "config.json").is_file() else load_sora_model(folder)
    return model


def time_calls(model, calls: int, seconds: float) -> dict[str, list[float]]:
    """Milliseconds per single-text call, per language, alternating zh and en."""
    import pandas as pd

    frames = {lang: [pd.DataFrame({"text": [t]}) for t in texts] for lang, texts in (("zh", ZH), ("en", EN))}
    for frame in frames["zh"][:2] + frames["en"][:2]:  # warm-up: first calls allocate and fill caches
        model.predict(None, frame)
    times: dict[str, list[float]] = {"zh": [], "en": []}
    deadline = time.perf_counter() + seconds
    for i in range(calls):
        for lang, frame_list in frames.items():
            start = time.perf_counter()
            model.predict(None, frame_list[i % len(frame_list)])
            times[lang].append((time.perf_counter() - start) * 1000)
        if time.perf_counter() > deadline:
            break
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="bundle or Sora MLflow model folder (default: prune's output)")
    parser.add_argument("--calls", type=int, default=300, help="calls per language and configuration")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per configuration")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import torch

    from sora.pipeline.entry import declared_args

    default_threads = torch.get_num_threads()  # before anything sets it
    load_at_start = os.getloadavg()[0]  # "idle" is only idle when nothing else runs
    path = args.model or str(declared_args("prune").out)
    model = load_served_model(path)
    cores = len(os.sched_getaffinity(0))
    settings = {f"default ({default_threads})": default_threads, "1 thread": 1}
    results = {}
    for load in ("idle", "busy"):
        competitors = []
        if load == "busy":
            context = multiprocessing.get_context("spawn")
            competitors = [context.Process(target=spin, daemon=True) for _ in range(cores)]
            for process in competitors:
                process.start()
            time.sleep(1.0)  # spawned interpreters start up before they spin
        try:
            for name, threads in settings.items():
                torch.set_num_threads(threads)
                results[load, name] = time_calls(model, args.calls, args.seconds)
        finally:
            for process in competitors:
                process.terminate()
            for process in competitors:
                process.join()

    rows = {}
    for load in ("idle", "busy"):
        for lang in ("zh", "en"):
            row = {}
            for name in settings:
                times = np.array(results[load, name][lang])
                row[name, "calls"] = len(times)
                row[name, "p50 ms"] = float(np.percentile(times, 50))
                row[name, "p95 ms"] = float(np.percentile(times, 95))
            default, one = settings
            for q in ("p50", "p95"):
                row["default / 1 thread", q] = row[default, f"{q} ms"] / row[one, f"{q} ms"]
            rows[load, lang] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["load", "lang"]
    print(
        f"model {path}; {cores} cores; busy = {cores} competing busy-loop processes; "
        f"torch default = {default_threads} intra-op threads; 1-min load average at start {load_at_start:.2f}"
    )
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.round(2).to_string())
    for name in settings:
        ratios = [
            table.loc[("busy", lang), (name, f"{q} ms")] / table.loc[("idle", lang), (name, f"{q} ms")]
            for lang in ("zh", "en")
            for q in ("p50", "p95")
        ]
        print(
            f"busy/idle, {name}: p50 zh {ratios[0]:.1f}x, p95 zh {ratios[1]:.1f}x, "
            f"p50 en {ratios[2]:.1f}x, p95 en {ratios[3]:.1f}x"
        )


if __name__ == "__main__":
    main()

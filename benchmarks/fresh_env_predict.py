"""Does the registered model install and predict from its own declared requirements alone?

Downloads a registered version, builds a new virtual environment from nothing but the model's
requirements.txt, and asks that environment to load it with `mlflow.pyfunc.load_model` (what `mlflow models
serve` does) and classify one Chinese and one English text. Exits non-zero if any step fails.

    python benchmarks/fresh_env_predict.py                      # models:/sora@candidate
    python benchmarks/fresh_env_predict.py --model models:/sora/3 --keep /tmp/sora-env
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXTS = ["这家酒店的服务非常好，下次还来。", "The plot was dull and the acting was wooden."]
PROBE = """
import json, sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"text": json.loads(sys.argv[2])}))
print(out.to_json(orient="records", force_ascii=False))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models:/sora@candidate", help="registered model URI")
    parser.add_argument("--keep", type=Path, help="build the environment here and keep it (default: a temp dir)")
    args = parser.parse_args()

    import mlflow

    from sora.config import load_params
    from sora.tracking.runs import setup_mlflow

    setup_mlflow(load_params())
    work = args.keep or Path(tempfile.mkdtemp(prefix="sora-fresh-env-"))
    model_dir = Path(mlflow.artifacts.download_artifacts(args.model, dst_path=str(work / "model")))
    requirements = (model_dir / "requirements.txt").read_text().split()
    print(f"{args.model}: {len(requirements)} declared requirements: {' '.join(requirements)}")

    env = work / "venv"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    python = env / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(model_dir / "requirements.txt")], check=True)
    installed = time.perf_counter() - start
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    print(f"fresh venv {env}: {len(listed.stdout.split())} packages installed in {installed:.0f}s")

    probe = subprocess.run(
        [str(python), "-c", PROBE, str(model_dir), json.dumps(TEXTS, ensure_ascii=False)],
        capture_output=True,
        text=True,
        cwd=work,  # not the repo: `sora` must come from the model's own code, not this checkout
    )
    if probe.returncode != 0:
        sys.exit(f"the fresh environment could not load or run the model:\n{probe.stderr[-3000:]}")
    rows = json.loads(probe.stdout.strip().splitlines()[-1])
    for text, row in zip(TEXTS, rows):
        print(f"  {row['lang']}  {row['label']}  p={row['probability']:.3f}  {text}")
    if sorted(r["lang"] for r in rows) != ["en", "zh"]:
        sys.exit(f"expected one zh and one en prediction, got {rows}")
    print("OK: the model installs from its declared requirements and predicts zh and en")


if __name__ == "__main__":
    main()

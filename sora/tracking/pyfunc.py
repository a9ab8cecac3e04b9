"""The registered model: an MLflow pyfunc wrapping a Sora model bundle (tokeniser + vocabulary + weights).
Strings in (a list, a Series, or a DataFrame with a `text` column), label + probability out.

It is logged as code (MODEL_FILE), so a Sora model folder holds no pickle. Loading any MLflow model with MLflow
(mlflow.pyfunc.load_model, mlflow models serve) executes code from its folder; Sora's own commands read only
the bundle artifact (`load_sora_model`), which loads as data."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

MODEL_FILE = Path(__file__).with_name("served_model.py")  # what `register` logs as the model
BUNDLE = "bundle"  # the artifact holding the model bundle
TRUST_NOTE = (
    "loading it with MLflow (mlflow.pyfunc.load_model, mlflow models serve) would execute code from the folder: "
    "do that only for a model from someone you trust"
)


class NotASoraModel(ValueError):
    """The folder is not a model Sora logged: Sora does not load it, since that would run its code."""


def texts_from_input(model_input) -> list[str]:
    """The texts of a request; empty ones (blank, None, NaN) are refused as `sora predict` refuses them."""
    from sora.inference import empty_text_rows

    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            values = model_input["text"].tolist()
        elif model_input.shape[1] == 1:
            values = model_input.iloc[:, 0].tolist()
        else:
            raise ValueError(f"expected a 'text' column, got columns {list(model_input.columns)}")
    elif isinstance(model_input, str):
        values = [model_input]
    else:
        values = list(model_input)
    empty = empty_text_rows(values)
    if empty:
        rows = ", ".join(str(i + 1) for i in empty[:10]) + (", ..." if len(empty) > 10 else "")
        raise ValueError(
            f"{len(empty)} empty text(s) at row{'s' if len(empty) > 1 else ''} {rows} (counting from 1): "
            "nothing to classify"
        )
    return [str(v) for v in values]


class SoraModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from sora.inference import inference_threads, load_bundle

        inference_threads()
        self.predictor = load_bundle(context.artifacts[BUNDLE])

    # MLflow hands predict a DataFrame shaped by the signature (a `text` column); the hint says so, and a
    # DataFrame hint is one MLflow takes without asking for a schema from it.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.predictor.predict_frame(texts_from_input(model_input))


def model_files(bundle: str | Path) -> dict:
    """What `register` logs the model from (mlflow.pyfunc.log_model arguments): Sora's model file as code, so
    MLflow stores no pickle; the bundle as its artifact; the sora package, so the model file can import it."""
    return {
        "python_model": str(MODEL_FILE),
        "artifacts": {BUNDLE: str(bundle)},
        "code_paths": [str(Path(__file__).resolve().parents[1])],
    }


def sora_bundle_of(folder: str | Path) -> Path:
    """The bundle inside an MLflow model folder that Sora logged, found by reading MLmodel as data (nothing in
    the folder runs). Any pyfunc whose `bundle` artifact is a complete Sora bundle inside the folder counts,
    however it was logged: Sora models logged as a pickled SoraModel carry the same artifact, and their pickle
    is never opened. Raises NotASoraModel otherwise."""
    import yaml

    from sora.inference import BUNDLE_FILES

    folder = Path(folder)

    def refuse(reason: str) -> NotASoraModel:
        return NotASoraModel(f"{folder} is not a Sora model ({reason}); {TRUST_NOTE}")

    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise refuse("no MLmodel file, and no config.json of a bundle") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise refuse(f"its MLmodel file cannot be read: {str(err).splitlines()[0]}") from None
    flavor = (spec.get("flavors") or {}).get("python_function") if isinstance(spec, dict) else None
    artifact = ((flavor or {}).get("artifacts") or {}).get(BUNDLE) if isinstance(flavor, dict) else None
    if not isinstance(artifact, dict) or not isinstance(artifact.get("path"), str):
        raise refuse(f"no '{BUNDLE}' artifact in its MLmodel")
    bundle = (folder / artifact["path"]).resolve()
    if not bundle.is_relative_to(folder.resolve()):
        raise refuse(f"its '{BUNDLE}' artifact {artifact['path']} is outside the model folder")
    missing = [name for name in BUNDLE_FILES if not (bundle / name).is_file()]
    if missing:
        raise refuse(f"its '{BUNDLE}' artifact lacks {', '.join(missing)}")
    return bundle


def load_sora_model(model: str | Path, batch_size: int = 256):
    """A Predictor from a Sora model: a local MLflow model folder, or a model URI (models:/name@alias,
    models:/name/version, runs:/...) whose artifacts are downloaded first. Only the bundle is loaded (weights
    with torch.load(weights_only=True), JSON config and vocabulary); the tracking URI must be set for URIs."""
    from sora.inference import load_bundle

    if Path(model).is_dir():
        return load_bundle(sora_bundle_of(model), batch_size)
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="sora-model-") as tmp:
        folder = mlflow.artifacts.download_artifacts(artifact_uri=str(model), dst_path=tmp)
        try:
            return load_bundle(sora_bundle_of(folder), batch_size)
        except NotASoraModel as err:
            raise NotASoraModel(str(err).replace(str(folder), str(model), 1)) from None

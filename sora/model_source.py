"""Which model `sora predict` serves: a Sora bundle folder, a Sora MLflow model folder, or a model URI
(models:/sora@champion, runs:/...), resolved to a Predictor with an error that says what to pass instead."""

from __future__ import annotations

import os
from pathlib import Path


class ModelSourceError(Exception):
    """The model cannot be loaded; the message names what to pass instead."""


def load_predictor(model: str):
    """A Predictor from a Sora bundle folder, a Sora MLflow model folder, or a model URI. Only the bundle is
    read, as data: nothing from an MLflow model folder runs, and a folder that is not a Sora model is refused
    rather than handed to MLflow, which would execute its code."""
    from sora.config import ConfigError, load_params
    from sora.tracking.runs import setup_mlflow, sqlite_store

    local = Path(model)
    if local.is_dir() and (local / "config.json").is_file():
        from sora.inference import load_bundle

        return load_bundle(model)
    if local.is_dir():
        from sora.tracking.pyfunc import NotASoraModel, load_sora_model

        try:
            return load_sora_model(local)
        except NotASoraModel as err:
            raise ModelSourceError(str(err)) from None
    if local.exists():
        raise ModelSourceError(
            f"{model}: not a folder (give a Sora bundle such as models/prune, or an MLflow model URI)"
        )
    if "://" not in model and not model.startswith(("models:/", "runs:/")):
        raise ModelSourceError(
            f"{model}: no such model folder (give a Sora bundle such as models/prune, or an MLflow model URI)"
        )
    try:
        params = load_params()
    except ConfigError as err:
        raise ModelSourceError(
            f"{err}; or pass --model (a bundle folder such as models/prune, or an MLflow model URI)"
        ) from None
    store = sqlite_store(params)
    if store is not None and not store.is_file():
        # Checked first: MLflow would create an empty store here and then report the model as missing.
        raise ModelSourceError(
            f"no MLflow store at {store}: run `sora predict` from the Sora repository root "
            "after `make pipeline`, or pass --model (a bundle folder such as models/prune, or a model URI)"
        )
    setup_mlflow(params)
    # Its download progress bar would land among the predictions.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.exceptions import MlflowException

    from sora.tracking.pyfunc import NotASoraModel, load_sora_model

    try:
        return load_sora_model(model)
    except NotASoraModel as err:
        raise ModelSourceError(str(err)) from None
    except (MlflowException, OSError) as err:
        if model.endswith("@champion") and "alias champion not found" in str(err).lower():
            raise ModelSourceError(
                f"no champion yet for {model}: the registry gate has refused every candidate (metrics/register.json "
                "says why); to try the latest one anyway: --model " + model.replace("@champion", "@candidate")
            ) from None
        raise ModelSourceError(
            f"cannot load model '{model}': {str(err).splitlines()[0]} "
            "(run the pipeline first: `make pipeline`, or pass --model)"
        ) from None

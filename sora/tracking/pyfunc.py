"""The registered model: an MLflow pyfunc wrapping a Sora model bundle (tokeniser + vocabulary + weights).
Strings in (a list, a Series, or a DataFrame with a `text` column), label + probability out."""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


def texts_from_input(model_input) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            column = model_input["text"]
        elif model_input.shape[1] == 1:
            column = model_input.iloc[:, 0]
        else:
            raise ValueError(f"expected a 'text' column, got columns {list(model_input.columns)}")
        return ["" if v is None else str(v) for v in column]
    if isinstance(model_input, pd.Series):
        return [str(v) for v in model_input]
    if isinstance(model_input, str):
        return [model_input]
    return [str(v) for v in model_input]


class SoraModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from sora.inference import load_bundle

        self.predictor = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return self.predictor.predict_frame(texts_from_input(model_input))

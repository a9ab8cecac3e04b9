"""The model file of Sora's registered model ("models from code"): `register` logs this file as
`python_model`, and MLflow runs it to get the model when loading, so the model folder needs no pickle."""

from mlflow.models import set_model

from sora.tracking.pyfunc import SoraModel

set_model(SoraModel())

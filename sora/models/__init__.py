"""Plain PyTorch models: a shared Transformer encoder, a denoising autoencoder for pretraining, a classifier."""

from sora.models.autoencoder import DenoisingAutoencoder, corrupt
from sora.models.classifier import Classifier
from sora.models.encoder import TransformerEncoder

__all__ = ["TransformerEncoder", "DenoisingAutoencoder", "corrupt", "Classifier"]

"""Plain models: a shared Transformer encoder, a denoising autoencoder for pretraining, a wide-and-deep
classifier, and the n-gram half of the served model (scikit-learn analyzers, no torch). Import each from its
module, so a stage that needs one pulls in no other."""

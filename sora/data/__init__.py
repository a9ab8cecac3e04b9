"""Data layer: sources, text normalisation and tokenisation, vocabulary, splits. Knows nothing of DVC/MLflow."""

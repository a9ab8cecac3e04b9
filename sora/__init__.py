"""Sora: bilingual (Chinese/English) text classifiers, from raw text to a registered, hardened, pruned model."""

__version__ = "0.1.0"

"""Evaluation utilities (robustness attacks, ...)."""

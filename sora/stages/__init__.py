"""Thin entry points, one per DVC stage: `python -m sora.stages.<name>`."""

"""A local MLflow store that moved with its checkout: point its stored artifact paths at the new folder.

MLflow records artifact locations as absolute paths (file:///old/checkout/mlruns/...). After the repo is
copied or moved, runs would log into the old tree, or fail where it is gone. MLflow has no API to change
them, so the few columns that hold artifact locations are rewritten in one sqlite transaction. Provenance
tags (the source file a run came from) are history and stay as they were.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

# (table, column) pairs holding artifact locations or dataset sources, in MLflow 3's sqlite schema
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("datasets", "dataset_source"),
)
ARTIFACTS = "mlruns"


def recorded_root(db: Path, experiment: str) -> Path | None:
    """The checkout the experiment was created in (the folder above its `mlruns`), or None."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)).fetchall()
    for (location,) in rows:
        path = (location or "").removeprefix("file://")
        if f"/{ARTIFACTS}" in path:
            return Path(path.split(f"/{ARTIFACTS}", 1)[0])
    return None


def relocate_store(db: Path, experiment: str) -> Path | None:
    """Rewrite the artifact locations of a store moved from another folder to the store's own folder (the
    experiment's location tells where it was). Returns the old folder when it moved, else None."""
    if not db.is_file():
        return None
    old, new = recorded_root(db, experiment), db.resolve().parent
    if old is None or old == new:
        return None
    with sqlite3.connect(db) as conn:  # one transaction: all columns or none
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in LOCATION_COLUMNS:
            if table not in tables:
                continue
            for prefix_old, prefix_new in ((f"file://{old}/", f"file://{new}/"), (f"{old}/", f"{new}/")):
                conn.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE {column} LIKE ? ESCAPE '\\'",
                    (prefix_new, len(prefix_old) + 1, _like_prefix(prefix_old)),
                )
    # stderr: stdout may be data (`sora predict` writes its predictions there)
    print(f"mlflow: the store moved from {old}; its artifact locations now point under {new}", file=sys.stderr)
    return old


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"

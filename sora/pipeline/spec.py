"""A stage's declaration, read from dvc.yaml: the one place its deps, params and outputs are written.

The resume fingerprint and the params logged to MLflow derive from it, so a dep or param added to dvc.yaml
is honoured everywhere without a second list to keep in step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sora.config import ConfigError, Params

DVC_FILE = Path("dvc.yaml")
CODE_ROOT = "sora/"


@dataclass(frozen=True)
class StageSpec:
    name: str
    cmd: str
    deps: tuple[str, ...]
    params: tuple[str, ...]
    outs: tuple[str, ...]  # outs, metrics and plots

    @property
    def data_deps(self) -> tuple[str, ...]:
        """Deps that are data or models, not code."""
        return tuple(d for d in self.deps if not d.startswith(CODE_ROOT))


def _paths(entries: list[Any]) -> tuple[str, ...]:
    """dvc.yaml lists entries as 'path' or {'path': {options}}."""
    return tuple(e if isinstance(e, str) else next(iter(e)) for e in entries or [])


def pipeline_stages(dvc_file: Path = DVC_FILE) -> dict[str, StageSpec]:
    """Every stage of dvc.yaml, in file order."""
    if not dvc_file.is_file():
        raise FileNotFoundError(f"{dvc_file.resolve()} not found: run from the repository root")
    stages = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("stages") or {}
    return {
        name: StageSpec(
            name=name,
            cmd=body["cmd"],
            deps=_paths(body.get("deps")),
            params=_paths(body.get("params")),
            outs=_paths(body.get("outs")) + _paths(body.get("metrics")) + _paths(body.get("plots")),
        )
        for name, body in stages.items()
    }


def stage_spec(name: str, dvc_file: Path = DVC_FILE) -> StageSpec:
    stages = pipeline_stages(dvc_file)
    if name not in stages:
        raise ConfigError(f"{dvc_file}: no stage '{name}' (stages: {', '.join(stages)})")
    return stages[name]


def declared_params(params: Params, spec: StageSpec) -> dict[str, Any]:
    """The values of the params the stage declares ('model' is a whole block, 'finetune.lr' one key), nested."""
    dumped = params.model_dump(by_alias=True)
    out: dict[str, Any] = {}
    for dotted in spec.params:
        block, _, key = dotted.partition(".")
        if key:
            out.setdefault(block, {})[key] = dumped[block][key]
        else:
            out[block] = dumped[block]
    return out


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def fingerprint(params: Params, spec: StageSpec) -> str:
    """Hash of the stage's declared params and the content of its declared deps: an interrupted fit resumes
    only when this is unchanged."""
    digest = hashlib.sha256(json.dumps(declared_params(params, spec), sort_keys=True, default=str).encode())
    for dep in spec.deps:
        for f in _files(Path(dep)):
            digest.update(str(f).encode())
            digest.update(hashlib.md5(f.read_bytes()).digest())
    return digest.hexdigest()

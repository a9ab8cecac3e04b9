"""What a module runs: the sora files and third-party packages it imports, directly or through other sora
modules, including imports inside functions. Read from the source (nothing is imported), so it also sees the
lazy imports a stage makes only on some paths.

Two facts derive from it: the code a DVC stage depends on (tests check dvc.yaml's deps against it) and the
packages the registered model needs (its pip requirements)."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "sora"


@dataclass
class Imports:
    files: set[Path] = field(default_factory=set)  # sora source files, relative to the repository root
    packages: set[str] = field(default_factory=set)  # top-level third-party module names


def _module_file(root: Path, module: str) -> Path | None:
    """The module's source file, relative to root."""
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def walk(module: str, root: Path = Path(".")) -> Imports:
    """Every sora file and third-party package reachable from `module` (a dotted name under sora)."""
    found = Imports()
    stack = [module]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top != PACKAGE:
            if top and top not in sys.stdlib_module_names and top != "__future__":
                found.packages.add(top)
            continue
        path = _module_file(root, name)
        if path is None:  # `from sora.x import some_function`: the name is not a module
            continue
        found.files.add(path)
        parents = name.split(".")
        stack.extend(".".join(parents[:i]) for i in range(1, len(parents)))  # package __init__ files run too
        tree = ast.parse((root / path).read_text(encoding="utf-8"))
        stack.extend(_imported_names(tree, name, path.name == "__init__.py"))
    return found


def pinned_requirements(packages: set[str]) -> list[str]:
    """`distribution==version` for the installed distributions that provide these top-level modules."""
    providers = importlib.metadata.packages_distributions()
    out = set()
    for package in packages:
        for dist in providers.get(package, []):
            version = importlib.metadata.version(dist).split("+")[0]  # local tags (+cpu) are not on indexes
            out.add(f"{dist}=={version}")
    return sorted(out)


# Modules that cannot change what a stage computes: package markers, the entry wrapper and dvc.yaml reader,
# MLflow logging, atomic writes, progress lines and the params schema (the values it validates are DVC params
# already).
BOOKKEEPING = {
    "sora/__init__.py",
    "sora/stages/__init__.py",
    "sora/pipeline/__init__.py",
    "sora/pipeline/entry.py",
    "sora/pipeline/spec.py",
    "sora/pipeline/imports.py",
    "sora/pipeline/processes.py",
    "sora/tracking/__init__.py",
    "sora/tracking/runs.py",
    "sora/tracking/relocate.py",
    "sora/ranks.py",
    "sora/io.py",
    "sora/progress.py",
    "sora/config.py",
    "sora/errors.py",
}


def _imports_anything(path: Path) -> bool:
    return any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(ast.parse(path.read_text("utf-8"))))


def stage_module(cmd: str) -> str | None:
    """`python -m sora.stages.x --a b` -> 'sora.stages.x'."""
    words = cmd.split()
    return words[words.index("-m") + 1] if "-m" in words else None


def undeclared_code(cmd: str, deps: tuple[str, ...], root: Path = Path(".")) -> list[str]:
    """Sora files the stage's command runs that no dep covers (a dep is a file or a folder above it)."""
    module = stage_module(cmd)
    if module is None:
        return []
    covered = [d.rstrip("/") for d in deps]
    missing = []
    for path in sorted(walk(module, root).files):
        name = path.as_posix()
        if name in BOOKKEEPING or (path.name == "__init__.py" and not _imports_anything(root / name)):
            continue
        if not any(name == d or name.startswith(d + "/") for d in covered):
            missing.append(name)
    return missing

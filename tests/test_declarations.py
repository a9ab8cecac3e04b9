"""dvc.yaml is the one declaration of each stage: every sora module a stage runs is among its deps, every
path its command passes is a declared dep or output, and no code outside a stage imports it."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

from sora.pipeline.imports import stage_module, undeclared_code, walk
from sora.pipeline.spec import pipeline_stages

REPO = Path(__file__).resolve().parents[1]
STAGES = pipeline_stages(REPO / "dvc.yaml")


@pytest.mark.parametrize("name", list(STAGES))
def test_every_module_a_stage_runs_is_a_dvc_dep(name):
    spec = STAGES[name]
    assert undeclared_code(spec.cmd, spec.deps, REPO) == [], f"add these to the deps of '{name}' in dvc.yaml"


@pytest.mark.parametrize("name", list(STAGES))
def test_every_path_in_a_stage_command_is_declared(name):
    spec = STAGES[name]
    words = shlex.split(spec.cmd)
    paths = [value for flag, value in zip(words, words[1:]) if flag.startswith("--")]
    assert paths, f"'{name}' passes its paths on the command line"
    undeclared = [p for p in paths if p not in spec.deps + spec.outs]
    assert undeclared == [], f"'{name}' cmd passes paths dvc.yaml does not declare"


def test_the_check_fails_when_a_dep_is_removed(tmp_path):
    data = yaml.safe_load((REPO / "dvc.yaml").read_text())
    data["stages"]["finetune"]["deps"].remove("sora/models")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(data))
    spec = pipeline_stages(tmp_path / "dvc.yaml")["finetune"]
    missing = undeclared_code(spec.cmd, spec.deps, REPO)
    assert "sora/models/classifier.py" in missing and "sora/models/encoder.py" in missing


def test_walk_follows_lazy_imports_inside_functions():
    files = {p.as_posix() for p in walk("sora.stages.evaluate", REPO).files}
    assert "sora/evaluation/attacks/greedy.py" in files  # imported inside run_suite's call chain


def test_no_code_imports_a_stage_module():
    pattern = re.compile(r"^\s*(from|import)\s+sora\.stages", re.M)
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("sora", "flows", "benchmarks", "tests")
        for path in (REPO / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_no_sys_path_manipulation():
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("sora", "flows", "benchmarks", "tests")
        for path in (REPO / folder).rglob("*.py")
        if "sys.path." + "insert" in path.read_text(encoding="utf-8")
        or "sys.path." + "append" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


@pytest.mark.parametrize("name", list(STAGES))
def test_no_stage_declares_code_it_does_not_run(name):
    """A superfluous code dep reruns the stage (and everything after it) when unrelated code changes."""
    spec = STAGES[name]
    module = stage_module(spec.cmd)
    files = [p.as_posix() for p in walk(module, REPO).files] if module else []
    extra = [
        d
        for d in spec.deps
        if d.startswith("sora/") and not any(f == d or f.startswith(d.rstrip("/") + "/") for f in files)
    ]
    assert extra == [], f"'{name}' declares code deps it never imports"

"""The package's shape (issue 20): no import cycle, a short top level, and the public API where
the README says it is; and the torch the test session runs on (issue 22)."""
from __future__ import annotations

import os
from pathlib import Path

import import_graph  # tools/import_graph.py
import pytest

import ibcheck

# the shared core; everything else lives in a subpackage named for its concept
TOP_LEVEL = {"__main__", "config", "fileio", "gaussian", "interface", "schema", "seeds", "stats"}


def test_the_package_has_no_import_cycle():
    known = import_graph.modules()
    graph = {name: import_graph.imports(name, path, known) for name, path in known.items()}
    assert import_graph.cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_top_level_is_the_shared_core():
    top = {n.split(".")[1] for n, p in import_graph.modules().items() if n.count(".") == 1 and p.name != "__init__.py"}
    assert top == TOP_LEVEL


def test_the_public_api():
    from ibcheck.harness.check import check_estimator

    assert ibcheck.check_estimator is check_estimator and ibcheck.__all__ == ["check_estimator"]


def test_every_package_is_installed():
    """pyproject's explicit package list: a package missing there works in an editable install
    and is absent from the wheel (README line 2 installs one)."""
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "ibcheck").rglob("__init__.py")}
    assert found <= listed


@pytest.mark.skipif(not os.environ.get("IBCHECK_NOX_TORCH"), reason="runs only under nox -s tests, whose "
                    "interpreter names the torch it has")
def test_the_suite_runs_on_the_torch_that_the_test_command_installed():
    """README line 3 installs torch beside nox; ``nox -s tests`` must not test a second one it downloaded."""
    import torch

    assert Path(torch.__file__).resolve().parent == Path(os.environ["IBCHECK_NOX_TORCH"]).resolve()

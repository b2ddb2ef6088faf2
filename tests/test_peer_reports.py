"""The committed reports of the field's estimators (``nox -s peers``, ``nox -s torch_mist``) are what their
scripts render from the committed numbers (``peers.json``), so that no hand edit or stale renderer hides
in them."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script, folder", [("peers.py", "peers"), ("torch_mist_peers.py", "torch-mist")])
def test_the_committed_report_is_rendered_from_its_numbers(tmp_path, script, folder):
    shutil.copy(REPO / "reports" / folder / "peers.json", tmp_path / "peers.json")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / script), str(tmp_path), "--render"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("report.md", "peers.csv", "error_vs_truth.csv"):
        assert (tmp_path / name).read_text() == (REPO / "reports" / folder / name).read_text(), name

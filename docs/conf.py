"""Sphinx configuration of ibcheck's documentation (``nox -s docs`` builds it, warnings as errors).

The prose is MyST Markdown; the API reference is autodoc of the package's docstrings; the
examples are run by ``sphinx-build -b doctest``; references come from ``refs.bib``.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout itself, also where ibcheck is not installed
os.environ.setdefault("MPLBACKEND", "Agg")

project = "ibcheck"
author = "the ibcheck authors"
copyright = "the ibcheck authors"
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "sphinxcontrib.bibtex",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# MyST: $...$ math, ::: fences, definition lists, anchors for the headings of every page
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: members in source order; ray is mocked only where it is not installed
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
autodoc_typehints = "signature"
autodoc_mock_imports = [] if importlib.util.find_spec("ray") else ["ray"]

# sphinxcontrib-bibtex
bibtex_bibfiles = ["refs.bib"]
bibtex_default_style = "alpha"
bibtex_reference_style = "author_year"

# doctest: every {doctest} block runs; numpy prints in the legacy style so outputs stay stable
doctest_global_setup = """
import numpy as np
np.set_printoptions(precision=4, suppress=True)
"""
doctest_test_doctest_blocks = ""

html_theme = "furo"
html_title = "ibcheck"
html_static_path: list[str] = []


# The package's docstrings are written as plain text (formulas with |x|, lists without blank lines,
# indented formulas), not as reStructuredText. Before autodoc parses them, this turns that plain text
# into the reStructuredText that shows it as written: an indented block after a line of prose becomes a
# literal block, a list gets the blank lines around it that reST needs, and a "|" outside inline code
# is escaped (reST would read it as a substitution).
_BULLET = re.compile(r"^(\s*)[-*] ")


def _escape_bars(line: str) -> str:
    parts = line.split("``")
    return "``".join(p.replace("|", r"\|") if i % 2 == 0 else p for i, p in enumerate(parts))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def plain_text_to_rst(lines: list[str]) -> list[str]:
    out: list[str] = []
    mode = "text"  # "text", "list" (inside a bullet list) or "literal" (inside an indented block)
    list_indents: list[int] = []
    for line in lines:
        blank = not line.strip()
        previous_blank = not out or not out[-1].strip()
        if blank:  # a blank line ends nothing: a literal block or a list may go on after it
            out.append(line)
            continue
        bullet = _BULLET.match(line)
        indent = _indent(line)
        if mode == "literal":
            if indent > 0:
                out.append(line)
                continue
            out.append("")
            mode = "text"
        if bullet:
            if mode != "list" or indent not in list_indents:
                if not previous_blank:
                    out.append("")
                list_indents = [i for i in list_indents if i < indent] + [indent]
            mode = "list"
            out.append(_escape_bars(line))
            continue
        if mode == "list":
            if indent > list_indents[0]:
                out.append(_escape_bars(line))  # a continuation of the current item
                continue
            if not previous_blank:
                out.append("")
            mode, list_indents = "text", []
        if indent > 0 and mode == "text":
            if not previous_blank and out and not out[-1].rstrip().endswith("::"):
                out.append("")
            if not out or not out[-1].rstrip().endswith("::"):
                out.extend(["::", ""])
            mode = "literal"
            out.append(line)
            continue
        out.append(_escape_bars(line))
    return out


def _process_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    lines[:] = plain_text_to_rst(list(lines))


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)

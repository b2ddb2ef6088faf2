"""nox sessions of ibcheck: ``nox`` runs the tests; ``nox -s lint`` (ruff), ``nox -s types``
(mypy) and ``nox -s docs`` (the Sphinx site, warnings as errors, its examples doctested) are the
checks CI runs beside them; ``nox -s stats``, ``nox -s calibration``, ``nox -s bench``,
``nox -s mutants``, ``nox -s mutation``, ``nox -s validate``, ``nox -s study``, ``nox -s peers`` and
``nox -s torch_mist`` are opt-in.
Arguments after ``--`` go to pytest / the command.

Virtualenvs see the packages of the interpreter that runs nox, so the torch that the
README's test command installs beside nox is the torch the sessions use, instead of
a second, multi-GB download. ``--system-site-packages`` alone would not do: from
inside a virtualenv it means the *base* interpreter's packages, so each session also
gets a ``.pth`` file naming nox's own site-packages (``_session``). The test
sessions install ibcheck in editable mode and call pytest through the session's
own python, so the checkout itself is what gets tested even where pytest also lives
in the base interpreter.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import sysconfig
from collections.abc import Callable
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
VENV = ["--system-site-packages"]
# tools/ are scripts run from the repository root; those that use the tests' helpers find them here
TOOLS_ENV = {"PYTHONPATH": "tests"}
# the site-packages of the interpreter that runs nox, and the torch it has (none: the sessions install one)
OUTER_SITE = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
_TORCH = importlib.util.find_spec("torch")
OUTER_TORCH = str(Path(_TORCH.origin).parent) if _TORCH is not None and _TORCH.origin else ""


def _see_outer_packages(session: nox.Session) -> None:
    """A .pth file in the session's virtualenv naming nox's own site-packages: they come after the
    session's own packages and before the base interpreter's, so pip finds nox's torch installed."""
    inner = session.run("python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", silent=True)
    if isinstance(inner, str):
        Path(inner.strip(), "ibcheck-nox-outer.pth").write_text("".join(f"{path}\n" for path in OUTER_SITE))


def _session(fn: Callable[[nox.Session], None]) -> Callable[..., None]:
    """``nox.session`` with this file's virtualenv options, seeing nox's packages (``_see_outer_packages``)."""
    @functools.wraps(fn)
    def run(session: nox.Session) -> None:
        _see_outer_packages(session)
        fn(session)
    return nox.session(venv_params=VENV)(run)


@_session
def tests(session: nox.Session) -> None:
    """The test suite (hypothesis "ci" profile, statistical checks within the declared budget)."""
    session.install("-e", ".[test]")
    # tests/test_layout.py checks that the suite runs on this torch, the one nox's interpreter has
    session.run("python", "-m", "pytest", *session.posargs,
                env={"HYPOTHESIS_PROFILE": "ci", "IBCHECK_NOX_TORCH": OUTER_TORCH})


@_session
def stats(session: nox.Session) -> None:
    """Rerun the statistical and power tests with fresh seeds; print observed false-failure
    rates beside the nominal levels and the declared budget. ``-- ROUNDS`` (default 3)."""
    session.install("-e", ".[test]")
    rounds = int(session.posargs[0]) if session.posargs else 3
    log = Path(session.create_tmp()) / "checks.jsonl"
    log.unlink(missing_ok=True)
    base = int.from_bytes(os.urandom(3), "little")
    for r in range(rounds):
        session.run("python", "-m", "pytest", "-q", "-m", "statistical or power", "-p", "no:cacheprovider",
                    env={"IBCHECK_SEED": str(base + r), "IBCHECK_STATS_LOG": str(log), "HYPOTHESIS_PROFILE": "stats"})
    session.run("python", "tools/stats_summary.py", str(log), env=TOOLS_ENV)


@_session
def calibration(session: nox.Session) -> None:
    """Rerun every two-sided match check of tests/match_checks.py over many seeds (Ray tasks, local
    by default) and report per check its mean t, rejection rates and QQ plot, into
    reports/calibration/ (resumes from its observations.jsonl). ``-- OUT [--seeds N] [--groups A,B]
    [--params CASE,...] [--address HOST:PORT] [--render]``."""
    session.install("-e", ".[test]")
    session.run("python", "tools/calibration.py", *(session.posargs or ["reports/calibration"]), env=TOOLS_ENV)


@_session
def bench(session: nox.Session) -> None:
    """pytest-benchmark timings of every estimator, the per-sample reference loop and the
    dense-matmul yardstick; JSON and summary.md under reports/bench/."""
    session.install("-e", ".[bench]")
    Path("reports/bench").mkdir(parents=True, exist_ok=True)
    session.run("python", "-m", "pytest", "tests/benchmarks", "--run-bench", "--benchmark-only",
                "--benchmark-json=reports/bench/benchmarks.json", *session.posargs)
    session.run("python", "tools/bench_summary.py", "reports/bench/benchmarks.json", "reports/bench/summary.md")


@_session
def validate(session: nox.Session) -> None:
    """``ibcheck validate`` on the built-in suite (arguments after -- are passed on)."""
    session.install(".")
    session.run("ibcheck", "validate", *session.posargs)


@_session
def study(session: nox.Session) -> None:
    """A study and its report: ``ibcheck study SPEC --out runs/NAME`` (resumable: run it again after an
    interruption), then ``ibcheck study-report runs/NAME --out reports/NAME``. ``-- SPEC [NAME] [options]``;
    default SPEC study-small, NAME the spec's name; further options (``--address``) go to ibcheck study."""
    session.install(".")
    spec = session.posargs[0] if session.posargs else "study-small"
    rest = list(session.posargs[1:])
    name = rest.pop(0) if rest and not rest[0].startswith("-") else Path(spec).stem
    session.run("ibcheck", "study", spec, "--out", f"runs/{name}", *rest)
    session.run("ibcheck", "study-report", f"runs/{name}", "--out", f"reports/{name}")


@_session
def lint(session: nox.Session) -> None:
    """ruff on the package, the tests and the noxfile (settings in pyproject.toml)."""
    session.install("ruff>=0.5")
    session.run("python", "-m", "ruff", "check", ".", *session.posargs)


@_session
def types(session: nox.Session) -> None:
    """mypy on the package (settings in pyproject.toml)."""
    session.install("-e", ".", "mypy>=1.10")
    session.run("python", "-m", "mypy", *session.posargs)


@_session
def docs(session: nox.Session) -> None:
    """The documentation site (Sphinx, MyST Markdown, furo, sphinxcontrib-bibtex; sources in docs/),
    built into docs/_build/html with every warning an error, then its examples run as doctests.
    CI runs it. Arguments after ``--`` go to both sphinx-build calls."""
    session.install("-e", ".[docs]")
    session.run("python", "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
                *session.posargs)
    session.run("python", "-m", "sphinx", "-W", "-b", "doctest", "docs", "docs/_build/doctest", *session.posargs)


@_session
def mutants(session: nox.Session) -> None:
    """Plant a fixed list of known bugs one at a time in a temporary copy, run the tests that
    should catch each, and print which survived (``-- NAME ...`` for some). Not part of CI."""
    session.install("-e", ".[test]")
    session.run("python", "tools/mutants.py", *session.posargs, env=TOOLS_ENV)


@_session
def mutation(session: nox.Session) -> None:
    """A real mutation score of the numeric core: mutmut 3.3.1 ([tool.mutmut] in pyproject.toml) with
    one thread per process, then its counts, score and every survivor's disposition (``tools/mutation.py``).
    Results are kept in OUT/ledger.json while the mutated function is unchanged, so a stopped run resumes
    where it was; ``-- --only PATTERN`` scores part of the scope, ``-- --retest-timeouts`` tests the
    timeouts again, ``-- --retest --tests tests/test_x.py`` re-tests against one file (only its kills
    are kept), ``-- --report-only`` rereads the last run. Hours on two cores
    (reports/mutation/README.md); not part of CI."""
    session.install("-e", ".[test]")
    session.install("mutmut==3.3.1")
    session.run("python", "tools/mutation.py", *session.posargs, env=TOOLS_ENV)


# benchmark-mi 0.1.3 pins JAX below 0.5; its equinox 0.10 breaks on JAX 0.4.34 and later, and JAX 0.4.23
# on the scipy the base interpreter has, so the session pins the JAX that works with both (measured here)
PEERS = ["benchmark-mi==0.1.3", "jax==0.4.30", "jaxlib==0.4.30"]


@_session
def peers(session: nox.Session) -> None:
    """The field's estimators (benchmark-mi: KSG, CCA, histogram, InfoNCE, NWJ, DV, MINE) judged through
    the plugin interface beside ibcheck's bracket (read from baselines/reference.json), into
    reports/peers/ (23 minutes on two cores). JAX lives in this session's virtualenv only.
    ``-- OUT [--quick]`` (--quick: two cases, 200 steps)."""
    session.install(*PEERS)
    session.install("-e", ".", "--no-deps")
    session.run("python", "scripts/peers.py", *(session.posargs or ["reports/peers"]))


# torch-mist 0.2.17 pins numpy below 2 and imports pandas without declaring it; pandas 2.3 wants numpy 2, so
# the session pins both (measured here); torch itself is the CPU build of the base interpreter
TORCH_MIST = ["torch-mist==0.2.17", "numpy<2", "pandas<2.3", "torch==2.13.0"]


@_session
def torch_mist(session: nox.Session) -> None:
    """torch-mist's estimators (NWJ, MINE, InfoNCE, TUBA, AlphaTUBA, JS, SMILE, FLO, BA, DoE, GM, L1Out, CLUB,
    Binned, PQ), each judged as the bound torch-mist claims for it, beside ibcheck's bracket (read from
    baselines/reference.json), into reports/torch-mist/ (48.5 minutes on two cores, shared with the tests).
    torch-mist lives in this session's virtualenv only. ``-- OUT [--quick] [--workers=N] [--render]``."""
    session.install(*TORCH_MIST)
    session.install("-e", ".", "--no-deps")
    session.run("python", "scripts/torch_mist_peers.py", *(session.posargs or ["reports/torch-mist"]))

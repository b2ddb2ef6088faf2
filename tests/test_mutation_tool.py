"""``tools/mutation.py``, the record of ``nox -s mutation``: results survive mutmut's runs (which forget
them) while the mutated function and its module's code outside functions are unchanged, the score
counts timeouts and equivalent mutants apart, and a disposition holds only for the diff it was judged
on; ``tools/mutmut_run.py`` times each mutant by its own tests; ``tools/mutants.py``'s planted bugs
still find their lines."""
from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

import mutants
import mutation
import mutmut_run


@pytest.fixture
def sources(monkeypatch):
    """Each module's function hashes, changeable by the test."""
    table = {"ibcheck.a": {"f": "one", "f_cost": "one"}, "ibcheck.b": {"g": "one"}}
    monkeypatch.setattr(mutation, "function_hashes", lambda module: dict(table[module]))
    monkeypatch.setattr(mutation, "diff_of", lambda name: f"-old {name}\n+new {name}")
    return table


def test_results_are_kept_across_runs_until_their_function_changes(sources):
    first = {"ibcheck.a.x_f__mutmut_1": "killed", "ibcheck.a.x_f__mutmut_2": "survived",
             "ibcheck.b.x_g__mutmut_1": "timeout"}
    ledger = mutation.merge({}, first)
    # the next run names other mutants; mutmut reports the earlier ones as not checked again
    ledger = mutation.merge(ledger, {**dict.fromkeys(first, "not checked"), "ibcheck.b.x_g__mutmut_2": "killed"})
    names = [*first, "ibcheck.b.x_g__mutmut_2", "ibcheck.b.x_g__mutmut_3"]
    assert mutation.current(ledger, names) == {**first, "ibcheck.b.x_g__mutmut_2": "killed",
                                               "ibcheck.b.x_g__mutmut_3": "not checked"}
    sources["ibcheck.a"]["f"] = "two"
    assert mutation.current(ledger, names)["ibcheck.a.x_f__mutmut_1"] == "not checked"
    assert mutation.current(ledger, names)["ibcheck.b.x_g__mutmut_1"] == "timeout"
    ledger = mutation.merge(ledger, {"ibcheck.a.x_f__mutmut_2": "killed", "ibcheck.a.x_f_cost__mutmut_1": "killed"})
    assert ledger["ibcheck.a"] == {"functions": {"f": "two", "f_cost": "one"},
                                   "mutants": {"ibcheck.a.x_f__mutmut_2": "killed",
                                               "ibcheck.a.x_f_cost__mutmut_1": "killed"}}
    # another function of the same module keeps its results
    sources["ibcheck.a"]["f_cost"] = "three"
    assert mutation.current(ledger, names + ["ibcheck.a.x_f_cost__mutmut_1"]) == {
        **dict.fromkeys(names, "not checked"), "ibcheck.a.x_f__mutmut_1": "not checked",
        "ibcheck.a.x_f__mutmut_2": "killed", "ibcheck.b.x_g__mutmut_1": "timeout",
        "ibcheck.b.x_g__mutmut_2": "killed", "ibcheck.a.x_f_cost__mutmut_1": "not checked"}


def test_a_mutant_names_its_function():
    assert mutation.function_of("ibcheck.stats.x_holm__mutmut_3") == "holm"
    assert mutation.function_of("ibcheck.estimators.ais.xǁStartǁto_v__mutmut_12") == "Start.to_v"
    assert mutation.function_of("ibcheck.a.x__private__mutmut_1") == "_private"
    assert mutation.function_of("ibcheck.a.x_f_cost__mutmut_1") == "f_cost"


def test_the_score_leaves_out_timeouts_unchecked_and_equivalent_mutants(sources):
    found = {"ibcheck.a.x_f__mutmut_1": "killed", "ibcheck.a.x_f__mutmut_2": "killed",
             "ibcheck.a.x_f__mutmut_3": "survived", "ibcheck.a.x_f__mutmut_4": "survived",
             "ibcheck.a.x_f__mutmut_5": "no tests", "ibcheck.b.x_g__mutmut_1": "timeout",
             "ibcheck.b.x_g__mutmut_2": "not checked"}
    judged = {"ibcheck.a.x_f__mutmut_3": {"disposition": "equivalent", "why": "w",
                                          "diff": "-old ibcheck.a.x_f__mutmut_3\n+new ibcheck.a.x_f__mutmut_3"},
              # judged on another diff: the code moved, so the disposition no longer holds
              "ibcheck.a.x_f__mutmut_4": {"disposition": "equivalent", "why": "w", "diff": "-other\n+diff"}}
    summary = mutation.summarise(found, judged, 12.0, ["ibcheck.*"])
    assert summary["equivalent"] == 1 and summary["score_of"] == 4 and summary["score"] == 0.5
    assert summary["undisposed"] == ["ibcheck.a.x_f__mutmut_4", "ibcheck.a.x_f__mutmut_5"]
    assert summary["by_module"] == {"ibcheck.a": {"killed": 2, "survived": 2, "no tests": 1},
                                    "ibcheck.b": {"timeout": 1, "not checked": 1}}
    table = mutation.markdown(summary)
    assert "| `ibcheck.a` | 2 | 1 | 0 | 2 | 0 |" in table and "**none**" in table
    assert mutation.module_of("ibcheck.estimators.ais.xǁStartǁk__mutmut_3") == "ibcheck.estimators.ais"


def test_a_function_is_hashed_with_its_module_context_but_not_its_neighbours(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("def top():\n    return 1\n")
    module = "X = 1\n\ndef f():\n    return X\n\ndef g():\n    return 2\n\nclass C:\n    a: int = 1\n\n    def m(self):\n        return 3\n"
    (tmp_path / "pkg" / "mod.py").write_text(module)
    monkeypatch.chdir(tmp_path)
    assert set(mutation.function_hashes("pkg")) == {"top"}  # a package is read from its __init__.py
    before = mutation.function_hashes("pkg.mod")
    assert set(before) == {"f", "g", "C.m"}

    def changed(new: str) -> set[str]:
        (tmp_path / "pkg" / "mod.py").write_text(new)
        now = mutation.function_hashes("pkg.mod")
        return {key for key in before if now.get(key) != before[key]}

    assert changed(module.replace("return 2", "return 2  # a comment")) == set()
    assert changed(module.replace("return 2", "return 5")) == {"g"}
    assert changed(module.replace("return 3", "return 4")) == {"C.m"}
    assert changed(module.replace("X = 1", "X = 2")) == {"f", "g", "C.m"}  # a constant: all of them
    assert changed(module.replace("a: int = 1", "a: int = 2")) == {"f", "g", "C.m"}  # a class's field too


def test_a_run_tests_what_the_ledger_lacks_and_with_retest_its_survivors(sources, monkeypatch):
    ledger = mutation.merge({}, {"ibcheck.a.x_f__mutmut_1": "killed", "ibcheck.a.x_f__mutmut_2": "survived",
                                 "ibcheck.a.x_f_cost__mutmut_1": "timeout"})
    names = ["ibcheck.a.x_f__mutmut_1", "ibcheck.a.x_f__mutmut_2", "ibcheck.a.x_f__mutmut_3",
             "ibcheck.a.x_f_cost__mutmut_1", "ibcheck.a.x_f_cost__mutmut_2", "ibcheck.b.x_g__mutmut_1"]
    monkeypatch.setattr(mutation, "outcomes", lambda: dict.fromkeys(names, "not checked"))
    skip = ["*_cost__mutmut_*"]
    assert mutation.pending(ledger, ["ibcheck.a.*"], skip, False) == ["ibcheck.a.x_f__mutmut_3"]
    assert mutation.pending(ledger, ["ibcheck.a.*"], skip, True) == ["ibcheck.a.x_f__mutmut_2",
                                                                     "ibcheck.a.x_f__mutmut_3"]
    assert mutation.pending(ledger, [], skip, False) == ["ibcheck.a.x_f__mutmut_3", "ibcheck.b.x_g__mutmut_1"]
    assert mutation.pending(ledger, ["ibcheck.a.*"], [], False, True) == [
        "ibcheck.a.x_f__mutmut_3", "ibcheck.a.x_f_cost__mutmut_1", "ibcheck.a.x_f_cost__mutmut_2"]


def test_the_record_of_which_tests_reach_which_function_is_made_again_after_a_code_change(tmp_path, monkeypatch):
    """mutmut 3.3 reloads mutants/mutmut-stats.json and never maps a new function to its tests: a
    function added or renamed since would read "no tests"."""
    monkeypatch.chdir(tmp_path)
    for folder in ("ibcheck", "tests", "mutants"):
        (tmp_path / folder).mkdir()
    (tmp_path / "ibcheck" / "m.py").write_text("def f():\n    return 1\n")
    stats = tmp_path / "mutants" / "mutmut-stats.json"
    stats.write_text("{}")
    mutation.refresh_stats()
    assert not stats.exists()  # no key: made before the tool recorded one
    stats.write_text("{}")
    (tmp_path / "mutants" / "code-key").write_text(mutation.code_key())
    mutation.refresh_stats()
    assert stats.exists()
    (tmp_path / "tests" / "test_m.py").write_text("def test_f():\n    pass\n")
    mutation.refresh_stats()
    assert not stats.exists()


@pytest.mark.parametrize("planted", mutants.MUTANTS, ids=lambda m: m.name)
def test_every_planted_bug_still_finds_its_line(planted):
    """``nox -s mutants`` plants each bug by replacing one line fragment; a refactor that moves the
    fragment would make the session stop, so each must occur exactly once, and the tests it names exist."""
    assert (mutants.ROOT / planted.file).read_text().count(planted.old) == 1, planted.old
    for test in planted.tests:
        file, _, name = test.partition("::")
        assert (mutants.ROOT / file).is_file(), test
        assert not name or f"def {name}(" in (mutants.ROOT / file).read_text(), test


def test_a_tests_duration_adds_its_three_phases():
    """mutmut 3.3.1 keeps only the last phase's time (the teardown's), so each test read about 0.1 ms."""
    durations = mutmut_run.PhaseDurations()
    for nodeid, seconds in (("t::a", 0.5), ("t::a", 2.0), ("t::a", 0.25), ("t::b", 1.0)):
        durations.pytest_runtest_logreport(SimpleNamespace(nodeid=nodeid, duration=seconds))
    assert durations.seconds == {"t::a": 2.75, "t::b": 1.0}


def test_each_test_process_is_timed_against_its_own_mutants_tests():
    now = datetime.datetime(2026, 12, 3, 12, 0, 0)
    ago = [now - datetime.timedelta(seconds=s) for s in (20.0, 40.0, 100.0)]
    record = SimpleNamespace(start_time_by_pid={1: ago[0], 2: ago[1], 3: ago[2]},
                             estimated_time_of_tests_by_pid={1: 0.0, 2: 10.0, 3: 30.0})
    # limits 3 x (estimate + 5 s): 15 s, 45 s and 105 s; the same record listed once per mutant
    assert mutmut_run.over_time([record, record], now) == [1]
    assert mutmut_run.time_limit(30.0) == 105.0


def test_a_run_with_part_of_the_tests_keeps_only_its_kills(sources, tmp_path):
    """``--tests``: a mutant the chosen tests miss may fall to another, so its survival, its timeout or
    "no tests" must neither be recorded nor replace an earlier result, also when a later
    ``--report-only`` reads that run's records again (stop 33 recorded 12 such survivals that way)."""
    ledger = mutation.merge({}, {"ibcheck.a.x_f__mutmut_1": "killed", "ibcheck.a.x_f__mutmut_2": "timeout"})
    narrow = {"ibcheck.a.x_f__mutmut_1": "survived", "ibcheck.a.x_f__mutmut_2": "no tests",
              "ibcheck.a.x_f__mutmut_3": "killed", "ibcheck.a.x_f__mutmut_4": "survived"}
    assert mutation.to_record(narrow, tmp_path) == narrow  # a run with every test: all its results
    (tmp_path / mutation.PARTIAL).write_text('["tests/test_a.py"]\n')
    assert mutation.to_record(narrow, tmp_path) == mutation.kills_only(narrow)
    ledger = mutation.merge(ledger, mutation.to_record(narrow, tmp_path))
    assert mutation.current(ledger, sorted(narrow)) == {
        "ibcheck.a.x_f__mutmut_1": "killed", "ibcheck.a.x_f__mutmut_2": "timeout",
        "ibcheck.a.x_f__mutmut_3": "killed", "ibcheck.a.x_f__mutmut_4": "not checked"}


def test_the_launcher_takes_its_tests_apart_from_mutmuts_arguments(capsys):
    assert mutmut_run.split_tests(["--tests", "tests/test_a.py", "--max-children", "2", "--tests", "tests/b",
                                   "m.x_f__mutmut_1"]) == (["tests/test_a.py", "tests/b"],
                                                           ["--max-children", "2", "m.x_f__mutmut_1"])
    assert mutmut_run.split_tests(["--max-children", "2"]) == ([], ["--max-children", "2"])
    with pytest.raises(SystemExit):
        mutmut_run.split_tests(["m.x_f__mutmut_1", "--tests"])
    assert "--tests: expected one argument" in capsys.readouterr().err


def test_the_launcher_imports_no_ibcheck():
    """mutmut puts its mutated copy of ibcheck first on the path only when it starts: a launcher that
    imported ibcheck before would test the unmutated package, and record no test reaching any function."""
    import subprocess
    import sys
    probe = "import sys; sys.path.insert(0, 'tools'); import mutmut_run; print('ibcheck' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           cwd=mutants.ROOT).stdout
    assert shown.strip() == "False"


def test_a_mutants_diff_is_read_from_mutmuts_copy(tmp_path):
    """``diff_of`` gives the changed lines as ``mutmut show`` does, from the mutated module under mutants/."""
    pytest.importorskip("mutmut")
    (tmp_path / "mutants" / "pkg").mkdir(parents=True)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("def f(a):\n    return a + 1\n")
    (tmp_path / "mutants" / "pkg" / "mod.py").write_text(
        "def x_f__mutmut_orig(a):\n    return a + 1\n\ndef x_f__mutmut_1(a):\n    return a - 1\n")
    # in a process of its own: importing mutmut's __main__ sets multiprocessing's start method, which
    # may not be set twice in one process
    import subprocess
    import sys
    probe = (f"import sys; sys.path.insert(0, {str(mutants.ROOT / 'tools')!r}); import mutation; "
             "print(repr(mutation.diff_of('pkg.mod.x_f__mutmut_1')))")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           cwd=tmp_path).stdout
    assert shown.strip() == repr("-    return a + 1\n+    return a - 1")


def test_the_results_of_a_removed_module_no_longer_count(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    monkeypatch.chdir(tmp_path)
    ledger = mutation.merge({}, {"pkg.mod.x_f__mutmut_1": "killed"})
    assert mutation.current(ledger, ["pkg.mod.x_f__mutmut_1"]) == {"pkg.mod.x_f__mutmut_1": "killed"}
    (tmp_path / "pkg" / "mod.py").unlink()
    assert mutation.current(ledger, ["pkg.mod.x_f__mutmut_1"]) == {"pkg.mod.x_f__mutmut_1": "not checked"}


def test_a_renumbered_mutant_keeps_the_judgement_of_the_same_change_in_the_same_function(sources):
    """After a refactor mutmut numbers a function's mutants anew; a disposition recorded under the old
    name holds for the mutant with the same diff in the same function, and for no other."""
    judged = {"ibcheck.a.x_f__mutmut_9": {"disposition": "equivalent", "why": "w",
                                          "diff": "-old ibcheck.a.x_f__mutmut_2\n+new ibcheck.a.x_f__mutmut_2"}}
    found = {"ibcheck.a.x_f__mutmut_2": "survived", "ibcheck.b.x_g__mutmut_2": "survived"}
    rows = {r["mutant"]: r["disposition"] for r in mutation.summarise(found, judged, None, [])["not_killed"]}
    assert rows == {"ibcheck.a.x_f__mutmut_2": "equivalent", "ibcheck.b.x_g__mutmut_2": None}

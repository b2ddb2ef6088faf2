"""The seed tree: derived seeds are reproducible and independent, and ``--seed`` reaches
every draw of the teacher and of the student, which can share one teacher run."""
from __future__ import annotations

import json

import pytest

from ibcheck import seeds
from ibcheck.cli import main


def test_a_path_gives_the_same_seed_every_time_and_other_paths_others():
    assert seeds.seed_of(3, "student", "encoder") == seeds.seed_of(3, "student", "encoder")
    seen = {seeds.seed_of(root, *path) for root in (0, 1, 2**63 - 1)
            for path in [(), ("a",), ("b",), ("a", "b"), ("b", "a"), ("a", 0), ("a", 1), (97,), ("ab",)]}
    assert len(seen) == 27
    assert all(0 <= s < 2**63 for s in seen)


def test_seed_paths_refuse_what_they_cannot_encode():
    for bad in (-1, True, 1.5, "x"):
        with pytest.raises((ValueError, TypeError)):
            seeds.seed_of(bad, "a")  # type: ignore[arg-type]
    for bad_name in (-1, 1.0, None, False):
        with pytest.raises((ValueError, TypeError)):
            seeds.seed_of(0, bad_name)  # type: ignore[arg-type]


def test_generators_follow_the_tree():
    a = seeds.generator(5, "x").initial_seed()
    assert a == seeds.seed_of(5, "x") != seeds.generator(6, "x").initial_seed()
    assert seeds.rng(5, "x").integers(1 << 30) == seeds.rng(5, "x").integers(1 << 30)


def _lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _without_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A tiny data setting shared by the teachers and students below."""
    root = tmp_path_factory.mktemp("seeds")
    config = root / "data.json"
    config.write_text(json.dumps({"data": {"train_points": 400}}))
    return root, str(config)


def _teacher(root, config: str, name: str, seed: int):
    out = root / name
    assert main(["teacher", "--out", str(out), "--seed", str(seed), "--epochs", "1", "--config", config,
                 "--device", "cpu", "--quiet"]) == 0
    return out


def test_teacher_seed_reaches_the_teacher(small):
    root, config = small
    one, again, two = (_teacher(root, config, name, seed) for name, seed in (("t1", 1), ("t1b", 1), ("t2", 2)))
    assert _without_seconds(_lines(one)) == _without_seconds(_lines(again))
    assert _lines(one)[0]["test_neg_elbo"] != _lines(two)[0]["test_neg_elbo"]
    recorded = json.loads((two / "config.json").read_text())
    assert recorded["kind"] == "teacher" and recorded["config"]["teacher"]["seed"] == 2


def test_students_of_different_seeds_share_one_teacher_run(small, capsys):
    root, _ = small
    teacher = _teacher(root, small[1], "shared", 7)
    student_config = root / "student.json"
    student_config.write_text(json.dumps({"epochs": 1, "data": {"train_points": 400}}))
    runs = []
    for seed in (1, 2):
        out = root / f"student{seed}"
        assert main(["train", "--preset", "smoke", "--teacher", str(teacher), "--seed", str(seed), "--config",
                     str(student_config), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
        recorded = json.loads((out / "config.json").read_text())["config"]
        assert recorded["seed"] == seed and recorded["teacher"]["seed"] == 7
        assert recorded["teacher_run"] == str(teacher)
        runs.append(_without_seconds(_lines(out)))
    assert runs[0] != runs[1]
    assert runs[0][-1]["I_XZ"]["vib"] != runs[1][-1]["I_XZ"]["vib"]
    # the student may not use other data than the teacher was trained on
    assert main(["train", "--preset", "smoke", "--teacher", str(teacher), "--seed", "3", "--out",
                 str(root / "other-data"), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data.train_points" in err and err.count("\n") == 1 and not (root / "other-data").exists()

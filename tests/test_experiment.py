"""The paper's pipeline: models, the smoke run end to end, its records, resume after SIGKILL."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ibcheck.cli import main
from ibcheck.config import PRESETS, StudentConfig
from ibcheck.interface import Estimate
from ibcheck.pipeline import networks, student, vae
from ibcheck.pipeline.tracking import PAPER_MIN

import budget
import match_checks

RECORD_KEYS = {"epoch", "step", "I_XZ", "I_YZ", "accuracy", "logdet_cov", "grad_norm", "seconds", "ln_N", "loss"}
UPPER = ("vib", "teacher_elbo", "teacher_iw", "loo")


def test_model_shapes():
    x = torch.rand(5, 784)
    model = vae.VAE(seed=0)
    mean, std = model.encode(x)
    assert mean.shape == std.shape == (5, 20) and bool((std > 0).all())
    assert model.reconstruct(x).shape == (5, 784)
    assert model.neg_elbo(x, torch.Generator().manual_seed(0)).shape == (5,)
    for kind in ("mlp", "cnn"):
        s = student.VIBStudent(StudentConfig(encoder=kind), seed=0)
        m, sd = s.encoder(x)
        assert m.shape == sd.shape == (5, 40) and bool((sd > 0).all())
        probs = s.predict(x, 12, torch.Generator().manual_seed(0))
        assert probs.shape == (5, 10) and torch.allclose(probs.sum(1), torch.ones(5))
    q_mean, q_std = networks.MLPInferenceNet(seed=0)(torch.randn(5, 40))
    assert q_mean.shape == q_std.shape == (5, 20)


@pytest.mark.statistical
def test_closed_form_kl_matches_monte_carlo(stat, seed):
    """KL(N(mu, diag s^2) || N(0, I)) against the mean of log p(z|x) - log N(z; 0, I), z ~ p(z|x)."""
    stat.observe(match_checks.closed_form_kl(None, seed))


def _records(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


SMOKE_SEED = str(budget.seed_for("smoke") % 1000)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    assert main(["train", "--out", str(out), "--preset", "smoke", "--device", "cpu", "--quiet",
                 "--seed", SMOKE_SEED]) == 0
    return out


def test_smoke_run_writes_documented_records(smoke):
    records = _records(smoke)
    config = PRESETS["smoke"]
    finals = [r for r in records if not r.get("partial")]
    assert [r["epoch"] for r in finals] == list(range(config.epochs + 1))
    assert any(r.get("partial") for r in records)  # log-spaced points inside epoch 1
    for r in records:
        assert RECORD_KEYS <= set(r)
        assert set(r["I_XZ"]) >= {"vib", "teacher_elbo", "teacher_iw", "empirical", "nce", "loo"}
        assert set(r["I_YZ"]) == {"barber_agakov", "empirical"}
        assert all(set(v) >= {"value", "stderr"} for v in list(r["I_XZ"].values()) + list(r["I_YZ"].values()))
        assert r["ln_N"] == pytest.approx(math.log(config.data.train_points))
        assert r["I_XZ"]["nce"]["value"] <= math.log(config.track.estimators["nce"].N[0]) + 1e-6
        # the paper's measure is the smaller of its two bounds
        assert r["I_XZ"][PAPER_MIN] == min(r["I_XZ"]["vib"], r["I_XZ"]["teacher_elbo"], key=lambda e: e["value"])
        assert 0 <= r["accuracy"]["train"] <= 1 and 0 <= r["accuracy"]["test"] <= 1
    assert all(r["seconds"]["train"] > 0 and r["grad_norm"] > 0 for r in finals[1:])
    assert (smoke / "teacher" / "metrics.jsonl").read_text().count("\n") == config.teacher.epochs


@pytest.mark.statistical
def test_every_record_brackets_the_population_information_and_says_how_q_was_trained(smoke, stat):
    """The population bracket (teacher_rais below, teacher_ais above, annealed on the same fresh z_v
    through the teacher) is ordered within its paired se, names its settings and where the doubling
    rule stopped, and each q's training is recorded with its curve."""
    pop = PRESETS["smoke"].track.population
    for r in _records(smoke):
        entry = r["population"]
        low, high = (_estimate(entry[end], end) for end in ("lower", "upper"))
        assert entry["K"] == pop.K and entry["n"] == low.n == high.n == entry["width"]["n"] == pop.n
        assert entry["width"]["value"] == pytest.approx(high.value - low.value, rel=1e-5, abs=1e-5)  # float32 terms
        width = Estimate("width", "I_XZ", "upper", entry["width"]["value"], entry["width"]["stderr"], pop.n, 0)
        stat.upper(width, 0.0, label=f"epoch {r['epoch']}: population upper - lower >= 0 (paired)")
        ladder = entry["ladder"]
        assert entry["T"] == ladder[-1][0] and ladder[0][0] == pop.T and entry["stopped"] in ("target", "cap")
        assert entry["stopped"] == "target" or entry["T"] == pop.T_max
        assert entry["acceptance"] is None or 0 < entry["acceptance"] <= 1
        for objective, fit in r["q_fit"].items():
            assert fit["objective"] == objective and fit["curve"][-1][0] == fit["steps_used"]
            assert fit["converged"] != fit["capped"]


def _estimate(entry: dict, name: str) -> Estimate:
    return Estimate(name, "I_XZ", "upper", entry["value"], entry["stderr"], entry["n"], 0)


@pytest.mark.statistical
def test_every_upper_bound_sits_above_the_exact_training_set_information(smoke, stat):
    """bounds.md section 4: on the set the student trains on, empirical is I(X;Z) exactly."""
    for r in _records(smoke):
        exact = _estimate(r["I_XZ"]["empirical"], "empirical")
        stat.lower(exact, r["ln_N"], label=f"epoch {r['epoch']}: empirical <= ln N")  # I(X;Z) <= H(X) = ln N
        for name in UPPER:
            stat.not_below(_estimate(r["I_XZ"][name], name), exact, label=f"epoch {r['epoch']}: {name} >= empirical")


def test_plot_writes_figures_and_their_numbers(smoke, tmp_path):
    out = tmp_path / "plots"
    assert main(["plot", str(smoke), str(smoke), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"plot_data.csv", "info_plane.png", "estimators.png", "encoder.png"}
    rows = (out / "plot_data.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * len(_records(smoke))


def test_a_run_folder_is_not_reused_by_mistake(smoke, capsys):
    assert main(["train", "--out", str(smoke), "--preset", "smoke", "--seed", SMOKE_SEED, "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(smoke), "--preset", "paper", "--seed", SMOKE_SEED, "--resume", "--quiet"]) == 2
    assert "another run" in capsys.readouterr().err


@pytest.mark.parametrize("config, words", [
    ({"student": {"latent": "forty"}}, 'student.latent must be an integer in [1, 2^63), got "forty"'),
    ({"student": {"beta": "x"}}, 'student.beta must be a number, got "x"'),
    ({"nonsense": 1}, "nonsense unknown key"),
    ({"track": {"nope": 1}}, "track.nope"),
    ({"track": {"estimators": {"teacher_iw": {"K": [0]}}}}, "track.estimators.teacher_iw.K"),
    ({"zero_info": "sometimes"}, "zero_info"),
    ({"data": {"source": "fashion", "test_fraction": 0.5}}, "data.test_fraction"),
    ({"data": {"dir": "/tmp"}}, "data.dir"),
    ({"preset": "paper"}, "--preset"),
])
def test_bad_train_config_is_refused(tmp_path, capsys, config, words):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    assert main(["train", "--out", str(tmp_path / "run"), "--config", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


def _strip(records: list[dict]) -> list[dict]:
    """Records without their wall-clock seconds, which differ between runs."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    """Kill -9 mid-run, resume, and compare every record with an uninterrupted run of the same seed."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"epochs": 6}))
    argv = ["train", "--preset", "smoke", "--config", str(config), "--device", "cpu", "--quiet"]
    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.Popen([sys.executable, "-m", "ibcheck", *argv, "--out", str(killed)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (killed / "metrics.jsonl").exists() and sum(1 for r in _records(killed) if not r.get("partial")) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert main([*argv, "--out", str(killed), "--resume"]) == 0
    whole = tmp_path / "whole"
    assert main([*argv, "--out", str(whole)]) == 0
    assert _strip(_records(killed)) == _strip(_records(whole))


@pytest.mark.slow
@pytest.mark.statistical
def test_zero_information_run(tmp_path, stat):
    """Labels redrawn independently every epoch: the Barber-Agakov I(Y;Z) bound stays at or below 0
    (statistically), and the encoder sheds information: the last epoch's vib is below its peak."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"epochs": 12, "data": {"train_points": 2000}, "teacher": {"epochs": 20}}))
    out = tmp_path / "zero"
    assert main(["train", "--out", str(out), "--config", str(config), "--zero-info", "redraw", "--device", "cpu",
                 "--quiet"]) == 0
    finals = [r for r in _records(out) if not r.get("partial")]
    for r in finals[1:]:
        ba = r["I_YZ"]["barber_agakov"]
        stat.lower(Estimate("barber_agakov", "I_YZ", "lower", ba["value"], ba["stderr"], ba["n"], 0), 0.0,
                   label=f"zero-info epoch {r['epoch']}: barber_agakov")
    vib = [r["I_XZ"]["vib"]["value"] for r in finals]
    assert vib[-1] < max(vib)


def test_the_smoke_pipeline_of_the_guide_shares_one_teacher(tmp_path, capsys):
    """docs/guides/pipeline.md's four commands: a smoke teacher, two smoke students of it, one plot."""
    teacher, runs = tmp_path / "teacher", [tmp_path / "seed0", tmp_path / "seed1"]
    assert main(["teacher", "--preset", "smoke", "--out", str(teacher), "--device", "cpu", "--quiet"]) == 0
    for seed, run in enumerate(runs):
        assert main(["train", "--preset", "smoke", "--teacher", str(teacher), "--seed", str(seed), "--out", str(run),
                     "--device", "cpu", "--quiet"]) == 0
        assert not (run / "teacher").exists()  # the shared teacher, not a new one
    assert main(["plot", *map(str, runs), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "plot_data.csv").exists()
    capsys.readouterr()


def test_the_cli_names_every_preset():
    from ibcheck.cli.commands import PRESET_NAMES

    assert PRESET_NAMES == tuple(PRESETS)

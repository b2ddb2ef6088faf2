"""The tracking schedule (estimates at log-spaced epochs, light records between) and the
student's initial std (``student.std_shift``), the two settings studies vary."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ibcheck.cli import main
from ibcheck.config import PRESETS, WIDE_STD_SHIFT, StudentConfig
from ibcheck.pipeline import student
from ibcheck.pipeline.training import tracked_epochs


@given(epochs=st.integers(2, 400), count=st.integers(2, 60))
def test_tracked_epochs_are_log_spaced_distinct_and_include_both_ends(epochs, count):
    chosen = sorted(tracked_epochs(epochs, count))
    assert chosen[0] == 1 and chosen[-1] == epochs
    assert len(chosen) == min(count, epochs) and all(1 <= e <= epochs for e in chosen)
    if count < epochs and len(chosen) >= 4:  # denser early: the gaps never shrink by more than rounding
        gaps = np.diff(chosen)
        assert gaps[-1] >= gaps[0]


def test_no_schedule_tracks_every_epoch():
    assert tracked_epochs(7, None) == set(range(1, 8))


def test_a_scheduled_run_has_light_records_between_tracked_epochs(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"track": {"epochs": 2, "early_points": 0}}))
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    tracked = [r["epoch"] for r in records if "I_XZ" in r]
    assert tracked == [0, 1, PRESETS["smoke"].epochs]
    light = [r for r in records if "I_XZ" not in r]
    assert [r["epoch"] for r in light] == list(range(2, PRESETS["smoke"].epochs))
    for r in light:  # Figs. 6-7 stay per epoch
        assert set(r) >= {"logdet_cov", "grad_norm", "loss", "seconds"} and r["grad_norm"] > 0
        assert "accuracy" not in r and "I_YZ" not in r


@pytest.mark.parametrize("encoder", ["mlp", "cnn"])
def test_std_shift_sets_the_initial_std(encoder):
    x = torch.rand(64, 784, generator=torch.Generator().manual_seed(0))
    stds = {}
    for shift in (StudentConfig().std_shift, WIDE_STD_SHIFT):
        model = student.VIBStudent(StudentConfig(encoder=encoder, std_shift=shift, hidden=256), seed=0)
        with torch.no_grad():
            stds[shift] = float(model.encoder(x)[1].median())
    # softplus(rho - 5) with rho near 0 is near 0.0067, softplus(rho) near 0.69
    assert 0.003 < stds[5.0] < 0.02 and 0.4 < stds[0.0] < 1.1

"""Shared test helpers: the built-in suite as the one table of named cases, fast
settings, and independent re-derivations used as references."""
from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import math
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ibcheck import fileio
from ibcheck.analytic import exact, models
from ibcheck.analytic.case import LinearGaussianCase
from ibcheck.analytic.casefile import load_cases, parse_case
from ibcheck.estimators import registry, vib
from ibcheck.estimators.barber_agakov import BarberAgakovParams
from ibcheck.estimators.batch import BatchParams
from ibcheck.estimators.empirical import EmpiricalParams
from ibcheck.estimators.q_fit import QFitParams, train_both
from ibcheck.estimators.teacher_ais import TeacherAISParams
from ibcheck.estimators.teacher_bounds import TeacherElboParams, TeacherIWDataParams, TeacherIWParams, TeacherRIWParams
from ibcheck.estimators.vib import VibParams
from ibcheck.gaussian import rsample, standard_normal
from ibcheck.interface import Batch, Context
from ibcheck.pipeline import runs
from ibcheck.study import results

# Sizes that keep each estimator run well under a second yet give standard errors
# small next to the gaps the tests resolve.
FAST_ESTIMATORS = {"vib": VibParams(n=8000), "teacher_elbo": TeacherElboParams(n=8000),
                   "teacher_iw": TeacherIWParams(K=(1, 10, 100), n=1500),
                   "teacher_iw_data": TeacherIWDataParams(K=(1, 10, 100), n=1500),
                   "teacher_riw": TeacherRIWParams(K=(0, 10, 100), n=1500),
                   "teacher_ais": TeacherAISParams(T=(1, 10), n=500), "teacher_rais": TeacherAISParams(T=(1, 10), n=500),
                   "loo": BatchParams(N=(64, 256), batches=32),
                   "nce": BatchParams(N=(64, 256), batches=32), "empirical": EmpiricalParams(N=256, sets=24, draws=2),
                   "barber_agakov": BarberAgakovParams(steps=400, n=8000)}
FAST = dict(n_exact=200_000, q=QFitParams(steps=400), estimators=FAST_ESTIMATORS)


@functools.cache
def suite() -> tuple[LinearGaussianCase, ...]:
    with resources.as_file(resources.files("ibcheck.baselines") / "suite.json") as path:
        return tuple(load_cases(path))


def suite_case(name: str) -> LinearGaussianCase:
    return next(c for c in suite() if c.name == name)


def fast(case: LinearGaussianCase, **overrides) -> LinearGaussianCase:
    """The case with FAST settings."""
    values = dict(FAST, **overrides)
    return dataclasses.replace(case, settings=case.settings.replace(**values))


def linear(case: LinearGaussianCase, dtype=torch.float64, device="cpu") -> tuple:
    """(encoder, sampler) of a case."""
    return models.encoder_for(case, device, dtype), models.CaseSampler(case, device, dtype)


def trained_context(case: LinearGaussianCase, encoder, sampler, seed: int, steps: int = 400, lr: float = 0.01,
                    batch: int = 256) -> Context:
    """A context with both linear-Gaussian q's trained as validate trains them (``train_both``),
    capped at ``steps`` Adam steps each, and a fresh label decoder."""
    q, q_forward = (models.LinearGaussianQ(case.m, case.k, sampler.device, sampler.dtype) for _ in range(2))
    forward_fit, fit = train_both(encoder, sampler.teacher, sampler, q_forward, q,
                                  QFitParams(steps=steps, batch=batch, lr=lr), torch.Generator().manual_seed(seed))
    label_decoder, h_y = None, None
    if case.labels.kind == "classes":
        label_decoder, h_y = models.SoftmaxLabelQ(case.m, len(case.labels.probs)), exact.label_entropy(case)
    elif case.labels.kind == "gaussian":
        label_decoder = models.LinearGaussianLabelQ(case.m, case.labels.B.shape[0])
        h_y = exact.label_entropy(case)
    return Context(teacher=sampler.teacher, q=q, q_fit=fit, q_forward=q_forward, q_forward_fit=forward_fit,
                   label_decoder=label_decoder, h_y=h_y)


def sample_joint(sampler, encoder, n: int, generator: torch.Generator) -> tuple[Batch, torch.Tensor]:
    """The whole chain of bounds.md section 1: (z_v, x, y) from the case and z ~ p(z|x): (n, m)."""
    batch = sampler.sample(n, generator)
    mean, std = encoder(batch.x)
    return batch, rsample(mean, std, generator)


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (uint8) in IDX format, gzipped if ``compress``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    Path(path).write_bytes(gzip.compress(raw) if compress else raw)


def _vib_without_mean(encoder, data, params, generator, context):
    """The planted bug of bounds.md section 5: the VIB KL with the mean of p(z|x) set to zero."""
    def zero_mean(x):
        mean, std = encoder(x)
        return torch.zeros_like(mean), std
    return vib.vib_terms(zero_mean, data, params, generator, context)


def plant_vib_without_mean(monkeypatch) -> None:
    """Register, for this test only, a vib whose KL lost its mean term."""
    planted = dataclasses.replace(registry.VIB, terms=_vib_without_mean)
    monkeypatch.setattr(registry, "SPECS", dict(registry.SPECS, vib=planted))


class LatentSampler:
    """Draws of a teacher's model population: z_v ~ N(0, I_k), x = teacher.sample(z_v)
    (for the random-weight networks of the benchmarks and GPU tests)."""

    def __init__(self, teacher, device=None, dtype=torch.float32):
        self.teacher, self.device, self.dtype = teacher, torch.device(device or "cpu"), dtype

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Batch:
        z_v = standard_normal((n, self.teacher.latent_dim), generator, self.device, self.dtype)
        return Batch(x=self.teacher.sample(z_v, generator), z_v=z_v)


SUITE_NAMES = [c.name for c in suite()]


def numpy_draw(case: LinearGaussianCase, n: int, rng: np.random.Generator):
    """numpy draws (y or None, z_v, x, encoder mean, z) of a case, written independently of ibcheck's samplers."""
    y = None
    centre = case.prior_mean
    if case.labels.kind == "classes":
        y = rng.choice(len(case.labels.probs), size=n, p=case.labels.probs)
        centre = case.labels.means[y]
    z_v = centre + rng.standard_normal((n, case.k)) @ np.linalg.cholesky(case.prior_cov).T
    x = z_v @ case.W.T + case.c + case.noise_std * rng.standard_normal((n, case.d))
    mean = x @ case.A.T + case.b
    return y, z_v, x, mean, mean + case.std * rng.standard_normal((n, case.m))


def joint_factor(case: LinearGaussianCase) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Jy, my, Jz, mz): y = my + Jy u and z = mz + Jz u for u ~ N(0, I) stacking every
    independent noise (z_v's, x's, z's, y's). Covariances are J J^T: a derivation
    independent of ibcheck.analytic.exact, which works with moment formulas.
    Gaussian data prior only."""
    d, k, m = case.d, case.k, case.m
    Lv = np.linalg.cholesky(case.prior_cov)
    p = case.labels.B.shape[0] if case.labels.kind == "gaussian" else 0
    width = k + d + m + p
    Jzv = np.zeros((k, width)); Jzv[:, :k] = Lv
    Jx = case.W @ Jzv; Jx[:, k:k + d] += case.noise_std * np.eye(d)
    Jz = case.A @ Jx; Jz[:, k + d:k + d + m] += np.diag(case.std)
    mz = case.A @ (case.W @ case.prior_mean + case.c) + case.b
    if not p:
        return np.zeros((0, width)), np.zeros(0), Jz, mz
    Jy = case.labels.B @ Jzv; Jy[:, k + d + m:] += case.labels.noise_std * np.eye(p)
    return Jy, case.labels.B @ case.prior_mean, Jz, mz


def random_case_dict(rng: np.random.Generator, labels: str = "any", name: str = "random",
                     spread: float = 1.5) -> dict:
    """A random valid case object (case-file.md): d, k, m in 1..5, scales of W, A and the
    noise spanning 10^-spread..10^spread, sometimes a noiseless teacher or a data prior;
    ``labels`` is none, gaussian, classes or any."""
    d, k, m = (int(v) for v in rng.integers(1, 6, size=3))

    def scale() -> float:
        return float(10 ** rng.uniform(-spread, spread))

    obj = {"name": name,
           "teacher": {"W": (rng.normal(size=(d, k)) * scale() / np.sqrt(k)).tolist(),
                       "c": rng.normal(size=d).tolist(),
                       "noise_std": 0.0 if rng.random() < 0.4 else scale() * 0.3},
           "encoder": {"A": (rng.normal(size=(m, d)) * scale() / np.sqrt(d)).tolist(), "b": rng.normal(size=m).tolist(),
                       "std": (10 ** rng.uniform(-min(spread, 1.0), 0.7 * min(spread, 1.0), size=m)).tolist()}}
    if rng.random() < 0.4:
        G = rng.normal(size=(k, k)) / np.sqrt(k)
        obj["data_prior"] = {"mean": rng.normal(size=k).tolist(), "cov": (G @ G.T + 0.2 * np.eye(k)).tolist()}
    kind = labels if labels != "any" else rng.choice(["none", "gaussian", "classes"])
    if kind == "gaussian":
        obj["labels"] = {"kind": "gaussian", "B": rng.normal(size=(int(rng.integers(1, 4)), k)).tolist(),
                         "noise_std": float(10 ** rng.uniform(-1, 0.5))}
    elif kind == "classes":
        K = int(rng.integers(2, 6))
        obj["labels"] = {"kind": "classes", "means": (rng.normal(size=(K, k)) * 2).tolist(),
                         "probs": (rng.dirichlet(np.ones(K))).tolist()}
    return obj


def random_case(rng: np.random.Generator, labels: str = "any", name: str = "random") -> LinearGaussianCase:
    """A parsed random case across scales (entries spanning about three orders of magnitude)."""
    return parse_case(random_case_dict(rng, labels, name), 0)


def one_line_error(capsys, *words: str) -> str:
    """What the command printed on stderr, asserted to be one line, no traceback, naming ``words``."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    return err


# ---------------------------------------------------------------- a fake study folder


# the exact I(X;Z) of the fake study's cells, per epoch: two values that are not finite
EXACT = [[1.0, 3.0, 4.0, 3.5], [1.2, 3.2, 4.2, math.nan], [math.inf, 3.1, 4.1, 3.7]]  # per cell, per epoch


def _record(epoch: int, truth: float) -> dict:
    """A tracked record; non-finite numbers become null and are named in ``not_finite``, as
    ``ibcheck train`` writes them."""
    def estimate(value: float) -> dict:
        return {"value": value, "stderr": 0.01, "n": 100}

    finite = truth if math.isfinite(truth) else 3.0
    return runs.with_finite_numbers({
        "epoch": epoch, "step": 10 * epoch,
        "I_XZ": {"vib": estimate(finite + 5), "teacher_elbo": estimate(finite + 9),
                 "min_vib_teacher": estimate(finite + 5), "empirical": estimate(truth)},
        "I_YZ": {"empirical": estimate(1.5), "barber_agakov": estimate(1.2)},
        "accuracy": {"train": 0.9, "test": 0.85}, "logdet_cov": -10.0 - epoch, "ln_N": math.log(500),
        "grad_norm": None if epoch == 0 else 1.0 / (1 + epoch), "loss": 1.0,
        "seconds": {"train": 0.5, "estimate": 0.1}})


def fake_study(folder: Path) -> Path:
    """A small study folder written as ``ibcheck study`` and ``ibcheck train`` write theirs: three
    finished cells of four records each (``EXACT``: the exact I(X;Z) per cell and epoch, two of them
    not finite)."""
    cells = []
    for seed, truths in enumerate(EXACT):
        name = f"seed={seed}"
        config = {"preset": "smoke", "seed": seed, "zero_info": None, "epochs": len(truths) - 1,
                  "student": {"std_shift": 5.0, "beta": 0.001, "optimizer": "adam", "encoder": "mlp"}}
        cells.append({"name": name, "values": {"seed": seed}, "config": config})
        (folder / name).mkdir(parents=True)
        fileio.write_text(folder / name / runs.METRICS,
                          "".join(json.dumps(_record(e, x), allow_nan=False) + "\n" for e, x in enumerate(truths)))
        fileio.write_json(folder / name / runs.STATUS, {"status": "finished"})
    fileio.write_json(folder / results.STUDY_FILE, {
        "kind": "study", "spec": {"preset": "smoke", "base": {}, "grid": [{"seed": list(range(len(EXACT)))}]},
        "results": {}, "executions": [{"wall_seconds": 10.0}], "cells": cells, "description": "a fake study"})
    return folder

"""Information-plane tracking of a VIB student, reusing the harness's estimators.

Every quantity is measured on the student's *training* distribution: the finite
set of teacher reconstructions it learns from. There ``empirical`` (all N points
as mixture components) is the exact I(X;Z), at most ln N, and every upper bound
must sit above it (bounds.md section 4).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from ibcheck import estimators
from ibcheck.interface import Batch, Estimate
from ibcheck.networks import MLPInferenceNet, MLPTeacher

Tensor = torch.Tensor


@dataclasses.dataclass(frozen=True)
class TrackConfig:
    """Sample sizes of the per-epoch estimates (chosen so estimating costs about as much as
    an epoch of training on two CPU cores; none of them comes from the paper)."""

    subset: int = 1000  # fixed training points for vib, empirical's z draws, decoder, train accuracy
    test_subset: int = 1000  # test points for test accuracy
    q_steps: int = 15  # Adam steps of q(z_v|z) per epoch, warm-started (the paper's steps 1-8)
    q_batch: int = 128
    q_lr: float = 1e-3
    n_eval: int = 1000  # fresh samples evaluating teacher_elbo
    iw_K: int = 16
    iw_n: int = 256
    batch_N: int = 500  # nce / loo batch size
    n_batches: int = 8
    early_points: int = 0  # extra log-spaced tracking steps inside the first epoch (0: none)
    subset_seed: int = 0  # which training and test points form the fixed subsets


class FiniteSampler:
    """Uniform draws (with replacement) from a finite data set: the empirical distribution.
    x: (N, d), y: (N,) or None."""

    def __init__(self, x: Tensor, y: Tensor | None = None):
        self.x, self.y = x, y

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(len(self.x), (n,), generator=generator, device=self.x.device)
        return Batch(x=self.x[idx], y=None if self.y is None else self.y[idx])


def label_entropy(y: Tensor, classes: int = 10) -> float:
    """H(Y) of the label frequencies, in nats."""
    p = torch.bincount(y, minlength=classes).double() / len(y)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _entry(est: Estimate) -> dict:
    return {"value": est.value, "stderr": est.stderr, "n": est.n}


@dataclasses.dataclass
class Tracker:
    """What tracking needs across epochs: the data, the teacher, the warm-started q, and the
    fixed subsets. ``seed`` drives a generator of its own, saved with the run."""

    teacher: MLPTeacher
    q: MLPInferenceNet
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    config: TrackConfig
    subset: Tensor = dataclasses.field(init=False)
    test_subset: Tensor = dataclasses.field(init=False)

    def __post_init__(self):
        rng = np.random.default_rng(self.config.subset_seed)
        n, m = len(self.train_x), len(self.test_x)
        device = self.train_x.device
        self.subset = torch.as_tensor(np.sort(rng.permutation(n)[:min(self.config.subset, n)]), device=device)
        self.test_subset = torch.as_tensor(np.sort(rng.permutation(m)[:min(self.config.test_subset, m)]),
                                           device=device)

    def measure(self, student, labels: Tensor, generator: torch.Generator) -> dict:
        """One record of I(X;Z), I(Y;Z), accuracies and the encoder's mean log-determinant.

        ``labels``: (N,) the training labels the student currently sees (zero-info runs redraw them).
        """
        started = time.perf_counter()
        c, enc = self.config, student.encoder
        seeds = iter(torch.randint(0, 2**62, (8,), generator=generator, device=generator.device).tolist())
        full = FiniteSampler(self.train_x, labels)
        points = FiniteSampler(self.train_x[self.subset], labels[self.subset])
        vib = estimators.vib(enc, points, n=len(self.subset), seed=next(seeds))
        elbo = estimators.teacher_elbo(enc, self.teacher, full, self.q, steps=c.q_steps, batch=c.q_batch, lr=c.q_lr,
                                       n_eval=c.n_eval, seed=next(seeds))
        with torch.no_grad():
            iw = estimators.teacher_iw(enc, self.teacher, full, self.q, K=c.iw_K, n=c.iw_n, seed=next(seeds))
            nce, loo = estimators.sandwich(enc, full, N=c.batch_N, batches=c.n_batches, seed=next(seeds))
            emp_x, emp_y = estimators.empirical(enc, self.train_x, labels, draws=1, seed=next(seeds),
                                                query=self.subset)
            dec = estimators.decoder(enc, points, student.decoder, h_y=label_entropy(labels), n_eval=len(self.subset),
                                     seed=next(seeds))
            record = {"I_XZ": {"vib": _entry(vib), "teacher_elbo": _entry(elbo), "teacher_iw": _entry(iw),
                               "empirical": _entry(emp_x), "nce": _entry(nce), "loo": _entry(loo),
                               "min_vib_teacher": _entry(min(vib, elbo, key=lambda e: e.value))},
                      "I_YZ": {"decoder": _entry(dec), "empirical": _entry(emp_y)},
                      "accuracy": self._accuracy(student, labels, generator),
                      "logdet_cov": self._logdet(enc), "ln_N": math.log(len(self.train_x))}
        record["seconds_estimate"] = time.perf_counter() - started
        return record

    def _accuracy(self, student, labels: Tensor, generator: torch.Generator) -> dict:
        samples = 12
        train = student.predict(self.train_x[self.subset], samples, generator).argmax(1) == labels[self.subset]
        test = student.predict(self.test_x[self.test_subset], samples, generator).argmax(1) == self.test_y[
            self.test_subset]
        return {"train": float(train.double().mean()), "test": float(test.double().mean())}

    def _logdet(self, encoder) -> float:
        """Mean over the subset of log det Cov[p(z|x)] = sum_l log std_l^2, in nats."""
        _, std = encoder(self.train_x[self.subset])
        return float((2 * std.log()).sum(1).mean())

"""Information-plane tracking of a VIB student, reusing the harness's estimators.

Every quantity is measured on the student's *training* distribution: the finite
set of teacher reconstructions it learns from. There ``empirical`` (all N points
as mixture components) is the exact I(X;Z), at most ln N, and every upper bound
must sit above it (bounds.md section 4). Every registered estimator runs, with
the parameters of ``TrackConfig.estimators``, against the reference "finite".
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch

from ibcheck import estimators, seeds
from ibcheck.config import TrackConfig
from ibcheck.estimators import registry
from ibcheck.estimators.common import generator_for
from ibcheck.interface import Context, Estimate
from ibcheck.pipeline.networks import MLPInferenceNet, MLPTeacher
from ibcheck.samplers import FiniteSampler

Tensor = torch.Tensor
# The paper's I(X;Z) figure: the smaller of the two upper bounds it computes.
PAPER_MIN = "min_vib_teacher"


def label_entropy(y: Tensor, classes: int = 10) -> float:
    """H(Y) of the label frequencies, in nats."""
    p = torch.bincount(y, minlength=classes).double() / len(y)
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def mean_logdet(encoder, x: Tensor) -> float:
    """Mean over x: (n, d) of log det Cov[p(z|x)] = sum_l log std_l^2, in nats (the paper's Figs. 6-7)."""
    _, std = encoder(x)
    return float((2 * std.log()).sum(1).mean())


def _entry(est: Estimate) -> dict:
    return {"value": est.value, "stderr": est.stderr, "n": est.n}


def _fixed_subset(n: int, size: int, root: int, name: str, device: torch.device) -> Tensor:
    order = seeds.rng(root, "track", "subsets", name).permutation(n)
    return torch.as_tensor(sorted(order[:min(size, n)]), device=device)


@dataclasses.dataclass
class Tracker:
    """What tracking needs across epochs: the data, the teacher's generative network, the
    warm-started q, and the fixed subsets of the accuracies and the log-determinant (drawn
    from ``seed``'s tree at ``track/subsets``)."""

    teacher: MLPTeacher
    q: MLPInferenceNet
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    config: TrackConfig
    seed: int
    subset: Tensor = dataclasses.field(init=False)
    test_subset: Tensor = dataclasses.field(init=False)

    def __post_init__(self):
        device = self.train_x.device
        self.subset = _fixed_subset(len(self.train_x), self.config.subset, self.seed, "train", device)
        self.test_subset = _fixed_subset(len(self.test_x), self.config.test_subset, self.seed, "test", device)

    def measure(self, student, labels: Tensor, generator: torch.Generator) -> dict:
        """One record of I(X;Z), I(Y;Z), accuracies and the encoder's mean log-determinant.

        ``labels``: (N,) the training labels the student currently sees (zero-info runs redraw them).
        """
        started = time.perf_counter()
        enc, data, params = student.encoder, FiniteSampler(self.train_x, labels), self.config.estimators
        # estimators that can share their draws (loo and nce) run together, with one seed
        groups = registry.groups(registry.without_prior(), params)
        draws = torch.randint(0, 2**62, (len(groups) + 1,), generator=generator, device=generator.device).tolist()
        q_fit = estimators.train_q(enc, self.teacher, data, self.q, self.config.q,
                                   generator_for(draws[-1], self.train_x.device))
        context = Context(teacher=self.teacher, q=self.q, q_fit=q_fit, label_model=student.classifier,
                          h_y=label_entropy(labels))
        record: dict = {"I_XZ": {}, "I_YZ": {}}
        for group, seed in zip(groups, draws):
            together = registry.run_together(group, enc, data, params[group[0]], seed=seed, context=context,
                                             reference="finite")
            for name, estimates in together.items():
                for est in estimates:
                    record[est.target][name] = _entry(est)
        vib, elbo = record["I_XZ"][registry.VIB.name], record["I_XZ"][registry.TEACHER_ELBO.name]
        record["I_XZ"][PAPER_MIN] = min(vib, elbo, key=lambda e: e["value"])
        with torch.no_grad():
            record.update(accuracy=self._accuracy(student, labels, generator),
                          logdet_cov=mean_logdet(enc, self.train_x[self.subset]),
                          ln_N=math.log(len(self.train_x)))
        record["seconds_estimate"] = time.perf_counter() - started
        return record

    @torch.no_grad()
    def measure_light(self, student) -> dict:
        """The record of an epoch without estimates: the encoder's mean log-determinant only (the
        epoch's losses and gradient norm are added by the caller)."""
        started = time.perf_counter()
        logdet = mean_logdet(student.encoder, self.train_x[self.subset])
        return {"logdet_cov": logdet, "ln_N": math.log(len(self.train_x)),
                "seconds_estimate": time.perf_counter() - started}

    def _accuracy(self, student, labels: Tensor, generator: torch.Generator) -> dict:
        draws = self.config.accuracy_draws
        train = student.predict(self.train_x[self.subset], draws, generator).argmax(1) == labels[self.subset]
        test_pred = student.predict(self.test_x[self.test_subset], draws, generator).argmax(1)
        test = test_pred == self.test_y[self.test_subset]
        return {"train": float(train.double().mean()), "test": float(test.double().mean())}


"""Information-plane tracking of a VIB student, reusing the harness's estimators.

Every quantity is measured on the student's *training* distribution: the finite
set of teacher reconstructions it learns from. There ``empirical`` (all N points
as mixture components) is the exact I(X;Z), at most ln N, and every upper bound
must sit above it (bounds.md section 4). Every registered estimator that needs no
prior density runs, with the parameters of ``TrackConfig.estimators``, against the
reference "finite". Beside them, a record's ``population`` brackets the I(X;Z) of
the teacher's model population (fresh z_v ~ N(0, I) through the teacher), which
has no ln N ceiling.
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
from ibcheck.estimators.teacher_bounds import TeacherIWParams, TeacherRIWParams
from ibcheck.interface import Context, Estimate
from ibcheck.pipeline.networks import MLPInferenceNet, MLPTeacher
from ibcheck.samplers import FiniteSampler, ModelPopulation

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


def _fit_record(fit: dict) -> dict:
    """How a q was trained for a record: the steps, whether it converged or hit the cap, its held-out
    value and curve (its settings are in the run's config; its seconds in the record's)."""
    return {key: fit[key] for key in ("objective", "steps_used", "converged", "capped", "heldout", "curve")}


def _fixed_subset(n: int, size: int, root: int, name: str, device: torch.device) -> Tensor:
    order = seeds.rng(root, "track", "subsets", name).permutation(n)
    return torch.as_tensor(sorted(order[:min(size, n)]), device=device)


@dataclasses.dataclass
class Tracker:
    """What tracking needs across epochs: the data, the teacher's generative network, the two
    warm-started q's (Eq. 5's, and the forward one of the population bracket), and the fixed
    subsets of the accuracies and the log-determinant (drawn from ``seed``'s tree at
    ``track/subsets``)."""

    teacher: MLPTeacher
    q: MLPInferenceNet
    q_forward: MLPInferenceNet
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

    def population_due(self, epoch: float) -> bool:
        """Whether the record at ``epoch`` brackets the population: every record with ``every`` = 1,
        else the whole epochs divisible by ``every``."""
        pop = self.config.population
        return pop.K > 0 and (pop.every == 1 or (float(epoch).is_integer() and int(epoch) % pop.every == 0))

    def measure(self, student, labels: Tensor, generator: torch.Generator, epoch: float = 0) -> dict:
        """One record of I(X;Z), I(Y;Z), accuracies and the encoder's mean log-determinant, and
        the population bracket where it is due at ``epoch``.

        ``labels``: (N,) the training labels the student currently sees (zero-info runs redraw them).
        """
        started = time.perf_counter()
        enc, data, params = student.encoder, FiniteSampler(self.train_x, labels), self.config.estimators
        # estimators that can share their draws (loo and nce) run together, with one seed
        groups = registry.groups(registry.without_prior(), params)
        draws = torch.randint(0, 2**62, (len(groups) + 2,), generator=generator, device=generator.device).tolist()
        q_fit = estimators.train_q(enc, self.teacher, data, self.q, self.config.q,
                                   generator_for(draws[-2], self.train_x.device))
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
        record["q_fit"] = {"elbo": _fit_record(q_fit)}
        if self.population_due(epoch):
            record["population"], forward_fit = self._population(enc, draws[-1])
            record["q_fit"]["forward"] = _fit_record(forward_fit)
        with torch.no_grad():
            record.update(accuracy=self._accuracy(student, labels, generator),
                          logdet_cov=mean_logdet(enc, self.train_x[self.subset]),
                          ln_N=math.log(len(self.train_x)))
        record["seconds_estimate"] = time.perf_counter() - started
        return record

    def _population(self, encoder, seed: int) -> tuple[dict, dict]:
        """The bracket on the I(X;Z) of the teacher's model population (fresh z_v ~ N(0, I) through
        the teacher): teacher_riw below, teacher_iw with that prior above, both with the forward q
        trained first on the same population. Returns the record's entry and the q's training."""
        pop, device = self.config.population, self.train_x.device
        population = ModelPopulation(self.teacher, self.teacher.latent_dim, device, self.train_x.dtype)
        draws = torch.randint(0, 2**62, (3,), generator=generator_for(seed, device), device=device).tolist()
        fit = estimators.train_q(encoder, self.teacher, population, self.q_forward, pop.q,
                                 generator_for(draws[0], device), "forward")
        context = Context(teacher=self.teacher, q_forward=self.q_forward, q_forward_fit=fit)
        low = registry.run_one(registry.TEACHER_RIW.name, encoder, population,
                               TeacherRIWParams(K=(pop.K,), n=pop.n, q="forward"), seed=draws[1], context=context)
        high = registry.run_one(registry.TEACHER_IW.name, encoder, population,
                                TeacherIWParams(K=(pop.K,), n=pop.n, prior="data", q="forward"), seed=draws[2],
                                context=context)
        return {"lower": _entry(low), "upper": _entry(high), "K": pop.K}, fit

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


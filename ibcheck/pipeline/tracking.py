"""Information-plane tracking of a VIB student, reusing the harness's estimators.

Every quantity is measured on the student's *training* distribution: the finite
set of teacher reconstructions it learns from. There ``empirical`` (all N points
as mixture components) is the exact I(X;Z), at most ln N, and every upper bound
must sit above it (bounds.md section 4). Every registered estimator that needs no
prior density runs, with the parameters of ``TrackConfig.estimators``, against the
reference "finite". Beside them, a record's ``population`` brackets the I(X;Z) of
the teacher's model population (fresh z_v ~ N(0, I) through the teacher), which
has no ln N ceiling, with the annealed bounds of bounds.md section 3c.
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch

from ibcheck import estimators, seeds
from ibcheck.config import TrackConfig
from ibcheck.estimators import registry, teacher_ais
from ibcheck.estimators.common import generator_for
from ibcheck.estimators.samplers import FiniteSampler, ModelPopulation
from ibcheck.interface import Context, Estimate, InferenceNet
from ibcheck.pipeline.networks import MLPInferenceNet, MLPTeacher

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


def _terms_entry(terms: Tensor) -> dict:
    """{"value", "stderr", "n"} of independent terms (n,): mean and sd / sqrt(n), in nats."""
    terms = terms.detach().double()
    return {"value": float(terms.mean()), "stderr": float(terms.std()) / math.sqrt(terms.numel()),
            "n": terms.numel()}


BRACKET_SIDES = {registry.TEACHER_AIS.name: teacher_ais.UPPER, registry.TEACHER_RAIS.name: teacher_ais.LOWER}


def annealed_bracket(encoder, teacher, q_forward: InferenceNet, fit: dict, params: teacher_ais.TeacherAISParams,
                     population, generator: torch.Generator) -> dict:
    """The population entry of a record: teacher_rais below and teacher_ais above on the same z, their
    paired width (upper - lower per z: mean, se), and T (where the doubling rule stopped, and why),
    K, n and the acceptance rate of the transitions (null without any)."""
    context = Context(teacher=teacher, q_forward=q_forward, q_forward_fit=fit)
    measured = teacher_ais.ais_terms(encoder, population, params, generator, context, BRACKET_SIDES)
    upper, lower = measured[registry.TEACHER_AIS.name][0], measured[registry.TEACHER_RAIS.name][0]
    acceptance = upper.params["acceptance"]
    entry = {"lower": _terms_entry(lower.terms), "upper": _terms_entry(upper.terms),
             "width": _terms_entry(upper.terms - lower.terms), "T": upper.params["T"], "K": params.K,
             "n": params.n, "leapfrog": params.leapfrog, "acceptance": None if math.isnan(acceptance) else acceptance}
    if "stopped" in upper.params:
        entry.update(stopped=upper.params["stopped"], ladder=upper.params["ladder"])
    return entry


def _fit_record(fit: dict) -> dict:
    """How a q was trained for a record: the steps, whether it converged or hit the cap, its held-out
    value and curve (its settings are in the run's config; its seconds in the record's)."""
    return {key: fit[key] for key in ("objective", "steps_used", "converged", "capped", "restarted", "heldout",
                                      "curve")}


def _fixed_subset(n: int, size: int, root: int, name: str, device: torch.device) -> Tensor:
    order = seeds.rng(root, "track", "subsets", name).permutation(n)
    return torch.as_tensor(sorted(order[:min(size, n)]), device=device)


@dataclasses.dataclass
class Tracker:
    """What tracking needs across epochs: the data, the teacher's generative network, the two
    warm-started q's (Eq. 5's, and the forward one of the population bracket), the epochs whose
    records bracket the population (None: all), and the fixed subsets of the accuracies and the
    log-determinant (drawn from ``seed``'s tree at ``track/subsets``)."""

    teacher: MLPTeacher
    q: MLPInferenceNet
    q_forward: InferenceNet
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    config: TrackConfig
    seed: int
    population_epochs: frozenset[int] | None = None
    subset: Tensor = dataclasses.field(init=False)
    test_subset: Tensor = dataclasses.field(init=False)
    q_forward_initial: dict = dataclasses.field(init=False)

    def __post_init__(self):
        # the forward q's weights before any training: each record restarts from them where they beat
        # the warm start on the held-out batch
        self.q_forward_initial = {key: value.clone() for key, value in self.q_forward.state_dict().items()}
        device = self.train_x.device
        self.subset = _fixed_subset(len(self.train_x), self.config.subset, self.seed, "train", device)
        self.test_subset = _fixed_subset(len(self.test_x), self.config.test_subset, self.seed, "test", device)

    def population_due(self, epoch: float) -> bool:
        """Whether the record at ``epoch`` brackets the population: every record where
        ``population_epochs`` is None, else the whole epochs in it (K = 0: none)."""
        if self.config.population.K == 0:
            return False
        if self.population_epochs is None:
            return True
        return float(epoch).is_integer() and int(epoch) in self.population_epochs

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
        context = Context(teacher=self.teacher, q=self.q, q_fit=q_fit, label_decoder=student.label_decoder,
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
            record["seconds_population"] = forward_fit["seconds"]
        with torch.no_grad():
            record.update(accuracy=self._accuracy(student, labels, generator),
                          logdet_cov=mean_logdet(enc, self.train_x[self.subset]),
                          ln_N=math.log(len(self.train_x)))
        record["seconds_estimate"] = time.perf_counter() - started
        return record

    def _population(self, encoder, seed: int) -> tuple[dict, dict]:
        """The bracket on the I(X;Z) of the teacher's model population (fresh z_v ~ N(0, I) through
        the teacher): the annealed pair from the forward q, trained first on the same population.
        Returns the record's entry and the q's training, whose seconds are the bracket's whole time."""
        started = time.perf_counter()
        pop, device = self.config.population, self.train_x.device
        population = ModelPopulation(self.teacher, self.teacher.latent_dim, device, self.train_x.dtype)
        draws = torch.randint(0, 2**62, (2,), generator=generator_for(seed, device), device=device).tolist()
        fit = estimators.train_q(encoder, self.teacher, population, self.q_forward, pop.q,
                                 generator_for(draws[0], device), "forward", restart=self.q_forward_initial)
        entry = annealed_bracket(encoder, self.teacher, self.q_forward, fit, pop.bracket(), population,
                                 generator_for(draws[1], device))
        return entry, {**fit, "seconds": time.perf_counter() - started}

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


"""The linear-Gaussian case: its type (``bounds.md`` section 1), float64 arrays throughout.

Case files are read by ``casefile`` (``case-file.md``), which checks every field; this module
holds only what a case is, so that the exact values (``exact``) and the sampler (``models``)
can use the type without the parser.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ibcheck.config import EstimatorSettings


@dataclasses.dataclass(frozen=True, eq=False)
class Labels:
    """Labels of a case. kind "none"; "gaussian": y = B z_v + noise_std eps, B: (p, k);
    "classes": y ~ Cat(probs), z_v | y ~ N(means[y], prior_cov), means: (K, k).
    The arrays a kind does not use are empty."""

    kind: str = "none"
    B: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    noise_std: float = 0.0
    means: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 0)))
    probs: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


@dataclasses.dataclass(frozen=True, eq=False)
class LinearGaussianCase:
    """One linear-Gaussian teacher-student case (``bounds.md`` section 1), float64.

    Teacher x = W z_v + c + noise_std eps with W: (d, k); data prior
    N(prior_mean, prior_cov); encoder p(z|x) = N(A x + b, diag(std^2)) with
    A: (m, d). For class labels prior_mean is unused (the class means replace it).
    """

    name: str
    W: np.ndarray
    c: np.ndarray
    noise_std: float
    prior_mean: np.ndarray
    prior_cov: np.ndarray
    A: np.ndarray
    b: np.ndarray
    std: np.ndarray
    labels: Labels = Labels()
    settings: EstimatorSettings = EstimatorSettings()

    @property
    def d(self) -> int:
        return self.W.shape[0]

    @property
    def k(self) -> int:
        return self.W.shape[1]

    @property
    def m(self) -> int:
        return self.A.shape[0]


def data_prior_is_model(case: LinearGaussianCase) -> bool:
    """Whether z_v is drawn from the teacher's model prior N(0, I) itself (a class mixture only where
    every class mean is 0); where not, the model-prior teacher bounds do not tend to I(X;Z)."""
    means = case.labels.means if case.labels.kind == "classes" else case.prior_mean[None, :]
    return bool(np.all(means == 0.0) and np.array_equal(case.prior_cov, np.eye(case.k)))

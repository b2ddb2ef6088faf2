"""Generic data samplers (``interface.DataSampler``) that assume no model."""
from __future__ import annotations

import torch

from ibcheck.gaussian import standard_log_prior, standard_normal
from ibcheck.interface import Batch

Tensor = torch.Tensor


class FiniteSampler:
    """Uniform draws (with replacement) from a finite data set: its empirical distribution.

    x: (N, d), y: (N,) or None. ``points`` is the whole set (``interface.FiniteData``), which
    ``empirical`` with N null uses as its mixture components.
    """

    def __init__(self, x: Tensor, y: Tensor | None = None):
        self.points = Batch(x=x, y=y)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        x, y = self.points.x, self.points.y
        idx = torch.randint(len(x), (n,), generator=generator, device=generator.device).to(x.device)
        return Batch(x=x[idx], y=None if y is None else y[idx])


class ModelPopulation:
    """The teacher's model population: z_v ~ N(0, I_k), x ~ p(x|z_v) through the teacher
    (``interface.PriorData``, prior N(0, I)): data drawn through the teacher from a prior of
    known density, the condition of teacher_riw and of teacher_iw with the data prior
    (bounds.md section 3b). Its I(X;Z) has no ln N ceiling, unlike a finite training set's."""

    def __init__(self, teacher, latent: int, device: torch.device | str, dtype: torch.dtype = torch.float32):
        self.teacher, self.latent, self.device, self.dtype = teacher, latent, torch.device(device), dtype

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        z_v = standard_normal((n, self.latent), generator, self.device, self.dtype)
        with torch.no_grad():
            return Batch(x=self.teacher.sample(z_v, generator), z_v=z_v)

    def log_prior(self, z_v: Tensor) -> Tensor:
        """log N(z_v; 0, I): (..., k) -> (...)."""
        return standard_log_prior(z_v)

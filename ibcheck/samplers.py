"""Generic data samplers (``interface.DataSampler``) that assume no model."""
from __future__ import annotations

import torch

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

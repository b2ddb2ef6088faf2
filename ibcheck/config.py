"""Frozen settings with named defaults (the nanoGPT ``GPTConfig`` habit).

Every number an estimator run depends on lives here, so a run is described by
its settings plus its seed. A case file's ``"settings"`` object overrides any
of these fields by name (``case-file.md``).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class EstimatorSettings:
    """Sample sizes, training budgets and seeds of one validation run.

    Defaults are sized so that the built-in suite runs in well under two
    minutes on two CPU cores while every standard error stays small next to
    the gaps it has to resolve.
    """

    seed: int = 0
    # vib: closed-form KL per x, averaged over this many fresh x.
    n_vib: int = 20_000
    # teacher_elbo: Adam steps and batch size for q(z_v|z), then fresh samples to evaluate.
    q_steps: int = 1_500
    q_batch: int = 256
    q_lr: float = 0.01
    n_eval: int = 20_000
    # teacher_iw: importance samples per z (one estimate per K) and number of z.
    iw_K: Tuple[int, ...] = (1, 10, 100)
    iw_n: int = 4_000
    # loo / nce: batch sizes N (one estimate per N), each over this many independent batches.
    batch_N: Tuple[int, ...] = (64, 256, 1024)
    n_batches: int = 64
    # empirical: independent data sets of N points, z draws per point.
    empirical_N: int = 1024
    empirical_sets: int = 32
    empirical_draws: int = 4
    # decoder (Barber-Agakov): Adam steps for q(y|z), batch, learning rate; evaluated on n_eval.
    decoder_steps: int = 1_000
    decoder_batch: int = 256
    decoder_lr: float = 0.01
    # Monte Carlo samples behind a "numerically exact" value (class labels).
    n_exact: int = 1_000_000

    def replace(self, **changes) -> "EstimatorSettings":
        return dataclasses.replace(self, **changes)


def settings_fields() -> dict[str, type]:
    """Field name -> the type a case file's value must have (int, float or tuple of int)."""
    kinds = {}
    for f in dataclasses.fields(EstimatorSettings):
        default = f.default
        kinds[f.name] = tuple if isinstance(default, tuple) else type(default)
    return kinds

"""Every estimator of bounds.md section 3, as batched tensor code on any device.

They see only the protocols of ``ibcheck.interface`` (an encoder returning mean
and std, a teacher sampling p(x|z_v), inference networks and data samplers),
so the same functions serve the linear-Gaussian harness and neural networks.
"""
from ibcheck.estimators.batch import loo, nce, sandwich
from ibcheck.estimators.decoder import decoder
from ibcheck.estimators.empirical import empirical, empirical_over_datasets
from ibcheck.estimators.teacher import teacher_elbo, teacher_iw
from ibcheck.estimators.vib import vib

__all__ = ["vib", "teacher_elbo", "teacher_iw", "loo", "nce", "sandwich", "decoder", "empirical", "empirical_over_datasets"]

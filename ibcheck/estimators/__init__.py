"""Every estimator of bounds.md section 3, as batched tensor code on any device.

They see only the protocols of ``ibcheck.interface`` (an encoder returning mean
and std, a teacher sampling p(x|z_v), inference networks and data samplers),
so the same functions serve the linear-Gaussian harness and neural networks.
``registry`` lists them and runs them under one calling convention; ``limits`` says
what a run will cost before it starts, and ``samplers`` draws data for them.
"""
from ibcheck.estimators.q_fit import QFitParams, train_q
from ibcheck.estimators.registry import SPECS, Spec, default_params, get, names, run, run_one, run_together

__all__ = ["SPECS", "Spec", "default_params", "get", "names", "run", "run_one", "run_together", "QFitParams",
           "train_q"]

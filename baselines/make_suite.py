"""Writes baselines/suite.json, the built-in analytic suite of ``ibcheck validate``, and
baselines/shifted-prior-8-nats.json, one case beyond it (``shifted_eight``).

Run from the repository root: ``python baselines/make_suite.py``. The cases are
drawn from fixed seeds, so the file is reproducible; numbers are rounded to 4
decimals (the exact values are computed from the rounded numbers, so nothing is
lost). Each case exercises one thing a bound can get wrong; see "why" below.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Class sizes of the first 10,000 MNIST training images (bounds.md section 6).
MNIST_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def _r(a) -> list:
    return np.round(np.asarray(a, dtype=float), 4).tolist()


def _random_case(name: str, seed: int, d: int, k: int, m: int, noise: float, enc_scale: float,
                 std_range: tuple[float, float]) -> dict:
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(d, k)) / np.sqrt(k)
    A = rng.normal(size=(m, d)) * enc_scale / np.sqrt(d)
    return {
        "name": name,
        "teacher": {"W": _r(W), "c": _r(rng.normal(size=d) * 0.5), "noise_std": noise},
        "encoder": {"A": _r(A), "b": _r(rng.normal(size=m) * 0.3), "std": _r(rng.uniform(*std_range, size=m))},
    }


def _spd(rng: np.random.Generator, k: int, scale: float) -> list:
    G = rng.normal(size=(k, k)) * scale / np.sqrt(k)
    S = np.round(G @ G.T + 0.3 * np.eye(k), 4)
    return S.tolist()


def cases() -> list[dict]:
    out = []
    # why: every number checkable by hand. Sz = 2, D = 1: I(X;Z) = ln(2)/2; Sy = 2, Cov(y,z) = 1:
    # I(Y;Z) = ln(4/3)/2; vib = (2 - 1)/2 = 1/2; the best q (C = 1/2, Sq = 1/2) makes teacher_elbo exact.
    out.append({"name": "hand-1d", "teacher": {"W": [[1.0]], "c": [0.0], "noise_std": 0.0},
                "encoder": {"A": [[1.0]], "b": [0.0], "std": [1.0]},
                "labels": {"kind": "gaussian", "B": [[1.0]], "noise_std": 1.0}})
    # why: a deterministic decoder with the model prior as data prior: teacher_elbo at the best q equals I(X;Z).
    det = _random_case("deterministic-teacher", 11, d=6, k=3, m=4, noise=0.0, enc_scale=2.0, std_range=(0.3, 0.8))
    det["labels"] = {"kind": "gaussian", "B": _r(np.random.default_rng(12).normal(size=(2, 3))), "noise_std": 0.3}
    out.append(det)
    # why: the same student behind a noisy decoder: teacher_elbo keeps a gap; teacher_iw closes it as K grows.
    noisy = _random_case("noisy-teacher", 11, d=6, k=3, m=4, noise=0.5, enc_scale=2.0, std_range=(0.3, 0.8))
    noisy["settings"] = {"estimators": {"teacher_iw": {"K": [1, 10, 100, 1000], "n": 2000},
                                        "teacher_riw": {"K": [0, 10, 100, 1000], "n": 2000}}}
    out.append(noisy)
    # why: data prior != model prior N(0, I): every teacher bound loosens but stays valid.
    shifted = _random_case("shifted-data-prior", 21, d=6, k=3, m=4, noise=0.2, enc_scale=2.0, std_range=(0.3, 0.8))
    rng = np.random.default_rng(22)
    shifted["data_prior"] = {"mean": [1.0, -0.5, 0.3], "cov": _spd(rng, 3, 1.2)}
    out.append(shifted)
    # why: I(X;Z) > 8 nats, beyond ln N of every batch: nce saturates, loo and vib loosen.
    out.append({"name": "high-mi", "teacher": {"W": np.eye(4).tolist(), "c": [0.0] * 4, "noise_std": 0.0},
                "encoder": {"A": np.eye(4).tolist(), "b": [0.0] * 4, "std": [0.1] * 4}})
    # why: I(X;Z) = 15.07 nats from the teacher's model, a narrow posterior and small noise: nce is stuck
    # below ln N, loo is far above, and the bracket teacher_riw <= I <= teacher_iw must do the work; q has to
    # be trained to convergence (bounds.md section 3b).
    fifteen = _random_case("teacher-15-nats", 71, d=12, k=10, m=10, noise=0.05, enc_scale=2.0, std_range=(0.09, 0.27))
    fifteen["settings"] = {"estimators": {"teacher_iw": {"K": [1, 10, 100, 1000], "n": 2000},
                                          "teacher_riw": {"K": [0, 10, 100, 1000], "n": 2000}}}
    out.append(fifteen)
    # why: MNIST-shaped dimensions (d = 784, k = 20, m = 40) with ten class labels.
    mnist = _random_case("mnist-shaped", 31, d=784, k=20, m=40, noise=0.1, enc_scale=1.0, std_range=(0.3, 1.0))
    rng = np.random.default_rng(32)
    mnist["data_prior"] = {"mean": [0.0] * 20, "cov": (np.eye(20) * 0.5).tolist()}
    mnist["labels"] = {"kind": "classes", "means": _r(rng.normal(size=(10, 20)) * 0.5),
                       "probs": _r(np.array(MNIST_COUNTS) / 10000)}
    mnist["settings"] = {"estimators": {"teacher_iw": {"K": [1, 10, 100], "n": 2000},
                                        "teacher_riw": {"K": [0, 10, 100], "n": 1000}}}
    out.append(mnist)
    # why: ten classes in a small space: the numerically exact I(Y;Z) and the linear-softmax decoder.
    ten = _random_case("ten-classes", 41, d=8, k=4, m=3, noise=0.3, enc_scale=2.0, std_range=(0.4, 0.8))
    rng = np.random.default_rng(42)
    ten["data_prior"] = {"mean": [0.0] * 4, "cov": (np.eye(4) * 0.3).tolist()}
    ten["labels"] = {"kind": "classes", "means": _r(rng.normal(size=(10, 4)) * 1.2),
                     "probs": _r(np.array(MNIST_COUNTS) / 10000)}
    out.append(ten)
    # why: zero information about the labels: every class has the same z_v distribution, I(Y;Z) = 0.
    indep = _random_case("labels-independent", 51, d=5, k=3, m=3, noise=0.2, enc_scale=2.0, std_range=(0.4, 0.8))
    indep["labels"] = {"kind": "classes", "means": [[0.0, 0.0, 0.0]] * 10, "probs": [0.1] * 10}
    out.append(indep)
    # why: an encoder that ignores x (A = 0): I(X;Z) = 0 and I(Y;Z) = 0; estimates are not clipped at 0.
    blind = _random_case("encoder-ignores-x", 61, d=5, k=3, m=3, noise=0.2, enc_scale=2.0, std_range=(0.4, 0.8))
    blind["encoder"]["A"] = np.zeros((3, 5)).tolist()
    blind["labels"] = {"kind": "gaussian", "B": _r(np.random.default_rng(62).normal(size=(2, 3))), "noise_std": 0.5}
    out.append(blind)
    return out


def shifted_eight() -> dict:
    """A case beyond the suite, for issue 21's number to reach: I(X;Z) = 8.61 with a shifted, correlated
    data prior. Its encoder reads x's noise too (d = 8 > k = 4, std 0.1-0.3), so the paper's model-prior
    teacher_iw stays 2.5 nats above at K = 100; the data-prior one and the annealed pair close it."""
    case = _random_case("shifted-prior-8-nats", 71, d=8, k=4, m=6, noise=0.1, enc_scale=2.5, std_range=(0.1, 0.3))
    case["data_prior"] = {"mean": [1.0, -0.5, 0.3, 0.8], "cov": _spd(np.random.default_rng(72), 4, 1.2)}
    return case


def main() -> None:
    for name, found in (("suite.json", cases()), ("shifted-prior-8-nats.json", [shifted_eight()])):
        path = Path(__file__).with_name(name)
        path.write_text(json.dumps({"cases": found}, separators=(",", ":")) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

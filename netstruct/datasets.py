"""Datasets for training and evaluating small models, with no downloads.

* scikit-learn's bundled sets: :func:`load_digits` (the embedded default), :func:`load_breast_cancer`,
  :func:`load_wine`, :func:`load_iris`;
* Fashion-MNIST and MNIST from IDX files (:func:`load_fashion_mnist`, :func:`load_mnist`,
  :func:`read_idx`): Fashion-MNIST is found where Debian's ``dataset-fashion-mnist`` puts it;
* helpers: :func:`class_pair` (two-class subsets, labels re-indexed in the given order),
  :func:`as_sequences` (row-by-row sequences for recurrent models) and :meth:`Dataset.split`.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import DatasetNotFoundError, FileFormatError, InvalidParameterError, param_error
from .utils.random import check_random_state

__all__ = [
    "Dataset",
    "load_digits",
    "load_breast_cancer",
    "load_wine",
    "load_iris",
    "load_fashion_mnist",
    "load_mnist",
    "load_dataset",
    "read_idx",
    "class_pair",
    "as_sequences",
    "FASHION_MNIST_DIRS",
    "FASHION_MNIST_CLASSES",
]

#: Where Fashion-MNIST IDX files are looked for, in order (Debian's package first).
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist", "/usr/share/dataset-fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class Dataset:
    """Features and labels with a fixed train/test split.

    Attributes
    ----------
    name : str
    X_train, X_test : ndarray of float32, shape (n, n_features) or (n, rows, cols)
    y_train, y_test : ndarray of int64
    classes : tuple of str
        Class names, indexed by label.
    image_shape : tuple of int or None
        ``(rows, cols)`` when the features are images.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    image_shape: tuple[int, int] | None = None
    notes: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Number of input features of one sample (flattened)."""
        return int(np.prod(self.X_train.shape[1:]))

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}: {len(self.y_train)} train / {len(self.y_test)} test, "
            f"{self.n_features} features, {self.n_classes} classes)"
        )

    def subsample(
        self, n_train: int | None = None, n_test: int | None = None, *, seed: object = 0
    ) -> Dataset:
        """A stratification-free random subsample (for quick runs)."""
        rng = check_random_state(seed, func="Dataset.subsample")

        def pick(X, y, n):
            if n is None or n >= len(y):
                return X, y
            idx = np.sort(rng.choice(len(y), size=n, replace=False))
            return X[idx], y[idx]

        Xtr, ytr = pick(self.X_train, self.y_train, n_train)
        Xte, yte = pick(self.X_test, self.y_test, n_test)
        return replace(self, X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte)


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: object) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    rng = check_random_state(seed, func="load_dataset")
    return train_test_split(
        X, y, test_size=test_size, random_state=int(rng.integers(2**31 - 1)), stratify=y
    )


def _standardize(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = X_train.mean(axis=0)
    sd = X_train.std(axis=0)
    sd[sd == 0] = 1.0
    return ((X_train - mu) / sd).astype(np.float32), ((X_test - mu) / sd).astype(np.float32)


def _sklearn(name: str, loader, test_size: float, seed: object, scale: str) -> Dataset:
    bunch = loader()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    Xtr, Xte, ytr, yte = _split(X, y, test_size, seed)
    if scale == "standard":
        Xtr, Xte = _standardize(Xtr, Xte)
    elif scale == "unit":  # digits: 0..16 -> [-1, 1], as the MNIST protocol
        Xtr, Xte = (Xtr / 8.0 - 1.0).astype(np.float32), (Xte / 8.0 - 1.0).astype(np.float32)
    else:
        Xtr, Xte = Xtr.astype(np.float32), Xte.astype(np.float32)
    classes = tuple(str(c) for c in getattr(bunch, "target_names", np.unique(y)))
    shape = (8, 8) if name == "digits" else None
    return Dataset(name, Xtr, ytr, Xte, yte, classes, shape)


def _check_common(test_size: float, scale: str, func: str, scales: tuple[str, ...]) -> None:
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise param_error("test_size", func, "a float in (0, 1)", test_size)
    if scale not in scales:
        raise param_error("scale", func, f"one of {list(scales)}", scale)


def load_digits(*, test_size: float = 0.25, seed: object = 0, scale: str = "unit") -> Dataset:
    """scikit-learn's bundled 8x8 digits (1 797 images, 10 classes): the embedded default.

    ``scale="unit"`` maps pixels 0..16 to [-1, 1] (as the MNIST protocols do), ``"standard"``
    standardises features on the training split, ``"none"`` keeps raw values.

    Examples
    --------
    >>> ds = load_digits()
    >>> ds.X_train.shape, ds.n_classes
    ((1347, 64), 10)
    """
    from sklearn import datasets

    _check_common(test_size, scale, "load_digits", ("unit", "standard", "none"))
    return _sklearn("digits", datasets.load_digits, test_size, seed, scale)


def load_breast_cancer(
    *, test_size: float = 0.25, seed: object = 0, scale: str = "standard"
) -> Dataset:
    """scikit-learn's bundled breast-cancer set (569 samples, 30 features, 2 classes), standardised."""
    from sklearn import datasets

    _check_common(test_size, scale, "load_breast_cancer", ("standard", "none"))
    return _sklearn("breast_cancer", datasets.load_breast_cancer, test_size, seed, scale)


def load_wine(*, test_size: float = 0.25, seed: object = 0, scale: str = "standard") -> Dataset:
    """scikit-learn's bundled wine set (178 samples, 13 features, 3 classes), standardised."""
    from sklearn import datasets

    _check_common(test_size, scale, "load_wine", ("standard", "none"))
    return _sklearn("wine", datasets.load_wine, test_size, seed, scale)


def load_iris(*, test_size: float = 0.25, seed: object = 0, scale: str = "standard") -> Dataset:
    """scikit-learn's bundled iris set (150 samples, 4 features, 3 classes), standardised."""
    from sklearn import datasets

    _check_common(test_size, scale, "load_iris", ("standard", "none"))
    return _sklearn("iris", datasets.load_iris, test_size, seed, scale)


# ---------------------------------------------------------------------------- IDX files
_IDX_TYPES: dict[int, Any] = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed), the format of MNIST and Fashion-MNIST.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    FileFormatError
        Bad magic number or a size that does not match the header (truncated file).
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(f"read_idx: no file at {str(p)!r}.")
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise FileFormatError(f"{str(p)!r} could not be read as an IDX file ({exc}).") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise FileFormatError(f"{str(p)!r} is not an IDX file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise FileFormatError(
            f"{str(p)!r} holds {len(data) - header} bytes of data but its header announces {dims} "
            f"({expected} bytes); the file is truncated or damaged."
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(dims)
        .astype(dtype.newbyteorder("="))
    )


def _find(folder: Path, stem: str) -> Path | None:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_set(
    name: str, folders: list[Path], how_to: str, scale: str, classes: tuple[str, ...]
) -> Dataset:
    stems = {
        "X_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "X_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    for folder in folders:
        found = {k: _find(folder, s) for k, s in stems.items()}
        if all(found.values()):
            arrays = {k: read_idx(v) for k, v in found.items() if v is not None}
            break
    else:
        looked = ", ".join(repr(str(f)) for f in folders)
        raise DatasetNotFoundError(
            f"{name}: IDX files ({', '.join(stems.values())}, optionally .gz) not found in {looked}. {how_to}"
        )
    X = {k: arrays[k].astype(np.float32) / 255.0 for k in ("X_train", "X_test")}
    if scale == "unit":
        X = {k: v * 2.0 - 1.0 for k, v in X.items()}
    for k in ("train", "test"):
        if len(arrays[f"y_{k}"]) != len(X[f"X_{k}"]):
            raise FileFormatError(f"{name}: {k} images and labels differ in count.")
    return Dataset(
        name,
        X["X_train"],
        arrays["y_train"].astype(np.int64),
        X["X_test"],
        arrays["y_test"].astype(np.int64),
        classes,
        tuple(X["X_train"].shape[1:]),
    )


def load_fashion_mnist(path: str | os.PathLike | None = None, *, scale: str = "unit") -> Dataset:
    """Fashion-MNIST (60 000 + 10 000 images, 28x28, 10 classes) from IDX files.

    Parameters
    ----------
    path : str or path-like, optional
        Folder with the four IDX files. By default the folders of Debian's
        ``dataset-fashion-mnist`` package (:data:`FASHION_MNIST_DIRS`) are searched.
    scale : {"unit", "01"}, default="unit"
        ``"unit"`` maps pixels to [-1, 1] (the task-complexity protocol), ``"01"`` to [0, 1].
    """
    if scale not in ("unit", "01"):
        raise param_error("scale", "load_fashion_mnist", "one of ['unit', '01']", scale)
    folders = [Path(path)] if path is not None else [Path(d) for d in FASHION_MNIST_DIRS]
    how = (
        "Install them with `apt-get install -y dataset-fashion-mnist` (Debian) or pass path= to a folder "
        "holding the files."
    )
    return _load_idx_set("fashion-mnist", folders, how, scale, FASHION_MNIST_CLASSES)


def load_mnist(path: str | os.PathLike, *, scale: str = "unit") -> Dataset:
    """MNIST from the four IDX files in folder ``path`` (netstruct never downloads)."""
    if path is None:
        raise param_error("path", "load_mnist", "a folder holding MNIST's IDX files", path)
    if scale not in ("unit", "01"):
        raise param_error("scale", "load_mnist", "one of ['unit', '01']", scale)
    how = "Copy MNIST's IDX files there (netstruct does not download data)."
    return _load_idx_set("mnist", [Path(path)], how, scale, tuple(str(i) for i in range(10)))


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "iris": load_iris,
    "fashion-mnist": load_fashion_mnist,
}


def load_dataset(name: str, **kwargs: object) -> Dataset:
    """Load a dataset by name: ``digits``, ``breast_cancer``, ``wine``, ``iris``, ``fashion-mnist``."""
    if name not in _LOADERS:
        raise param_error("name", "load_dataset", f"one of {sorted(_LOADERS)}", name)
    return _LOADERS[name](**kwargs)


def class_pair(ds: Dataset, a: int, b: int) -> Dataset:
    """Two-class subset with labels re-indexed in the given order (``a`` -> 0, ``b`` -> 1).

    Examples
    --------
    >>> pair = class_pair(load_digits(), 7, 9)
    >>> sorted(set(pair.y_train.tolist())), pair.classes
    ([0, 1], ('7', '9'))
    """
    for name, v in (("a", a), ("b", b)):
        if not isinstance(v, (int, np.integer)) or not 0 <= v < ds.n_classes:
            raise param_error(name, "class_pair", f"a class label in 0..{ds.n_classes - 1}", v)
    if a == b:
        raise InvalidParameterError(f"class_pair needs two different classes; got a = b = {a}.")

    def sub(X, y):
        keep = (y == a) | (y == b)
        return X[keep], np.where(y[keep] == a, 0, 1).astype(np.int64)

    Xtr, ytr = sub(ds.X_train, ds.y_train)
    Xte, yte = sub(ds.X_test, ds.y_test)
    return replace(
        ds,
        name=f"{ds.name}[{a}v{b}]",
        X_train=Xtr,
        y_train=ytr,
        X_test=Xte,
        y_test=yte,
        classes=(ds.classes[a], ds.classes[b]),
    )


def as_sequences(X: np.ndarray, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Images as row-by-row sequences ``(n, rows, cols)`` for recurrent models (batch first).

    Examples
    --------
    >>> ds = load_digits()
    >>> as_sequences(ds.X_train, ds.image_shape).shape
    (1347, 8, 8)
    """
    X = np.asarray(X)
    if X.ndim == 3:
        return X
    if image_shape is None:
        side = int(round(np.sqrt(X.shape[1])))
        if side * side != X.shape[1]:
            raise param_error(
                "image_shape",
                "as_sequences",
                "given when features are not a square image",
                image_shape,
            )
        image_shape = (side, side)
    if X.ndim != 2 or X.shape[1] != image_shape[0] * image_shape[1]:
        raise InvalidParameterError(
            f"as_sequences: X has shape {X.shape}, which does not hold images of shape {image_shape}."
        )
    return X.reshape(len(X), *image_shape)

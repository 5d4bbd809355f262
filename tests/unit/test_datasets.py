"""Datasets: bundled sets, IDX reading (generated files), Fashion-MNIST lookup, helpers."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import netstruct as ns
from netstruct import datasets


def _write_idx(path, arr, gz=False):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = head + arr.tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize(
    "name,shape,n_classes",
    [("digits", 64, 10), ("breast_cancer", 30, 2), ("wine", 13, 3), ("iris", 4, 3)],
)
def test_bundled_sets(name, shape, n_classes):
    ds = datasets.load_dataset(name)
    assert ds.n_features == shape and ds.n_classes == n_classes
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert np.isfinite(ds.X_train).all()


def test_digits_scaled_to_unit_interval_and_reproducible():
    a, b = datasets.load_digits(seed=3), datasets.load_digits(seed=3)
    assert a.X_train.min() == -1.0 and a.X_train.max() == 1.0
    np.testing.assert_array_equal(a.X_train, b.X_train)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip_and_mnist_loader(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(6, 4, 4))
    labels = np.array([0, 1, 2, 0, 1, 2])
    sfx = ".gz" if gz else ""
    for split, n in (("train", 4), ("t10k", 2)):
        _write_idx(
            tmp_path / f"{split}-images-idx3-ubyte{sfx}",
            imgs[:n] if split == "train" else imgs[4:],
            gz,
        )
        _write_idx(
            tmp_path / f"{split}-labels-idx1-ubyte{sfx}",
            labels[:n] if split == "train" else labels[4:],
            gz,
        )
    np.testing.assert_array_equal(
        datasets.read_idx(tmp_path / f"train-images-idx3-ubyte{sfx}"), imgs[:4]
    )
    ds = datasets.load_mnist(tmp_path)
    assert ds.X_train.shape == (4, 4, 4) and ds.X_test.shape == (2, 4, 4)
    assert ds.X_train.min() >= -1 and ds.X_train.max() <= 1
    fm = datasets.load_fashion_mnist(tmp_path, scale="01")
    assert fm.classes[3] == "Dress"


def test_truncated_idx_and_missing_files(tmp_path):
    _write_idx(tmp_path / "x", np.zeros((3, 2, 2)))
    (tmp_path / "y").write_bytes((tmp_path / "x").read_bytes()[:-3])
    with pytest.raises(ns.FileFormatError, match="truncated"):
        datasets.read_idx(tmp_path / "y")
    with pytest.raises(ns.DatasetNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        datasets.load_fashion_mnist(tmp_path)
    with pytest.raises(ns.DatasetNotFoundError, match="does not download"):
        datasets.load_mnist(tmp_path)


def test_class_pair_and_sequences():
    ds = datasets.load_digits()
    pair = datasets.class_pair(ds, 9, 7)
    assert pair.classes == ("9", "7")
    assert set(np.unique(pair.y_test)) == {0, 1}
    assert len(pair.y_train) == int(((ds.y_train == 9) | (ds.y_train == 7)).sum())
    seq = datasets.as_sequences(pair.X_train, ds.image_shape)
    assert seq.shape[1:] == (8, 8)
    with pytest.raises(ns.InvalidParameterError, match="'b'"):
        datasets.class_pair(ds, 1, 10)


def test_unknown_dataset_name():
    with pytest.raises(ns.InvalidParameterError, match="'name' parameter of load_dataset"):
        datasets.load_dataset("cifar")


@pytest.mark.skipif(
    not (datasets.Path(datasets.FASHION_MNIST_DIRS[0]) / "t10k-labels-idx1-ubyte.gz").exists(),
    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)",
)
def test_fashion_mnist_from_debian_package():
    ds = datasets.load_fashion_mnist()
    assert ds.X_train.shape == (60000, 28, 28) and ds.X_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_test).tolist() == [1000] * 10

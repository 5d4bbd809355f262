"""ODF2NNA headline protocol: ε chosen on a validation split, never on the test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct import datasets, training  # noqa: E402
from netstruct.pruning import choose_eps, odf2nna_protocol, select_eps  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def setup():
    ds = datasets.load_iris()
    Xf, yf, Xv, yv = ds.X_train[:90], ds.y_train[:90], ds.X_train[90:], ds.y_train[90:]
    m = training.mlp([4, 16, 16, 3], seed=0)
    training.train(m, Xf, yf, epochs=5, progress=False)
    return m, Xf, yf, Xv, yv, ds.X_test, ds.y_test


def test_choose_eps_takes_the_largest_reduction_within_tolerance():
    t = pd.DataFrame(
        {
            "eps": [0.0, 0.5, 1.0, 1.1, 1.2],
            "reduction": [0.1, 0.5, 0.8, 0.8, 0.9],
            "acc_val_general": 0.95,
            "acc_val_refined": [0.96, 0.95, 0.941, 0.945, 0.90],
        }
    )
    assert choose_eps(t, 0.01) == (1.0, True)  # 1.0 and 1.1 tie on reduction: the smaller eps
    assert choose_eps(t, 0.0) == (0.5, True)
    assert choose_eps(t, 0.06) == (1.2, True)
    bad = t.assign(acc_val_refined=[0.5, 0.6, 0.7, 0.7, 0.4])
    assert choose_eps(bad, 0.01) == (1.0, False)
    with pytest.raises(ns.InvalidParameterError, match="tolerance"):
        choose_eps(t, -0.1)


def test_eps_is_chosen_without_the_test_split(setup):
    m, Xf, yf, Xv, yv, Xte, yte = setup
    grid = [0.0, 0.5, 0.8, 1.0, 1.2]
    ch, row = odf2nna_protocol(m, Xf, yf, Xv, yv, Xte, yte, grid, tolerance=0.05, general_epochs=5)
    # scrambled test labels and features: same choice, same validation table
    rng = np.random.default_rng(1)
    ch2, row2 = odf2nna_protocol(
        m,
        Xf,
        yf,
        Xv,
        yv,
        rng.normal(size=Xte.shape),
        rng.permutation(yte),
        grid,
        tolerance=0.05,
        general_epochs=5,
    )
    assert ch2.eps == ch.eps and row2["eps"] == row["eps"]
    pd.testing.assert_frame_equal(ch2.validation, ch.validation)
    assert not any("test" in c for c in ch.validation.columns)
    # the rule applied to the validation table alone gives the reported eps
    assert choose_eps(ch.validation, 0.05) == (ch.eps, ch.within_tolerance)
    # the control is present: the refined architecture trained from scratch, and the gain over it
    for key in (
        "acc_refined",
        "acc_scratch_full",
        "acc_scratch_light",
        "transfer_gain",
        "reduction",
    ):
        assert key in row
    assert row["transfer_gain"] == pytest.approx(row["acc_refined"] - row["acc_scratch_full"])


def test_select_eps_depends_on_the_validation_split(setup):
    m, Xf, yf, Xv, yv, _, _ = setup
    a = select_eps(m, Xf, yf, Xv, yv, [0.0, 1.0], tolerance=1.0, general_epochs=5)
    assert (
        a.eps
        == a.validation.sort_values(["reduction", "eps"], ascending=[False, True])["eps"].iloc[0]
    )
    with pytest.raises(ns.InvalidParameterError, match="X_val"):
        select_eps(m, Xf, yf, None, None, [0.0], general_epochs=5)

"""Internals of the fast causal paths: shared-effect Granger lanes, chi-square closed forms, sort."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from netstruct.backends.numba import causal as K
from netstruct.causal import granger
from netstruct.causal.granger import _chi2_sf


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 14, 15, 64, 65])
def test_chi2_closed_forms_equal_chdtrc(df):
    rng = np.random.default_rng(df)
    x = np.r_[
        0.0,
        5e-324,
        1e-300,
        1e-12,
        0.5,
        rng.exponential(df, 2000),
        rng.uniform(0, 600, 2000),
        600.0,
        600.5,
        1e4,
        np.inf,
        np.nan,
        -1e-15,
        -2.0,
    ]
    ours, ref = _chi2_sf(df, x), special.chdtrc(df, x)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)


def _per_series(effect_row, cause, lags):
    """The full per-series QR (one effect row per cause) for the same pairs."""
    n, T = cause.shape
    outs = [np.empty((n, lags.size)) for _ in range(3)] + [np.empty((n, lags.size), np.int8)]
    K._granger_per_series(np.repeat(effect_row[None], n, 0), cause, lags, 1e-7, *outs)
    return outs


@pytest.mark.parametrize("T", [20, 57, 120])
def test_shared_effect_lanes_equal_per_series_qr(T):
    """Shared-effect path (restricted fit once, 64-cause batches) == full QR per series."""
    rng = np.random.default_rng(T)
    n = 150  # several batches, the last one partial
    y = rng.standard_normal(T)
    cause = rng.standard_normal((n, T))
    cause[3] = 0.0  # constant_cause
    cause[4, 7] = np.nan  # nonfinite
    cause[5] = 2.0 * y + 1.0  # singular
    cause[6, 4:] = 1.0  # constant only at the larger lags
    cause[7] = np.tile([0.3, 0.7], T // 2 + 1)[:T]  # collinear with the intercept at lag >= 2
    lags = np.arange(1, (T - 2) // 3 + 1, dtype=np.int64)
    outs = [np.empty((n, lags.size)) for _ in range(3)] + [np.empty((n, lags.size), np.int8)]
    K.granger(y[None], cause, lags, 1e-7, *outs)
    ref = _per_series(y, cause, lags)
    np.testing.assert_array_equal(outs[3], ref[3])
    ok = ref[3] == 0
    for a, b in zip(outs[:3], ref[:3]):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-11, atol=1e-12 * np.abs(b[ok]).max())


def test_shared_effect_degenerate_effect_rows():
    rng = np.random.default_rng(0)
    cause = rng.standard_normal((5, 40))
    for y, code in ((np.full(40, 3.0), 2), (np.r_[np.nan, rng.standard_normal(39)], 3)):
        res = granger(cause, y, lags=3, errors="ignore")
        assert (res.status == code).all()


@pytest.mark.parametrize("kind", ["random", "ties", "constant", "outside"])
def test_bucket_argsort_sorts(kind):
    rng = np.random.default_rng(1)
    n = 97
    keys = {
        "random": rng.random(n + 5),
        "ties": np.round(rng.random(n + 5), 1),
        "constant": np.zeros(n + 5),
        "outside": rng.standard_normal(n + 5) * 3,
    }[kind]
    order = np.empty(n, dtype=np.int64)
    count = np.empty(n + 1, dtype=np.int64)
    K._bucket_argsort(keys, order, count)
    assert sorted(order.tolist()) == list(range(n))
    assert (np.diff(keys[order]) >= 0).all()

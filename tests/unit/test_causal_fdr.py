"""netstruct.causal.fdr_control is scipy's Benjamini–Hochberg/Yekutieli with NaN handling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from netstruct import InvalidParameterError
from netstruct.causal import fdr_control


@pytest.mark.parametrize("method", ["bh", "by"])
def test_equals_scipy_false_discovery_control(seed, method):
    p = np.random.default_rng(seed).uniform(size=200) ** 3
    reject, q = fdr_control(p, 0.1, method=method)
    expected = stats.false_discovery_control(p, method=method)
    np.testing.assert_array_equal(q, expected)
    np.testing.assert_array_equal(reject, expected <= 0.1)


def test_nan_entries_are_left_out_and_never_rejected():
    p = np.array([[0.001, np.nan], [0.04, 0.9]])
    reject, q = fdr_control(p)
    np.testing.assert_array_equal(
        q[~np.isnan(p)], stats.false_discovery_control([0.001, 0.04, 0.9])
    )
    assert np.isnan(q[0, 1]) and not reject[0, 1]
    assert reject.shape == p.shape


def test_all_nan_gives_no_rejection():
    reject, q = fdr_control([np.nan, np.nan])
    assert not reject.any() and np.isnan(q).all()


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([0.5, 1.2],), {}, "'pvalues' parameter"),
        (([0.5, -np.inf],), {}, "'pvalues' parameter"),
        (([0.5],), {"q": 0.0}, "'q' parameter"),
        (([0.5],), {"method": "holm"}, "'method' parameter"),
    ],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        fdr_control(*args, **kwargs)

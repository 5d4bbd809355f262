"""``check_finite``: the fast reduction proves finiteness exactly (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstruct.exceptions import GraphError
from netstruct.utils.validation import check_finite

DTYPES = (np.float16, np.float32, np.float64)


def _accepts(a: np.ndarray) -> bool:
    try:
        check_finite(a, "a")
    except GraphError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    scale=st.sampled_from([1.0, 1e4, 1e19, 1e30, 1e300]),
    bad=st.sampled_from([None, np.nan, np.inf, -np.inf]),
    where=st.integers(0, 80),
    view=st.sampled_from(["c", "f", "strided"]),
    seed=st.integers(0, 2**16),
)
def test_check_finite_matches_isfinite(dtype, shape, scale, bad, where, view, seed):
    """Accepts exactly the arrays whose entries are all finite, whatever the dtype, memory order
    or magnitude (sums of squares of large finite values overflow and must not be refused)."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        a = (rng.standard_normal(shape) * scale).astype(dtype)
    if bad is not None:
        a.reshape(-1)[where % a.size] = bad
    if view == "f":
        a = np.asfortranarray(a)
    elif view == "strided":
        a = a[:, ::2]
    assert _accepts(a) == bool(np.isfinite(a).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_check_finite_error_names_the_first_bad_index(dtype):
    a = np.zeros((3, 4), dtype=dtype)
    a[1, 2] = np.nan
    with pytest.raises(GraphError, match=r"1 non-finite value\(s\) \(first at index \(1, 2\)"):
        check_finite(a, "w")

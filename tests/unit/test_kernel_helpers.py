"""Small numba helpers that replace numpy calls costly to compile (issue 14: first-call time)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from netstruct.backends.numba import lattice as L


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 130), max_size=80))
def test_stable_order_equals_a_stable_argsort(values):
    sizes = np.array(values, dtype=np.int64)
    assert np.array_equal(L._stable_order(sizes, 130), np.argsort(sizes, kind="stable"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40), max_size=80), st.integers(0, 80))
def test_heapsort_sorts_the_prefix_only(values, n):
    a = np.array(values + [7, 3], dtype=np.int64)
    n = min(n, a.size)
    want = np.concatenate([np.sort(a[:n]), a[n:]])
    L._heapsort(a, n)
    assert np.array_equal(a, want)

"""The direct-proposal swap chain of model G (issue 16): exact transition law and invariants.

The kernel builds checkerboards directly and corrects with a Metropolis–Hastings test; the
oracle ``direct_swap_transitions`` computes the one-step law exactly (fractions) from the same
definition, written with lists and sets. Detailed balance with the uniform law, on every
reachable pattern of small (pruned) layers, is what makes the chain uniform.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from netstruct.algorithms import _randomize_models as _m
from netstruct.backends.numba.randomize import signed_swap
from tests.oracles.naive_randomize import (
    direct_swap_transitions,
    invariants,
    pattern_key,
    reachable_patterns,
)


def _pattern(key: tuple, support: np.ndarray) -> np.ndarray:
    S = np.where(support, -1, 0)
    for j, i in key:
        S[j, i] = 1
    return S


@st.composite
def small_layers(draw) -> np.ndarray:
    n_out = draw(st.integers(2, 4))
    n_in = draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    support = rng.random((n_out, n_in)) < draw(st.sampled_from([1.0, 0.8, 0.6]))
    sign = np.where(rng.random((n_out, n_in)) < 0.5, 1, -1)
    return (sign * support).astype(np.int64)


@settings(max_examples=30, deadline=None)
@given(S0=small_layers())
def test_direct_chain_is_reversible_for_the_uniform_law_on_reachable_patterns(S0):
    support = S0 != 0
    reach = reachable_patterns(S0)
    law = {k: direct_swap_transitions(_pattern(k, support)) for k in reach}
    for x, row in law.items():
        assert sum(row.values()) == 1
        assert set(row) <= reach
        for y, p in row.items():
            assert law[y].get(x, 0) == p, "P(x -> y) != P(y -> x)"
    # the chain moves along the same checkerboards as the uniform-pair chain (same reach)
    seen, frontier = {pattern_key(S0)}, [pattern_key(S0)]
    while frontier:
        nxt = [y for x in frontier for y, p in law[x].items() if p > 0 and y not in seen]
        seen.update(nxt)
        frontier = list(set(nxt))
    assert seen == reach


@pytest.mark.parametrize(
    "W",
    [
        np.array([[1, -2, 3, -4], [-5, 6, 0, 7], [8, -9, -10, 0]]) / 10,
        np.array([[1, 2, -3], [-4, -5, 6], [7, -8, 9]]) / 10,
    ],
    ids=["pruned 3x4", "dense 3x3"],
)
def test_kernel_one_step_matches_the_exact_transition_law(W, seed):
    W = W.astype(np.float32)
    law = direct_swap_transitions(W)
    n = 6000
    seeds = np.random.default_rng(seed).integers(0, 2**63, size=n, dtype=np.uint64)
    out, acc = signed_swap(W, np.int64(1), seeds, False)
    counts = Counter(pattern_key(w) for w in out)
    assert set(counts) <= set(law)
    keys = sorted(law)
    expected = np.array([float(law[k]) for k in keys]) * n
    observed = np.array([counts[k] for k in keys])
    assert stats.chisquare(observed, expected).pvalue > 1e-4
    assert acc.sum() == n - counts[pattern_key(W)]


@settings(max_examples=40, deadline=None)
@given(S0=small_layers(), seed=st.integers(0, 2**63), n_steps=st.integers(0, 300),
       reshuffle=st.booleans())  # fmt: skip
def test_kernel_keeps_support_signed_degrees_and_column_multisets(S0, seed, n_steps, reshuffle):
    mags = np.arange(1, S0.size + 1).reshape(S0.shape) / 8.0
    W = (S0 * mags).astype(np.float32)
    out, acc = signed_swap(
        W, np.int64(n_steps), np.array([seed, seed + 1], dtype=np.uint64), reshuffle
    )
    ref = invariants(W)
    keep = _m.NULL_MODELS["G-shuffle" if reshuffle else "G-left"].preserves
    for w in out:
        got = invariants(w)
        assert all(got[name] == ref[name] for name in keep)
    assert (acc <= n_steps).all()


def test_default_length_scales_with_the_positive_edges_and_the_proposal_rate():
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((64, 96)) * (rng.random((64, 96)) < 0.5)).astype(np.float32)
    spec = _m.NULL_MODELS["G-left"]
    q = _m.direct_proposal_rate(W, spec)
    n_pos, n_neg = int((W > 0).sum()), int((W < 0).sum())
    assert q == pytest.approx(1 - np.exp(-n_pos * n_neg / (64**2 * 96)))
    assert _m.default_n_steps(W, spec) == int(np.ceil(5 * n_pos / q))
    right = _m.NULL_MODELS["G-right"]
    assert _m.direct_proposal_rate(W, right) == pytest.approx(
        1 - np.exp(-n_pos * n_neg / (96**2 * 64))
    )


@pytest.mark.parametrize("model", ["A", "C", "G-left", "G-shuffle", "curveball"])
def test_serial_and_parallel_drivers_give_the_same_samples(model, seed):
    import numba

    import netstruct as ns

    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((7, 9)) * (rng.random((7, 9)) < 0.8)).astype(np.float32)
    block = ns.make_block(name="fc", weight=W, sources=range(9), targets=range(9, 16))
    G = ns.SignedGraph({"name": [str(i) for i in range(16)]}, [block])
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # the serial driver
        a = ns.randomize_ensemble(G, model, 4, seed=seed).weights["fc"]
        numba.set_num_threads(max(before, 2) if numba.config.NUMBA_NUM_THREADS > 1 else 1)
        b = ns.randomize_ensemble(G, model, 4, seed=seed).weights["fc"]
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a, b)

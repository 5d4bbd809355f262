"""Property tests: each null model preserves exactly what it claims (spec §8 E5).

Hypothesis draws random signed layers, dense and pruned (including exact zeros inside the
mask); every model must keep every invariant in ``NULL_MODELS[model].preserves`` on every
sample, never move a zero or touch masks and biases, and be reproducible from its seed. The
negative statements of E5 (what a model does *not* keep) are checked on a fixed 5x8 layer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns
from netstruct.algorithms.randomize import INVARIANTS, NULL_MODELS
from tests.oracles.naive_randomize import invariants, naive_randomize

MODELS = sorted(NULL_MODELS)


@st.composite
def signed_layers(draw) -> tuple[np.ndarray, np.ndarray]:
    """(weight, mask): a random signed layer, dense or pruned, with distinct non-zero values."""
    n_out = draw(st.integers(1, 6))
    n_in = draw(st.integers(1, 7))
    density = draw(st.sampled_from([1.0, 0.7, 0.4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    positive_share = draw(st.sampled_from([0.5, 0.2, 0.9]))
    mags = rng.permutation(np.arange(1, n_out * n_in + 1)).reshape(n_out, n_in) / 8.0
    W = np.where(rng.random((n_out, n_in)) < positive_share, mags, -mags).astype(np.float32)
    mask = rng.random((n_out, n_in)) < density
    if draw(st.booleans()) and mask.any():  # an exact zero inside the mask
        j, i = np.argwhere(mask)[0]
        W[j, i] = 0.0
    return W, mask


def as_graph(W: np.ndarray, mask: np.ndarray) -> ns.SignedGraph:
    n_out, n_in = W.shape
    block = ns.make_block(
        name="fc",
        weight=W,
        mask=mask,
        sources=np.arange(n_in),
        targets=np.arange(n_in, n_in + n_out),
        bias=np.arange(n_out, dtype=np.float32) - 1.5,
    )
    return ns.SignedGraph({"name": [f"v{i}" for i in range(n_in + n_out)]}, [block])


@pytest.mark.filterwarnings("ignore::netstruct.algorithms.randomize.LayerTooSmallWarning")
@settings(max_examples=40, deadline=None)
@given(layer=signed_layers(), seed=st.integers(0, 2**63), model=st.sampled_from(MODELS))
def test_every_sample_keeps_exactly_the_claimed_invariants(layer, seed, model):
    W, mask = layer
    G = as_graph(W, mask)
    W0 = G.blocks[0].weight
    ref = invariants(W0)
    ens = ns.randomize_ensemble(G, model, 6, seed=seed, n_steps=None)
    for k, H in enumerate(ens):
        b = H.blocks[0]
        assert np.array_equal(b.mask, G.blocks[0].mask) and np.array_equal(b.bias, G.blocks[0].bias)
        assert (b.weight[W0 == 0] == 0).all(), "a zero moved"
        assert np.count_nonzero(b.weight) == np.count_nonzero(W0), "edge count changed"
        got = invariants(b.weight)
        for name in NULL_MODELS[model].preserves:
            assert got[name] == ref[name], (model, name, k)
    again = ns.randomize_ensemble(G, model, 6, seed=seed)
    for name in ens.weights:
        assert np.array_equal(ens.weights[name], again.weights[name])


@settings(max_examples=25, deadline=None)
@given(layer=signed_layers(), seed=st.integers(0, 2**32), model=st.sampled_from(MODELS))
def test_the_naive_oracle_keeps_the_same_invariants(layer, seed, model):
    import random

    W, mask = layer
    W = np.where(mask, W, 0).astype(np.float32)
    ref = invariants(W)
    out = naive_randomize(W, model, random.Random(seed), n_steps=50)
    got = invariants(out)
    for name in NULL_MODELS[model].preserves:
        assert got[name] == ref[name], (model, name)


# ----------------------------------------------------------------------------- E5 negatives
@pytest.fixture(scope="module")
def e5_layer() -> ns.SignedGraph:
    rng = np.random.default_rng(20250807)
    W = rng.standard_normal((5, 8)).astype(np.float32)
    mask = rng.random((5, 8)) >= 0.2
    return as_graph(W, mask)


@pytest.mark.parametrize("model", MODELS)
def test_what_a_model_does_not_claim_does_change(model, e5_layer, seed):
    ref = invariants(e5_layer.blocks[0].weight)
    ens = ns.randomize_ensemble(e5_layer, model, 300, seed=seed)
    seen = {name: False for name in INVARIANTS}
    for w in ens.weights["fc"]:
        got = invariants(w)
        for name in INVARIANTS:
            seen[name] |= got[name] != ref[name]
    changed = {name for name, c in seen.items() if c}
    assert changed == set(INVARIANTS) - NULL_MODELS[model].preserves

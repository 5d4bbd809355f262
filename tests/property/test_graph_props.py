"""Property tests: edge tables, views and round trips agree for random pruned MLPs."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns


@st.composite
def pruned_mlps(draw):
    sizes = draw(st.lists(st.integers(1, 6), min_size=2, max_size=4))
    seed = draw(st.integers(0, 2**16))
    frac = draw(st.floats(0, 1))
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    m = torch.nn.Sequential(*layers)
    G = ns.from_torch(m)
    drop = np.random.default_rng(seed).random(G.n_edges) < frac
    return sizes, G.remove_edges(drop)


@settings(max_examples=40, deadline=None)
@given(pruned_mlps())
def test_edges_scipy_and_blocks_agree(case):
    sizes, G = case
    e = G.edges()
    assert len(e) == sum(int(b.mask.sum()) for b in G.blocks)
    A = G.to_scipy().toarray()
    dense = np.zeros((G.n_nodes, G.n_nodes), dtype=np.float32)
    for b in G.blocks:
        dense[np.ix_(b.sources, b.targets)] = b.weight.T
    np.testing.assert_array_equal(A, dense)
    assert (e.sign.to_numpy() == np.sign(e.weight.to_numpy())).all()


@settings(max_examples=30, deadline=None)
@given(pruned_mlps())
def test_shrunk_model_equals_masked_model(case):
    sizes, G = case
    x = torch.randn(8, sizes[0])
    masked, small = ns.to_torch(G), ns.to_torch(G, shrink=True)
    assert torch.allclose(masked(x), small(x), atol=1e-5)
    assert sum(p.numel() for p in small.parameters()) <= sum(p.numel() for p in masked.parameters())

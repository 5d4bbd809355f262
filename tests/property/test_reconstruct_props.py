"""Property tests of reconstruct: exact invariants of the least-squares re-fit."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns
from netstruct.pruning import PruningPlan


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=4),
    seed=st.integers(0, 2**16),
    batch_size=st.integers(1, 64),
)
def test_no_removal_and_no_ridge_returns_the_original_weights(sizes, seed, batch_size):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*layers)
    X = torch.randn(64, sizes[0])
    G = ns.from_torch(model)
    R = ns.reconstruct(G, G, X, ridge=0.0, batch_size=batch_size, blocks="all")
    assert len(R.provenance["reconstruct"]["blocks"]) == len(sizes) - 1
    with torch.no_grad():  # the original weights fit exactly, so the re-fit reproduces the outputs
        np.testing.assert_allclose(ns.to_torch(R)(X).numpy(), model(X).numpy(), atol=2e-4)
    # the weights themselves are unique only where a block's inputs have full column rank;
    # compare them where the inputs are well conditioned (tanh of nearly affine inputs is not)
    h = X
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for a, b, lin in zip(G.blocks, R.blocks, linears):
        Z = torch.cat([h, torch.ones(len(h), 1)], dim=1).double().numpy()
        if np.linalg.cond(Z) < 1e3:
            np.testing.assert_allclose(b.weight, a.weight, atol=2e-4)
            np.testing.assert_allclose(b.bias, a.bias, atol=2e-4)
        with torch.no_grad():
            h = torch.tanh(lin(h))


@settings(max_examples=25, deadline=None)
@given(
    n_in=st.integers(1, 4),
    extra=st.integers(1, 4),
    n_out=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_removed_inputs_that_are_linear_combinations_are_recovered_exactly(
    n_in, extra, n_out, seed, data
):
    # a linear hidden layer wider than its input: every hidden unit is an affine function of any
    # n_in others, so removing up to `extra` of them loses nothing the next layer cannot re-fit
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(n_in, n_in + extra), torch.nn.Linear(n_in + extra, n_out)
    )
    X = torch.randn(48, n_in)
    G = ns.from_torch(model)
    gone = data.draw(st.sets(st.integers(0, n_in + extra - 1), min_size=1, max_size=extra))
    names = [f"0[{i}]" for i in sorted(gone)]
    plan = PruningPlan.for_graph(G).remove_units(G, G.nodes().name.isin(names).to_numpy())
    R = ns.reconstruct(plan, G, X, ridge=0.0, batch_size=16)
    X_test = torch.randn(20, n_in)
    with torch.no_grad():
        want = model(X_test).numpy()
        got = ns.to_torch(R)(X_test).numpy()
    np.testing.assert_allclose(got, want, atol=1e-3 * (1 + np.abs(want).max()))

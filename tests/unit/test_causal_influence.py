"""path_influence: sums over paths of weight products, and the data-averaged Jacobian."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct import GraphError, InvalidParameterError
from netstruct.causal import path_influence


def _chain(seed, sizes=(3, 4, 5, 2), acts=("tanh", "sigmoid")):
    rng = np.random.default_rng(seed)
    names, kinds, act, blocks, Ws = [], [], [], [], []
    offsets = np.cumsum((0,) + sizes)
    for layer, n in enumerate(sizes):
        for i in range(n):
            names.append(f"l{layer}[{i}]")
            kinds.append(
                "input" if layer == 0 else "output" if layer == len(sizes) - 1 else "hidden"
            )
            act.append(acts[layer - 1] if 0 < layer < len(sizes) - 1 else "")
    for layer in range(len(sizes) - 1):
        W = rng.standard_normal((sizes[layer + 1], sizes[layer]))
        Ws.append(W.astype(np.float32).astype(np.float64))
        blocks.append(
            ns.make_block(
                name=f"w{layer}",
                weight=W,
                sources=np.arange(offsets[layer], offsets[layer + 1]),
                targets=np.arange(offsets[layer + 1], offsets[layer + 2]),
            )
        )
    G = ns.SignedGraph(
        {
            "name": names,
            "kind": kinds,
            "activation": act,
            "index": [i for n in sizes for i in range(n)],
        },
        blocks,
    )
    return G, Ws


def _paths_brute_force(Ws, u, o):
    """Enumerate every path from input u to output o and sum the weight products."""
    total = 0.0
    import itertools

    for hidden in itertools.product(*[range(W.shape[0]) for W in Ws[:-1]]):
        nodes = (u, *hidden, o)
        total += np.prod([Ws[k][nodes[k + 1], nodes[k]] for k in range(len(Ws))])
    return total


def test_equals_brute_force_path_sums_and_matrix_product(seed):
    G, Ws = _chain(seed)
    H, M = path_influence(G)
    prod = Ws[2] @ Ws[1] @ Ws[0]
    np.testing.assert_allclose(M[:3].T, prod, rtol=1e-10)
    for u in range(3):
        for o in range(2):
            assert M[u, o] == pytest.approx(_paths_brute_force(Ws, u, o), rel=1e-10)
    np.testing.assert_array_equal(M[-2:], np.eye(2))
    # edge influence: weight x influence of its target
    e = H.edges()
    first = e[e["layer"] == 0].iloc[0]
    assert first["influence_o1"] == pytest.approx(first["weight"] * M[int(first["target"]), 1])
    assert (H.nodes()["influence_abs"] >= 0).all()


def test_activation_weighted_variant_is_the_mean_jacobian(seed):
    torch = pytest.importorskip("torch")
    G, Ws = _chain(seed)
    X = np.random.default_rng(seed + 1).standard_normal((40, 3))
    _, M = path_influence(G, X)
    W = [torch.tensor(w) for w in Ws]

    def f(x):
        return W[2] @ torch.sigmoid(W[1] @ torch.tanh(W[0] @ x))

    J = np.mean([torch.autograd.functional.jacobian(f, torch.tensor(x)).numpy() for x in X], axis=0)
    np.testing.assert_allclose(M[:3].T, J, rtol=1e-8, atol=1e-12)


def test_errors():
    G, _ = _chain(0)
    with pytest.raises(InvalidParameterError, match="'X' parameter"):
        path_influence(G, np.zeros((5, 4)))
    b = ns.make_block(name="r", weight=np.ones((1, 1)), sources=[1], targets=[1], delay=1)
    R = ns.SignedGraph(
        {"name": ["x", "h"], "kind": ["input", "output"]},
        [ns.make_block(name="a", weight=np.ones((1, 1)), sources=[0], targets=[1]), b],
    )
    with pytest.raises(GraphError, match="unroll"):
        path_influence(R)
    G2 = ns.SignedGraph(
        {"name": ["x", "y"], "kind": ["input", "output"], "activation": ["", "mystery"]},
        [ns.make_block(name="a", weight=np.ones((1, 1)), sources=[0], targets=[1])],
    )
    with pytest.raises(GraphError, match="mystery"):
        path_influence(G2, np.zeros((2, 1)))
    G3 = ns.SignedGraph(  # a softmax mixes the units: it has no element-wise slope
        {"name": ["x", "y"], "kind": ["input", "output"], "activation": ["", "softmax"]},
        [ns.make_block(name="a", weight=np.ones((1, 1)), sources=[0], targets=[1])],
    )
    with pytest.raises(GraphError, match="element-wise slope"):
        path_influence(G3, np.zeros((2, 1)))

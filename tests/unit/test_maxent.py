"""Maximum-entropy signed nulls: constraints, solvers, sampler, analytic expectations."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.algorithms.maxent import _fit_block
from tests.oracles.naive_netsci import random_layered_graph


@pytest.mark.parametrize("model,density", [("stp", 1.0), ("stp", 0.6), ("scm", 0.5)])
def test_fit_matches_signed_degrees(model, density):
    G = random_layered_graph(np.random.default_rng(0), [9, 11, 7], density, skip=True)
    M = ns.fit_maxent(G, model)
    for b in M.unit_graph.blocks:
        p, n = M.probabilities(b.name)
        assert np.all(p >= 0) and np.all(n >= 0) and np.all(p + n <= 1 + 1e-12)
        for axis in (0, 1):
            assert np.allclose(p.sum(axis), (b.weight > 0).sum(axis), atol=1e-5)
            assert np.allclose(n.sum(axis), (b.weight < 0).sum(axis), atol=1e-5)
        if model == "stp":  # fixed topology
            assert np.array_equal((p + n) > 0.5, b.weight != 0)


def test_dense_class_solution_equals_per_node_solution():
    from netstruct.algorithms.maxent import _probs, _solve

    w = np.random.default_rng(1).standard_normal((30, 25))
    dense = _fit_block(w, "w", "stp", 1e-10, 200)
    assert dense.dense and dense.C.shape[0] < 30
    kr = (w > 0).sum(1, dtype=np.float64)[None]
    kc = (w > 0).sum(0, dtype=np.float64)[None]
    a, b, fr, fc, _, res = _solve(np.ones(w.shape), np.ones(30), np.ones(25), kr, kc, 1e-10, 200)
    assert res < 1e-8
    p_dense = _probs(dense.a, dense.b, dense.C, dense.fix_r, dense.fix_c)[0][dense.rows][
        :, dense.cols
    ]
    assert np.allclose(_probs(a, b, np.ones(w.shape), fr, fc)[0], p_dense, atol=1e-8)


def test_extreme_degrees_get_exact_probabilities():
    w = np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
    G = ns.SignedGraph(
        {"name": list("abcdef")},
        [ns.make_block(name="w", weight=w, sources=[0, 1, 2], targets=[3, 4, 5])],
    )
    p, n = ns.fit_maxent(G, "stp").probabilities("w")
    assert np.array_equal(p[0], [1.0, 1.0, 1.0])
    assert np.allclose(p.sum(0), [1, 2, 2]) and np.allclose(p.sum(1), [3, 1, 1])


def test_scm_rejects_a_full_node():
    G = random_layered_graph(np.random.default_rng(0), [3, 3], 1.0)
    with pytest.raises(ns.GraphError, match="model='stp'"):
        ns.fit_maxent(G, "scm")


def test_fit_rejects_bad_parameters():
    G = random_layered_graph(np.random.default_rng(0), [3, 3], 1.0)
    with pytest.raises(ns.InvalidParameterError, match="'model' parameter of fit_maxent"):
        ns.fit_maxent(G, "ergm")
    with pytest.raises(ns.InvalidParameterError, match="'tol'"):
        ns.fit_maxent(G, tol=0)
    with pytest.raises(ns.InvalidParameterError, match="'M' parameter"):
        ns.expected_motif_census(G)


def test_sampler_is_reproducible_and_keeps_topology():
    G = random_layered_graph(np.random.default_rng(2), [6, 7], 0.7)
    M = ns.fit_maxent(G, "stp")
    a, b = M.sample(5, seed=3), M.sample(9, seed=3)
    assert np.array_equal(a["b0"], b["b0"][:5])
    assert np.array_equal(a["b0"] != 0, np.broadcast_to(G.blocks[0].weight != 0, a["b0"].shape))


@pytest.mark.parametrize(
    "model,density",
    [
        pytest.param("stp", 1.0, marks=pytest.mark.slow),
        ("stp", 0.8),
        pytest.param("scm", 0.5, marks=pytest.mark.slow),
    ],
)
def test_expected_counts_within_one_percent_of_1e4_samples(model, density):
    G = random_layered_graph(np.random.default_rng(5), [14, 16, 14, 12], density, skip=True)
    M = ns.fit_maxent(G, model)
    exp = ns.expected_motif_census(M, size=None)["expected"].to_numpy()
    zs = ns.motif_zscores(G, model, n_samples=10_000, size=None, seed=0, chunk_size=2500)
    mean = zs.table["mean"].to_numpy()
    se = zs.table["std"].to_numpy() / 100.0
    assert np.all(np.abs(mean - exp) <= 0.01 * exp + 1e-12)
    assert np.all(np.abs(mean - exp) <= 5 * se + 1e-9)


def test_expected_census_equals_observed_on_a_deterministic_model():
    # every node all-positive or all-negative: the STP null is a point mass on the graph
    w = np.array([[1.0, 2.0], [3.0, 1.0]])
    G = ns.SignedGraph(
        {"name": list("abcdef")},
        [
            ns.make_block(name="a", weight=w, sources=[0, 1], targets=[2, 3]),
            ns.make_block(name="b", weight=-w, sources=[2, 3], targets=[4, 5]),
        ],
    )
    e = ns.expected_motif_census(ns.fit_maxent(G), size=None)["expected"].to_numpy()
    assert np.allclose(e, ns.motif_census(G, size=None)["count"].to_numpy())


def test_lstm_fit_is_on_units():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    G = ns.from_torch(torch.nn.LSTM(3, 4))
    M = ns.fit_maxent(G, "stp")
    assert M.unit_graph.blocks[0].shape == (4, 3)
    e = ns.expected_motif_census(M, size=3)
    assert (e["expected"] >= 0).all()

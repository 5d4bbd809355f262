"""Signed modularity, the Leiden-type optimiser, clusterability and the lesion probe."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.algorithms.communities import (
    clusterability,
    community_lesion,
    signed_communities,
    signed_modularity,
    signed_projection,
)
from netstruct.exceptions import GraphError, InvalidParameterError
from tests.oracles.naive_communities import (
    dense_projection,
    dense_signed_modularity,
    leiden_signed_best,
)


def _mlp(seed: int, sizes=(12, 10, 8, 4)):
    return ns.from_torch(ns.training.mlp(list(sizes), seed=seed))


def _lstm(seed: int):
    return ns.from_torch(ns.training.recurrent_classifier("LSTM", 4, 5, 3, seed=seed))


@pytest.mark.parametrize("make", [_mlp, _lstm])
def test_projection_equals_dense_sum_over_edges(make, seed):
    G = make(seed)
    A, units = dense_projection(G)
    P = signed_projection(G)
    np.testing.assert_allclose(P.adjacency.toarray(), A, atol=1e-12)
    np.testing.assert_array_equal(P.units, units)


@pytest.mark.parametrize("make", [_mlp, _lstm])
@pytest.mark.parametrize("gammas", [(1.0, 1.0), (0.5, 2.0), (2.0, 0.0)])
def test_signed_modularity_equals_dense_formula(make, gammas, seed):
    G = make(seed)
    A, units = dense_projection(G)
    labels = np.random.default_rng(seed).integers(0, 4, G.n_nodes)
    q = signed_modularity(G, labels, resolution=gammas[0], resolution_neg=gammas[1])
    assert q == pytest.approx(dense_signed_modularity(A, labels[units], *gammas), abs=1e-12)


def test_signed_modularity_sign_weights_and_projection_input(seed):
    G = _mlp(seed)
    A, units = dense_projection(G)
    labels = np.random.default_rng(seed).integers(0, 3, G.n_nodes)
    P = signed_projection(G, weight="sign")
    As = np.zeros_like(A)
    e = G.edges()
    for s, t, w in zip(e["source"], e["target"], np.sign(e["weight"])):
        As[t, s] += w
        As[s, t] += w
    assert signed_modularity(P, labels) == pytest.approx(
        dense_signed_modularity(As, labels[units]), abs=1e-12
    )


def test_all_in_one_community_has_zero_modularity_for_balanced_null():
    W = np.array([[1.0, -1.0], [-1.0, 1.0]])
    G = ns.SignedGraph(
        {"name": list("abcd")}, [ns.make_block(name="w", weight=W, sources=[0, 1], targets=[2, 3])]
    )
    assert signed_modularity(G, [0, 0, 0, 0]) == pytest.approx(0.0)
    C = signed_communities(G, seed=0)
    assert C.modularity == pytest.approx(0.5)
    assert C.membership[0] == C.membership[2] != C.membership[1] == C.membership[3]


@pytest.mark.parametrize("make", [_mlp, _lstm])
def test_optimiser_reports_the_modularity_of_its_partition(make, seed):
    G = make(seed)
    C = signed_communities(G, seed=seed)
    A, _ = dense_projection(G)
    assert C.modularity == pytest.approx(dense_signed_modularity(A, C.unit_membership), abs=1e-10)
    assert C.membership.shape == (G.n_nodes,)
    unit = G.node_column("unit")
    np.testing.assert_array_equal(C.membership, C.membership[unit])  # gate rows follow their unit


def test_optimiser_is_reproducible(seed):
    G = _mlp(seed)
    a, b = signed_communities(G, seed=seed), signed_communities(G, seed=seed)
    np.testing.assert_array_equal(a.membership, b.membership)


@pytest.mark.parametrize("graph_seed", [1, 2, 3])
@pytest.mark.parametrize("gammas", [(1.0, 1.0), (2.0, 1.0)])
def test_optimiser_within_one_percent_of_leidenalg(graph_seed, gammas):
    pytest.importorskip(
        "leidenalg", reason="leidenalg (GPL) is the test-only oracle for signed modularity"
    )
    G = _mlp(graph_seed, (20, 16, 12, 5))
    A, _ = dense_projection(G)
    _, q_leiden = leiden_signed_best(A, *gammas, n_runs=10)
    C = signed_communities(G, resolution=gammas[0], resolution_neg=gammas[1], seed=0, n_restarts=32)
    assert C.modularity >= q_leiden - 0.01 * abs(q_leiden)


def test_bad_parameters_raise_standard_errors():
    G = _mlp(0)
    with pytest.raises(InvalidParameterError, match="'resolution' parameter of signed_modularity"):
        signed_modularity(G, np.zeros(G.n_nodes, dtype=int), resolution=-1)
    with pytest.raises(InvalidParameterError, match="'membership' parameter"):
        signed_modularity(G, np.zeros(3, dtype=int))
    with pytest.raises(InvalidParameterError, match="'n_restarts' parameter of signed_communities"):
        signed_communities(G, n_restarts=0)
    with pytest.raises(InvalidParameterError, match="'weight' parameter"):
        signed_projection(G, weight="abs")
    empty = G.replace_blocks({i: {"weight": np.zeros(b.shape)} for i, b in enumerate(G.blocks)})
    with pytest.raises(GraphError, match="no non-zero edge"):
        signed_communities(empty)


def test_clusterability_of_planted_blocks_beats_null(seed):
    rng = np.random.default_rng(seed)
    n = 16
    W = -np.abs(rng.normal(size=(n, n)))
    for k in range(4):
        W[4 * k : 4 * k + 4, 4 * k : 4 * k + 4] = (
            np.abs(W[4 * k : 4 * k + 4, 4 * k : 4 * k + 4]) + 1.0
        )
    G = ns.SignedGraph(
        {"name": [f"n{i}" for i in range(2 * n)]},
        [ns.make_block(name="w", weight=W, sources=np.arange(n), targets=np.arange(n, 2 * n))],
    )
    res = clusterability(G, model="A", n_samples=9, seed=seed)
    assert res.null.shape == (9,)
    assert res.p_value == pytest.approx(0.1)
    assert res.observed > res.null.max()
    assert res.communities.n_communities == 4


def test_lesion_of_everything_hidden_gives_constant_output(seed):
    ds = ns.datasets.load_iris()
    m = ns.training.mlp([4, 8, 3], seed=seed)
    ns.training.train(m, ds.X_train, ds.y_train, epochs=20, seed=seed, progress=False)
    G = ns.from_torch(m)
    labels = np.zeros(G.n_nodes, dtype=np.int64)
    df = community_lesion(G, labels, ds.X_test, ds.y_test, n_random=1, seed=seed)
    # the only community holds every hidden unit: the network outputs the readout bias, one class
    pred = np.argmax(G.blocks[1].bias)
    overall = df[df["class"].astype(str) == "all"].iloc[0]
    assert overall["accuracy"] == pytest.approx(float((ds.y_test == pred).mean()))
    assert overall["random drop"] == pytest.approx(
        overall["drop"]
    )  # the random set is the same set
    assert set(df.columns) >= {
        "community",
        "hidden units",
        "class",
        "baseline",
        "accuracy",
        "drop",
        "excess drop",
    }


def test_lesion_runs_on_lstm(seed):
    m = ns.training.recurrent_classifier("LSTM", 4, 5, 3, seed=seed)
    G = ns.from_torch(m)
    X = np.random.default_rng(seed).normal(size=(30, 6, 4)).astype(np.float32)
    y = np.asarray(ns.training.predict(m, X)).argmax(-1)
    C = signed_communities(G, seed=seed)
    df = community_lesion(G, C, X, y)
    base = df[df["class"].astype(str) == "all"]["baseline"]
    assert (base == 1.0).all()


def test_netsci_report_step_runs_on_iris(tmp_path):
    import json

    from netstruct.report import JobOptions, run_job

    run_job(
        JobOptions(
            out=str(tmp_path),
            dataset="iris",
            steps=("netsci",),
            epochs=2,
            quick=True,
            progress=False,
            scheduler="serial",
        )
    )
    numbers = json.loads((tmp_path / "numbers.json").read_text())["netsci"]
    assert numbers["failed"] == []
    assert numbers["communities"][0]["null model"] == "G-left"
    assert (tmp_path / "figures" / "mlp_network.svg").exists()
    assert {r["block"] for r in numbers["spectra"]} == {"0.weight", "2.weight"}

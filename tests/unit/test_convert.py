"""networkx, igraph and scipy views agree with the edge table; from_networkx restores graphs."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

import netstruct as ns
from tests.models import LastStep, mlp


@pytest.fixture(params=["mlp", "lstm"])
def graph(request):
    torch.manual_seed(0)
    m = mlp([5, 4, 3]) if request.param == "mlp" else LastStep("LSTM", n_in=3, hidden=3, n_out=2)
    G = ns.from_torch(m)
    return G.remove_edges(np.random.default_rng(1).random(G.n_edges) < 0.25)


def test_views_agree_with_edge_table(graph):
    e = graph.edges()
    Gx = graph.to_networkx()
    assert Gx.number_of_edges() == len(e)
    for s, t, w, sg in zip(e.source, e.target, e.weight, e.sign):
        assert Gx[s][t]["weight"] == pytest.approx(float(w)) and Gx[s][t]["sign"] == sg
    g = graph.to_igraph()
    assert [tuple(x) for x in g.get_edgelist()] == list(zip(e.source, e.target))
    np.testing.assert_allclose(g.es["weight"], e.weight.astype(float))
    A = graph.to_scipy()
    np.testing.assert_array_equal(A[e.source.to_numpy(), e.target.to_numpy()], e.weight.to_numpy())
    assert A.nnz == (e.weight != 0).sum()
    assert graph.to_scipy(weight=None).sum() == len(e)


def test_coupling_edges_link_gates_to_units(graph):
    Gx = graph.to_networkx(coupling=True)
    n = graph.nodes()
    n_gates = int((n.kind == "gate").sum())
    assert Gx.number_of_edges() == graph.n_edges + n_gates
    for gate in n.index[n.kind == "gate"]:
        assert Gx.has_edge(gate, int(n.unit[gate]))


def test_from_networkx_restores_the_exact_graph(graph):
    H = ns.from_networkx(graph.to_networkx())
    np.testing.assert_array_equal(H.edges().to_numpy(), graph.edges().to_numpy())
    assert H.spec == graph.spec


def test_from_networkx_layered_graph():
    Gx = nx.DiGraph()
    for i in range(3):
        Gx.add_node(f"x{i}", layer=0)
    for j in range(2):
        Gx.add_node(f"h{j}", layer=1, bias=0.5 * j)
    Gx.add_node("y", layer=2)
    Gx.add_edge("x0", "h0", weight=1.0)
    Gx.add_edge("x2", "h1", weight=-2.0)
    Gx.add_edge("h1", "y", weight=0.5)
    G = ns.from_networkx(Gx)
    assert G.n_edges == 3 and [b.shape for b in G.blocks] == [(2, 3), (1, 2)]
    assert G.blocks[0].bias.tolist() == [0.0, 0.5]
    assert G.nodes().kind.tolist() == ["input"] * 3 + ["hidden"] * 2 + ["output"]
    Gx.add_edge("x0", "y", weight=1.0)
    with pytest.raises(ns.GraphError, match="consecutive"):
        ns.from_networkx(Gx)
    with pytest.raises(ns.GraphError, match="integer node attribute"):
        ns.from_networkx(nx.DiGraph([(1, 2)]))


def test_to_scipy_rejects_unknown_weight_column(graph):
    with pytest.raises(ns.InvalidParameterError, match="numeric edge column"):
        graph.to_scipy(weight="block")


def test_unroll_is_a_dag_with_time_copies():
    torch.manual_seed(0)
    G = ns.from_torch(LastStep("LSTM", n_in=2, hidden=3, n_out=2, num_layers=2, bidirectional=True))
    U = ns.unroll(G, 4)
    n = U.nodes()
    assert nx.is_directed_acyclic_graph(U.to_networkx())
    assert (n.kind == "gate").sum() == 0
    assert int((n.time == -1).sum()) == 2
    assert int((n.time == 0).sum()) == 2 + 2 * 2 * 3
    # forward recurrence goes t-1 -> t, backward t+1 -> t
    e = U.edges().merge(n[["time", "direction"]], left_on="source", right_index=True)
    e = e.merge(n[["time"]], left_on="target", right_index=True, suffixes=("_s", "_t"))
    rec = e[e.block.str.contains("weight_hh")]
    fwd = rec[rec.direction == 0]
    bwd = rec[rec.direction == 1]
    assert ((fwd.time_t - fwd.time_s) == 1).all() and ((bwd.time_s - bwd.time_t) == 1).all()


@pytest.mark.parametrize("how", ["max", "l2", "sum"])
def test_unit_aggregation_of_gates(how):
    from netstruct.graphs.unroll import unit_blocks

    lstm = torch.nn.LSTM(2, 2)
    G = ns.from_torch(lstm)
    W = lstm.weight_hh_l0.detach().numpy().reshape(4, 2, 2)
    ((_, _, _, _, A, _),) = [u for u in unit_blocks(G, how) if u[0] == "weight_hh_l0"]
    want = {
        "sum": W.sum(0),
        "l2": np.sqrt((W.astype(np.float64) ** 2).sum(0)),
        "max": np.take_along_axis(W, np.abs(W).argmax(0)[None], 0)[0],
    }[how]
    np.testing.assert_allclose(A, want, rtol=1e-6)


def test_unroll_parameter_errors():
    G = ns.from_torch(torch.nn.RNN(2, 2))
    with pytest.raises(ns.InvalidParameterError, match="'steps'"):
        ns.unroll(G, 0)
    with pytest.raises(ns.InvalidParameterError, match="'aggregate'"):
        ns.unroll(G, 2, aggregate="mean")


def _scipy_reference(G, weight, coupling=False):
    """The obvious COO build from the edge table (the oracle of the block-wise CSR writer)."""
    import scipy.sparse as sp

    a = G.edge_arrays()
    src, tgt = a["source"], a["target"]
    vals = np.ones(src.size) if weight is None else np.asarray(a[weight], dtype=np.float64)
    if coupling:
        gs, us = ns.graphs.external.coupling_edges(G)
        src, tgt, vals = np.r_[src, gs], np.r_[tgt, us], np.r_[vals, np.ones(gs.size)]
    return sp.coo_array((vals, (src, tgt)), shape=(G.n_nodes, G.n_nodes)).toarray()


@pytest.mark.parametrize("weight", ["weight", "sign", None, "layer", "row", "col", "delay", "w2"])
@pytest.mark.parametrize("coupling", [False, True])
def test_to_scipy_equals_coo_of_the_edge_table(graph, weight, coupling):
    G = graph.with_edge_attrs(w2=np.arange(graph.n_edges, dtype=np.float64) - 3.5)
    A = G.to_scipy(weight=weight, coupling=coupling)
    np.testing.assert_array_equal(A.toarray(), _scipy_reference(G, weight, coupling))
    assert A.has_canonical_format and A.indices.dtype == np.int32
    expected = {"weight": np.float32, "sign": np.int8, None: np.int8, "w2": np.float64}
    assert A.dtype == expected.get(weight, np.int64)
    assert A.nnz == G.n_edges + (int((G.nodes().kind == "gate").sum()) if coupling else 0)


def test_to_scipy_blocks_with_shuffled_and_shared_sources():
    """Non-contiguous source/target ids and blocks sharing sources (summed parallel edges)."""
    rng = np.random.default_rng(0)
    n = 12
    cols = {"name": [f"n{i}" for i in range(n)], "kind": ["hidden"] * n, "group": [0] * n}
    w1, w2 = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    m1 = rng.random((3, 4)) < 0.7
    blocks = [
        ns.graphs.block.make_block(
            name="a", weight=w1 * m1, mask=m1, sources=[7, 2, 9, 0], targets=[5, 1, 11]
        ),
        ns.graphs.block.make_block(name="b", weight=w2, sources=[2, 3, 4, 6], targets=[11, 5]),
        ns.graphs.block.make_block(name="c", weight=w2, sources=[8, 10, 0, 7], targets=[5, 11]),
    ]
    G = ns.SignedGraph(cols, blocks)
    for weight in ("weight", "sign", None, "col"):
        A = G.to_scipy(weight=weight)
        np.testing.assert_allclose(A.toarray(), _scipy_reference(G, weight), rtol=1e-6)
        assert A.has_canonical_format

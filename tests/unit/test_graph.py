"""The SignedGraph model: immutability, tables, attributes, pruning, validation."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns


def _toy():
    b = ns.make_block(
        name="w",
        weight=np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]]),
        sources=[0, 1, 2],
        targets=[3, 4],
        bias=[0.1, -0.2],
    )
    return ns.SignedGraph({"name": list("abcde"), "kind": ["input"] * 3 + ["output"] * 2}, [b])


def test_edge_table_is_row_major_with_signs():
    e = _toy().edges()
    assert e.weight.tolist() == pytest.approx([0.5, -0.2, 0.1, -0.4, 0.3, -0.05])
    assert e.sign.tolist() == [1, -1, 1, -1, 1, -1]
    assert e.source.tolist() == [0, 1, 2, 0, 1, 2]
    assert e.target.tolist() == [3, 3, 3, 4, 4, 4]


def test_arrays_are_read_only_and_graph_is_immutable():
    G = _toy()
    with pytest.raises(ValueError):
        G.blocks[0].weight[0, 0] = 1.0
    with pytest.raises(ValueError):
        G.edge_arrays()["weight"][0] = 1.0
    w = np.ones((1, 1))
    H = ns.SignedGraph(
        {"name": ["x", "y"]}, [ns.make_block(name="b", weight=w, sources=[0], targets=[1])]
    )
    w[0, 0] = 5.0
    assert H.blocks[0].weight[0, 0] == 1.0


def test_attributes_share_weights_and_validate():
    G = _toy()
    H = G.with_edge_attrs(score=np.arange(6.0)).with_node_attrs(role=np.array(list("iiioo")))
    assert H.blocks[0].weight is G.blocks[0].weight
    assert H.edges().score.tolist() == list(range(6))
    assert "score" not in G.edges()
    with pytest.raises(ns.InvalidParameterError, match="length 6"):
        G.with_edge_attrs(score=np.arange(5.0))
    with pytest.raises(ns.InvalidParameterError, match="NaN"):
        G.with_edge_attrs(score=np.full(6, np.nan))
    with pytest.raises(ns.InvalidParameterError, match="shadow"):
        G.with_node_attrs(kind=np.zeros(5))


def test_remove_edges_masks_and_subsets_attributes():
    G = _toy().with_edge_attrs(score=np.arange(6.0))
    H = G.remove_edges(np.array([True, False, False, False, False, True]))
    assert H.n_edges == 4 and H.edges().score.tolist() == [1, 2, 3, 4]
    assert H.blocks[0].weight[0, 0] == 0.0 and not H.blocks[0].mask[0, 0]
    with pytest.raises(ns.InvalidParameterError, match="boolean array of shape"):
        G.remove_edges(np.ones(3, dtype=bool))


def test_replace_blocks_checks_shapes_and_drops_stale_attrs():
    G = _toy().with_edge_attrs(score=np.arange(6.0))
    with pytest.raises(ns.GraphError, match="shrink"):
        G.replace_blocks({0: {"weight": np.zeros((3, 3))}})
    same = G.replace_blocks({"w": {"weight": -G.blocks[0].weight}})
    assert same.edges().score.tolist() == list(range(6))
    with pytest.warns(ns.NetstructWarning, match="dropped"):
        G.replace_blocks({0: {"mask": np.eye(2, 3, dtype=bool)}})


def test_constructor_validation():
    with pytest.raises(ns.GraphError, match="shape"):
        ns.make_block(name="b", weight=np.zeros((2, 3)), sources=[0, 1], targets=[2, 3])
    with pytest.raises(ns.GraphError, match="outside"):
        ns.SignedGraph(
            {"name": ["a"]},
            [ns.make_block(name="b", weight=np.zeros((1, 1)), sources=[0], targets=[5])],
        )
    with pytest.raises(ns.GraphError, match="kind"):
        ns.SignedGraph({"name": ["a"], "kind": ["neuron"]}, [])
    with pytest.raises(ns.GraphError, match=r"Node names must be unique; 1 name\(s\) repeat.*'a'"):
        ns.SignedGraph({"name": ["a", "b", "a"]}, [])


def test_node_table_degrees():
    n = _toy().nodes()
    assert n.out_degree.tolist() == [2, 2, 2, 0, 0]
    assert n.in_degree.tolist() == [0, 0, 0, 3, 3]


def test_sparse_weight_input_defines_the_edges():
    import scipy.sparse as sp

    W = sp.csr_array(np.array([[0.0, 2.0], [-1.0, 0.0]]))
    b = ns.make_block(name="s", weight=W, sources=[0, 1], targets=[2, 3])
    assert b.n_edges == 2 and b.mask.tolist() == [[False, True], [True, False]]
    G = ns.SignedGraph({"name": list("abcd")}, [b])
    assert G.edges().weight.tolist() == [2.0, -1.0]

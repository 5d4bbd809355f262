"""Formal contexts: construction, thresholds, level cuts, gate aggregation, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.lattice import FormalContext, binarize, level_cuts, unit_adjacency

A1_W = np.array(
    [
        [0.1, -0.5],
        [0.0, 0.2],
        [0.3, 0.0],
        [-0.9, 0.1],
        [-0.2, 0.4],
        [0.05, 0.0],
        [0.0, 0.1],
        [0.6, -0.3],
    ]
)


def _lstm_hh_graph(weight=A1_W):
    nodes = {
        "name": ["h0", "h1"] + [f"{g}{u}" for g in "ifgo" for u in (0, 1)],
        "kind": ["hidden"] * 2 + ["gate"] * 8,
        "unit": [-1, -1] + [0, 1] * 4,
        "gate": [""] * 2 + [g for g in "ifgo" for _ in (0, 1)],
    }
    b = ns.make_block(
        name="lstm.weight_hh_l0", weight=weight, sources=[0, 1], targets=range(2, 10), delay=1
    )
    return ns.SignedGraph(nodes, [b])


@pytest.mark.parametrize(
    "bad", [np.zeros((0, 3)), np.zeros((3, 0)), np.zeros(3), [[0, 2]], np.array([["a"]])]
)
def test_empty_or_malformed_context_is_rejected(bad):
    with pytest.raises(ns.InvalidParameterError, match="'incidence' parameter of FormalContext"):
        FormalContext(bad)


def test_labels_must_match_the_shape():
    with pytest.raises(ns.InvalidParameterError, match="'objects' parameter"):
        FormalContext([[1, 0]], objects=["a", "b"])


def test_incidence_is_read_only_and_copied():
    a = np.array([[True, False]])
    K = FormalContext(a)
    a[0, 0] = False
    assert K.incidence[0, 0] and not K.incidence.flags.writeable


def test_binarize_is_strict_and_uses_the_median_by_default():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert binarize(A).tolist() == [[False, False], [True, True]]
    assert binarize(A, threshold=2.0).tolist() == [[False, False], [True, True]]
    assert binarize(A, quantile=0.0).sum() == 3


@pytest.mark.parametrize(
    ("kw", "match"), [({"threshold": 5.0}, "threshold=5"), ({"quantile": 1.0}, "quantile=1")]
)
def test_threshold_that_leaves_no_edges_raises(kw, match):
    with pytest.raises(ns.GraphError, match=match):
        binarize(np.array([[1.0, 2.0]]), **kw)


def test_threshold_and_quantile_are_exclusive():
    with pytest.raises(ns.InvalidParameterError, match="'quantile' parameter of binarize"):
        binarize(np.ones((2, 2)), threshold=0.1, quantile=0.5)


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_quantile_out_of_range_is_rejected(q):
    with pytest.raises(ns.InvalidParameterError, match="'quantile' parameter of binarize"):
        binarize(np.ones((2, 2)), quantile=q)


def test_non_finite_weights_are_rejected():
    with pytest.raises(ns.InvalidParameterError, match="'weights' parameter of binarize"):
        binarize(np.array([[np.nan, 1.0]]))


def test_from_weights_orients_objects_as_presynaptic():
    K = FormalContext.from_weights(
        np.array([[0.9, 0.1, 0.8]]), threshold=0.5, objects="abc", attributes=["y"]
    )
    assert K.extent("y") == ("a", "c")
    assert K.shape == (3, 1)


def test_level_cuts_c3_receptive_fields():
    W = np.array([[0.90, 0.80, 0.10], [0.20, 0.70, 0.60], [0.05, 0.75, 0.30]])
    cuts = level_cuts(W, [0.15, 0.25, 0.5, 0.75])
    fields = [[set(np.flatnonzero(K.incidence[:, m]).tolist()) for m in range(3)] for K in cuts]
    assert fields == [
        [{0, 1}, {0, 1, 2}, {1, 2}],
        [{0, 1}, {1, 2}, {1, 2}],
        [{0, 1}, {1, 2}, {1}],
        [{0, 1}, set(), set()],
    ]


def test_level_cuts_normalize_divides_by_the_max():
    (K,) = level_cuts(np.array([[2.0, 1.0]]), [0.6], normalize=True)
    assert K.incidence[:, 0].tolist() == [True, False]


def test_level_cut_above_the_max_raises():
    with pytest.raises(ns.GraphError, match="leaves no edges"):
        level_cuts(np.array([[0.2, 0.1]]), [0.1, 0.3])


def test_clarify_merges_duplicates():
    K = FormalContext([[1, 1, 0], [1, 1, 1], [1, 1, 0]], objects="abc", attributes="xyz")
    Kc, og, ag = K.clarify()
    assert Kc.shape == (2, 2)
    assert Kc.objects == ("a", "b") and Kc.attributes == ("x", "z")
    assert og.tolist() == [0, 1, 0] and ag.tolist() == [0, 0, 1]
    assert len(ns.lattice.concept_lattice(K)) == len(ns.lattice.concept_lattice(Kc))


def test_transpose_round_trip():
    K = FormalContext([[1, 0, 1]], objects=["g"], attributes="abc")
    assert K.transpose().transpose() == K


def test_lstm_gate_aggregation_a1_max_and_l2():
    G = _lstm_hh_graph()
    A, pre, post = unit_adjacency(G, "lstm.weight_hh_l0")
    np.testing.assert_allclose(A, [[0.3, 0.5], [0.9, 0.3]])
    assert pre.tolist() == [0, 1] and post.tolist() == [0, 1]
    A2, _, _ = unit_adjacency(G, 0, aggregate="l2")
    np.testing.assert_allclose(A2[0, 0], np.sqrt(0.1**2 + 0.3**2 + 0.2**2))


def test_unit_mask_expands_to_every_gate_row():
    from netstruct.lattice.adjacency import unit_map

    um = unit_map(_lstm_hh_graph(), 0)
    m = np.ones((2, 2), dtype=bool)
    m[1, 0] = False  # remove unit 0 -> unit 1
    full = um.expand(m)
    assert sorted(map(tuple, np.argwhere(~full).tolist())) == [(1, 0), (3, 0), (5, 0), (7, 0)]


def test_from_block_uses_unit_labels():
    K = FormalContext.from_block(_lstm_hh_graph(), 0, threshold=0.4)
    assert K.objects == (0, 1) and K.attributes == (0, 1)
    assert K.incidence.tolist() == [[False, True], [True, False]]


def test_unit_adjacency_rejects_bad_aggregate():
    with pytest.raises(ns.InvalidParameterError, match="'aggregate' parameter of unit_adjacency"):
        unit_adjacency(_lstm_hh_graph(), 0, aggregate="mean")

"""Posets from DAGs, reachability bitsets, Dedekind–MacNeille completion, unrolled windows."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

import netstruct as ns
from netstruct.lattice import (
    dedekind_macneille,
    join_irreducibles,
    meet_irreducibles,
    poset_from_dag,
    reachability_bitsets,
)
from netstruct.lattice._bits import unpack_rows
from netstruct.lattice.window import window_poset
from tests.oracles.naive_lattice import naive_dm_cuts, naive_dm_irreducibles, naive_leq


def _mi_ji(P):
    return set(meet_irreducibles(P).elements), set(join_irreducibles(P).elements)


@pytest.mark.parametrize(
    ("edges", "n_dm", "mi", "ji"),
    [
        ([("a", "b"), ("a", "c")], 4, {"b", "c"}, {"b", "c"}),  # D1 fork
        ([("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")], 7, set("abcd"), set("abcd")),  # D2 K2,2
        ([("a", "c"), ("b", "c"), ("b", "d")], 6, {"a", "c", "d"}, {"a", "b", "d"}),  # D3 N
        ([("a", "b"), ("b", "c")], 3, {"a", "b"}, {"b", "c"}),  # D4 chain
    ],
)
def test_spec_posets_d1_to_d4(edges, n_dm, mi, ji):
    P = poset_from_dag(nx.DiGraph(edges))
    assert len(dedekind_macneille(P)) == n_dm
    assert _mi_ji(P) == (mi, ji)


def test_bounded_fork_d1_makes_every_real_element_join_irreducible():
    P = poset_from_dag(
        nx.DiGraph([("bot", "a"), ("a", "b"), ("a", "c"), ("b", "top"), ("c", "top")])
    )
    mi, ji = _mi_ji(P)
    assert mi - {"bot"} == {"b", "c"} and "bot" in mi
    assert ji - {"top"} == {"a", "b", "c"}


def test_k22_new_cut_is_neither_mi_nor_ji():
    L = dedekind_macneille(nx.DiGraph([("a", "c"), ("a", "d"), ("b", "c"), ("b", "d")]))
    embedded = set(L.object_concepts.tolist())
    new = [i for i in range(len(L)) if i not in embedded and i not in (L.bottom, L.top)]
    assert len(new) == 1
    assert L.n_upper_covers[new[0]] == 2 and L.n_lower_covers[new[0]] == 2


def test_reachability_r1_chain_and_down_sets():
    down, up, order = reachability_bitsets(3, np.array([0, 1]), np.array([1, 2]))
    assert unpack_rows(down, 3).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert unpack_rows(up, 3).tolist() == [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    assert order.tolist() == [0, 1, 2]


def test_reachability_over_many_words_matches_closure(seed):
    rng = np.random.default_rng(seed)
    n = 150
    A = np.triu(rng.random((n, n)) < 0.02, k=1)
    perm = rng.permutation(n)
    A = A[np.ix_(perm, perm)]
    P = poset_from_dag(sp.csr_array(A))
    want = nx.transitive_closure_dag(nx.from_numpy_array(A.astype(int), create_using=nx.DiGraph))
    L = P.leq_matrix()
    np.fill_diagonal(L, False)
    assert set(map(tuple, np.argwhere(L).tolist())) == set(want.edges)


@pytest.mark.parametrize("batch", range(3))
def test_dm_completion_matches_brute_force(batch, seed):
    rng = np.random.default_rng([seed, 7, batch])
    for _ in range(20):
        n = int(rng.integers(1, 7))
        A = np.triu(rng.random((n, n)) < rng.uniform(0.1, 0.6), k=1)
        edges = list(map(tuple, np.argwhere(A).tolist()))
        P = poset_from_dag(A)
        Lq = naive_leq(n, edges)
        assert np.array_equal(P.leq_matrix(), Lq)
        cuts = {frozenset(np.flatnonzero(e).tolist()) for e in dedekind_macneille(P).extents}
        assert cuts == naive_dm_cuts(Lq)
        mi, ji = naive_dm_irreducibles(Lq)
        assert _mi_ji(P) == (mi, ji)


def test_cyclic_poset_raises_graph_error_naming_the_cycle():
    with pytest.raises(ns.GraphError, match=r"cycle 'b' -> 'c' -> 'd' -> 'b'"):
        poset_from_dag(nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d"), ("d", "b")]))
    with pytest.raises(ns.GraphError, match="not a DAG"):
        dedekind_macneille(np.array([[0, 1], [1, 0]]))
    with pytest.raises(ns.GraphError, match="cycle 0 -> 0"):
        poset_from_dag(np.eye(2))


@pytest.mark.parametrize("bad", [nx.Graph([(0, 1)]), nx.DiGraph(), np.zeros((2, 3)), "ab"])
def test_bad_dag_inputs_are_rejected(bad):
    with pytest.raises(ns.InvalidParameterError, match="'dag' parameter of poset_from_dag"):
        poset_from_dag(bad)


def test_dm_budget_is_enforced():
    # the standard example S_5 (crown) has 2**5 cuts
    D = nx.DiGraph([(f"a{i}", f"b{j}") for i in range(5) for j in range(5) if i != j])
    assert len(dedekind_macneille(D)) == 32
    with pytest.raises(ns.GraphError, match="max_concepts=10"):
        dedekind_macneille(D, max_elements=10)


def test_reverse_swaps_meet_and_join(seed):
    rng = np.random.default_rng(seed)
    A = np.triu(rng.random((9, 9)) < 0.3, k=1)
    P = poset_from_dag(A)
    assert np.array_equal(meet_irreducibles(P).mask, join_irreducibles(P.reverse()).mask)


def test_hasse_is_the_transitive_reduction():
    D = nx.DiGraph([(0, 1), (1, 2), (0, 2), (2, 3)])
    P = poset_from_dag(D)
    assert set(map(tuple, P.hasse().tolist())) == set(nx.transitive_reduction(D).edges)


# ---------------------------------------------------------------------- unrolled windows
E5_KINDS = np.array(["input", "hidden", "hidden"])
E5_BLOCKS = {
    "ih": (np.array([[True], [False]]), np.array([0]), np.array([1, 2]), 0),
    "hh": (np.array([[True, False], [True, False]]), np.array([1, 2]), np.array([1, 2]), 1),
}


def _real(P, labels):
    return {x for x in labels if isinstance(x[0], int)}


def test_e5_untrimmed_dm_and_irreducibles():
    W = window_poset(3, E5_KINDS, np.arange(3), E5_BLOCKS, window=2, bounded=False, trim=False)
    assert len(dedekind_macneille(W.poset)) == 8
    mi, ji = _mi_ji(W.poset)
    x1, x2, h1_1, h2_1, h1_2, h2_2 = (0, 1), (0, 2), (1, 1), (2, 1), (1, 2), (2, 2)
    assert mi == {x1, x2, h2_1, h1_2, h2_2}
    assert ji == {x1, x2, h2_1, h1_1, h2_2}


@pytest.mark.parametrize("bounded", [False, True])
def test_e5_trimming_removes_the_dead_unit(bounded):
    W = window_poset(3, E5_KINDS, np.arange(3), E5_BLOCKS, window=2, bounded=bounded, trim=True)
    assert (2, 1) not in W.poset.labels
    assert len(dedekind_macneille(W.poset)) == 7
    mi, ji = _mi_ji(W.poset)
    assert _real(W.poset, mi) == {(0, 1), (0, 2), (1, 2), (2, 2)}
    assert _real(W.poset, ji) == {(0, 1), (0, 2), (1, 1), (2, 2)}
    assert int(W.virtual.sum()) == (2 if bounded else 0)


def test_e6_dense_recurrence_marks_nothing_redundant():
    blocks = {"hh": (np.ones((2, 2), bool), np.array([0, 1]), np.array([0, 1]), 1)}
    W = window_poset(
        2, np.array(["hidden", "hidden"]), np.arange(2), blocks, window=3, bounded=False, trim=False
    )
    assert len(dedekind_macneille(W.poset)) == 10
    mi, ji = _mi_ji(W.poset)
    assert len(mi) == len(ji) == 6


def test_e7_top_down_chain_and_instantaneous_feedback():
    kinds = np.array(["hidden", "hidden"])
    up = (np.array([[True]]), np.array([0]), np.array([1]), 0)
    delayed = {"U": up, "D": (np.array([[True]]), np.array([1]), np.array([0]), 1)}
    W = window_poset(2, kinds, np.arange(2), delayed, window=2)
    mi, ji = _mi_ji(W.poset)
    real = {(0, 1), (1, 1), (0, 2), (1, 2)}
    assert _real(W.poset, mi) == real and _real(W.poset, ji) == real
    assert W.merged == ()
    instant = {"U": up, "D": (np.array([[True]]), np.array([1]), np.array([0]), 0)}
    W2 = window_poset(2, kinds, np.arange(2), instant, window=2, trim=False)
    assert W2.merged == (((0, 1), (1, 1)), ((0, 2), (1, 2)))


def test_window_must_be_positive():
    with pytest.raises(ns.InvalidParameterError, match="'window' parameter of window_poset"):
        window_poset(3, E5_KINDS, np.arange(3), E5_BLOCKS, window=0)

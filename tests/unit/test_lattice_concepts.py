"""Concept enumeration and cover relation against the spec's examples and brute force."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.lattice import FormalContext, concept_lattice
from tests.oracles.naive_lattice import naive_concepts, naive_covers


def _context_from_extents(extents: list[set[int]], n_objects: int) -> np.ndarray:
    inc = np.zeros((n_objects, len(extents)), dtype=bool)
    for m, ext in enumerate(extents):
        inc[sorted(ext), m] = True
    return inc


def _as_sets(L):
    got = {
        (frozenset(np.flatnonzero(e).tolist()), frozenset(np.flatnonzero(t).tolist()))
        for e, t in zip(L.extents, L.intents)
    }
    covers = {
        (
            frozenset(np.flatnonzero(L.extents[a]).tolist()),
            frozenset(np.flatnonzero(L.extents[b]).tolist()),
        )
        for a, b in L.covers
    }
    return got, covers


def _random_context(rng, max_side=6):
    g, m = rng.integers(1, max_side + 1, size=2)
    inc = rng.random((g, m)) < rng.uniform(0.2, 0.8)
    # corner cases: duplicate, empty and full columns / rows
    if m > 1 and rng.random() < 0.3:
        inc[:, -1] = inc[:, 0]
    if rng.random() < 0.2:
        inc[:, rng.integers(m)] = False
    if rng.random() < 0.2:
        inc[:, rng.integers(m)] = True
    if g > 1 and rng.random() < 0.2:
        inc[-1] = inc[0]
    return inc


def test_diamond_c1_has_four_concepts():
    inc = _context_from_extents([{0, 1}, {1, 2}, {1}, {0, 1, 2}], 3)
    L = concept_lattice(FormalContext(inc))
    got, _ = _as_sets(L)
    assert got == {
        (frozenset({1}), frozenset({0, 1, 2, 3})),
        (frozenset({0, 1}), frozenset({0, 3})),
        (frozenset({1, 2}), frozenset({1, 3})),
        (frozenset({0, 1, 2}), frozenset({3})),
    }
    assert sorted(L.n_upper_covers.tolist()) == [0, 1, 1, 2]


def test_diamond_duplicate_attribute_keeps_four_concepts():
    inc = _context_from_extents([{0, 1}, {1, 2}, {1}, {0, 1, 2}, {0, 1}], 3)
    L = concept_lattice(FormalContext(inc))
    assert len(L) == 4
    assert L.attribute_concepts[0] == L.attribute_concepts[4]


def test_pentagon_c2_extents_and_covers():
    inc = _context_from_extents([{0}, {0, 1}, {2}], 3)
    L = concept_lattice(FormalContext(inc))
    exts = {frozenset(np.flatnonzero(e).tolist()) for e in L.extents}
    assert exts == {
        frozenset(),
        frozenset({0}),
        frozenset({2}),
        frozenset({0, 1}),
        frozenset({0, 1, 2}),
    }
    middle = [i for i in range(len(L)) if i not in (L.bottom, L.top)]
    assert all(L.n_upper_covers[i] == 1 and L.n_lower_covers[i] == 1 for i in middle)


def test_bottom_is_first_and_top_is_last():
    L = concept_lattice(FormalContext([[1, 0], [0, 1], [1, 1]]))
    assert L.extents[L.top].all()
    assert L.extents[L.bottom].sum() == L.extents.sum(axis=1).min()


@pytest.mark.parametrize("batch", range(6))
def test_concepts_and_covers_match_brute_force(batch, seed):
    rng = np.random.default_rng([seed, batch])
    for _ in range(40):
        inc = _random_context(rng)
        L = concept_lattice(FormalContext(inc))
        want = naive_concepts(inc)
        got, covers = _as_sets(L)
        assert got == want
        assert covers == naive_covers(want)


@pytest.mark.parametrize("shape", [(70, 9), (9, 70), (130, 11)])
def test_multiword_bitsets_match_brute_force(shape, seed):
    rng = np.random.default_rng(seed)
    inc = rng.random(shape) < 0.5
    got, covers = _as_sets(concept_lattice(FormalContext(inc), max_concepts=100_000))
    if shape[0] <= shape[1]:  # brute force over the smaller side
        want = naive_concepts(inc)
    else:
        want = {(b, a) for a, b in naive_concepts(inc.T)}
    assert got == want
    # every extent is closed: A = A''
    for A, B in got:
        cols = inc[:, sorted(B)] if B else np.ones((inc.shape[0], 0), bool)
        assert set(np.flatnonzero(cols.all(axis=1)).tolist()) == set(A)
    assert len(covers) >= len(got) - 1


def test_meet_and_join_of_atoms():
    L = concept_lattice(FormalContext([[1, 0], [0, 1]]))
    assert L.meet(1, 2) == L.bottom and L.join(1, 2) == L.top
    assert L.leq(L.bottom, L.top) and not L.leq(L.top, L.bottom)


def test_budget_exceeded_raises_graph_error():
    inc = ~np.eye(12, dtype=bool)  # the contranominal scale: 2**12 concepts
    with pytest.raises(ns.GraphError, match="max_concepts=100"):
        concept_lattice(FormalContext(inc), max_concepts=100)
    assert len(concept_lattice(FormalContext(inc), max_concepts=4096)) == 4096


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_bad_budget_is_rejected(bad):
    with pytest.raises(
        ns.InvalidParameterError, match="'max_concepts' parameter of concept_lattice"
    ):
        concept_lattice(FormalContext([[1]]), max_concepts=bad)


def test_wrong_context_type_is_rejected():
    with pytest.raises(ns.InvalidParameterError, match="FormalContext or Poset"):
        concept_lattice(np.ones((2, 2), bool))


def test_to_networkx_is_the_hasse_diagram():
    L = concept_lattice(FormalContext([[1, 0], [0, 1]], objects="ab", attributes="xy"))
    H = L.to_networkx()
    assert H.number_of_nodes() == 4 and H.number_of_edges() == 4
    assert H.nodes[L.top]["extent"] == ("a", "b")

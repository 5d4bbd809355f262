"""Meet/join irreducibles from the context, against the spec's examples and brute force."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.lattice import (
    FormalContext,
    concept_lattice,
    join_irreducibles,
    level_cuts,
    meet_irreducibles,
    persistence,
)
from tests.oracles.naive_lattice import (
    naive_join_irreducible_objects,
    naive_meet_irreducible_attributes,
)

C3_W = np.array([[0.90, 0.80, 0.10], [0.20, 0.70, 0.60], [0.05, 0.75, 0.30]])


def _ctx(extents, n_objects, **kw):
    inc = np.zeros((n_objects, len(extents)), dtype=bool)
    for m, ext in enumerate(extents):
        inc[sorted(ext), m] = True
    return FormalContext(inc, **kw)


def test_diamond_c1_irreducibles():
    K = _ctx(
        [{0, 1}, {1, 2}, {1}, {0, 1, 2}],
        3,
        objects=["x1", "x2", "x3"],
        attributes=["y1", "y2", "y3", "y4"],
    )
    mi = meet_irreducibles(K)
    assert mi.elements == ("y1", "y2")
    assert mi.cover_of("y1").all() and mi.cover_of("y2").all()
    assert join_irreducibles(K).elements == ("x1", "x3")


def test_diamond_duplicate_attribute_shares_the_mi_concept():
    K = _ctx([{0, 1}, {1, 2}, {1}, {0, 1, 2}, {0, 1}], 3)
    mi = meet_irreducibles(K)
    assert mi.elements == (0, 1, 4)
    assert mi.groups[4] == mi.groups[0] == 0


def test_pentagon_c2_irreducibles_and_cover_extents():
    K = _ctx([{0}, {0, 1}, {2}], 3, attributes=["m1", "m2", "m3"])
    mi = meet_irreducibles(K)
    assert mi.elements == ("m1", "m2", "m3")
    assert mi.cover_of("m1").tolist() == [True, True, False]
    assert mi.cover_of("m2").all() and mi.cover_of("m3").all()
    assert join_irreducibles(K).n_irreducible == 3


@pytest.mark.parametrize(
    ("tau", "mi", "ji"),
    [
        (0.15, (0, 2), (0, 2)),
        (0.25, (0, 1, 2), (0, 2)),
        (0.50, (0, 1), (0, 2)),
        (0.75, (0, 1, 2), (0, 1, 2)),
    ],
)
def test_level_cuts_c3_table(tau, mi, ji):
    (K,) = level_cuts(C3_W, [tau])
    assert meet_irreducibles(K).elements == mi
    assert join_irreducibles(K).elements == ji


def test_c3_persistence():
    p = persistence(level_cuts(C3_W, [0.15, 0.25, 0.5]))
    np.testing.assert_allclose(p, [1.0, 2 / 3, 2 / 3])


def test_full_column_is_never_meet_irreducible():
    K = FormalContext([[1, 1], [0, 1]])
    assert meet_irreducibles(K).mask.tolist() == [True, False]


def _random_context(rng):
    g, m = rng.integers(1, 7, size=2)
    inc = rng.random((g, m)) < rng.uniform(0.2, 0.8)
    if m > 1 and rng.random() < 0.3:
        inc[:, -1] = inc[:, 0]
    if rng.random() < 0.2:
        inc[:, rng.integers(m)] = False
    if rng.random() < 0.2:
        inc[:, rng.integers(m)] = True
    return inc


@pytest.mark.parametrize("batch", range(4))
def test_fast_test_matches_cover_counting(batch, seed):
    rng = np.random.default_rng([seed, 100 + batch])
    for _ in range(100):
        inc = _random_context(rng)
        K = FormalContext(inc)
        mi, ji = meet_irreducibles(K), join_irreducibles(K)
        want_mi = naive_meet_irreducible_attributes(inc)
        want_ji = naive_join_irreducible_objects(inc)
        assert set(np.flatnonzero(mi.mask).tolist()) == set(want_mi)
        assert set(np.flatnonzero(ji.mask).tolist()) == set(want_ji)
        for m, ext in want_mi.items():
            assert set(np.flatnonzero(mi.cover[m]).tolist()) == set(ext)
        for g, itt in want_ji.items():
            assert set(np.flatnonzero(ji.cover[g]).tolist()) == set(itt)


def test_fast_test_matches_enumerated_lattice_on_wide_context(seed):
    rng = np.random.default_rng(seed)
    base = rng.random((80, 30)) < 0.3
    ands = base[:, 0:10] & base[:, 10:20]  # intersections: usually meet-reducible
    inc = np.concatenate([base, ands, base[:, :2], np.ones((80, 1), bool)], axis=1)
    inc[:5] = rng.random((5, inc.shape[1])) < 0.8
    K = FormalContext(inc)
    L = concept_lattice(K, max_concepts=200_000)
    mi = meet_irreducibles(K)
    mi_concepts = set(L.meet_irreducible_concepts().tolist())
    assert set(L.attribute_concepts[mi.mask].tolist()) == mi_concepts
    for m in np.flatnonzero(mi.mask):
        (up,) = L.upper_covers(L.attribute_concepts[m])
        assert np.array_equal(L.extents[up], mi.cover[m])
    ji = join_irreducibles(K)
    assert set(L.object_concepts[ji.mask].tolist()) == set(L.join_irreducible_concepts().tolist())


def test_transpose_swaps_meet_and_join():
    rng = np.random.default_rng(3)
    K = FormalContext(rng.random((8, 6)) < 0.5)
    assert np.array_equal(meet_irreducibles(K).mask, join_irreducibles(K.transpose()).mask)


def test_cover_of_a_reducible_element_is_an_error():
    K = FormalContext([[1, 1], [0, 1]])
    with pytest.raises(ns.InvalidParameterError, match="meet-irreducible"):
        meet_irreducibles(K).cover_of(1)


def test_wrong_input_type_is_rejected():
    with pytest.raises(ns.InvalidParameterError, match="'context' parameter of meet_irreducibles"):
        meet_irreducibles([[1, 0]])


def test_persistence_rejects_bad_kind():
    with pytest.raises(ns.InvalidParameterError, match="'kind' parameter of persistence"):
        persistence(level_cuts(C3_W, [0.5]), kind="both")


def test_unknown_backend_is_rejected():
    with pytest.raises(ns.InvalidParameterError, match="backend"):
        meet_irreducibles(FormalContext([[1]]), backend="opencl")

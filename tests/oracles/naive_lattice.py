"""Brute-force references for netstruct.lattice (itertools over all subsets; tiny inputs only).

Everything here follows the textbook definitions directly, with no bitsets and no cleverness:
concepts are the closed subsets of objects, covers are pairs with nothing strictly between,
irreducibles are counted covers, and Dedekind–MacNeille cuts are subsets A with A = L(U(A)).
"""

from __future__ import annotations

from itertools import chain, combinations

import numpy as np

Concept = tuple[frozenset, frozenset]


def _powerset(items):
    items = list(items)
    return chain.from_iterable(combinations(items, r) for r in range(len(items) + 1))


def intent(inc: np.ndarray, objs) -> frozenset:
    """A' = attributes shared by all objects in A (all attributes when A is empty)."""
    return frozenset(m for m in range(inc.shape[1]) if all(inc[g, m] for g in objs))


def extent(inc: np.ndarray, atts) -> frozenset:
    """B' = objects having all attributes in B (all objects when B is empty)."""
    return frozenset(g for g in range(inc.shape[0]) if all(inc[g, m] for m in atts))


def naive_concepts(inc: np.ndarray) -> set[Concept]:
    """Every concept (A, B), by closing every subset of objects."""
    inc = np.asarray(inc, dtype=bool)
    out = set()
    for objs in _powerset(range(inc.shape[0])):
        B = intent(inc, objs)
        A = extent(inc, B)
        out.add((A, B))
    return out


def naive_covers(concepts: set[Concept]) -> set[tuple[frozenset, frozenset]]:
    """(lower extent, upper extent) pairs with nothing strictly in between."""
    exts = [A for A, _ in concepts]
    out = set()
    for a in exts:
        for b in exts:
            if a < b and not any(a < c < b for c in exts):
                out.add((a, b))
    return out


def naive_meet_irreducible_attributes(inc: np.ndarray) -> dict[int, frozenset]:
    """Attribute -> extent of the unique upper cover, for attributes whose concept has one."""
    inc = np.asarray(inc, dtype=bool)
    covers = naive_covers(naive_concepts(inc))
    out = {}
    for m in range(inc.shape[1]):
        ext_m = extent(inc, [m])
        ups = [b for a, b in covers if a == ext_m]
        if len(ups) == 1:
            out[m] = ups[0]
    return out


def naive_join_irreducible_objects(inc: np.ndarray) -> dict[int, frozenset]:
    """Object -> intent of the unique lower cover, for objects whose concept has one."""
    return naive_meet_irreducible_attributes(np.asarray(inc, dtype=bool).T)


def naive_leq(n: int, edges) -> np.ndarray:
    """Reflexive-transitive closure of a DAG by repeated relaxation: L[x, y] = x <= y."""
    L = np.eye(n, dtype=bool)
    for u, v in edges:
        L[u, v] = True
    changed = True
    while changed:
        changed = False
        for x in range(n):
            for y in range(n):
                if L[x, y]:
                    for z in range(n):
                        if L[y, z] and not L[x, z]:
                            L[x, z] = True
                            changed = True
    return L


def naive_dm_cuts(L: np.ndarray) -> set[frozenset]:
    """Dedekind–MacNeille cuts: subsets A of P with A = L(U(A))."""
    n = L.shape[0]
    cuts = set()
    for A in _powerset(range(n)):
        U = [y for y in range(n) if all(L[a, y] for a in A)]
        LU = frozenset(x for x in range(n) if all(L[x, u] for u in U))
        if LU == frozenset(A):
            cuts.add(LU)
    return cuts


def naive_dm_irreducibles(L: np.ndarray) -> tuple[set[int], set[int]]:
    """(MI, JI) elements of DM(P): elements whose principal cut has one upper / lower cover."""
    n = L.shape[0]
    cuts = naive_dm_cuts(L)
    pairs = naive_covers({(c, frozenset()) for c in cuts})
    mi, ji = set(), set()
    for x in range(n):
        down = frozenset(y for y in range(n) if L[y, x])
        if sum(1 for a, _ in pairs if a == down) == 1:
            mi.add(x)
        if sum(1 for _, b in pairs if b == down) == 1:
            ji.add(x)
    return mi, ji


def naive_unique_upper_cover(L: np.ndarray) -> set[int]:
    """The 'naive' criterion: elements with exactly one upper cover in P itself."""
    n = L.shape[0]
    out = set()
    for x in range(n):
        ups = [y for y in range(n) if y != x and L[x, y]]
        cov = [y for y in ups if not any(z != y and L[z, y] for z in ups)]
        if len(cov) == 1:
            out.add(x)
    return out

"""Unit-level scores behind lattice pruning (private): irreducibility and data dependence.

``_irreducible_units`` turns binary unit-level blocks into per-node meet/join flags, either
from each block's formal context or from the bounded, trimmed window poset (spec §2.5 and
§2.8 ``irreducible_units``). ``_drop_independent`` implements structured pruning: hidden
units that no input reaches any more through kept connections carry no information about
the data, so they are removed whole (their readout columns too) and ``shrink`` can drop them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse import csgraph

from .adjacency import unit_map
from .context import FormalContext
from .irreducibles import join_irreducibles, meet_irreducibles
from .result import _unit_ids
from .window import window_poset


def _irreducible_units(G, binary, construction, irreducible, window, blocks_all):
    """Per-node (meet, join, cover size) flags from the chosen construction."""
    n = G.n_nodes
    meet = np.zeros(n, dtype=bool)
    join = np.zeros(n, dtype=bool)
    cover = -np.ones(n, dtype=np.int64)
    dead = np.zeros(n, dtype=bool)
    if construction == "block_context":
        for i, B in binary.items():
            um = unit_map(G, i)
            if not B.any():
                continue
            K = FormalContext(B.T)
            mi, ji = meet_irreducibles(K), join_irreducibles(K)
            meet[um.post_units[mi.mask]] = True
            join[um.pre_units[ji.mask]] = True
            sizes = mi.cover.sum(axis=1)
            np.maximum.at(cover, um.post_units[mi.mask], sizes[mi.mask])
    else:
        kinds = G.node_column("kind")
        spec = {}
        for i, B in blocks_all.items():
            um = unit_map(G, i)
            spec[G.blocks[i].name] = (B, um.pre_units, um.post_units, G.blocks[i].delay)
        W = window_poset(n, kinds, _unit_ids(G), spec, window=window)
        P = W.poset
        mi, ji = meet_irreducibles(P), join_irreducibles(P)
        interior = (W.t >= 2) & (W.t <= window - 1) if window >= 3 else np.ones(len(P), bool)
        real = ~W.virtual & interior
        meet[W.unit[real & mi.mask]] = True
        join[W.unit[real & ji.mask]] = True
        sizes = mi.cover.sum(axis=1)
        sel = real & mi.mask
        np.maximum.at(cover, W.unit[sel], sizes[sel])
        dead = W.dead
    which = {"meet": meet, "join": join, "either": meet | join}[irreducible]
    unit = G.node_column("unit")
    return which[unit], meet[unit], join[unit], cover[unit], dead[unit]


def _drop_independent(
    G: Any, keep: dict[int, NDArray[np.bool_]]
) -> tuple[dict[int, NDArray[np.bool_]], dict[int, NDArray[np.bool_]], NDArray[np.bool_]]:
    """Remove hidden units no input unit reaches through kept connections.

    Returns the updated unit-level keep masks, entry-level masks of the other (readout)
    blocks with the removed units' columns cleared, and the per-node "removed" flags.
    """
    n = G.n_nodes
    unit = G.node_column("unit")
    kind = G.node_column("kind")
    src, dst = [], []
    for i, K in keep.items():
        um = unit_map(G, i)
        r, c = np.nonzero(K)
        src.append(um.pre_units[c])
        dst.append(um.post_units[r])
    s = np.concatenate(src) if src else np.zeros(0, np.int64)
    d = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    root = n  # virtual source above every input unit
    inputs = np.flatnonzero((kind == "input") & (unit == np.arange(n)))
    rows = np.concatenate([s, np.full(inputs.size, root)])
    cols = np.concatenate([d, inputs])
    adj = sp.csr_array((np.ones(rows.size, np.int8), (rows, cols)), shape=(n + 1, n + 1))
    seen = np.zeros(n + 1, dtype=bool)
    seen[csgraph.breadth_first_order(adj, root, directed=True, return_predecessors=False)] = True
    removed_unit = (kind == "hidden") & (unit == np.arange(n)) & ~seen[:n]
    new = {}
    for i, K in keep.items():
        um = unit_map(G, i)
        K = K.copy()
        K[removed_unit[um.post_units], :] = False
        K[:, removed_unit[um.pre_units]] = False
        new[i] = K
    extra = {}
    for i, b in enumerate(G.blocks):
        if i in keep:
            continue
        cut = removed_unit[unit[b.sources]]
        if cut.any():
            m = np.ones(b.mask.shape, dtype=bool)
            m[:, cut] = False
            extra[i] = m
    return new, extra, removed_unit[unit]

"""Structured groups of a graph: removable coupling groups, their kinds and block incidence.

Private helpers shared by :mod:`netstruct.pruning.structured` and
:mod:`netstruct.pruning.importance` (inputs already validated).
"""

from __future__ import annotations

import re

import numpy as np

from ..graphs._derived import structural
from ..graphs.signed import SignedGraph
from .counts import _is_lookup, _totals

_HEAD = re.compile(r"^[a-z]+\d+$")


def _group_arrays(
    G: SignedGraph, norm_width: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cgroup`` per node, the ids of the removable groups and each one's family.

    ``norm_width``: also the groups a LayerNorm/RMSNorm's statistics read (a transformer's
    residual-stream dimensions), which removal takes out of those statistics.
    """
    from ..convert.shrink import _State

    key = _CACHE_KEY + ("_norm_width" if norm_width else "")
    store = structural(G)
    cached = store.get(key)
    if cached is None:  # graphs are immutable: computed once per graph (read-only arrays)
        st = _State.of(G)
        cg = st.cgroup
        gids = np.unique(cg[st.candidate | st.norm_width if norm_width else st.candidate])
        family = G.node_column("group")[gids]  # a group's id is its smallest node: its first unit
        for a in (cg, gids, family):
            a.setflags(write=False)
        cached = store[key] = (cg, gids, family)
    return cached


_CACHE_KEY = "group_arrays"


def _kinds(G: SignedGraph, cg: np.ndarray, gids: np.ndarray) -> np.ndarray:
    n = G.n_nodes
    flag = {k: np.zeros(n, dtype=bool) for k in ("skip", "dw", "conv", "emb")}
    for b in G.blocks:
        if b.kind == "skip":
            flag["skip"][b.targets] = True
        elif b.kernel is not None and b.layout.get("type") == "conv":
            flag["dw" if int(b.layout.get("groups", 1)) != 1 else "conv"][b.targets] = True
        elif _is_lookup(b):
            flag["emb"][b.targets] = True
    gate = G.node_column("gate")
    head = np.array([bool(_HEAD.match(str(g))) for g in gate], dtype=bool)
    rec = G.node_column("unit") != np.arange(n)

    def any_in(mask: np.ndarray) -> np.ndarray:
        return (np.bincount(cg[mask], minlength=n) > 0)[gids]

    from ..convert.layers import stat_norm_blocks

    stat = np.zeros(n, dtype=bool)
    for i in stat_norm_blocks(G):
        stat[G.blocks[i].sources] = True
    kinds = np.full(gids.size, "unit", dtype=object)
    for name, mask in (
        ("embedding", flag["emb"]),
        ("channel", flag["conv"]),
        ("depthwise", flag["dw"]),
        ("residual", flag["skip"]),
        ("recurrent", rec),
        ("head", head),
        ("norm-width", stat),
    ):
        kinds[any_in(mask)] = name
    return kinds


def _counting_arrays(G: SignedGraph, norm_width: bool = False) -> tuple[np.ndarray, ...]:
    """``coef, r0, c0, R, C`` for counting parameters and MACs after removing groups.

    ``coef``: :func:`~netstruct.pruning.counts._coefficients`; ``r0, c0``: every block's rows
    and columns; ``R, C``: :func:`_incidence` of the groups of :func:`_group_arrays`. All
    depend on the structure alone: kept with it (read-only arrays).
    """
    from .counts import _coefficients, _kept

    key = _COUNTING_KEY + ("_norm_width" if norm_width else "")
    store = structural(G)
    cached = store.get(key)
    if cached is None:
        cg, gids, _ = _group_arrays(G, norm_width)
        cached = (_coefficients(G), *_kept(G), *_incidence(G, cg, gids))
        for a in cached:
            a.setflags(write=False)
        store[key] = cached
    return cached


_COUNTING_KEY = "counting_arrays"


def _incidence(G: SignedGraph, cg: np.ndarray, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n_groups, n_blocks)`` counts of each group's rows and columns in every block."""
    pos = np.full(G.n_nodes, -1, dtype=np.int64)
    pos[gids] = np.arange(gids.size)
    R = np.zeros((gids.size, len(G.blocks)))
    C = np.zeros_like(R)
    for i, b in enumerate(G.blocks):
        for ids, M in ((b.targets, R), (b.sources, C)):
            g = pos[cg[ids]]
            g = g[g >= 0]
            if g.size:
                M[:, i] = np.bincount(g, minlength=gids.size)
    return R, C


def _counts_after(coef, pos, seq, r0, c0, R, C, removed: np.ndarray) -> tuple[float, float]:
    z = removed.astype(np.float64)
    p, m = _totals(coef, pos, seq, r0 - z @ R, c0 - z @ C)
    return float(p.sum()), float(np.nansum(m))

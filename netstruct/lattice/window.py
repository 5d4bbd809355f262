"""The time-unrolled poset of a recurrent graph over a short window, bounded and trimmed.

Elements are (unit, t) for t = 1..window: input units at every step, hidden units at every
step, output (readout) units at the last step only (a classifier reads h_T). A block with
delay 0 links (j, t) -> (i, t); a recurrent block (delay 1) links (j, t-1) -> (i, t), so the
unrolled graph is a DAG whenever every feedback loop has a delay. Instantaneous loops are
merged by the strongly connected component quotient, and the merge is reported.

Bounding adds a virtual ⊥ below every input and every slice-1 hidden element and a virtual ⊤
above every readout element (or every slice-T hidden element when there is no readout).
Trimming removes *dead* elements: those not above ⊥ or not below ⊤ (spec §2.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse import csgraph

from ..exceptions import param_error
from ..utils.validation import check_scalar
from .poset import Poset, _sweep

__all__ = ["WindowPoset", "window_poset"]

BOTTOM = -1
TOP = -2


@dataclass(frozen=True)
class WindowPoset:
    """An unrolled, optionally bounded and trimmed poset of units.

    Attributes
    ----------
    poset : Poset
        Labels are ``(unit, t)`` pairs (``("⊥", 0)`` and ``("⊤", window + 1)`` for the
        virtual bounds); after an SCC quotient, a label is a tuple of such pairs.
    unit : ndarray of int64
        Unit node id of each element (-1 for ⊥, -2 for ⊤, the first member after merging).
    t : ndarray of int64
        Time step of each element.
    virtual : ndarray of bool
        True for ⊥ and ⊤.
    dead : ndarray of bool, shape (n_units_in_graph,)
        Units (node ids) with no live copy in the window (trimmed everywhere).
    merged : tuple of tuple
        Groups of (unit, t) elements merged because of instantaneous cycles.
    window : int
    """

    poset: Poset
    unit: NDArray[np.int64]
    t: NDArray[np.int64]
    virtual: NDArray[np.bool_]
    dead: NDArray[np.bool_]
    merged: tuple[tuple[tuple[int, int], ...], ...]
    window: int


def window_poset(
    n_nodes: int,
    kinds: NDArray[Any],
    units: NDArray[np.int64],
    blocks: Mapping[str, tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.int64], int]],
    *,
    window: int = 3,
    bounded: bool = True,
    trim: bool = True,
) -> WindowPoset:
    """Unroll unit-level binary blocks over ``window`` steps into a poset.

    Parameters
    ----------
    n_nodes : int
        Number of nodes of the graph (unit ids are node ids < n_nodes).
    kinds : ndarray of str, shape (n_nodes,)
        Node kinds (``input``, ``hidden``, ``output``).
    units : ndarray of int64
        The unit node ids taking part (gate nodes excluded).
    blocks : mapping name -> (B, pre_units, post_units, delay)
        Binary unit-level adjacency ``B`` (post x pre) of each block.
    window : int, default=3
    bounded : bool, default=True
        Add the virtual ⊥ and ⊤.
    trim : bool, default=True
        Remove dead elements before building the poset.

    Returns
    -------
    WindowPoset

    Examples
    --------
    The spec's E5 (H = 2, window 2): trimming removes the isolated h2 at t = 1.

    >>> import numpy as np, netstruct as ns
    >>> kinds = np.array(["input", "hidden", "hidden"])
    >>> blocks = {"ih": (np.array([[True], [False]]), np.array([0]), np.array([1, 2]), 0),
    ...           "hh": (np.array([[True, False], [True, False]]), np.array([1, 2]), np.array([1, 2]), 1)}
    >>> W = ns.lattice.window_poset(3, kinds, np.arange(3), blocks, window=2)
    >>> len(W.poset), W.dead.tolist()
    (7, [False, False, False])
    """
    func = "window_poset"
    T = int(check_scalar(window, "window", func, kind=int, min_value=1))
    kinds = np.asarray(kinds).astype(str)
    units = np.asarray(units, dtype=np.int64)
    # element table: inputs and hidden at every step, outputs at the last step
    el_unit: list[int] = []
    el_t: list[int] = []
    index = -np.ones((n_nodes, T + 1), dtype=np.int64)
    for t in range(1, T + 1):
        for u in units.tolist():
            if kinds[u] == "output" and t != T:
                continue
            index[u, t] = len(el_unit)
            el_unit.append(u)
            el_t.append(t)
    n = len(el_unit)
    if n == 0:
        raise param_error("units", func, "a non-empty set of unit node ids", units)
    src_l, dst_l = [], []
    for B, pre, post, delay in blocks.values():
        ii, jj = np.nonzero(B)
        for t in range(1 + delay, T + 1):
            a = index[pre[jj], t - delay]
            b = index[post[ii], t]
            ok = (a >= 0) & (b >= 0)
            src_l.append(a[ok])
            dst_l.append(b[ok])
    src = np.concatenate(src_l) if src_l else np.zeros(0, np.int64)
    dst = np.concatenate(dst_l) if dst_l else np.zeros(0, np.int64)
    el_unit_a = np.asarray(el_unit, dtype=np.int64)
    el_t_a = np.asarray(el_t, dtype=np.int64)
    ekind = kinds[el_unit_a]
    sources = (ekind == "input") | ((ekind != "output") & (el_t_a == 1))
    has_out = bool((ekind == "output").any())
    sinks = (ekind == "output") if has_out else ((ekind != "input") & (el_t_a == T))
    # liveness with the virtual bounds (dead = not above ⊥ or not below ⊤)
    adj = sp.csr_array((np.ones(src.size, np.int8), (src, dst)), shape=(n, n))
    alive = _reach(adj, sources) & _reach(adj.T.tocsr(), sinks)
    keep = alive if trim else np.ones(n, dtype=bool)
    dead = np.zeros(n_nodes, dtype=bool)
    live_units = np.unique(el_unit_a[alive])
    dead[units] = True
    dead[live_units] = False
    # restrict to kept elements
    new_id = -np.ones(n, dtype=np.int64)
    new_id[keep] = np.arange(int(keep.sum()))
    ok = keep[src] & keep[dst]
    src, dst = new_id[src[ok]], new_id[dst[ok]]
    el_unit_a, el_t_a = el_unit_a[keep], el_t_a[keep]
    sources, sinks = sources[keep], sinks[keep]
    m = el_unit_a.size
    # SCC quotient for instantaneous loops
    adj = sp.csr_array((np.ones(src.size, np.int8), (src, dst)), shape=(m, m))
    n_comp, comp = csgraph.connected_components(adj, directed=True, connection="strong")
    # number components by their first element, so labels follow the (t, unit) table order
    _, first_idx = np.unique(comp, return_index=True)
    relabel = np.empty(n_comp, dtype=np.int64)
    relabel[np.argsort(first_idx, kind="stable")] = np.arange(n_comp)
    comp = relabel[comp]
    merged: list[tuple[tuple[int, int], ...]] = []
    labels: list[Any] = []
    rep = np.zeros(n_comp, dtype=np.int64)
    first = np.full(n_comp, -1, dtype=np.int64)
    for e in range(m):
        if first[comp[e]] < 0:
            first[comp[e]] = e
    for c in range(n_comp):
        members = np.flatnonzero(comp == c)
        rep[c] = first[c]
        if members.size > 1:
            grp = tuple((int(el_unit_a[e]), int(el_t_a[e])) for e in members)
            merged.append(grp)
            labels.append(grp)
        else:
            labels.append((int(el_unit_a[first[c]]), int(el_t_a[first[c]])))
    csrc, cdst = comp[src], comp[dst]
    ok = csrc != cdst
    csrc, cdst = csrc[ok], cdst[ok]
    c_unit, c_t = el_unit_a[rep], el_t_a[rep]
    c_sources = np.zeros(n_comp, bool)
    c_sinks = np.zeros(n_comp, bool)
    np.logical_or.at(c_sources, comp, sources)
    np.logical_or.at(c_sinks, comp, sinks)
    virtual = np.zeros(n_comp, dtype=bool)
    if bounded:
        bot, top = n_comp, n_comp + 1
        s_ids, t_ids = np.flatnonzero(c_sources), np.flatnonzero(c_sinks)
        csrc = np.concatenate([csrc, np.full(s_ids.size, bot), t_ids, [bot]])
        cdst = np.concatenate([cdst, s_ids, np.full(t_ids.size, top), [top]])
        labels += [("⊥", 0), ("⊤", T + 1)]
        c_unit = np.concatenate([c_unit, [BOTTOM, TOP]])
        c_t = np.concatenate([c_t, [0, T + 1]])
        virtual = np.concatenate([virtual, [True, True]])
    labs = tuple(labels)
    down, up, order = _sweep(len(labs), csrc.astype(np.int64), cdst.astype(np.int64), labs)
    P = Poset(labs, down, up, order, np.stack([csrc, cdst], axis=1).astype(np.int64).reshape(-1, 2))
    return WindowPoset(
        P, c_unit.astype(np.int64), c_t.astype(np.int64), virtual, dead, tuple(merged), T
    )


def _reach(adj: sp.csr_array, seeds: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Elements reachable from any seed (seeds included), by BFS from a virtual root."""
    n = adj.shape[0]
    coo = adj.tocoo()
    s = np.flatnonzero(seeds)
    rows = np.concatenate([coo.row, np.full(s.size, n)]).astype(np.int64)
    cols = np.concatenate([coo.col, s]).astype(np.int64)
    big = sp.csr_array((np.ones(rows.size, np.int8), (rows, cols)), shape=(n + 1, n + 1))
    order = csgraph.breadth_first_order(big, n, directed=True, return_predecessors=False)
    out = np.zeros(n + 1, dtype=bool)
    out[order] = True
    return out[:n]

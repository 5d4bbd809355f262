"""Unit-level adjacency of a weight block: gate rows aggregated to the unit they belong to.

An LSTM or GRU unit is one poset element; its gate pre-activations are internal to it. The
node table's ``unit`` column says which unit each gate row belongs to, so aggregation never
depends on a hard-coded parameter layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..exceptions import param_error
from ..utils.validation import check_choice, check_graph

__all__ = ["unit_adjacency", "UnitMap", "unit_map"]


@dataclass(frozen=True)
class UnitMap:
    """How the rows and columns of a block map to units.

    Attributes
    ----------
    pre_units, post_units : ndarray of int64
        Unit node ids of the columns and rows of the unit-level matrix, in first-seen order.
    row_to_post : ndarray of int64, shape (n_out,)
        For each row of the block, its index in ``post_units``.
    col_to_pre : ndarray of int64, shape (n_in,)
        For each column of the block, its index in ``pre_units``.
    """

    pre_units: NDArray[np.int64]
    post_units: NDArray[np.int64]
    row_to_post: NDArray[np.int64]
    col_to_pre: NDArray[np.int64]

    def expand(self, unit_mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Expand a unit-level (post x pre) mask to the block's entries (every gate row)."""
        return np.asarray(unit_mask, dtype=bool)[np.ix_(self.row_to_post, self.col_to_pre)]


def _first_seen(ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order].astype(np.int64), rank[inv.ravel()].astype(np.int64)


def unit_map(G: Any, block: int | str) -> UnitMap:
    """The row/column -> unit maps of ``block`` (inputs already validated by the caller)."""
    b = G.block(block)
    unit = G.node_column("unit")
    post_units, row_to_post = _first_seen(unit[b.targets])
    pre_units, col_to_pre = _first_seen(unit[b.sources])
    return UnitMap(pre_units, post_units, row_to_post, col_to_pre)


def unit_adjacency(
    G: Any, block: int | str, *, aggregate: str = "max"
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Unit-level connection strengths of one block (post x pre, non-negative).

    Parameters
    ----------
    G : SignedGraph
    block : int or str
        Block position or name.
    aggregate : {"max", "l2"}, default="max"
        How the gate rows of a unit (and, if sources are gates, the source gates) combine:
        ``max |w|`` or the Euclidean norm. Pruned entries count as 0.

    Returns
    -------
    A : ndarray of float64, shape (n_post_units, n_pre_units)
    pre_units, post_units : ndarray of int64
        Unit node ids of the columns and rows of ``A``.

    Examples
    --------
    The spec's A1 example: an LSTM ``weight_hh`` with H = 2, rows in gate order i, f, g, o.

    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[0.1, -0.5], [0.0, 0.2], [0.3, 0.0], [-0.9, 0.1],
    ...               [-0.2, 0.4], [0.05, 0.0], [0.0, 0.1], [0.6, -0.3]])
    >>> nodes = {"name": ["h0", "h1"] + [f"{g}{u}" for g in "ifgo" for u in (0, 1)],
    ...          "kind": ["hidden"] * 2 + ["gate"] * 8, "unit": [-1, -1] + [0, 1] * 4}
    >>> b = ns.make_block(name="w_hh", weight=W, sources=[0, 1], targets=range(2, 10), delay=1)
    >>> A, pre, post = ns.lattice.unit_adjacency(ns.SignedGraph(nodes, [b]), "w_hh")
    >>> A.round(2).tolist(), pre.tolist(), post.tolist()
    ([[0.3, 0.5], [0.9, 0.3]], [0, 1], [0, 1])
    """
    func = "unit_adjacency"
    check_graph(G, func)
    check_choice(aggregate, "aggregate", func, ["max", "l2"])
    if not isinstance(block, (int, np.integer, str)) or isinstance(block, bool):
        raise param_error("block", func, "a block position or name", block)
    b = G.block(block)
    um = unit_map(G, block)
    W = np.where(b.mask, np.abs(b.weight.astype(np.float64)), 0.0)
    A = np.zeros((um.post_units.size, um.pre_units.size), dtype=np.float64)
    r = np.repeat(um.row_to_post, W.shape[1])
    c = np.tile(um.col_to_pre, W.shape[0])
    if aggregate == "max":
        np.maximum.at(A, (r, c), W.ravel())
    else:
        np.add.at(A, (r, c), W.ravel() ** 2)
        A = np.sqrt(A)
    return A, um.pre_units, um.post_units

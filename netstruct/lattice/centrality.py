"""Centrality of units on the folded unit graph (spec §2.6), normalised to [0, 1].

The folded graph has one node per unit (gate rows belong to their unit) and one edge per
present unit-level connection of any block, weighted by the (binary or continuous)
adjacency. The paper's choice of centrality is unknown, so every common one is offered.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..exceptions import NetstructWarning, param_error
from ..utils.validation import check_choice, check_graph
from .adjacency import unit_map
from .result import _unit_ids

__all__ = ["unit_centrality", "CENTRALITIES"]

#: the centralities :func:`unit_centrality` (and ``lattice_prune``) accept
CENTRALITIES = ("degree", "eigenvector", "pagerank", "betweenness")


def _eigenvector(
    W: sp.csr_array, *, max_iter: int = 1000, tol: float = 1e-9
) -> NDArray[np.float64]:
    """In-edge ("left") eigenvector centrality by power iteration on ``I + W^T``.

    ``W`` is from x to. Same iteration, start vector and stopping rule as networkx's
    ``eigenvector_centrality`` (the shift by ``I`` makes it converge on bipartite-like
    graphs); the result is L2-normalised. Warns and returns the last iterate when it does not
    converge (e.g. on a graph without cycles, where the spectral radius is 0).
    """
    n = W.shape[0]
    WT = W.T.tocsr()
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        x_new = x + WT @ x
        norm = np.linalg.norm(x_new)
        x_new = x_new / norm if norm > 0 else x_new
        if np.abs(x_new - x).sum() < n * tol:
            return x_new
        x = x_new
    warnings.warn(
        f"unit_centrality: eigenvector centrality did not converge in {max_iter} iterations "
        "(a folded graph without cycles has spectral radius 0); the last iterate is used. "
        "Consider centrality='degree' or 'pagerank'.",
        NetstructWarning,
        stacklevel=3,
    )
    return x


def unit_centrality(
    G: Any, adjacency: dict[int, NDArray[np.float64]], kind: str = "degree"
) -> NDArray[np.float64]:
    """Centrality of every node on the folded unit graph, normalised to [0, 1].

    Parameters
    ----------
    G : SignedGraph
    adjacency : dict of block position to (post x pre) unit-level matrix
        Binary (degree) or weighted (strength) adjacency, e.g. from
        :func:`~netstruct.lattice.unit_adjacency`.
    kind : {"degree", "eigenvector", "pagerank", "betweenness"}, default="degree"
        ``degree``: in- plus out-degree (or strength, for weighted matrices).
        ``eigenvector``: in-edge eigenvector centrality by sparse power iteration (equal to
        networkx's ``eigenvector_centrality(weight="weight")`` up to the scaling).
        ``pagerank``, ``betweenness`` (unweighted, exact Brandes): via networkx.

    Returns
    -------
    ndarray of float64, shape (n_nodes,)
        Divided by the largest value; gate nodes get the value of their unit.

    Raises
    ------
    InvalidParameterError
        For an unknown ``kind`` or a matrix whose shape does not match its block.

    Examples
    --------
    A 3-cycle a -> b -> c -> a plus a -> c: c has the most in-flow.

    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[0, 0, 1], [1, 0, 0], [1, 1, 0]], dtype=float)  # post x pre
    >>> b = ns.make_block(name="hh", weight=W, sources=[0, 1, 2], targets=[0, 1, 2], delay=1)
    >>> G = ns.SignedGraph({"name": ["a", "b", "c"]}, [b])
    >>> ns.lattice.unit_centrality(G, {0: W}, "degree").round(2).tolist()
    [1.0, 0.67, 1.0]
    >>> ns.lattice.unit_centrality(G, {0: W}, "eigenvector").round(2).tolist()
    [0.75, 0.57, 1.0]
    """
    func = "unit_centrality"
    check_graph(G, func)
    check_choice(kind, "kind", func, CENTRALITIES)
    n = G.n_nodes
    maps = {}
    for i, A in adjacency.items():
        um = unit_map(G, i)
        if np.shape(A) != (um.post_units.size, um.pre_units.size):
            raise param_error(
                "adjacency",
                func,
                f"unit-level matrices matching their blocks (block {i}: "
                f"{(um.post_units.size, um.pre_units.size)})",
                f"shape {np.shape(A)}",
            )
        maps[i] = um
    score = np.zeros(n, dtype=np.float64)
    if kind == "degree":
        for i, A in adjacency.items():
            np.add.at(score, maps[i].post_units, A.sum(axis=1))
            np.add.at(score, maps[i].pre_units, A.sum(axis=0))
    elif kind == "eigenvector":
        rows, cols, vals = [], [], []
        for i, A in adjacency.items():
            r, c = np.nonzero(A)
            rows.append(maps[i].pre_units[c])
            cols.append(maps[i].post_units[r])
            vals.append(np.asarray(A, dtype=np.float64)[r, c])
        ids = _unit_ids(G)
        pos = -np.ones(n, dtype=np.int64)
        pos[ids] = np.arange(ids.size)
        src = pos[np.concatenate(rows)] if rows else np.zeros(0, np.int64)
        dst = pos[np.concatenate(cols)] if cols else np.zeros(0, np.int64)
        w = np.concatenate(vals) if vals else np.zeros(0)
        W = sp.csr_array((w, (src, dst)), shape=(ids.size, ids.size))
        score[ids] = _eigenvector(W)
    else:
        import networkx as nx

        H = nx.DiGraph()
        H.add_nodes_from(_unit_ids(G).tolist())
        for i, A in adjacency.items():
            um = maps[i]
            for r, c in zip(*np.nonzero(A)):
                H.add_edge(int(um.pre_units[c]), int(um.post_units[r]), weight=float(A[r, c]))
        if kind == "pagerank":
            d = nx.pagerank(H, weight="weight")
        else:
            d = nx.betweenness_centrality(H)
        for k, v in d.items():
            score[k] = v
    score = score[G.node_column("unit")]
    top = score.max()
    return score / top if top > 0 else score

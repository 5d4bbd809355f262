"""Structural balance of a network's undirected signed projection.

The *projection* joins two units when any block connects them (either direction; gate rows
count as their unit), with the sign of the summed weights; self-loops and pairs whose weights
cancel exactly are left out. On it:

* :func:`balance_ratio` -- the fraction of triangles and of 4-cycles whose sign product is
  positive, in closed form from traces of the signed adjacency (layered graphs without skip
  connections have no triangles, so their shortest cycles are the 4-cycles);
* :func:`frustration_index` -- the fewest edges whose removal makes the projection balanced,
  exact by enumeration on small components and otherwise bracketed by a local-search upper
  bound and a lower bound (edge-disjoint unbalanced cycles, and a spectral bound);
* :func:`sign_consistency` -- per block, how uniformly each node signs its edges and how well
  the block agrees with the frustration colouring.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.csgraph as csg
import scipy.sparse.linalg as spla

from ..backends import dispatch
from ..graphs.signed import SignedGraph
from ..utils.random import spawn_seeds
from ..utils.validation import check_choice, check_graph, check_scalar
from .maxent import _unit_graph

__all__ = [
    "sign_adjacency",
    "balance_ratio",
    "frustration_index",
    "FrustrationResult",
    "sign_consistency",
]


def sign_adjacency(G: SignedGraph, *, aggregate: str = "max") -> sp.csr_array:
    """The undirected ±1 sign adjacency of the units: a symmetric ``(n_nodes, n_nodes)`` int8 CSR array.

    The sign of the summed (gate-aggregated) weights between two units, both directions joined;
    :func:`netstruct.signed_projection` is the weighted projection used for communities.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> G = ns.SignedGraph({"name": list("abc")}, [ns.make_block(
    ...     name="fc", weight=np.array([[0.5, -2.0]]), sources=[0, 1], targets=[2])])
    >>> ns.sign_adjacency(G).toarray().tolist()
    [[0, 0, 1], [0, 0, -1], [1, -1, 0]]
    """
    check_graph(G, "sign_adjacency")
    check_choice(aggregate, "aggregate", "sign_adjacency", ["max", "sum"])
    U = _unit_graph(G, aggregate)
    rows, cols, vals = [], [], []
    for b in U.blocks:
        r, c = np.nonzero(b.weight)
        rows.append(b.targets[r])
        cols.append(b.sources[c])
        vals.append(b.weight[r, c].astype(np.float64))
    n = G.n_nodes
    if rows:
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    else:
        r = c = np.zeros(0, dtype=np.int64)
        v = np.zeros(0)
    keep = r != c
    W = sp.coo_array((v[keep], (r[keep], c[keep])), shape=(n, n)).tocsr()
    W = (W + W.T).tocsr()
    W.data = np.sign(W.data)
    W.eliminate_zeros()
    A = sp.csr_array(W.astype(np.int8))
    A.sort_indices()
    return A


def balance_ratio(G: SignedGraph, *, aggregate: str = "max") -> pd.DataFrame:
    """Fraction of balanced triangles and 4-cycles of the signed projection.

    Parameters
    ----------
    G : SignedGraph
    aggregate : {"max", "sum"}, default="max"

    Returns
    -------
    DataFrame
        One row per cycle length (3, 4): ``n_cycles``, ``n_balanced``, ``ratio``
        (``n_balanced / n_cycles``; 1.0 when there are no cycles of that length, as a forest
        is balanced).

    Notes
    -----
    With signed adjacency ``A`` and degrees ``k``, the signed sums over cycles are
    ``tr(A^3) / 6`` and ``(tr(A^4) - 2 sum k^2 + sum k) / 8`` (closed walks that retrace an
    edge have positive sign), and the counts are the same with ``|A|``. Cost: one sparse
    product ``A @ A``.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(
    ...     name="fc", weight=np.array([[1.0, 1.0], [1.0, -1.0]]), sources=[0, 1], targets=[2, 3])])
    >>> ns.balance_ratio(G)[["length", "n_cycles", "n_balanced"]].values.tolist()
    [[3, 0, 0], [4, 1, 0]]
    """
    check_graph(G, "balance_ratio")
    A = sign_adjacency(G, aggregate=aggregate).astype(np.float64)
    B = abs(A)
    k = np.asarray(B.sum(1)).ravel()
    degenerate = 2.0 * (k @ k) - k.sum()
    rows = []
    for length in (3, 4):
        tr = []
        for M in (A, B):
            M2 = M @ M
            tr.append(
                float((M2.multiply(M)).sum()) if length == 3 else float(M2.multiply(M2).sum())
            )
        if length == 3:
            signed_sum, total = tr[0] / 6.0, tr[1] / 6.0
        else:
            signed_sum, total = (tr[0] - degenerate) / 8.0, (tr[1] - degenerate) / 8.0
        n_cyc = int(round(total))
        n_bal = int(round((total + signed_sum) / 2.0))
        rows.append(
            {
                "length": length,
                "n_cycles": n_cyc,
                "n_balanced": n_bal,
                "ratio": n_bal / n_cyc if n_cyc else 1.0,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- frustration
@dataclass(frozen=True, eq=False)
class FrustrationResult:
    """Frustration of the signed projection.

    Attributes
    ----------
    index : int
        Violated edges of the best colouring found (the frustration index when ``exact``).
    lower_bound : int
        A proven lower bound (equal to ``index`` when ``exact``).
    exact : bool
        True when every component was solved exactly.
    colouring : ndarray of int8, shape (n_nodes,)
        ``+1`` / ``-1`` per node attaining ``index`` (isolated nodes get ``+1``).
    n_edges : int
        Edges of the projection.
    """

    index: int
    lower_bound: int
    exact: bool
    colouring: np.ndarray
    n_edges: int


def _cycle_packing(A: sp.csr_array) -> int:
    """Edge-disjoint unbalanced cycles found greedily (each needs one removed edge)."""
    A = A.tolil()
    found = 0
    while A.nnz:
        C = sp.csr_array(A)
        _, lab = csg.connected_components(C, directed=False)
        pot = np.zeros(C.shape[0], dtype=np.int8)
        tree_pred = np.full(C.shape[0], -9999, dtype=np.int64)
        for root in np.unique(lab):
            start = int(np.flatnonzero(lab == root)[0])
            order, pred = csg.breadth_first_order(
                abs(C).astype(np.float64), start, directed=False, return_predecessors=True
            )
            pot[start] = 1
            for v in order[1:]:
                pot[v] = pot[pred[v]] * C[pred[v], v]
                tree_pred[v] = pred[v]
        coo = sp.triu(C, 1).tocoo()
        bad = np.flatnonzero(coo.data * pot[coo.row] * pot[coo.col] < 0)
        if bad.size == 0:
            break
        u, v = int(coo.row[bad[0]]), int(coo.col[bad[0]])
        pu, pv = [u], [v]
        anc = {u: 0}
        x = u
        while tree_pred[x] >= 0:
            x = int(tree_pred[x])
            anc[x] = len(pu)
            pu.append(x)
        x = v
        while x not in anc:
            x = int(tree_pred[x])
            pv.append(x)
        path = pu[: anc[x] + 1] + pv[::-1][1:]
        cyc = list(zip(path[:-1], path[1:])) + [(v, u)]
        for a, b in cyc:
            A[a, b] = 0
            A[b, a] = 0
        found += 1
    return found


def frustration_index(
    G: SignedGraph,
    *,
    aggregate: str = "max",
    exact_max: int = 20,
    n_restarts: int = 32,
    seed: int | np.random.Generator | None = None,
) -> FrustrationResult:
    """Frustration index of the signed projection: exact when small, bracketed otherwise.

    Parameters
    ----------
    G : SignedGraph
    aggregate : {"max", "sum"}, default="max"
    exact_max : int >= 1, default=20
        Components of at most this many nodes are solved exactly (``2^(n-1)`` colourings).
    n_restarts : int >= 1, default=32
        Local-search starts on larger components.
    seed : int, Generator or None, default=None

    Returns
    -------
    FrustrationResult

    Notes
    -----
    The index is additive over components. On large components the upper bound is the best
    single-flip local minimum over ``n_restarts`` random starts, and the lower bound the larger
    of (a) a greedy packing of edge-disjoint unbalanced fundamental cycles and (b) the spectral
    bound ``(m - n lambda_max(A) / 2) / 2``.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(
    ...     name="fc", weight=np.array([[1.0, 1.0], [1.0, -1.0]]), sources=[0, 1], targets=[2, 3])])
    >>> r = ns.frustration_index(G)
    >>> r.index, r.lower_bound, r.exact
    (1, 1, True)
    """
    func = "frustration_index"
    check_graph(G, func)
    exact_max = int(
        check_scalar(exact_max, "exact_max", func, kind=numbers.Integral, min_value=1, max_value=30)
    )
    n_restarts = int(
        check_scalar(n_restarts, "n_restarts", func, kind=numbers.Integral, min_value=1)
    )
    A = sign_adjacency(G, aggregate=aggregate)
    n = A.shape[0]
    n_comp, lab = csg.connected_components(A, directed=False)
    colour = np.ones(n, dtype=np.int8)
    exact_k = dispatch("balance.frustration_exact", "numba")
    search_k = dispatch("balance.frustration_local_search", "numba")
    seeds = spawn_seeds(seed, n_restarts * max(n_comp, 1), func=func).reshape(
        max(n_comp, 1), n_restarts
    )
    index = lower = 0
    exact = True
    for comp in range(n_comp):
        ids = np.flatnonzero(lab == comp)
        if ids.size < 2:
            continue
        C = sp.csr_array(A[ids][:, ids])
        C.sort_indices()
        ip, ix, sg = C.indptr.astype(np.int64), C.indices.astype(np.int64), C.data.astype(np.int8)
        if ids.size <= exact_max:
            best, col = exact_k(ip, ix, sg)
            index += int(best)
            lower += int(best)
            colour[ids] = col
            continue
        exact = False
        bests, cols = search_k(ip, ix, sg, seeds[comp])
        j = int(np.argmin(bests))
        index += int(bests[j])
        colour[ids] = cols[j]
        m = C.nnz // 2
        lam = float(spla.eigsh(C.astype(np.float64), k=1, which="LA", return_eigenvectors=False)[0])
        spectral = int(np.ceil((m - ids.size * lam / 2.0) / 2.0 - 1e-9))
        lower += max(spectral, _cycle_packing(C) if m <= 20000 else 0, 0)
    return FrustrationResult(
        index=index,
        lower_bound=min(lower, index),
        exact=exact,
        colouring=colour,
        n_edges=int(A.nnz // 2),
    )


def sign_consistency(
    G: SignedGraph, *, colouring: np.ndarray | None = None, aggregate: str = "max"
) -> pd.DataFrame:
    """Per-block sign consistency.

    Parameters
    ----------
    G : SignedGraph
    colouring : ndarray of shape (n_nodes,), optional
        A ``+-1`` node colouring (default: :func:`frustration_index`'s, seed 0).
    aggregate : {"max", "sum"}, default="max"

    Returns
    -------
    DataFrame
        One row per block: ``block``, ``n_edges``, ``positive`` (fraction), ``source_agreement``
        and ``target_agreement`` (mean over nodes with edges of ``|k+ - k-| / (k+ + k-)``: 1
        when every node's outgoing, resp. incoming, edges share one sign, as under Dale's
        law) and ``partition_agreement`` (fraction of the block's edges with
        ``sign * c_source * c_target > 0``).

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(
    ...     name="fc", weight=np.array([[1.0, -1.0], [1.0, -1.0]]), sources=[0, 1], targets=[2, 3])])
    >>> ns.sign_consistency(G)[["source_agreement", "target_agreement", "partition_agreement"]].values.tolist()
    [[1.0, 0.0, 1.0]]
    """
    func = "sign_consistency"
    check_graph(G, func)
    if colouring is None:
        colouring = frustration_index(G, aggregate=aggregate, seed=0).colouring
    c = np.asarray(colouring)
    if c.shape != (G.n_nodes,) or not np.isin(c, (-1, 1)).all():
        raise _colouring_error(c, G.n_nodes)
    U = _unit_graph(G, aggregate)
    rows = []
    for b in U.blocks:
        pos, neg = b.weight > 0, b.weight < 0
        m = int(pos.sum() + neg.sum())

        def agree(kp, kn):
            k = kp + kn
            return float(np.mean(np.abs(kp - kn)[k > 0] / k[k > 0])) if (k > 0).any() else 1.0

        s = np.sign(b.weight)
        sat = (s * c[b.targets][:, None] * c[b.sources][None, :]) > 0
        rows.append(
            {
                "block": b.name,
                "n_edges": m,
                "positive": float(pos.sum() / m) if m else 0.0,
                "source_agreement": agree(pos.sum(0), neg.sum(0)),
                "target_agreement": agree(pos.sum(1), neg.sum(1)),
                "partition_agreement": float(sat.sum() / m) if m else 1.0,
            }
        )
    return pd.DataFrame(rows)


def _colouring_error(c: np.ndarray, n: int):
    """The standard error for a bad ``colouring``."""
    from ..exceptions import param_error

    return param_error("colouring", "sign_consistency", f"an array of {n} values in {{-1, +1}}", c)

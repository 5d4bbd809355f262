"""Maximum-entropy signed null models with analytic expectations.

Two models, fitted block by block on the unit graph (gate rows collapsed onto units as in
:func:`netstruct.motif_census`); cells are independent in both, so expected motif counts are
exact closed forms (:func:`expected_motif_census`):

``"stp"`` -- fixed-topology sign model (the STP null of Hao & Kovács, 2024)
    The edges stay where they are; edge ``(r, c)`` is positive with probability
    ``sigma(theta_r + phi_c)``, with the ``theta, phi`` that make every node's expected
    positive degree (hence also its negative degree) equal the observed one. It works on
    dense layers, where degree-preserving rewiring has a single realisation.
``"scm"`` -- signed configuration model
    Every cell of the block is ``+``, ``-`` or absent with probabilities
    ``x+_r y+_c / Z``, ``x-_r y-_c / Z`` and ``1 / Z`` (``Z = 1 + x+_r y+_c + x-_r y-_c``),
    matching each node's expected positive and negative degrees. It needs absent cells: a
    node whose every cell is an edge has no finite solution.

The likelihood equations are solved by damped Newton on degree classes (nodes with equal
constraints and equal cell sets share their multipliers, so a dense 4096x4096 layer has a few
hundred unknowns), with a diagonal fallback for very many classes. Nodes with degree 0 (or, in
``"stp"``, all edges positive) get probability exactly 0 (or 1).

References
----------
Hao, Y. & Kovács, I. A. (2024). Proper network randomization is key to assessing social
balance. *Science Advances* 10, eadj0104.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..backends import dispatch
from ..exceptions import GraphError, NetstructWarning, param_error
from ..graphs.block import make_block
from ..graphs.signed import NODE_COLUMNS, SignedGraph
from ..utils.random import check_random_state, spawn_seeds
from ..utils.validation import check_choice, check_graph, check_scalar
from . import _motif_plan as _p

__all__ = ["fit_maxent", "MaxEntModel", "expected_motif_census", "MaxEntConvergenceWarning"]

_MAX_NEWTON = 3000  # free unknowns above which the diagonal solver is used


class MaxEntConvergenceWarning(NetstructWarning):
    """The maximum-entropy solver stopped before reaching its tolerance."""


# ----------------------------------------------------------------------------- the solver
def _classes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique rows of ``keys``: (unique keys, inverse index, multiplicity)."""
    uniq, inv, cnt = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    return uniq, inv.reshape(-1), cnt.astype(np.float64)


def _probs(
    a: np.ndarray, b: np.ndarray, C: np.ndarray, fix_r: np.ndarray, fix_c: np.ndarray
) -> np.ndarray:
    """State probabilities ``(S, R, K)`` on the class grid; fixed components pinned."""
    S = a.shape[0]
    L = a[:, :, None] + b[:, None, :]
    L = np.where((fix_r[:, :, None] == -1) | (fix_c[:, None, :] == -1), -np.inf, L)
    m = np.maximum(L.max(0), 0.0)
    E = np.exp(L - m)
    Z = np.exp(-m) + E.sum(0)
    P = E / Z
    if S == 1:  # stp: state "+" against "-"; +inf rows/columns are all positive
        one = (fix_r[0][:, None] == 1) | (fix_c[0][None, :] == 1)
        P[0] = np.where(one, 1.0, P[0])
    return P * (C > 0)


def _solve(C, mr, mc, kr, kc, tol, max_iter):
    """Newton on the class grid. ``kr`` (S, R), ``kc`` (S, K) are per-node targets.

    Returns (a, b, fix_r, fix_c, n_iter, residual).
    """
    S, R = kr.shape
    K = kc.shape[1]
    nr = C @ mc  # cells per row node
    nc = mr @ C
    fix_r = np.where(kr == 0, -1, 0)
    fix_c = np.where(kc == 0, -1, 0)
    if S == 1:
        fix_r[0][kr[0] >= nr - 1e-9] = 1
        fix_c[0][kc[0] >= nc - 1e-9] = 1
    a = np.zeros((S, R))
    b = np.zeros((S, K))
    W = mr[:, None] * mc[None, :] * C
    free = np.concatenate([(fix_r == 0).ravel(), (fix_c == 0).ravel()])
    n_free = int(free.sum())

    def grad(a, b):
        P = _probs(a, b, C, fix_r, fix_c)
        gr = (P * W[None]).sum(2) - mr[None] * kr
        gc = (P * W[None]).sum(1) - mc[None] * kc
        res = max(np.abs(gr / mr[None]).max(initial=0.0), np.abs(gc / mc[None]).max(initial=0.0))
        return P, np.concatenate([gr.ravel(), gc.ravel()]), res

    P, g, res = grad(a, b)
    it = 0
    while res > tol and it < max_iter and n_free:
        it += 1
        if n_free <= _MAX_NEWTON:
            H = np.zeros((S * (R + K), S * (R + K)))
            for s in range(S):
                for t in range(S):
                    cov = P[s] * ((s == t) - P[t]) * W
                    ia, ib = slice(s * R, (s + 1) * R), slice(S * R + s * K, S * R + (s + 1) * K)
                    ja, jb = slice(t * R, (t + 1) * R), slice(S * R + t * K, S * R + (t + 1) * K)
                    H[ia, ja] += np.diag(cov.sum(1))
                    H[ib, jb] += np.diag(cov.sum(0))
                    H[ia, jb] += cov
                    H[ib, ja] += cov.T
            Hf = H[np.ix_(free, free)]
            Hf[np.diag_indices_from(Hf)] += 1e-12 * max(np.trace(Hf) / n_free, 1.0)
            step = np.zeros(free.size)
            step[free] = -np.linalg.solve(Hf, g[free])
        else:
            diag = np.concatenate(
                [
                    np.stack([(P[s] * (1 - P[s]) * W).sum(1) for s in range(S)]).ravel(),
                    np.stack([(P[s] * (1 - P[s]) * W).sum(0) for s in range(S)]).ravel(),
                ]
            )
            step = np.where(free & (diag > 0), -g / np.where(diag > 0, diag, 1.0), 0.0) * 0.5
        big = np.abs(step).max(initial=0.0)
        if big > 5.0:
            step *= 5.0 / big
        z = np.concatenate([a.ravel(), b.ravel()])
        for _ in range(30):  # backtrack on the residual
            zn = z + step
            an, bn = zn[: S * R].reshape(S, R), zn[S * R :].reshape(S, K)
            Pn, gn, resn = grad(an, bn)
            if resn < res or np.abs(step).max(initial=0.0) < 1e-14:
                break
            step *= 0.5
        a, b, P, g, res = an, bn, Pn, gn, resn
    return a, b, fix_r, fix_c, it, res


# ----------------------------------------------------------------------------- the model
@dataclass(frozen=True, eq=False)
class _BlockFit:
    rows: np.ndarray  # row -> row class
    cols: np.ndarray
    a: np.ndarray
    b: np.ndarray
    fix_r: np.ndarray
    fix_c: np.ndarray
    C: np.ndarray
    dense: bool
    edges: np.ndarray | None  # stp on a pruned block: the edge mask
    n_iter: int
    residual: float


@dataclass(frozen=True, eq=False)
class MaxEntModel:
    """A fitted maximum-entropy signed null model (one fit per block).

    Attributes
    ----------
    model : {"stp", "scm"}
    source : SignedGraph
        The fitted graph.
    unit_graph : SignedGraph
        The census view of ``source`` (gate rows collapsed onto units; the graph itself when
        it has no gates). Probabilities and samples refer to its blocks.
    n_iter, residual : dict of str to number
        Newton iterations and the largest constraint violation (in edges) per block.
    """

    model: str
    source: SignedGraph
    unit_graph: SignedGraph
    fits: tuple[_BlockFit, ...]
    n_iter: dict
    residual: dict

    def probabilities(self, block: int | str) -> tuple[np.ndarray, np.ndarray]:
        """``(p_pos, p_neg)`` of a block's cells, float64 arrays of shape (n_out, n_in).

        Examples
        --------
        >>> import numpy as np, netstruct as ns
        >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(
        ...     name="fc", weight=np.array([[1.0, -1.0], [1.0, 1.0]]), sources=[0, 1], targets=[2, 3])])
        >>> p, n = ns.fit_maxent(G, "stp").probabilities("fc")
        >>> np.round(p.sum(1), 4).tolist(), round(float((p + n).sum()), 4)
        ([1.0, 2.0], 4.0)
        """
        f = self.fits[self.unit_graph.block_index(block)]
        P = _probs(f.a, f.b, f.C, f.fix_r, f.fix_c)[:, f.rows][:, :, f.cols]
        if self.model == "stp":
            on = np.ones(P.shape[1:], dtype=bool) if f.edges is None else f.edges
            return np.where(on, P[0], 0.0), np.where(on, 1.0 - P[0], 0.0)
        return P[0], P[1]

    def sample_block(self, block: int | str, seeds: np.ndarray) -> np.ndarray:
        """Sign stacks ``int8 (len(seeds), n_out, n_in)`` of one block, one sample per seed."""
        pp, pn = self.probabilities(block)
        kernel = dispatch("maxent.sample_signs", "numba")
        return kernel(
            np.ascontiguousarray(pp), np.ascontiguousarray(pn), np.asarray(seeds, dtype=np.uint64)
        )

    def sample(
        self, n_samples: int, *, seed: int | np.random.Generator | None = None
    ) -> dict[str, np.ndarray]:
        """Draw ``n_samples`` sign patterns: block name -> ``int8 (n_samples, n_out, n_in)``.

        Block ``b``, sample ``k`` depends only on ``(seed, b, k)``.
        """
        func = "MaxEntModel.sample"
        n_samples = int(
            check_scalar(n_samples, "n_samples", func, kind=numbers.Integral, min_value=1)
        )
        rng = check_random_state(seed, func=func)
        kids = rng.spawn(len(self.fits))
        return {
            b.name: self.sample_block(i, spawn_seeds(kids[i], n_samples, func=func))
            for i, b in enumerate(self.unit_graph.blocks)
        }


def _unit_graph(G: SignedGraph, aggregate: str) -> SignedGraph:
    plan = _p.build_plan(G)
    if all(ru is None for ru in plan.row_units):
        return G
    from ..graphs.unroll import _aggregate

    blocks = []
    for b, ru, tgt in zip(G.blocks, plan.row_units, plan.targets):
        if ru is None:
            blocks.append(b)
            continue
        _, W, M = _aggregate(b.weight, b.mask, ru, aggregate)
        blocks.append(
            make_block(name=b.name, weight=W, mask=M, sources=b.sources, targets=tgt, delay=b.delay)
        )
    return SignedGraph({c: G.node_column(c) for c in NODE_COLUMNS}, blocks)


def _fit_block(w: np.ndarray, name: str, model: str, tol: float, max_iter: int) -> _BlockFit:
    pos, neg = w > 0, w < 0
    edges = pos | neg
    S = 1 if model == "stp" else 2
    dense = model == "scm" or bool(edges.all())
    if model == "scm":
        full = edges.all(1).any() or edges.all(0).any()
        if full:
            raise GraphError(
                f"Block {name!r} has a node whose every cell is an edge, so the signed configuration "
                "model has no finite solution there; use model='stp' (fixed topology) instead."
            )
    kr = np.stack([pos.sum(1), neg.sum(1)][:S]).astype(np.float64)
    kc = np.stack([pos.sum(0), neg.sum(0)][:S]).astype(np.float64)
    if dense:
        ur, rows, mr = _classes(kr.T)
        uc, cols, mc = _classes(kc.T)
        C = np.ones((ur.shape[0], uc.shape[0]))
        kr_c, kc_c = ur.T.copy(), uc.T.copy()
    else:
        rows, cols = np.arange(w.shape[0]), np.arange(w.shape[1])
        mr, mc = np.ones(w.shape[0]), np.ones(w.shape[1])
        C = edges.astype(np.float64)
        kr_c, kc_c = kr, kc
    a, b, fr, fc, it, res = _solve(C, mr, mc, kr_c, kc_c, tol, max_iter)
    if res > tol:
        warnings.warn(
            f"fit_maxent stopped on block {name!r} after {it} iterations with a constraint error "
            f"of {res:.3g} edges (tol={tol}); raise max_iter.",
            MaxEntConvergenceWarning,
            stacklevel=3,
        )
    return _BlockFit(rows, cols, a, b, fr, fc, C, dense, None if dense else edges, it, res)


def fit_maxent(
    G: SignedGraph,
    model: str = "stp",
    *,
    aggregate: str = "max",
    tol: float = 1e-6,
    max_iter: int = 200,
) -> MaxEntModel:
    """Fit a maximum-entropy signed null model to every block of ``G``.

    Parameters
    ----------
    G : SignedGraph
    model : {"stp", "scm"}, default="stp"
        Fixed-topology sign model or signed configuration model (module docstring).
    aggregate : {"max", "sum"}, default="max"
        How gate rows combine onto units (as in :func:`netstruct.motif_census`).
    tol : float > 0, default=1e-6
        Largest allowed error of any node's expected signed degree, in edges.
    max_iter : int >= 1, default=200
        Newton iterations per block.

    Returns
    -------
    MaxEntModel

    Raises
    ------
    InvalidParameterError
        For bad parameters.
    GraphError
        For ``"scm"`` on a block with a node whose every cell is an edge.

    Warns
    -----
    MaxEntConvergenceWarning
        When a block does not reach ``tol``.

    Notes
    -----
    Damped Newton on degree classes; the cost per iteration is ``O(R K)`` on the class grid
    (rows x column classes) plus a dense solve of ``S (R + K)`` unknowns (``S`` = 1 for
    ``"stp"``, 2 for ``"scm"``). Dense blocks (every cell an edge, and always for ``"scm"``)
    are compressed to classes of equal degrees; pruned blocks under ``"stp"`` use one class
    per node.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> rng = np.random.default_rng(0)
    >>> G = ns.SignedGraph({"name": [str(i) for i in range(14)]}, [ns.make_block(
    ...     name="fc", weight=rng.standard_normal((6, 8)), sources=range(8), targets=range(8, 14))])
    >>> M = ns.fit_maxent(G, "stp")
    >>> p, _ = M.probabilities("fc")
    >>> bool(np.allclose(p.sum(1), (G.blocks[0].weight > 0).sum(1), atol=1e-6))
    True
    """
    func = "fit_maxent"
    check_graph(G, func)
    model = check_choice(
        model.lower() if isinstance(model, str) else model, "model", func, ["stp", "scm"]
    )
    check_choice(aggregate, "aggregate", func, ["max", "sum"])
    tol = float(check_scalar(tol, "tol", func, min_value=0.0, include_min=False))
    max_iter = int(check_scalar(max_iter, "max_iter", func, kind=numbers.Integral, min_value=1))
    U = _unit_graph(G, aggregate)
    fits = tuple(_fit_block(np.asarray(b.weight), b.name, model, tol, max_iter) for b in U.blocks)
    names = [b.name for b in U.blocks]
    return MaxEntModel(
        model,
        G,
        U,
        fits,
        dict(zip(names, [f.n_iter for f in fits])),
        dict(zip(names, [f.residual for f in fits])),
    )


def expected_motif_census(
    M: MaxEntModel, *, size: int | None = 4, signed: bool = True, by_block: bool = False
) -> pd.DataFrame:
    """Exact expected motif counts under a fitted maximum-entropy model.

    Cells are independent and every motif instance uses distinct cells, so the expectation is
    the census formula evaluated on the cell probabilities (products of probabilities with the
    same-cell terms removed).

    Parameters
    ----------
    M : MaxEntModel
        From :func:`fit_maxent`.
    size, signed, by_block
        As in :func:`netstruct.motif_census`.

    Returns
    -------
    DataFrame
        The rows of :func:`netstruct.motif_census` with column ``expected``.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(
    ...     name="fc", weight=np.array([[1.0, -1.0], [-1.0, 1.0]]), sources=[0, 1], targets=[2, 3])])
    >>> e = ns.expected_motif_census(ns.fit_maxent(G, "stp"), size=4)
    >>> round(float(e.set_index("signs")["expected"]["++--/cross"]), 6)  # 2 patterns x 1/16
    0.125
    """
    from .motifs import _check_size, _groups, _kernels, _sum_rows

    func = "expected_motif_census"
    if not isinstance(M, MaxEntModel):
        raise param_error("M", func, "a MaxEntModel from netstruct.fit_maxent", type(M).__name__)
    sizes = _check_size(size, func)
    plan = _p.build_plan(M.unit_graph)
    mats = [M.probabilities(i) for i in range(len(M.fits))]
    vec = _p.census_vector(plan, mats, sizes, False, _kernels(None))
    rows, codes = _groups(plan.keys(sizes), bool(by_block), bool(signed))
    rows["expected"] = _sum_rows(codes, len(rows), vec)[0]
    return rows

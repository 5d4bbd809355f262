"""Thresholding strengths into formal contexts: binary adjacency and level cuts.

The binary variant of the spec reads a block as ``B = A > tau`` (strict), with ``tau``
absolute or a quantile of the block's unit-level strengths; the continuous variant uses the
whole family of level cuts ``A > tau`` over a grid of thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..exceptions import GraphError, param_error
from ..utils.validation import check_scalar
from .context import FormalContext

__all__ = ["binarize", "level_cuts"]


def _check_strengths(weights: ArrayLike, func: str) -> NDArray[np.float64]:
    A = np.asarray(weights)
    if A.ndim != 2 or A.size == 0 or not np.issubdtype(A.dtype, np.number) or np.iscomplexobj(A):
        raise param_error(
            "weights",
            func,
            "a non-empty 2-D real matrix (post x pre)",
            f"shape {A.shape}, dtype {A.dtype}",
        )
    A = A.astype(np.float64)
    if not np.isfinite(A).all():
        raise param_error("weights", func, "finite", "NaN or infinite entries")
    return A


def binarize(
    weights: ArrayLike, *, threshold: float | None = None, quantile: float | None = None
) -> NDArray[np.bool_]:
    """Binary adjacency ``A > tau`` (strict), with ``tau`` absolute or a quantile of ``A``.

    Parameters
    ----------
    weights : array-like of shape (n_post, n_pre)
        Connection strengths (use magnitudes; :func:`unit_adjacency` gives them per unit).
    threshold : float, optional
        Absolute threshold ``tau``.
    quantile : float in [0, 1], optional
        ``tau`` is this quantile of all entries of ``weights``. When neither is given,
        ``quantile=0.5`` (the median, density about one half).

    Returns
    -------
    ndarray of bool, shape (n_post, n_pre)

    Raises
    ------
    InvalidParameterError
        When both ``threshold`` and ``quantile`` are given, or they are out of range.
    GraphError
        When the threshold leaves no edge (every entry is ``<= tau``).

    Notes
    -----
    The inequality is strict, so ties with ``tau`` are dropped; with ``quantile`` this makes
    the realised density at most ``1 - quantile``.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> ns.lattice.binarize(np.array([[0.2, 0.5], [0.9, 0.1]]), threshold=0.2).astype(int).tolist()
    [[0, 1], [1, 0]]
    """
    func = "binarize"
    A = _check_strengths(weights, func)
    if threshold is not None and quantile is not None:
        raise param_error(
            "quantile", func, "None when 'threshold' is given (pass one of the two)", quantile
        )
    if threshold is not None:
        tau = float(check_scalar(threshold, "threshold", func))
        how = f"threshold={tau:g}"
    else:
        q = (
            0.5
            if quantile is None
            else float(check_scalar(quantile, "quantile", func, min_value=0.0, max_value=1.0))
        )
        tau = float(np.quantile(A, q))
        how = f"quantile={q:g} (tau={tau:g})"
    B = A > tau
    if not B.any():
        raise GraphError(
            f"binarize: {how} leaves no edges (the largest strength is {A.max():g}); "
            "choose a smaller threshold or quantile."
        )
    return B


def level_cuts(
    weights: ArrayLike,
    thresholds: Sequence[float],
    *,
    normalize: bool = False,
    objects: ArrayLike | None = None,
    attributes: ArrayLike | None = None,
) -> list[FormalContext]:
    """Contexts of the level cuts ``A > tau`` for each ``tau`` in ``thresholds`` (continuous variant).

    Parameters
    ----------
    weights : array-like of shape (n_post, n_pre)
        Non-negative strengths.
    thresholds : sequence of float
        The grid Θ (strict ``>``).
    normalize : bool, default=False
        Divide by ``max(A)`` first, so thresholds live in [0, 1].
    objects, attributes : sequence, optional
        Labels (default ``0..n-1``).

    Returns
    -------
    list of FormalContext
        One per threshold, in the given order.

    Raises
    ------
    GraphError
        When a threshold leaves no edge.

    See Also
    --------
    persistence : fraction of cuts in which each attribute is meet-irreducible.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[0.9, 0.8, 0.1], [0.2, 0.7, 0.6], [0.05, 0.75, 0.3]])
    >>> [int(K.incidence.sum()) for K in ns.lattice.level_cuts(W, [0.15, 0.5])]
    [7, 5]
    """
    func = "level_cuts"
    A = _check_strengths(weights, func)
    if normalize:
        top = A.max()
        if top <= 0:
            raise GraphError("level_cuts: cannot normalize a matrix whose largest entry is <= 0.")
        A = A / top
    grid = np.asarray(thresholds, dtype=np.float64).ravel()
    if grid.size == 0 or not np.isfinite(grid).all():
        raise param_error("thresholds", func, "a non-empty sequence of finite numbers", thresholds)
    return [
        FormalContext.from_weights(A, threshold=float(t), objects=objects, attributes=attributes)
        for t in grid
    ]

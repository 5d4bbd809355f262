"""False-discovery-rate control over many tests, with scipy's implementation."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from ..exceptions import param_error
from ..utils.validation import check_choice, check_scalar

__all__ = ["fdr_control"]


def fdr_control(
    pvalues: ArrayLike, q: float = 0.05, *, method: str = "bh"
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Benjamini–Hochberg (or –Yekutieli) adjusted p-values and rejections.

    Parameters
    ----------
    pvalues : array_like of float, any shape
        p-values in [0, 1]. NaN entries (infeasible tests) are left out of the correction:
        their q-value is NaN and they are never rejected.
    q : float, default=0.05
        Target false discovery rate.
    method : {"bh", "by"}, default="bh"
        ``"bh"``: Benjamini–Hochberg (independent or positively dependent tests);
        ``"by"``: Benjamini–Yekutieli (any dependence).

    Returns
    -------
    reject : ndarray of bool, same shape as ``pvalues``
        ``qvalue <= q``.
    qvalue : ndarray of float64, same shape as ``pvalues``
        Adjusted p-values from :func:`scipy.stats.false_discovery_control`.

    Raises
    ------
    InvalidParameterError
        p-values outside [0, 1] or infinite, ``q`` outside (0, 1], unknown ``method``.

    Examples
    --------
    >>> reject, qv = fdr_control([0.01, 0.02, 0.5, float("nan")])
    >>> reject.tolist(), qv.round(3).tolist()
    ([True, True, False, False], [0.03, 0.03, 0.5, nan])
    """
    check_scalar(q, "q", "fdr_control", min_value=0.0, max_value=1.0, include_min=False)
    check_choice(method, "method", "fdr_control", ["bh", "by"])
    try:
        p = np.asarray(pvalues, dtype=np.float64)
    except (TypeError, ValueError):
        raise param_error(
            "pvalues", "fdr_control", "an array of p-values in [0, 1]", type(pvalues).__name__
        ) from None
    finite = ~np.isnan(p)
    bad = finite & ~((p >= 0) & (p <= 1))
    if bad.any():
        raise param_error(
            "pvalues",
            "fdr_control",
            "p-values in [0, 1] (or NaN for untested)",
            f"{int(bad.sum())} value(s) such as {p[bad][0]!r}",
        )
    qv = np.full(p.shape, np.nan)
    if finite.any():
        qv[finite] = stats.false_discovery_control(p[finite], method=method)
    reject = np.zeros(p.shape, dtype=bool)
    reject[finite] = qv[finite] <= q
    return reject, qv

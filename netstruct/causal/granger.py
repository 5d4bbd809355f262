"""Batched bivariate Granger causality tests with statsmodels' exact statistics.

:func:`granger` runs, for many (cause, effect) series pairs at once, the same restricted and
unrestricted lag regressions as :func:`statsmodels.tsa.stattools.grangercausalitytests`
(``addconst=True``) and returns its ``ssr_ftest``, ``ssr_chi2test`` and ``lrtest``
statistics, degrees of freedom and p-values for every lag. Instead of raising for the first
bad series, each (series, lag) gets a status code; see :data:`GRANGER_STATUS`.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ..backends import dispatch
from ..exceptions import InfeasibleTestError, NetstructWarning, param_error
from ..utils.validation import check_choice

__all__ = ["granger", "GrangerResult", "GRANGER_STATUS", "max_granger_lag"]

#: Meaning of the codes in :attr:`GrangerResult.status`.
GRANGER_STATUS: tuple[str, ...] = (
    "ok",
    "constant_cause",
    "constant_effect",
    "nonfinite",
    "perfect_fit",
    "singular",
)
_INFEASIBLE = (1, 2, 3, 4)  # the codes for which statsmodels raises (a contiguous range)
_RANK_TOL = 1e-7  # relative QR pivot below which the fit is re-decided by the exact SVD path


@dataclass(frozen=True)
class GrangerResult:
    """Per-series, per-lag Granger statistics (rows: series, columns: lags).

    Attributes
    ----------
    lags : ndarray of int64, shape (n_lags,)
    nobs : ndarray of int64, shape (n_lags,)
        Observations used at each lag, ``T - lag``.
    f_stat, f_pvalue : ndarray of float64, shape (n_series, n_lags)
        statsmodels ``ssr_ftest`` statistic and p-value. Each test's p-values are computed
        when first read (a caller of one test does not pay for the other two) and kept; the
        statistics they come from are read-only.
    chi2_stat, chi2_pvalue : ndarray of float64, shape (n_series, n_lags)
        statsmodels ``ssr_chi2test`` statistic and p-value (df = lag).
    lr_stat, lr_pvalue : ndarray of float64, shape (n_series, n_lags)
        statsmodels ``lrtest``.
    df_num : ndarray of int64, shape (n_lags,)
        Numerator degrees of freedom (the lag).
    df_denom : ndarray of float64, shape (n_series, n_lags)
        ``nobs - rank`` of the unrestricted design; ``T - 3 lag - 1`` at full rank.
    ssr_restricted, ssr_unrestricted : ndarray of float64, shape (n_series, n_lags)
    status : ndarray of int8, shape (n_series, n_lags)
        Index into :data:`GRANGER_STATUS`. Statistics are NaN where statsmodels would raise
        ``InfeasibleTestError`` or ``ValueError`` (codes 1-4). ``constant_effect`` also covers
        response rows ``effect[lag:]`` that are all equal: statsmodels means to raise there
        (TSS = 0) but its floating-point mean sometimes leaves rounding noise and it returns
        arbitrary statistics instead. Code 5 (``singular``) marks a
        rank-deficient design, for which statsmodels (and this result) still report numbers,
        computed with its pseudo-inverse and ``df_denom = nobs - rank``.
    """

    lags: NDArray[np.int64]
    nobs: NDArray[np.int64]
    f_stat: NDArray[np.float64]
    chi2_stat: NDArray[np.float64]
    lr_stat: NDArray[np.float64]
    df_num: NDArray[np.int64]
    df_denom: NDArray[np.float64]
    ssr_restricted: NDArray[np.float64]
    ssr_unrestricted: NDArray[np.float64]
    status: NDArray[np.int8]

    def __post_init__(self) -> None:
        # the p-values are computed from these on first use: freeze them so they cannot change
        for name in ("lags", "f_stat", "chi2_stat", "lr_stat", "df_denom"):
            getattr(self, name).setflags(write=False)

    @cached_property
    def f_pvalue(self) -> NDArray[np.float64]:
        """statsmodels ``ssr_ftest`` p-values (computed on first access, then kept)."""
        return _f_pvalues(self.lags, self.f_stat, self.df_denom)

    @cached_property
    def chi2_pvalue(self) -> NDArray[np.float64]:
        """statsmodels ``ssr_chi2test`` p-values (computed on first access, then kept)."""
        return _chi2_pvalues(self.lags, self.chi2_stat)

    @cached_property
    def lr_pvalue(self) -> NDArray[np.float64]:
        """statsmodels ``lrtest`` p-values (computed on first access, then kept)."""
        return _chi2_pvalues(self.lags, self.lr_stat)

    @property
    def feasible(self) -> NDArray[np.bool_]:
        """True where the test could be computed (status ``ok`` or ``singular``)."""
        return ~np.isin(self.status, _INFEASIBLE)

    def status_names(self) -> NDArray[np.object_]:
        """The status codes as strings, shape (n_series, n_lags)."""
        return np.asarray(GRANGER_STATUS, dtype=object)[self.status]

    def pvalue(self, test: str = "ssr_ftest") -> NDArray[np.float64]:
        """p-values of one test (``"ssr_ftest"``, ``"ssr_chi2test"`` or ``"lrtest"``)."""
        check_choice(test, "test", "GrangerResult.pvalue", _TESTS)
        if test == "ssr_ftest":
            return self.f_pvalue
        return self.chi2_pvalue if test == "ssr_chi2test" else self.lr_pvalue

    def min_p(
        self, test: str = "ssr_chi2test", *, decimals: int | None = None, infeasible: str = "nan"
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Minimum p-value over the lags (the authors' aggregation, spec §2.5).

        Parameters
        ----------
        test : {"ssr_chi2test", "ssr_ftest", "lrtest"}, default="ssr_chi2test"
        decimals : int, optional
            Round each p-value first (the authors round to 4 decimals).
        infeasible : {"nan", "zero"}, default="nan"
            ``"nan"``: minimum over the feasible lags, NaN when none is. ``"zero"``: the
            authors' blanket ``except`` — a series with any infeasible lag gets p = 0.

        Returns
        -------
        p_min : ndarray of float64, shape (n_series,)
        lag : ndarray of int64, shape (n_series,)
            Lag attaining the minimum (first on ties; -1 where p_min is NaN or forced to 0).
        """
        check_choice(infeasible, "infeasible", "GrangerResult.min_p", ["nan", "zero"])
        p = self.pvalue(test)
        if decimals is not None:
            p = np.round(p, decimals)
        ok = ~np.isnan(p)
        filled = np.where(ok, p, np.inf)
        idx = np.argmin(filled, axis=1)
        p_min = filled[np.arange(p.shape[0]), idx]
        lag = self.lags[idx].astype(np.int64)
        none = ~ok.any(axis=1)
        p_min[none] = np.nan
        lag[none] = -1
        if infeasible == "zero":
            bad = (~self.feasible).any(axis=1)
            p_min[bad] = 0.0
            lag[bad] = -1
        return p_min, lag


_TESTS = ["ssr_ftest", "ssr_chi2test", "lrtest"]


def max_granger_lag(n_obs: int) -> int:
    """Largest lag statsmodels accepts for ``n_obs`` observations: ``floor((n_obs - 2) / 3)``.

    Examples
    --------
    >>> max_granger_lag(16)
    4
    """
    return max((int(n_obs) - 2) // 3, 0)


def _as_2d(x: ArrayLike, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise param_error(
            name, "granger", "a real-valued array of shape (n_series, T)", type(x).__name__
        ) from None
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise param_error(
            name, "granger", "an array of shape (n_series, T) or (T,)", f"shape {a.shape}"
        )
    return np.ascontiguousarray(a)


def _check_lags(lags: Any, T: int) -> np.ndarray:
    if isinstance(lags, numbers.Integral) and not isinstance(lags, bool):
        if lags < 1:
            raise param_error(
                "lags", "granger", "an int >= 1 or a non-empty sequence of ints >= 1", lags
            )
        if int(lags) >= T:  # never feasible, and np.arange would try to allocate it
            raise param_error(
                "lags",
                "granger",
                f"an int below the series length ({T}); lags leave 3 lags + 1 points",
                lags,
            )
        arr = np.arange(1, int(lags) + 1, dtype=np.int64)
    elif (
        isinstance(lags, (list, tuple))
        and len(lags) > 0
        and all(type(v) is int and 1 <= v <= T for v in lags)  # the common call, in Python
    ):
        arr = np.array(lags, dtype=np.int64)
    else:
        try:
            arr = np.asarray(list(lags))
        except TypeError:
            raise param_error(
                "lags", "granger", "an int >= 1 or a sequence of ints >= 1", lags
            ) from None
        if (
            arr.size == 0
            or arr.ndim != 1
            or not np.issubdtype(arr.dtype, np.integer)
            or arr.min() < 1
        ):
            raise param_error(
                "lags", "granger", "an int >= 1 or a non-empty sequence of ints >= 1", lags
            )
        arr = arr.astype(np.int64)
    if T <= 3 * int(arr.max()) + 1:
        raise param_error(
            "lags",
            "granger",
            f"at most floor((T - 2) / 3) = {max_granger_lag(T)} for series of length T = {T} "
            "(statsmodels needs T > 3 * lag + 1); use fewer lags or longer series",
            int(arr.max()) if arr.size > 1 else lags,
        )
    return arr


def _design(y: np.ndarray, c: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """statsmodels' lagmat2ds(trim='both') designs: response, [y lags, 1], [y lags, c lags, 1]."""
    T = y.shape[0]
    ylags = np.column_stack([y[p - j : T - j] for j in range(1, p + 1)])
    clags = np.column_stack([c[p - j : T - j] for j in range(1, p + 1)])
    one = np.ones((T - p, 1))
    return y[p:], np.hstack([ylags, one]), np.hstack([ylags, clags, one])


def _ols_pinv(X: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """SSR and rank exactly as statsmodels' OLS(method='pinv') computes them."""
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    cutoff = 1e-15 * s.max()
    sinv = np.where(s > cutoff, 1.0 / np.where(s > cutoff, s, 1.0), 0.0)
    beta = (vt.T @ (sinv[:, None] * u.T)) @ y
    resid = y - X @ beta
    rank = int(np.linalg.matrix_rank(np.diag(s)))
    return float(resid @ resid), rank


def _refit_exact(y, c, p):
    """(ssr_r, ssr_u, rank_u, status) for one pair via the pseudo-inverse (inputs validated)."""
    yy, Z, X = _design(y, c, p)
    ssr_r, _ = _ols_pinv(Z, yy)
    ssr_u, rank = _ols_pinv(X, yy)
    tss = float(np.sum((yy - yy.mean()) ** 2))
    if tss == 0 or ssr_u == 0 or ssr_u / tss < np.finfo(float).eps:
        return ssr_r, ssr_u, rank, 4
    return ssr_r, ssr_u, rank, (5 if rank < X.shape[1] else 0)


def _statistics(lag_arr, nobs, ssr_r, diff, ssr_u, df_denom):
    """F, chi2 and LR statistics (numba)."""
    from ..backends.numba._special import granger_statistics

    f_stat, chi2, lr = (np.empty(ssr_r.shape) for _ in range(3))
    if ssr_r.size:
        granger_statistics(lag_arr, nobs, ssr_r, diff, ssr_u, df_denom, f_stat, chi2, lr)
    return f_stat, chi2, lr


def _f_pvalues(lag_arr, f_stat, df_denom):
    """F tails in numba (:mod:`netstruct.backends.numba._special`); scipy's ``fdtrc`` for the
    entries outside its fast range ((lag + df) / 2 > 170)."""
    from ..backends.numba._special import granger_f_pvalues

    f_p = np.empty(f_stat.shape)
    todo = np.empty(f_stat.shape, dtype=np.int8)
    if f_stat.size:
        granger_f_pvalues(lag_arr, f_stat, df_denom, f_p, todo)
        rows, cols = np.nonzero(todo)
        if rows.size:
            f_p[rows, cols] = special.fdtrc(
                lag_arr[cols].astype(float), df_denom[rows, cols], f_stat[rows, cols]
            )
    f_p.setflags(write=False)
    return f_p


def _chi2_pvalues(lag_arr, stat):
    """Chi-square tails (df = lag) in numba; scipy's ``chdtrc`` for df > 64 or statistics
    above 600."""
    from ..backends.numba._special import granger_chi2_pvalues

    pv = np.empty(stat.shape)
    todo = np.empty(stat.shape, dtype=np.int8)
    if stat.size:
        granger_chi2_pvalues(lag_arr, stat, pv, todo)
        rows, cols = np.nonzero(todo)
        if rows.size:
            pv[rows, cols] = special.chdtrc(lag_arr[cols].astype(float), stat[rows, cols])
    pv.setflags(write=False)
    return pv


def granger(
    cause: ArrayLike,
    effect: ArrayLike,
    lags: int | Sequence[int] | np.ndarray,
    *,
    errors: str = "warn",
    backend: str | None = None,
) -> GrangerResult:
    """Granger tests of ``cause[i] -> effect[i]`` for many series at once.

    For each series and lag p, fits ``y_t ~ y_{t-1..t-p} + 1`` (restricted) and
    ``y_t ~ y_{t-1..t-p} + c_{t-1..t-p} + 1`` (unrestricted) by least squares on the rows
    t = p..T-1, exactly as ``grangercausalitytests(np.column_stack([effect, cause]), lags)``.

    Parameters
    ----------
    cause : array_like of shape (n_series, T) or (T,)
        Candidate cause series (one per row).
    effect : array_like of shape (n_series, T), (1, T) or (T,)
        Effect series; a single row is shared by all causes (fitted once per series anyway).
    lags : int or sequence of int
        ``L`` tests lags 1..L; a sequence tests exactly those lags (``[1]`` = single-lag mode).
    errors : {"warn", "raise", "ignore"}, default="warn"
        What to do when some (series, lag) cannot be tested (status codes 1-4, see
        :data:`GRANGER_STATUS`): its statistics are NaN and ``"warn"`` emits a
        :class:`~netstruct.NetstructWarning` with the counts, ``"raise"`` raises
        :class:`~netstruct.exceptions.InfeasibleTestError` naming the first such series,
        ``"ignore"`` only records the status.
    backend : {"numba", "cuda", "auto"}, optional
        Compute backend (default from ``netstruct.config``).

    Returns
    -------
    GrangerResult
        F, chi-square and LR statistics with p-values, degrees of freedom and status, each of
        shape (n_series, n_lags). Use :meth:`GrangerResult.min_p` for the authors' minimum
        over lags.

    Raises
    ------
    InvalidParameterError
        Bad shapes, mismatched lengths, lags not positive, or ``T <= 3 max(lags) + 1``
        (statsmodels' "Insufficient observations").
    InfeasibleTestError
        With ``errors="raise"``, when a series has a constant lagged column, NaN/inf values or
        a perfect fit (statsmodels' ``InfeasibleTestError``/``ValueError`` cases).

    Notes
    -----
    Householder QR of the design with the restricted columns first gives SSR_r - SSR_u as a
    sum of squares (no cancellation); fits whose QR pivots suggest rank loss are recomputed
    with statsmodels' pseudo-inverse and rank rule. With a shared effect row the restricted
    fit is done once per lag; each cause's fit then comes from window sums of lagged
    products (O(T L) prefix values per cause) and an O(p^3) Cholesky of its residualised
    Gram matrix, and causes where that route's error estimate exceeds 1e-11 relative (or
    near-perfect fits and near-rank-deficient columns) instead project their p lag columns
    off the restricted basis and run a p-column Householder QR (same sums of squares and
    pivots as the full QR). p-values agree with statsmodels to about 1e-11 relative
    (statistics close to 0 to about 1e-13 absolute, the size of statsmodels' own
    cancellation error), including rank-deficient designs. With one effect row per cause,
    each pair's window sums of lagged products (O(T L)) give the Gram matrix of [1, effect
    lags, cause lags, response] at every lag, and a Cholesky of it gives SSR_r - SSR_u as a
    sum of squares; a pair and lag goes to the Householder QR instead when the first-order
    rounding bound of its SSRs, (4 sqrt(T) + 2p + 3) eps (sum_i |v_i| |x_i|)^2 with v the
    fitted coefficients, exceeds 1e-11 SSR_u, when its smallest relative pivot is below
    1e3 (4 sqrt(T) + 2p + 3) eps (2p + 2)^2, or when a pivot is near the rank tolerance.
    Cost O(n_series (T L + L^4)) for lags 1..L on the Gram routes (O(n_series T L^3) on
    the QR), parallel over series. p-values are computed in numba
    (:mod:`netstruct.backends.numba._special`): the F tail by the regularised incomplete beta
    function (finite sums of positive terms for an even numerator df, DiDonato-Morris' BGRAT
    expansion for an odd one, Cephes' series and continued fractions elsewhere; within
    1e-13 relative of a 40-digit reference and 5e-13 of ``scipy.special.fdtrc``, which is
    behind ``scipy.stats.f.sf``), chi-square by its closed forms for integer df; scipy
    only for (lag + df) / 2 > 170 (F), df > 64 or statistics above 600 (chi-square).
    Backends: numba, cuda.

    Examples
    --------
    >>> import numpy as np
    >>> from netstruct.causal import granger
    >>> rng = np.random.default_rng(42)
    >>> x, e = rng.standard_normal(200), rng.standard_normal(200)
    >>> y = np.zeros(200); y[0] = e[0]
    >>> for t in range(1, 200):
    ...     y[t] = 0.4 * y[t - 1] + 0.6 * x[t - 1] + 0.5 * e[t]
    >>> res = granger(x, y, lags=2)
    >>> np.round(res.f_stat, 4)
    array([[183.1489,  91.3308]])
    >>> res.df_denom
    array([[196., 193.]])
    """
    check_choice(errors, "errors", "granger", ["warn", "raise", "ignore"])
    c = _as_2d(cause, "cause")
    y = _as_2d(effect, "effect")
    if y.shape[1] != c.shape[1]:
        raise param_error(
            "effect",
            "granger",
            f"series of the same length T = {c.shape[1]} as 'cause'",
            f"length {y.shape[1]}",
        )
    if y.shape[0] not in (1, c.shape[0]):
        raise param_error(
            "effect",
            "granger",
            f"1 row (shared) or {c.shape[0]} rows like 'cause'",
            f"{y.shape[0]} rows",
        )
    n_series, T = c.shape
    lag_arr = _check_lags(lags, T)
    n_lags = lag_arr.size
    kernel = dispatch("causal.granger", backend)
    ssr_r = np.empty((n_series, n_lags))
    diff = np.empty((n_series, n_lags))
    ssr_u = np.empty((n_series, n_lags))
    status = np.empty((n_series, n_lags), dtype=np.int8)
    if n_series:
        kernel(y, c, lag_arr, _RANK_TOL, ssr_r, diff, ssr_u, status)
    nobs = (T - lag_arr).astype(np.int64)
    df_denom = np.empty((n_series, n_lags))
    df_denom[...] = (T - 3 * lag_arr - 1).astype(np.float64)
    any_bad = False
    if status.any():  # (one pass; the common all-"ok" result skips the rest)
        for b, li in zip(*np.nonzero(status == 5)):
            p = int(lag_arr[li])
            sr, su, rank, st = _refit_exact(y[0 if y.shape[0] == 1 else b], c[b], p)
            ssr_r[b, li], ssr_u[b, li], diff[b, li], status[b, li] = sr, su, sr - su, st
            df_denom[b, li] = nobs[li] - rank
        bad = (status >= min(_INFEASIBLE)) & (status <= max(_INFEASIBLE))  # codes 1-4
        any_bad = bool(bad.any())
        if any_bad:
            for a in (ssr_r, diff, ssr_u, df_denom):
                a[bad] = np.nan
    f_stat, chi2, lr = _statistics(lag_arr, nobs, ssr_r, diff, ssr_u, df_denom)
    if any_bad and errors != "ignore":
        counts = {
            GRANGER_STATUS[k]: int((status == k).sum()) for k in _INFEASIBLE if (status == k).any()
        }
        b, li = (int(i) for i in np.argwhere(bad)[0])
        where = f"series {b} at lag {int(lag_arr[li])} ({GRANGER_STATUS[status[b, li]]})"
        msg = (
            f"granger: {int(bad.sum())} of {bad.size} (series, lag) tests are infeasible {counts}; "
            f"first: {where}. Their statistics are NaN; see GrangerResult.status. Remove constant or "
            "non-finite series (or pass errors='ignore' to accept NaN silently)."
        )
        if errors == "raise":
            raise InfeasibleTestError(msg)
        warnings.warn(msg, NetstructWarning, stacklevel=2)
    return GrangerResult(
        lags=lag_arr,
        nobs=nobs,
        f_stat=f_stat,
        chi2_stat=chi2,
        lr_stat=lr,
        df_num=lag_arr.copy(),
        df_denom=df_denom,
        ssr_restricted=ssr_r,
        ssr_unrestricted=ssr_u,
        status=status,
    )

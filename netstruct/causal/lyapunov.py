"""Largest-Lyapunov-exponent estimates per window (TISEAN ``lyap_r`` / Rosenstein) and windowing.

:func:`lyapunov` is the estimator the LEGCNet authors ran (spec §2.4): rescale the window to
[0, 1], delay-embed, find each point's exhaustive nearest neighbour (TISEAN tie rule), follow
the pair ``steps`` iterations and average the log distances S(k); the exponent is the slope
of S(k). ``mode="authors"`` adds their 6-decimal file round trip, range filter and fallbacks.
:func:`window_bounds` and :func:`sliding_windows` implement the windowing of spec §2.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..backends import dispatch
from ..exceptions import param_error
from ..utils.validation import check_choice, check_scalar

__all__ = [
    "lyapunov",
    "LyapunovResult",
    "LYAPUNOV_STATUS",
    "window_bounds",
    "sliding_windows",
    "lyapunov_windows",
]

#: Meaning of the codes in :attr:`LyapunovResult.status`.
LYAPUNOV_STATUS: tuple[str, ...] = ("ok", "constant", "no_neighbour")


@dataclass(frozen=True)
class LyapunovResult:
    """Exponents and the divergence curves they were fitted to.

    Attributes
    ----------
    exponent : ndarray of float64, shape (n_windows,)
    divergence : ndarray of float64, shape (n_windows, steps + 1)
        S(k), the mean log Euclidean distance of neighbour pairs k steps on (NaN where no pair
        contributed, i.e. TISEAN omits the row).
    counts : ndarray of int64, shape (n_windows, steps + 1)
        Pairs behind each S(k).
    status : ndarray of int8, shape (n_windows,)
        Index into :data:`LYAPUNOV_STATUS`.
    """

    exponent: NDArray[np.float64]
    divergence: NDArray[np.float64]
    counts: NDArray[np.int64]
    status: NDArray[np.int8]


def window_bounds(
    n_rows: int, window: int, stride: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start rows and last rows of the sliding windows of spec §2.3.

    ``K = floor((n_rows - window) / stride) + 1`` windows; window i covers rows
    ``[stride*i, stride*i + window)`` and its effect sample is its last row.

    Examples
    --------
    >>> starts, last = window_bounds(24001, 160, 144)
    >>> len(starts), int(starts[1]), int(last[1])
    (166, 144, 303)
    """
    check_scalar(window, "window", "window_bounds", kind=int, min_value=1)
    check_scalar(stride, "stride", "window_bounds", kind=int, min_value=1)
    check_scalar(n_rows, "n_rows", "window_bounds", kind=int, min_value=window)
    k = (n_rows - window) // stride + 1
    starts = np.arange(k, dtype=np.int64) * stride
    return starts, starts + window - 1


def sliding_windows(x: ArrayLike, window: int, stride: int) -> NDArray:
    """Windows of a trajectory as a read-only view.

    Parameters
    ----------
    x : array_like of shape (n_rows,) or (n_rows, n_series)
    window, stride : int

    Returns
    -------
    ndarray of shape (K, window) or (n_series, K, window)

    Examples
    --------
    >>> sliding_windows(np.arange(10.0), 4, 3)
    array([[0., 1., 2., 3.],
           [3., 4., 5., 6.],
           [6., 7., 8., 9.]])
    """
    a = np.asarray(x)
    if a.ndim not in (1, 2):
        raise param_error(
            "x",
            "sliding_windows",
            "an array of shape (n_rows,) or (n_rows, n_series)",
            f"shape {a.shape}",
        )
    starts, _ = window_bounds(a.shape[0], window, stride)
    v = np.lib.stride_tricks.sliding_window_view(a, window, axis=0)[starts]  # (K, [n_series,] W)
    return v if a.ndim == 1 else np.moveaxis(v, 1, 0)


def _slopes(S: np.ndarray, valid: np.ndarray, fit: str) -> np.ndarray:
    """Slope of S(k) per row over the valid k (NaN when fewer than the fit needs)."""
    n, ks = S.shape
    k = np.arange(ks, dtype=np.float64)
    out = np.full(n, np.nan)
    if fit == "k0k1":
        # MATLAB slopes over x in [0.25, 1]: the first segment of the curve through the rows
        # TISEAN printed. Needs S(0) and some later row.
        later = valid[:, 1:]
        has = valid[:, 0] & later.any(axis=1)
        kb = 1 + np.argmax(later, axis=1)
        rows = np.nonzero(has)[0]
        out[rows] = (S[rows, kb[rows]] - S[rows, 0]) / kb[rows]
        return out
    w = valid.astype(np.float64)
    nk = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        km = (w * k).sum(axis=1) / nk
        Sz = np.where(valid, S, 0.0)
        sm = (w * Sz).sum(axis=1) / nk
        cov = (w * (k - km[:, None]) * (Sz - sm[:, None])).sum(axis=1)
        var = (w * (k - km[:, None]) ** 2).sum(axis=1)
        res = cov / var
    ok = nk >= 2
    out[ok] = res[ok]
    return out


@overload
def lyapunov(
    series: ArrayLike,
    emb_dim: int = ...,
    lag: int = ...,
    *,
    theiler: int = ...,
    steps: int = ...,
    fit: str = ...,
    mode: str = ...,
    range_floor: float | None = ...,
    return_divergence: Literal[False] = ...,
    backend: str | None = ...,
) -> NDArray[np.float64]: ...


@overload
def lyapunov(
    series: ArrayLike,
    emb_dim: int = ...,
    lag: int = ...,
    *,
    theiler: int = ...,
    steps: int = ...,
    fit: str = ...,
    mode: str = ...,
    range_floor: float | None = ...,
    return_divergence: Literal[True],
    backend: str | None = ...,
) -> LyapunovResult: ...


@overload
def lyapunov(
    series: ArrayLike,
    emb_dim: int = ...,
    lag: int = ...,
    *,
    theiler: int = ...,
    steps: int = ...,
    fit: str = ...,
    mode: str = ...,
    range_floor: float | None = ...,
    return_divergence: bool = ...,
    backend: str | None = ...,
) -> NDArray[np.float64] | LyapunovResult: ...


def lyapunov(
    series: ArrayLike,
    emb_dim: int = 2,
    lag: int = 1,
    *,
    theiler: int = 0,
    steps: int = 3,
    fit: str = "k0k1",
    mode: str = "exact",
    range_floor: float | None = None,
    return_divergence: bool = False,
    backend: str | None = None,
) -> NDArray[np.float64] | LyapunovResult:
    """Largest Lyapunov exponent of each window with TISEAN's ``lyap_r`` estimator.

    Parameters
    ----------
    series : array_like of shape (n_windows, window_len) or (window_len,)
        One window per row (see :func:`sliding_windows`).
    emb_dim : int, default=2
        Embedding dimension m (TISEAN ``-m``).
    lag : int, default=1
        Delay d (TISEAN ``-d``).
    theiler : int, default=0
        Exclude neighbours with ``|i - j| <= theiler`` (TISEAN ``-t``; 0 excludes only the
        point itself). The recommended LEGCNet setting is 5.
    steps : int, default=3
        Follow neighbour pairs k = 0..steps iterations (TISEAN ``-s``).
    fit : {"k0k1", "lsq"}, default="k0k1"
        ``"k0k1"``: slope of the first segment, S(1) - S(0) (what the authors' MATLAB
        slope step reduces to); ``"lsq"``: least-squares slope over k = 0..steps.
    mode : {"exact", "authors"}, default="exact"
        ``"exact"``: float64 data; windows whose range is <= ``range_floor`` (default 1e-12)
        or that have no usable neighbour pair get NaN. ``"authors"`` (replication, spec §2.4):
        values rounded to 6 decimals (their ``%f`` file round trip), windows with range
        < ``range_floor`` (default 1e-5) get 0, missing slopes give 0 ("static window") and
        the exponent is rounded to 6 decimals: ``round(S(1) - S(0), 6)``.
    range_floor : float, optional
        See ``mode``.
    return_divergence : bool, default=False
        Return a :class:`LyapunovResult` with S(k), pair counts and status.
    backend : {"numba", "cuda", "auto"}, optional

    Returns
    -------
    ndarray of float64, shape (n_windows,), or LyapunovResult

    Raises
    ------
    InvalidParameterError
        Non-finite values, windows too short for ``emb_dim``, ``lag`` and ``steps`` (need
        ``window_len - (emb_dim - 1) * lag - steps >= 2``), or bad parameters.

    Notes
    -----
    The nearest neighbour is the same as TISEAN's exhaustive search finds (squared distance
    in (0, 1) on rescaled data, ties to the largest index), found by walking outward in the
    order of the first coordinate with early stopping: about O(window_len log window_len)
    per window instead of O(window_len^2), parallel over windows. The estimator is positive on white noise
    (spec §2.4): read it as a local divergence rate, not as proof of chaos.
    Backends: numba, cuda.

    References
    ----------
    Rosenstein, Collins, De Luca (1993), Physica D 65:117-134; Hegger, Kantz, Schreiber
    (1999), TISEAN, Chaos 9:413.

    Examples
    --------
    >>> import numpy as np
    >>> from netstruct.causal import lyapunov
    >>> x = np.empty(1000); x[0] = 4 * 0.1 * 0.9
    >>> for i in range(1, 1000):
    ...     x[i] = 4.0 * x[i - 1] * (1.0 - x[i - 1])
    >>> round(float(lyapunov(x)[0]), 3)  # ln 2 = 0.693
    0.692
    >>> decay = 0.5 + 0.1 * 0.9 ** np.arange(200)
    >>> bool(abs(lyapunov(decay)[0] - np.log(0.9)) < 1e-6)  # exact answer ln 0.9
    True
    """
    func = "lyapunov"
    check_scalar(emb_dim, "emb_dim", func, kind=int, min_value=1)
    check_scalar(lag, "lag", func, kind=int, min_value=1)
    check_scalar(theiler, "theiler", func, kind=int, min_value=0)
    check_scalar(steps, "steps", func, kind=int, min_value=1)
    check_choice(fit, "fit", func, ["k0k1", "lsq"])
    check_choice(mode, "mode", func, ["exact", "authors"])
    if not isinstance(return_divergence, (bool, np.bool_)):
        raise param_error("return_divergence", func, "a bool", return_divergence)
    authors = mode == "authors"
    floor = (
        (1e-5 if authors else 1e-12)
        if range_floor is None
        else float(check_scalar(range_floor, "range_floor", func, min_value=0.0))
    )
    try:
        x = np.asarray(series, dtype=np.float64)  # read only; rescaling makes a new array
    except (TypeError, ValueError):
        raise param_error(
            "series",
            func,
            "a real-valued array of shape (n_windows, window_len)",
            type(series).__name__,
        ) from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise param_error(
            "series",
            func,
            "an array of shape (n_windows, window_len) or (window_len,)",
            f"shape {x.shape}",
        )
    n_pts = x.shape[1] - (emb_dim - 1) * lag - steps
    if n_pts < 2:
        raise param_error(
            "series",
            func,
            f"windows of length >= {(emb_dim - 1) * lag + steps + 2} for emb_dim={emb_dim}, lag={lag}, steps={steps}",
            f"length {x.shape[1]}",
        )
    bad = ~np.isfinite(x)
    if bad.any():
        w, t = (int(i) for i in np.argwhere(bad)[0])
        raise param_error(
            "series",
            func,
            "finite (no NaN or inf)",
            f"{int(bad.sum())} non-finite values, first in window {w} at position {t}",
        )
    if authors:
        x = np.round(x, 6)
    lo = x.min(axis=1)
    rng = x.max(axis=1) - lo
    constant = rng < floor if authors else rng <= floor
    scaled = (x - lo[:, None]) / np.where(constant, 1.0, rng)[:, None]
    scaled[constant] = 0.0
    sums = np.zeros((x.shape[0], steps + 1))
    counts = np.zeros((x.shape[0], steps + 1), dtype=np.int64)
    if x.shape[0]:
        kernel = dispatch("causal.lyapunov", backend)
        kernel(np.ascontiguousarray(scaled), emb_dim, lag, theiler, steps, sums, counts)
    counts[constant] = 0
    valid = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.where(valid, sums / np.maximum(counts, 1) / 2.0, np.nan)
    lam = _slopes(S, valid, fit)
    status = np.where(constant, 1, np.where(np.isnan(lam), 2, 0)).astype(np.int8)
    if authors:
        lam = np.where(status == 0, np.round(lam, 6), 0.0)
    else:
        lam = np.where(status == 0, lam, np.nan)
    if return_divergence:
        return LyapunovResult(exponent=lam, divergence=S, counts=counts, status=status)
    return lam


def lyapunov_windows(
    trajectory: ArrayLike, window: int, stride: int, **kwargs
) -> NDArray[np.float64]:
    """Exponent of every window of every column of a trajectory: an array Λ of shape (K, n_series).

    Parameters
    ----------
    trajectory : array_like of shape (n_rows, n_series)
        One column per weight (as :meth:`TrajectoryReader.weights` returns).
    window, stride : int
        Window length W and stride S (the authors use S = 0.9 W).
    **kwargs
        Passed to :func:`lyapunov`.

    Examples
    --------
    >>> import numpy as np
    >>> traj = np.random.default_rng(0).standard_normal((100, 3))
    >>> lyapunov_windows(traj, 40, 30).shape
    (3, 3)
    """
    t = np.asarray(trajectory, dtype=np.float64)
    if t.ndim != 2:
        raise param_error(
            "trajectory",
            "lyapunov_windows",
            "an array of shape (n_rows, n_series)",
            f"shape {t.shape}",
        )
    w = sliding_windows(t, window, stride)  # (n_series, K, W)
    n_series, k, width = w.shape
    lam = lyapunov(w.reshape(n_series * k, width), **kwargs)
    return np.asarray(lam).reshape(n_series, k).T.copy()

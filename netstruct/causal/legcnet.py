"""LEGCNet decision rules: Lyapunov-exponent series -> Granger test -> keep/prune per weight.

Two rules (spec §2.5–2.6, §2.10, §5.1):

* ``LEGCNetConfig.authors()`` — replication mode, as the authors ran it: TISEAN ``lyap_r``
  with 6-decimal quantisation, minimum over lags 1..L of the ``ssr_chi2test`` p-value rounded
  to 4 decimals, infeasible tests -> p = 0 (kept), prune when p >= 0.05.
* ``LEGCNetConfig.recommended()`` — one lag (default 1), ``ssr_ftest``, Benjamini–Hochberg
  across edges at q = 0.05, prune edges whose test is not rejected, infeasible tests kept.

:func:`causal_scores` turns a weight trajectory and an effect series into per-edge scores and
a prune mask; :func:`null_calibration` shuffles the effect series to show how many weights
each rule calls causal when there is nothing to find (the authors' rule: most of them).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..exceptions import InvalidParameterError, param_error
from ..utils.random import check_random_state
from ..utils.validation import check_scalar
from .fdr import fdr_control
from .granger import granger, max_granger_lag
from .lyapunov import lyapunov, window_bounds

__all__ = ["LEGCNetConfig", "causal_scores", "decide", "null_calibration", "CausalScores"]


@dataclass(frozen=True)
class LEGCNetConfig:
    """Parameters of the LEGCNet pipeline (build with :meth:`authors` or :meth:`recommended`).

    Attributes
    ----------
    rule : {"authors", "recommended"}
    window, stride : int
        Window length W and stride S (authors: S = 0.9 W).
    le_mode : {"authors", "exact"}
        Passed to :func:`lyapunov` as ``mode``.
    theiler, steps : int
    le_fit : {"k0k1", "lsq"}
    max_lag : int
        Authors' rule: lags 1..L (capped at floor((K-2)/3) when ``cap_lag``).
    lag : int
        Recommended rule: the single lag.
    cap_lag : bool
        Cap L so statsmodels' K > 3L + 1 holds (a documented deviation: uncapped, every
        authors' test raised and every weight was kept).
    alpha : float
        Authors' rule: prune when min-p >= alpha.
    q : float
        Recommended rule: BH false discovery rate.
    amount : float, optional
        Recommended rule only: instead of pruning every edge BH does not reject (which prunes
        all edges when none shows evidence), prune this fraction of the feasible edges with
        the lowest ``influence`` (partial R^2), ties broken by edge order.
    target_sparsity : float, optional
        Deprecated name of ``amount`` (warns; moved into ``amount``).
    """

    rule: str = "recommended"
    window: int = 200
    stride: int = 180
    le_mode: str = "exact"
    theiler: int = 5
    steps: int = 3
    le_fit: str = "lsq"
    max_lag: int = 14
    lag: int = 1
    cap_lag: bool = True
    alpha: float = 0.05
    q: float = 0.05
    amount: float | None = None
    target_sparsity: float | None = None

    def __post_init__(self) -> None:
        if self.target_sparsity is None:
            return
        if self.amount is not None:
            raise InvalidParameterError(
                "LEGCNetConfig got both 'target_sparsity' (deprecated) and 'amount'; pass only 'amount'."
            )
        warnings.warn(
            "The 'target_sparsity' parameter of LEGCNetConfig is deprecated; use 'amount'. "
            "The old name will be removed in the next release.",
            FutureWarning,
            stacklevel=3,
        )
        object.__setattr__(self, "amount", self.target_sparsity)
        object.__setattr__(self, "target_sparsity", None)

    @classmethod
    def authors(cls, window: int = 200, *, max_lag: int = 14, **changes) -> LEGCNetConfig:
        """Replication mode (spec §2.10)."""
        stride = changes.pop("stride", round(0.9 * window))
        return replace(
            cls(
                rule="authors",
                window=window,
                stride=stride,
                le_mode="authors",
                theiler=0,
                steps=3,
                le_fit="k0k1",
                max_lag=max_lag,
            ),
            **changes,
        )

    @classmethod
    def recommended(
        cls, window: int = 200, *, lag: int = 1, q: float = 0.05, **changes
    ) -> LEGCNetConfig:
        """Calibrated mode (spec §2.10 "Recommended mode", §5.1)."""
        stride = changes.pop("stride", round(0.9 * window))
        return replace(
            cls(rule="recommended", window=window, stride=stride, lag=lag, q=q), **changes
        )

    def as_dict(self) -> dict:
        """Plain dict (for provenance records)."""
        return asdict(self)


@dataclass(frozen=True)
class CausalScores:
    """Per-edge results of :func:`causal_scores` (arrays of length n_edges unless noted).

    Attributes
    ----------
    prune : bool
        True = non-causal = prune.
    gc_p : float
        p-value the rule used (authors: min over lags of the 4-decimal chi-square p, and 0
        where any lag was infeasible, as their blanket ``except`` did; recommended: F-test
        p, and -1 where infeasible). ``gc_status`` tells which tests were infeasible.
    gc_q : float
        BH-adjusted p (recommended rule; -1 where infeasible or for the authors' rule).
    gc_stat : float
        chi-square (authors) or F (recommended) statistic at ``gc_lag``; -1 where infeasible.
    gc_lag : int
        Lag used (-1 where infeasible).
    gc_status : int8
        Worst :data:`GRANGER_STATUS` code over the tested lags.
    influence : float
        Partial R^2 = (SSR_r - SSR_u) / SSR_r at ``gc_lag`` (0 where infeasible).
    le_mean, le_pos_frac : float
        Mean of the edge's LE series (NaN windows ignored) and its fraction of positive values.
    lyap : ndarray of shape (K, n_edges)
        The LE series.
    effect : ndarray of shape (K,)
        The effect sampled at window ends.
    lags : ndarray of int
        Lags tested.
    """

    prune: NDArray[np.bool_]
    gc_p: NDArray[np.float64]
    gc_q: NDArray[np.float64]
    gc_stat: NDArray[np.float64]
    gc_lag: NDArray[np.int64]
    gc_status: NDArray[np.int8]
    influence: NDArray[np.float64]
    le_mean: NDArray[np.float64]
    le_pos_frac: NDArray[np.float64]
    lyap: NDArray[np.float64]
    effect: NDArray[np.float64]
    lags: NDArray[np.int64]

    def edge_attrs(self) -> dict[str, NDArray]:
        """The per-edge arrays, NaN-free, ready for ``G.with_edge_attrs(**scores.edge_attrs())``."""
        out = {
            k: getattr(self, k)
            for k in (
                "prune",
                "gc_p",
                "gc_q",
                "gc_stat",
                "gc_lag",
                "gc_status",
                "influence",
                "le_pos_frac",
            )
        }
        out["le_mean"] = np.nan_to_num(self.le_mean, nan=0.0)
        return out


def _lags_for(config: LEGCNetConfig, K: int) -> np.ndarray:
    if config.rule == "recommended":
        lags = [config.lag]
    else:
        L = min(config.max_lag, max_granger_lag(K)) if config.cap_lag else config.max_lag
        if L < 1:
            raise param_error(
                "lyap", "causal_scores", "at least 5 windows (K > 3L + 1 with L >= 1)", f"K = {K}"
            )
        lags = list(range(1, L + 1))
    if K <= 3 * max(lags) + 1:
        raise param_error(
            "config",
            "causal_scores",
            f"a lag <= {max_granger_lag(K)} for K = {K} windows",
            max(lags),
        )
    return np.asarray(lags, dtype=np.int64)


def decide(lyap: ArrayLike, effect: ArrayLike, config: LEGCNetConfig) -> CausalScores:
    """Granger-test every edge's LE series against the effect series and apply the rule.

    Parameters
    ----------
    lyap : array_like of shape (K, n_edges)
        LE per window and edge (NaN windows make that edge's test infeasible).
    effect : array_like of shape (K,)
        Effect series (e.g. misclassification at window ends), shared by all edges.
    config : LEGCNetConfig

    Returns
    -------
    CausalScores

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lam, m = rng.standard_normal((40, 6)), rng.standard_normal(40)
    >>> s = decide(lam, m, LEGCNetConfig.recommended())
    >>> s.prune.shape, s.gc_lag.tolist()
    ((6,), [1, 1, 1, 1, 1, 1])
    """
    lam = np.asarray(lyap, dtype=np.float64)
    m = np.asarray(effect, dtype=np.float64)
    if lam.ndim != 2 or m.shape != (lam.shape[0],):
        raise param_error(
            "lyap",
            "decide",
            f"a (K, n_edges) array with effect of shape (K,) = ({m.size},)",
            f"shape {lam.shape}",
        )
    K, E = lam.shape
    lags = _lags_for(config, K)
    res = granger(lam.T, m, lags=lags, errors="ignore")
    feasible_all = res.feasible.all(axis=1)
    rows = np.arange(E)
    if config.rule == "authors":
        p, lag = res.min_p("ssr_chi2test", decimals=4, infeasible="zero")
        li = np.clip(np.searchsorted(lags, lag), 0, lags.size - 1)
        stat = res.chi2_stat[rows, li]
        prune = p >= config.alpha
        qv = np.full(E, -1.0)
    else:
        li = np.zeros(E, dtype=np.int64)
        p = res.f_pvalue[:, 0].copy()
        stat = res.f_stat[:, 0]
        lag = np.full(E, lags[0], dtype=np.int64)
        reject, qv = fdr_control(np.where(feasible_all, p, np.nan), config.q)
        prune = feasible_all & ~reject
        qv = np.where(feasible_all, qv, -1.0)
    ssr_r = res.ssr_restricted[rows, li]
    ssr_u = res.ssr_unrestricted[rows, li]
    with np.errstate(invalid="ignore", divide="ignore"):
        infl = np.where(feasible_all, (ssr_r - ssr_u) / ssr_r, 0.0)
    infl = np.clip(np.nan_to_num(infl, nan=0.0), 0.0, 1.0)
    if config.rule == "recommended" and config.amount is not None:
        cand = np.flatnonzero(feasible_all)
        n_prune = int(round(config.amount * cand.size))
        order = cand[np.argsort(infl[cand], kind="stable")]
        prune = np.zeros(E, dtype=bool)
        prune[order[:n_prune]] = True
    bad = ~feasible_all
    p = np.where(bad & (config.rule == "recommended"), -1.0, p)
    stat = np.where(bad, -1.0, stat)
    lag = np.where(bad, -1, lag)
    finite = np.isfinite(lam)
    n_fin = finite.sum(axis=0)
    le_mean = np.where(
        n_fin > 0, np.where(finite, lam, 0.0).sum(axis=0) / np.maximum(n_fin, 1), np.nan
    )
    return CausalScores(
        prune=np.asarray(prune, dtype=bool),
        gc_p=p,
        gc_q=qv,
        gc_stat=stat,
        gc_lag=lag.astype(np.int64),
        gc_status=res.status.max(axis=1).astype(np.int8),
        influence=infl,
        le_mean=le_mean,
        le_pos_frac=np.mean(lam > 0, axis=0),
        lyap=lam,
        effect=m,
        lags=lags,
    )


def causal_scores(
    weights: ArrayLike, effect_rows: ArrayLike, config: LEGCNetConfig, *, backend: str | None = None
) -> CausalScores:
    """LE per window of every weight trajectory, then :func:`decide`.

    Parameters
    ----------
    weights : array_like of shape (n_rows, n_edges)
        Weight trajectories, row 0 = initialisation (:meth:`TrajectoryReader.weights`).
    effect_rows : array_like of shape (n_rows,)
        Effect per row (e.g. test misclassification); only the rows at window ends are read,
        so other rows may be NaN.
    config : LEGCNetConfig
    backend : str, optional
        Backend of the Lyapunov kernel.

    Returns
    -------
    CausalScores

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> weights = np.cumsum(rng.standard_normal((1000, 4)) * 1e-3, axis=0)
    >>> errors = rng.uniform(0, 0.3, 1000)
    >>> s = causal_scores(weights, errors, LEGCNetConfig.authors(50))
    >>> s.lyap.shape, s.lags.tolist()
    ((22, 4), [1, 2, 3, 4, 5, 6])
    """
    w = np.asarray(weights, dtype=np.float64)
    e = np.asarray(effect_rows, dtype=np.float64)
    if w.ndim != 2 or e.shape != (w.shape[0],):
        raise param_error(
            "weights",
            "causal_scores",
            f"an (n_rows, n_edges) array with effect_rows of shape (n_rows,) = ({e.size},)",
            f"shape {w.shape}",
        )
    starts, last = window_bounds(w.shape[0], config.window, config.stride)
    m = e[last]
    if not np.isfinite(m).all():
        raise param_error(
            "effect_rows",
            "causal_scores",
            "finite at every window end row " + str(last[:5].tolist()) + "...",
            f"{int((~np.isfinite(m)).sum())} non-finite window-end values",
        )
    K, E = starts.size, w.shape[1]
    win = np.lib.stride_tricks.sliding_window_view(w, config.window, axis=0)[starts]  # (K, E, W)
    lam = lyapunov(
        win.reshape(K * E, config.window),
        2,
        1,
        theiler=config.theiler,
        steps=config.steps,
        fit=config.le_fit,
        mode=config.le_mode,
        backend=backend,
    ).reshape(K, E)
    return decide(lam, m, config)


def null_calibration(
    lyap: ArrayLike,
    effect: ArrayLike,
    configs: dict[str, LEGCNetConfig],
    *,
    n_shuffles: int = 20,
    seed=None,
) -> dict[str, NDArray[np.float64]]:
    """How many weights each rule calls causal when the effect series is shuffled.

    Permuting the effect series destroys any relation to the LE series; a calibrated rule
    then keeps ("calls causal") about a fraction alpha/q of the edges or fewer.

    Parameters
    ----------
    lyap : array_like of shape (K, n_edges)
    effect : array_like of shape (K,)
    configs : dict of str to LEGCNetConfig
        The rules to compare, e.g. ``{"authors": LEGCNetConfig.authors(), ...}``.
    n_shuffles : int, default=20
    seed : int, Generator or None

    Returns
    -------
    dict of str to ndarray of shape (n_shuffles,)
        Fraction of edges each rule calls causal (keeps) under each shuffle.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lam, m = rng.standard_normal((36, 200)), rng.standard_normal(36)
    >>> cal = null_calibration(lam, m, {"authors": LEGCNetConfig.authors(), "recommended": LEGCNetConfig.recommended()}, n_shuffles=3, seed=0)
    >>> bool(cal["authors"].mean() > 0.5), bool(cal["recommended"].mean() < 0.05)
    (True, True)
    """
    check_scalar(n_shuffles, "n_shuffles", "null_calibration", kind=int, min_value=1)
    rng = check_random_state(seed, func="null_calibration")
    m = np.asarray(effect, dtype=np.float64)
    out = {name: np.empty(n_shuffles) for name in configs}
    for s in range(n_shuffles):
        perm = m[rng.permutation(m.size)]
        for name, cfg in configs.items():
            out[name][s] = float(np.mean(~decide(lyap, perm, cfg).prune))
    return out

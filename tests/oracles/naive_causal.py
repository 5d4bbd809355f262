"""Slow, obvious references for netstruct.causal kernels (plain numpy/scipy, one series at a time)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def naive_granger(cause: np.ndarray, effect: np.ndarray, lag: int) -> dict[str, float]:
    """Granger statistics of cause -> effect at one lag by two ``np.linalg.lstsq`` fits."""
    y = np.asarray(effect, dtype=float)
    c = np.asarray(cause, dtype=float)
    T = y.size
    rows = np.arange(lag, T)
    ylags = np.column_stack([y[rows - j] for j in range(1, lag + 1)])
    clags = np.column_stack([c[rows - j] for j in range(1, lag + 1)])
    one = np.ones((rows.size, 1))
    Z = np.hstack([ylags, one])
    X = np.hstack([ylags, clags, one])
    target = y[rows]
    ssr_r = float(np.sum((target - Z @ np.linalg.lstsq(Z, target, rcond=None)[0]) ** 2))
    ssr_u = float(np.sum((target - X @ np.linalg.lstsq(X, target, rcond=None)[0]) ** 2))
    n = rows.size
    df = n - X.shape[1]
    F = (ssr_r - ssr_u) / lag / (ssr_u / df)
    chi2 = n * (ssr_r - ssr_u) / ssr_u
    lr = n * np.log(ssr_r / ssr_u)
    return {
        "F": F,
        "F_p": float(stats.f.sf(F, lag, df)),
        "df": float(df),
        "chi2": chi2,
        "chi2_p": float(stats.chi2.sf(chi2, lag)),
        "lr": lr,
        "lr_p": float(stats.chi2.sf(lr, lag)),
    }


def naive_f_sf(dfn: float, dfd: float, f: float, digits: int = 40) -> float:
    """P(F > f) for F ~ F(dfn, dfd) as the regularised incomplete beta I_x(dfd/2, dfn/2),
    x = dfd / (dfd + dfn f), evaluated by mpmath at ``digits`` significant digits."""
    import mpmath

    with mpmath.workdps(digits):
        fm = mpmath.mpf(float(f))
        x = mpmath.mpf(dfd) / (mpmath.mpf(dfd) + mpmath.mpf(dfn) * fm)
        return float(
            mpmath.betainc(mpmath.mpf(dfd) / 2, mpmath.mpf(dfn) / 2, 0, x, regularized=True)
        )


def naive_lyapunov_divergence(
    x: np.ndarray, emb_dim: int = 2, lag: int = 1, theiler: int = 0, steps: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """TISEAN ``lyap_r`` S(k) and pair counts for one window, from a full distance matrix.

    Rescale to [0, 1]; points 0..n_pts-1 with n_pts = L - (m-1)d - steps; neighbour = the
    largest index among the minimal squared distances in (0, 1) outside the Theiler band.
    """
    x = np.asarray(x, dtype=float)
    rng = x.max() - x.min()
    xs = (x - x.min()) / rng
    L = xs.size
    n_emb = L - (emb_dim - 1) * lag
    emb = np.column_stack([xs[e * lag : e * lag + n_emb] for e in range(emb_dim)])
    n_pts = n_emb - steps
    P = emb[:n_pts]
    D = ((P[:, None, :] - P[None, :, :]) ** 2).sum(-1)
    idx = np.arange(n_pts)
    D[np.abs(idx[:, None] - idx[None, :]) <= theiler] = np.inf
    D[(D <= 0) | (D >= 1)] = np.inf
    sums = np.zeros(steps + 1)
    counts = np.zeros(steps + 1, dtype=np.int64)
    for n in range(n_pts):
        row = D[n]
        best = row.min()
        if not np.isfinite(best):
            continue
        j = int(np.flatnonzero(row == best).max())
        for k in range(steps + 1):
            d2 = float(((emb[n + k] - emb[j + k]) ** 2).sum())
            if d2 > 0:
                sums[k] += np.log(d2)
                counts[k] += 1
    S = np.where(counts > 0, sums / np.maximum(counts, 1) / 2.0, np.nan)
    return S, counts


def jacobian_lyapunov_logistic(r: float, x: np.ndarray) -> float:
    """Exact exponent of the logistic map along an orbit: mean of ln|r(1 - 2x)|."""
    return float(np.mean(np.log(np.abs(r * (1.0 - 2.0 * np.asarray(x))))))


def logistic_orbit(r: float, x0: float, n: int, burn: int = 0) -> np.ndarray:
    """x_1..x_n of x <- (r x)(1 - x) after ``burn`` discarded iterations."""
    x = x0
    for _ in range(burn):
        x = (r * x) * (1.0 - x)
    out = np.empty(n)
    for i in range(n):
        x = (r * x) * (1.0 - x)
        out[i] = x
    return out

"""numba (CPU) kernels for :mod:`netstruct.causal`: batched Granger fits and TISEAN-style divergence.

The per-series work lives in plain Python "core" functions (``_granger_core_py``,
``_lyapunov_core_py``) that use only scalar arithmetic, ``math`` and caller-provided arrays.
They are compiled here with ``njit`` and, by :mod:`netstruct.backends.cuda.causal`, with
``cuda.jit(device=True)``, so both backends run literally the same arithmetic.

Kernels take validated, C-contiguous float64 arrays, write into ``out_*`` arrays and never
raise; per-series problems are reported through status codes (see ``GRANGER_STATUS``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._jit import njit

__all__ = ["granger", "lyapunov", "GRANGER_STATUS"]

#: Status codes written by the Granger kernel (index = code).
#: ``check_rank`` is internal: the public wrapper re-decides those fits exactly.
GRANGER_STATUS = (
    "ok",
    "constant_cause",
    "constant_effect",
    "nonfinite",
    "perfect_fit",
    "check_rank",
)


_N_CHUNKS = 256  # work units of the prange loops (load balance vs per-chunk scratch allocation)


# ----------------------------------------------------------------------------- Granger
def _granger_core_py(y, c, lags, rank_tol, A, v, out_ssr_r, out_diff, out_ssr_u, out_status):
    """Fit restricted and unrestricted lag regressions of one (effect, cause) pair.

    y, c : float64 (T,); lags : int64 (n_lags,); A : float64 (>= 2*max(lags)+1, >= T) scratch (columns as rows);
    v : float64 (>= T,) scratch. Writes row ``out_*[li]`` for each lag. Householder QR of the
    design [y lags, 1, c lags] (restricted columns first), so SSR_r - SSR_u is accumulated
    directly from the rotated response instead of by subtraction. O(sum_p (T-p)(2p+1)^2).
    """
    T = y.shape[0]
    nan = math.nan
    finite = True
    for t in range(T):
        if not (math.isfinite(y[t]) and math.isfinite(c[t])):
            finite = False
            break
    for li in range(lags.shape[0]):
        out_ssr_r[li] = nan
        out_diff[li] = nan
        out_ssr_u[li] = nan
        if not finite:
            out_status[li] = 3
            continue
        p = lags[li]
        n = T - p
        k = 2 * p + 1
        status = 0
        # statsmodels: any constant regressor column (besides the intercept) is infeasible
        for j in range(1, p + 1):
            lo = y[p - j]
            hi = y[p - j]
            for t in range(p - j, T - j):
                lo = min(lo, y[t])
                hi = max(hi, y[t])
            if lo == hi:
                status = 2
                break
        if status == 0:
            # response rows y[p:] constant: statsmodels means to raise (TSS == 0) but its
            # floating-point mean can leave ~1e-32 noise and return arbitrary statistics
            lo = y[p]
            hi = y[p]
            for t in range(p, T):
                lo = min(lo, y[t])
                hi = max(hi, y[t])
            if lo == hi:
                status = 2
        if status == 0:
            for j in range(1, p + 1):
                lo = c[p - j]
                hi = c[p - j]
                for t in range(p - j, T - j):
                    lo = min(lo, c[t])
                    hi = max(hi, c[t])
                if lo == hi:
                    status = 1
                    break
        if status != 0:
            out_status[li] = status
            continue
        # centred total sum of squares of the response rows
        mean = 0.0
        for r in range(n):
            mean += y[p + r]
        mean /= n
        tss = 0.0
        for r in range(n):
            dv = y[p + r] - mean
            tss += dv * dv
        # design matrix, stored transposed (column j is the contiguous row A[j, :n])
        for r in range(n):
            t = p + r
            for j in range(p):
                A[j, r] = y[t - 1 - j]
            A[p, r] = 1.0
            for j in range(p):
                A[p + 1 + j, r] = c[t - 1 - j]
            v[r] = y[t]
        min_rel_pivot = math.inf
        for j in range(k):
            # squared norms of the whole column and of its part below the diagonal
            s0 = 0.0
            for i in range(j):
                s0 += A[j, i] * A[j, i]
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            a3 = 0.0
            i = j
            while i + 3 < n:
                a0 += A[j, i] * A[j, i]
                a1 += A[j, i + 1] * A[j, i + 1]
                a2 += A[j, i + 2] * A[j, i + 2]
                a3 += A[j, i + 3] * A[j, i + 3]
                i += 4
            while i < n:
                a0 += A[j, i] * A[j, i]
                i += 1
            nrm2 = (a0 + a1) + (a2 + a3)
            cn2 = s0 + nrm2
            nrm = math.sqrt(nrm2)
            if nrm == 0.0 or cn2 == 0.0:
                min_rel_pivot = 0.0
                continue
            min_rel_pivot = min(min_rel_pivot, nrm / math.sqrt(cn2))
            alpha = -nrm if A[j, j] >= 0.0 else nrm
            # Householder vector h = A[j, j:] - alpha e_1, with |h|^2 = 2 nrm (nrm + |A[j, j]|)
            h2 = 2.0 * nrm * (nrm + abs(A[j, j]))
            A[j, j] -= alpha
            for jj in range(j + 1, k + 1):
                # column jj of [A | v]: k is the response vector v
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                a3 = 0.0
                i = j
                if jj < k:
                    while i + 3 < n:
                        a0 += A[j, i] * A[jj, i]
                        a1 += A[j, i + 1] * A[jj, i + 1]
                        a2 += A[j, i + 2] * A[jj, i + 2]
                        a3 += A[j, i + 3] * A[jj, i + 3]
                        i += 4
                    while i < n:
                        a0 += A[j, i] * A[jj, i]
                        i += 1
                    f = 2.0 * ((a0 + a1) + (a2 + a3)) / h2
                    for i in range(j, n):
                        A[jj, i] -= f * A[j, i]
                else:
                    while i + 3 < n:
                        a0 += A[j, i] * v[i]
                        a1 += A[j, i + 1] * v[i + 1]
                        a2 += A[j, i + 2] * v[i + 2]
                        a3 += A[j, i + 3] * v[i + 3]
                        i += 4
                    while i < n:
                        a0 += A[j, i] * v[i]
                        i += 1
                    f = 2.0 * ((a0 + a1) + (a2 + a3)) / h2
                    for i in range(j, n):
                        v[i] -= f * A[j, i]
        diff = 0.0
        for i in range(p + 1, k):
            diff += v[i] * v[i]
        ssr_u = 0.0
        for i in range(k, n):
            ssr_u += v[i] * v[i]
        out_ssr_r[li] = ssr_u + diff
        out_diff[li] = diff
        out_ssr_u[li] = ssr_u
        if min_rel_pivot < rank_tol:
            out_status[li] = 5
        elif tss == 0.0 or ssr_u == 0.0 or ssr_u / tss < 2.220446049250313e-16:
            out_status[li] = 4
        else:
            out_status[li] = 0


_granger_core = njit(_granger_core_py)


@njit(parallel=True)
def granger(effect, cause, lags, rank_tol, out_ssr_r, out_diff, out_ssr_u, out_status):
    """Batched Granger regressions (numba, ``prange`` over series).

    effect : float64 (n_eff, T) with n_eff in {1, n_series} (row 0 shared when n_eff == 1);
    cause : float64 (n_series, T); lags : int64 (n_lags,); rank_tol : float.
    Writes out_ssr_r, out_diff (= SSR_r - SSR_u), out_ssr_u : float64 (n_series, n_lags) and
    out_status : int8 (n_series, n_lags). Series are split into up to 256 contiguous chunks;
    each chunk allocates its scratch ((2 max(lags)+1) x T) once.
    """
    n_series, T = cause.shape
    kmax = 2 * lags.max() + 1
    n_chunks = min(n_series, _N_CHUNKS)
    for ch in nb.prange(n_chunks):
        A = np.empty((kmax, T))
        v = np.empty(T)
        for b in range(ch * n_series // n_chunks, (ch + 1) * n_series // n_chunks):
            e = effect[0] if effect.shape[0] == 1 else effect[b]
            _granger_core(
                e,
                cause[b],
                lags,
                rank_tol,
                A,
                v,
                out_ssr_r[b],
                out_diff[b],
                out_ssr_u[b],
                out_status[b],
            )


# ----------------------------------------------------------------------------- Lyapunov
def _lyapunov_core_py(x, order, emb_dim, lag, theiler, steps, out_sum, out_count):
    """TISEAN ``lyap_r`` divergence sums for one rescaled window.

    x : float64 (L,) already mapped to [0, 1]; order : int64 (n_pts,), the points
    0..n_pts-1 (n_pts = L - (m-1)d - steps) sorted by their first coordinate x[t]. Writes
    out_sum[k] (sum of log squared distances) and out_count[k] for k = 0..steps.

    Nearest neighbour of each point among the same n_pts points: the smallest squared
    distance in (0, 1) outside the Theiler band |n - j| <= theiler, ties going to the largest
    index (TISEAN's rule, identical to its exhaustive scan). The search walks outward from the
    point in sorted order and stops once the first-coordinate gap alone exceeds the best
    distance, so it costs O(L * neighbours examined) instead of O(L^2).
    """
    for k in range(steps + 1):
        out_sum[k] = 0.0
        out_count[k] = 0
    n_pts = order.shape[0]
    for pos in range(n_pts):
        n = order[pos]
        xn = x[n]
        best = 1.0
        bj = -1
        for side in range(2):
            step = -1 if side == 0 else 1
            q = pos + step
            while q >= 0 and q < n_pts:
                j = order[q]
                q += step
                dx = xn - x[j]
                d2 = dx * dx
                if d2 > best:
                    break
                if abs(n - j) <= theiler:
                    continue
                for e in range(1, emb_dim):
                    dx = x[n + e * lag] - x[j + e * lag]
                    d2 += dx * dx
                if d2 > 0.0 and (d2 < best or (d2 == best and bj >= 0 and j > bj)):
                    best = d2
                    bj = j
        if bj >= 0:
            for k in range(steps + 1):
                d2 = 0.0
                for e in range(emb_dim):
                    dx = x[n + k + e * lag] - x[bj + k + e * lag]
                    d2 += dx * dx
                if d2 > 0.0:
                    out_sum[k] += math.log(d2)
                    out_count[k] += 1


_lyapunov_core = njit(_lyapunov_core_py)


@njit(parallel=True)
def lyapunov(windows, emb_dim, lag, theiler, steps, out_sum, out_count):
    """Batched nearest-neighbour divergence sums (numba, ``prange`` over windows).

    windows : float64 (n_windows, L), each row rescaled to [0, 1] (any finite values are
    safe). Writes out_sum : float64 (n_windows, steps+1) and out_count : int64
    (n_windows, steps+1). Each thread sorts its window's points by first coordinate, then
    runs the shared core.
    """
    n_pts = windows.shape[1] - (emb_dim - 1) * lag - steps
    for w in nb.prange(windows.shape[0]):
        order = np.argsort(
            windows[w, :n_pts], kind="mergesort"
        )  # stable: same order as the cuda host
        _lyapunov_core(windows[w], order, emb_dim, lag, theiler, steps, out_sum[w], out_count[w])

"""numba (CPU) kernels for :mod:`netstruct.causal`: batched Granger fits and TISEAN-style divergence.

The per-series work lives in plain Python "core" functions (``_granger_core_py``,
``_granger_prep_lanes_py``, ``_granger_lag_lanes_py``, ``_lyapunov_core_py``) that use only
scalar arithmetic, ``math`` and caller-provided arrays. They are compiled here with ``njit``
and, by :mod:`netstruct.backends.cuda.causal`, with ``cuda.jit(device=True)``, so both
backends run literally the same arithmetic.

Granger with one effect row shared by all causes (the LEGCNet case) fits the restricted
regression once per lag (``_granger_restricted_py``: orthonormal basis Q and residual e);
the "lane" cores then handle only each cause's p lag columns, with the cause index as the
innermost loop (the CPU kernel runs 64 causes per batch, so those loops vectorise without
reassociating any sum; a CUDA thread runs one lane). Per (cause, lag) the lanes first try the
Gram route (``_granger_gram_prefix_py`` / ``_granger_gram_lag_py``: window sums of lagged
products from O(T max(lags)) prefix values, then an O(p^3) Cholesky of the residualised Gram),
and hand a cause to the O(n p^2) QR lanes (``_granger_lag_lanes_py``) whenever the Gram
route's estimated relative error exceeds 1e-11, the fit is near-perfect or a pivot is near
rank_tol, so statuses and values stay those of the QR. One effect row per cause (unit to
unit) runs the per-pair Gram route (``_granger_pair_prefix_py`` / ``_granger_pair_lag_py``:
window sums of both series' lagged products, a Cholesky of the (2p+2)-column augmented Gram,
a first-order rounding-error bound per fit) 64 pairs per batch, and the full per-series QR
(``_granger_core_py``) for each (pair, lag) it hands off. With a largest lag of 1 or 2 the
window-sum tables come from fused passes (``_granger_pair_tables_l1_py``,
``_granger_pair_tables_l2_py``), bit-identical to the per-table passes, so a lag's result
never depends on the other lags asked for.

Kernels take validated, C-contiguous float64 arrays, write into ``out_*`` arrays and never
raise; per-series problems are reported through status codes (see ``GRANGER_STATUS``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._jit import njit, njit_serial_and_parallel

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
@njit
def _max_of(a):
    """``a.max()`` of a non-empty 1-D array as a loop (numpy's reduction is slow to compile)."""
    m = a[0]
    for k in range(1, a.shape[0]):
        if a[k] > m:
            m = a[k]
    return m


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


# --- shared effect: the restricted fit is the same for every cause --------------------------
def _granger_restricted_py(y, lags, Q, e, rstat, rpiv, tss, Zt, v, h2):
    """Restricted fit ``y[p:] ~ [y lags, 1]`` of one effect series, once per lag.

    y : float64 (T,); lags : int64 (n_lags,). Writes, per lag index li (p = lags[li],
    n = T - p): Q[li, :n, :p+1] an orthonormal basis of the restricted design (explicit
    Householder Q), e[li, :n] the restricted residual, rstat[li] (0 ok, 2 constant effect,
    3 non-finite), rpiv[li] the smallest relative Householder pivot of the restricted columns
    and tss[li] the centred total sum of squares of the response rows. Scratch: Zt
    (>= max(lags)+1, >= T), v (>= T), h2 (>= max(lags)+1). Same pivots and column order as
    ``_granger_core_py`` (y lags, then the intercept).
    """
    T = y.shape[0]
    finite = True
    for t in range(T):
        if not math.isfinite(y[t]):
            finite = False
    for li in range(lags.shape[0]):
        p = lags[li]
        n = T - p
        k = p + 1
        rpiv[li] = math.inf
        tss[li] = 0.0
        if not finite:
            rstat[li] = 3
            continue
        status = 0
        for j in range(1, p + 1):
            lo = y[p - j]
            hi = y[p - j]
            for t in range(p - j, T - j):
                lo = min(lo, y[t])
                hi = max(hi, y[t])
            if lo == hi:
                status = 2
                break
        lo = y[p]
        hi = y[p]
        for t in range(p, T):
            lo = min(lo, y[t])
            hi = max(hi, y[t])
        if lo == hi:
            status = 2
        rstat[li] = status
        if status != 0:
            continue
        mean = 0.0
        for r in range(n):
            mean += y[p + r]
        mean /= n
        s = 0.0
        for r in range(n):
            dv = y[p + r] - mean
            s += dv * dv
        tss[li] = s
        for r in range(n):
            t = p + r
            for j in range(p):
                Zt[j, r] = y[t - 1 - j]
            Zt[p, r] = 1.0
            v[r] = y[t]
        minpiv = math.inf
        for j in range(k):
            s0 = 0.0
            for i in range(j):
                s0 += Zt[j, i] * Zt[j, i]
            nrm2 = 0.0
            for i in range(j, n):
                nrm2 += Zt[j, i] * Zt[j, i]
            cn2 = s0 + nrm2
            nrm = math.sqrt(nrm2)
            if nrm == 0.0 or cn2 == 0.0:
                minpiv = 0.0
                h2[j] = 0.0  # reflection skipped (identity)
                continue
            minpiv = min(minpiv, nrm / math.sqrt(cn2))
            alpha = -nrm if Zt[j, j] >= 0.0 else nrm
            h2[j] = 2.0 * nrm * (nrm + abs(Zt[j, j]))
            Zt[j, j] -= alpha
            for jj in range(j + 1, k):
                d = 0.0
                for i in range(j, n):
                    d += Zt[j, i] * Zt[jj, i]
                f = 2.0 * d / h2[j]
                for i in range(j, n):
                    Zt[jj, i] -= f * Zt[j, i]
            d = 0.0
            for i in range(j, n):
                d += Zt[j, i] * v[i]
            f = 2.0 * d / h2[j]
            for i in range(j, n):
                v[i] -= f * Zt[j, i]
        rpiv[li] = minpiv
        for i in range(n):
            e[li, i] = v[i]  # rotated response (its tail is the residual in rotated coordinates)
        # residual e = H_0 ... H_p (0, v[k:]) and basis Q[:, c] = H_0 ... H_p e_c
        for c in range(k + 1):
            for i in range(n):
                if c < k:
                    v[i] = 1.0 if i == c else 0.0
                else:
                    v[i] = 0.0 if i < k else e[li, i]
            for j in range(k - 1, -1, -1):
                if h2[j] == 0.0:
                    continue
                d = 0.0
                for i in range(j, n):
                    d += Zt[j, i] * v[i]
                f = 2.0 * d / h2[j]
                for i in range(j, n):
                    v[i] -= f * Zt[j, i]
            for i in range(n):
                if c < k:
                    Q[li, i, c] = v[i]
                else:
                    e[li, i] = v[i]


_granger_restricted = njit(_granger_restricted_py)


def _granger_prep_lanes_py(cb, l0, l1, nxt, bad):
    """Per-cause facts for lanes l0..l1-1 of cb (T, lanes): non-finite flag and run ends.

    nxt[t, ln] = the smallest s >= t with cb[s, ln] != cb[s + 1, ln] (T - 1 if none), so
    cb[a..b, ln] is constant iff nxt[a, ln] >= b.
    """
    T = cb.shape[0]
    for ln in range(l0, l1):
        bad[ln] = 0
        nxt[T - 1, ln] = T - 1
    for t in range(T - 2, -1, -1):
        for ln in range(l0, l1):
            nxt[t, ln] = t if cb[t, ln] != cb[t + 1, ln] else nxt[t + 1, ln]
    for t in range(T):
        for ln in range(l0, l1):
            if not math.isfinite(cb[t, ln]):
                bad[ln] = 1


_granger_prep_lanes = njit(_granger_prep_lanes_py)


def _granger_lag_lanes_py(
    cb,
    p,
    li,
    Q,
    e,
    rstat,
    rpiv,
    tss,
    rank_tol,
    nxt,
    bad,
    A,
    W,
    ev,
    sc,
    l0,
    l1,
    out_ssr_r,
    out_diff,
    out_ssr_u,
    out_status,
):
    """Unrestricted fit at lag ``p`` (index li) for causes in lanes l0..l1-1 of cb (T, lanes).

    Uses the shared restricted fit (Q, e, rstat, rpiv, tss from ``_granger_restricted_py``):
    the p cause-lag columns C are projected off the restricted basis, W = C - Q (Q^T C), and
    a Householder QR of W applied to the restricted residual e gives SSR_r - SSR_u (its first
    p rotated entries) and SSR_u (the rest) as sums of squares. Pivots are those of the full
    design's Householder QR (relative to the column norms of C). O(p^2 n) per cause with the
    lane (cause) index innermost, so loops vectorise across causes without reassociation.
    Scratch: A (>= p+1, >= p, lanes), W (>= p, >= T, lanes), ev (>= T, lanes), sc (>= 4, lanes).
    Writes row ln, column li of the out_* arrays.
    """
    T = cb.shape[0]
    n = T - p
    rs = rstat[li]
    nan = math.nan
    if rs == 0:
        # A = Q^T C and W = C - Q A, column by column (C[:, j] = c[p-1-j : p-1-j+n])
        for j in range(p):
            for i in range(p + 1):
                for ln in range(l0, l1):
                    A[i, j, ln] = 0.0
            for r in range(n):
                t = p - 1 - j + r
                for i in range(p + 1):
                    q = Q[li, r, i]
                    for ln in range(l0, l1):
                        A[i, j, ln] += q * cb[t, ln]
            for r in range(n):
                t = p - 1 - j + r
                for ln in range(l0, l1):
                    W[j, r, ln] = cb[t, ln]
                for i in range(p + 1):
                    q = Q[li, r, i]
                    for ln in range(l0, l1):
                        W[j, r, ln] -= q * A[i, j, ln]
        for r in range(n):
            er = e[li, r]
            for ln in range(l0, l1):
                ev[r, ln] = er
        # Householder QR of W (rows 0..n-1), applied to ev
        for ln in range(l0, l1):
            sc[0, ln] = math.inf
        for j in range(p):
            # |C_j|^2 = |A[:, j]|^2 + |W_j|^2: the pivot is relative to the design column
            for ln in range(l0, l1):
                sc[1, ln] = 0.0
                sc[2, ln] = 0.0
            for i in range(p + 1):
                for ln in range(l0, l1):
                    sc[1, ln] += A[i, j, ln] * A[i, j, ln]
            for i in range(j):
                for ln in range(l0, l1):
                    sc[1, ln] += W[j, i, ln] * W[j, i, ln]
            for i in range(j, n):
                for ln in range(l0, l1):
                    sc[2, ln] += W[j, i, ln] * W[j, i, ln]
            for ln in range(l0, l1):
                nrm2 = sc[2, ln]
                cn2 = sc[1, ln] + nrm2
                nrm = math.sqrt(nrm2)
                if nrm == 0.0 or cn2 == 0.0:
                    sc[0, ln] = 0.0
                    sc[3, ln] = 0.0  # skip this reflection
                else:
                    sc[0, ln] = min(sc[0, ln], nrm / math.sqrt(cn2))
                    wjj = W[j, j, ln]
                    alpha = -nrm if wjj >= 0.0 else nrm
                    sc[3, ln] = 1.0 / (nrm * (nrm + abs(wjj)))  # 2 / |h|^2
                    W[j, j, ln] = wjj - alpha
            for jj in range(j + 1, p + 1):
                for ln in range(l0, l1):
                    sc[1, ln] = 0.0
                if jj < p:
                    for i in range(j, n):
                        for ln in range(l0, l1):
                            sc[1, ln] += W[j, i, ln] * W[jj, i, ln]
                    for ln in range(l0, l1):
                        sc[1, ln] *= sc[3, ln]
                    for i in range(j, n):
                        for ln in range(l0, l1):
                            W[jj, i, ln] -= sc[1, ln] * W[j, i, ln]
                else:
                    for i in range(j, n):
                        for ln in range(l0, l1):
                            sc[1, ln] += W[j, i, ln] * ev[i, ln]
                    for ln in range(l0, l1):
                        sc[1, ln] *= sc[3, ln]
                    for i in range(j, n):
                        for ln in range(l0, l1):
                            ev[i, ln] -= sc[1, ln] * W[j, i, ln]
        for ln in range(l0, l1):
            sc[1, ln] = 0.0
            sc[2, ln] = 0.0
        for i in range(p):
            for ln in range(l0, l1):
                sc[1, ln] += ev[i, ln] * ev[i, ln]
        for i in range(p, n):
            for ln in range(l0, l1):
                sc[2, ln] += ev[i, ln] * ev[i, ln]
    for ln in range(l0, l1):
        if rs == 3 or bad[ln] != 0:
            status = 3
        elif rs != 0:
            status = rs
        else:
            status = 0
            for j in range(1, p + 1):
                if nxt[p - j, ln] >= T - 1 - j:
                    status = 1
        if status != 0:
            out_ssr_r[ln, li] = nan
            out_diff[ln, li] = nan
            out_ssr_u[ln, li] = nan
            out_status[ln, li] = status
            continue
        diff = sc[1, ln]
        ssr_u = sc[2, ln]
        out_ssr_r[ln, li] = ssr_u + diff
        out_diff[ln, li] = diff
        out_ssr_u[ln, li] = ssr_u
        t2 = tss[li]
        if min(rpiv[li], sc[0, ln]) < rank_tol:
            out_status[ln, li] = 5
        elif t2 == 0.0 or ssr_u == 0.0 or ssr_u / t2 < 2.220446049250313e-16:
            out_status[ln, li] = 4
        else:
            out_status[ln, li] = 0


_granger_lag_lanes = njit(_granger_lag_lanes_py)


# --- shared effect, Gram route: O(p^3) per (cause, lag) instead of O(n p^2) -----------------
#: A (cause, lag) leaves the Gram route for the QR lanes when the estimated relative error of
#: its SSR_u exceeds this (see ``_granger_gram_lag_py``).
_GRAM_TOL = 1e-11
#: Restricted fits with a smaller relative pivot run all causes of that lag on the QR lanes.
_GRAM_RPIV_MIN = 1e-3
#: Up to this cond(R) of the restricted design, the error estimate uses cond(R) directly;
#: above, each cause's own coefficients on the restricted design (O(p^3) more per lag).
_GRAM_KZ_DIRECT = 8.0


def _granger_gram_prefix_py(cb, yc, L, l0, l1, cc, cm, PY, PC, P1, acc):
    """Lagged cross-products of the causes in lanes l0..l1-1 of cb (T, lanes), lags <= L.

    cc = cb minus its mean cm (per lane); yc is the centred effect. With S(k) = the sum of the
    terms u < k, only the prefix values at k = 0..L-1 (slot k) and k = T-L..T (slot
    k - T + 2L) are kept: PY[d + L - 1, slot] for the terms yc[u] cc[u + d] (|d| < L),
    PC[d, slot] for cc[u] cc[u + d] (0 <= d < L) and P1[slot] for cc[u]. Every window sum
    of the lag regressions is the difference of two kept values. acc: scratch (>= lanes,).
    """
    T = cb.shape[0]
    tail = T - 2 * L
    for ln in range(l0, l1):
        cm[ln] = 0.0
    for t in range(T):
        for ln in range(l0, l1):
            cm[ln] += cb[t, ln]
    for ln in range(l0, l1):
        cm[ln] /= T
    for t in range(T):
        for ln in range(l0, l1):
            cc[t, ln] = cb[t, ln] - cm[ln]
    for dd in range(2 * L - 1):
        d = dd - (L - 1)
        for ln in range(l0, l1):
            acc[ln] = 0.0
            PY[dd, 0, ln] = 0.0
        for u in range(T):
            if u + d >= 0 and u + d < T:
                yu = yc[u]
                for ln in range(l0, l1):
                    acc[ln] += yu * cc[u + d, ln]
            k = u + 1
            if k < L:
                for ln in range(l0, l1):
                    PY[dd, k, ln] = acc[ln]
            if k >= T - L:
                for ln in range(l0, l1):
                    PY[dd, k - tail, ln] = acc[ln]
    for d in range(L):
        for ln in range(l0, l1):
            acc[ln] = 0.0
            PC[d, 0, ln] = 0.0
        for u in range(T):
            if u + d < T:
                for ln in range(l0, l1):
                    acc[ln] += cc[u, ln] * cc[u + d, ln]
            k = u + 1
            if k < L:
                for ln in range(l0, l1):
                    PC[d, k, ln] = acc[ln]
            if k >= T - L:
                for ln in range(l0, l1):
                    PC[d, k - tail, ln] = acc[ln]
    for ln in range(l0, l1):
        acc[ln] = 0.0
        P1[0, ln] = 0.0
    for u in range(T):
        for ln in range(l0, l1):
            acc[ln] += cc[u, ln]
        k = u + 1
        if k < L:
            for ln in range(l0, l1):
                P1[k, ln] = acc[ln]
        if k >= T - L:
            for ln in range(l0, l1):
                P1[k - tail, ln] = acc[ln]


_granger_gram_prefix = njit(_granger_gram_prefix_py, error_model="numpy")


def _granger_gram_lag_py(
    p,
    li,
    L,
    cc,
    cm,
    PY,
    PC,
    P1,
    e,
    ssr_r,
    Rinv,
    kz,
    zn,
    rank_tol,
    nxt,
    bad,
    Bm,
    M,
    r,
    sc,
    fb,
    l0,
    l1,
    out_ssr_r,
    out_diff,
    out_ssr_u,
    out_status,
):
    """Unrestricted fit at lag ``p`` (index li) by the Gram route, lanes l0..l1-1.

    The shared restricted fit gives the residual e and, for the centred design Zc = [yc lags,
    1] (which spans the same space), Rinv = R^-1 with Zc = Q R, and kz = cond(R). With C the
    p centred cause-lag columns: B = Zc^T C and G = C^T C come from the prefix values of
    ``_granger_gram_prefix_py`` in O(p^2); X = R^-T B = Q^T C; the residualised Gram
    M = G - X^T X = W^T W (W = C - Q Q^T C); r = e^T C; SSR_r - SSR_u = r^T M^-1 r via the
    Cholesky factor of M (its pivots are the Householder pivots of W) and SSR_u by subtraction.
    O(p^3 + n p) per cause. A lane is flagged (fb[ln] = 1, outputs not written) for the QR
    lanes when the estimated relative error of SSR_u, eps n (kz + 1) / min_j(pivot_j^2 / G_jj)
    * SSR_r / SSR_u, exceeds ``_GRAM_TOL``, or when a relative pivot of the full design column
    is within a factor 4 of rank_tol (the QR lanes decide ``check_rank`` exactly).
    Scratch: Bm (>= L+1, >= L, lanes), M (>= L, >= L, lanes), r (>= L, lanes), sc (>= 4, lanes).
    """
    T = cc.shape[0]
    n = T - p
    tail = T - 2 * L
    nan = math.nan
    # B (rows: yc lags, then the intercept), then X = R^-T B in place (row i needs rows <= i)
    for i in range(p):
        for j in range(p):
            dd = i - j + L - 1
            a = p - 1 - i
            b = T - 1 - i - tail
            for ln in range(l0, l1):
                Bm[i, j, ln] = PY[dd, b, ln] - PY[dd, a, ln]
    for j in range(p):
        a = p - 1 - j
        b = T - 1 - j - tail
        for ln in range(l0, l1):
            Bm[p, j, ln] = P1[b, ln] - P1[a, ln]
    # G (upper triangle, into M)
    for j in range(p):
        a = p - 1 - j
        b = T - 1 - j - tail
        for i in range(j + 1):
            d = j - i
            for ln in range(l0, l1):
                M[i, j, ln] = PC[d, b, ln] - PC[d, a, ln]
    # r = e^T C (direct: e differs per lag)
    for j in range(p):
        for ln in range(l0, l1):
            r[j, ln] = 0.0
        for q in range(n):
            eq = e[li, q]
            t = p - 1 - j + q
            for ln in range(l0, l1):
                r[j, ln] += eq * cc[t, ln]
    # X = R^-T B, computed from the last row up so rows < i are still B
    for i in range(p, -1, -1):
        for j in range(p):
            w = Rinv[li, i, i]
            for ln in range(l0, l1):
                Bm[i, j, ln] *= w
            for k in range(i):
                w = Rinv[li, k, i]
                for ln in range(l0, l1):
                    Bm[i, j, ln] += w * Bm[k, j, ln]
    # diagonal of G before it is overwritten: sc[2] = min pivot^2 / G_jj, sc[3] = min pivot^2
    # / |C_j|^2 (original, uncentred column), sc[0] running solve, sc[1] = diff
    for ln in range(l0, l1):
        sc[2, ln] = math.inf
        sc[3, ln] = math.inf
        sc[1, ln] = 0.0
    for j in range(p):
        # M[:, j] -= X^T X[:, j] (upper triangle)
        for i in range(j + 1):
            for k in range(p + 1):
                for ln in range(l0, l1):
                    M[i, j, ln] -= Bm[k, i, ln] * Bm[k, j, ln]
    nf = float(n)
    for j in range(p):
        # Cholesky column j (M = U^T U, U in the upper triangle of M), then forward solve
        a = p - 1 - j
        b = T - 1 - j - tail
        for i in range(j + 1):
            for k in range(i):
                for ln in range(l0, l1):
                    M[i, j, ln] -= M[k, i, ln] * M[k, j, ln]
            if i < j:
                for ln in range(l0, l1):
                    M[i, j, ln] /= M[i, i, ln]
        for k in range(j):
            for ln in range(l0, l1):
                r[j, ln] -= M[k, j, ln] * r[k, ln]
        for ln in range(l0, l1):
            g = PC[0, b, ln] - PC[0, a, ln]
            s1 = P1[b, ln] - P1[a, ln]
            c0 = cm[ln]
            cn2 = g + 2.0 * c0 * s1 + nf * c0 * c0
            piv2 = M[j, j, ln]
            # (a NaN or non-positive pivot counts as 0: the lane is then handed off)
            sc[2, ln] = min(sc[2, ln], piv2 / g if g > 0.0 and piv2 > 0.0 else 0.0)
            sc[3, ln] = min(sc[3, ln], piv2 / cn2 if cn2 > 0.0 and piv2 > 0.0 else 0.0)
            u = math.sqrt(piv2) if piv2 > 0.0 else nan
            M[j, j, ln] = u
            z = r[j, ln] / u
            r[j, ln] = z
            sc[1, ln] += z * z
    # error scale of X^T X relative to |C|^2: cond(R) when small, else |Zc| |beta| / |C| with
    # beta = R^-1 X the coefficients of C on Zc (into sc[0]); |C|^2 = trace G
    if kz[li] <= _GRAM_KZ_DIRECT:
        for ln in range(l0, l1):
            sc[0, ln] = kz[li]
    else:
        for ln in range(l0, l1):
            sc[0, ln] = 0.0
        for k in range(p + 1):
            for j in range(p):
                for ln in range(l0, l1):
                    r[j, ln] = 0.0  # (r is free again after the solve: diff is in sc[1])
                for i in range(k, p + 1):
                    w = Rinv[li, k, i]
                    for ln in range(l0, l1):
                        r[j, ln] += w * Bm[i, j, ln]
                for ln in range(l0, l1):
                    sc[0, ln] += r[j, ln] * r[j, ln]
        zl = zn[li]
        for ln in range(l0, l1):
            tr = 0.0
            for j in range(p):
                tr += PC[0, T - 1 - j - tail, ln] - PC[0, p - 1 - j, ln]
            sc[0, ln] = zl * math.sqrt(sc[0, ln] / tr) if tr > 0.0 else math.inf
    rt2 = 16.0 * rank_tol * rank_tol
    err0 = 4.0 * 2.220446049250313e-16 * math.sqrt(nf)  # calibrated: measured error <= ~est/10
    sr = ssr_r[li]
    for ln in range(l0, l1):
        if bad[ln] != 0:
            status = 3
        else:
            status = 0
            for j in range(1, p + 1):
                if nxt[p - j, ln] >= T - 1 - j:
                    status = 1
        fb[ln] = 0
        if status != 0:
            out_ssr_r[ln, li] = nan
            out_diff[ln, li] = nan
            out_ssr_u[ln, li] = nan
            out_status[ln, li] = status
            continue
        diff = sc[1, ln]
        ssr_u = sr - diff
        est = err0 * (1.0 + sc[0, ln]) * sr
        ok = sc[3, ln] >= rt2 and ssr_u > 0.0 and est <= _GRAM_TOL * sc[2, ln] * ssr_u
        if not ok:
            fb[ln] = 1
            continue
        out_ssr_r[ln, li] = sr
        out_diff[ln, li] = diff
        out_ssr_u[ln, li] = ssr_u
        out_status[ln, li] = 0


_granger_gram_lag = njit(_granger_gram_lag_py, error_model="numpy")


def granger_gram_precompute(y, lags, rank_tol, rstat, rpiv, e):
    """Host-side inputs of the Gram route for the shared effect row y (both backends).

    Returns the centred effect yc, per lag R^-1 and cond(R) of the centred restricted design
    [yc lags, 1] (Zc = Q R), SSR_r = |e|^2, and use[li] = 1 where the Gram route runs (a
    regular restricted fit: status ok, relative pivot >= max(1e-3, 4 rank_tol), cond < 1e8,
    and T >= 2 max(lags) + 1); other lags run every cause on the QR lanes.
    """
    T = y.shape[0]
    n_lags = lags.shape[0]
    L = int(lags.max())
    use = np.zeros(n_lags, dtype=np.int8)
    rmin = max(_GRAM_RPIV_MIN, 4.0 * rank_tol)
    yc = y - y.mean() if np.isfinite(y).all() else np.zeros(T)
    Rinv = np.zeros((n_lags, L + 1, L + 1))
    kz = np.full(n_lags, np.inf)
    zn = np.zeros(n_lags)
    ssr_r = np.zeros(n_lags)
    for li in range(n_lags):
        p = int(lags[li])
        n = T - p
        ssr_r[li] = float(e[li, :n] @ e[li, :n])
        if rstat[li] != 0:
            continue
        Z = np.empty((n, p + 1))
        for j in range(p):
            Z[:, j] = yc[p - 1 - j : T - 1 - j]
        Z[:, p] = 1.0
        R = np.linalg.qr(Z, mode="r")
        sv = np.linalg.svd(R, compute_uv=False)
        if not (sv[-1] > 0.0 and np.isfinite(sv).all()):
            continue
        kz[li] = sv[0] / sv[-1]
        zn[li] = np.sqrt((Z * Z).sum())
        Rinv[li, : p + 1, : p + 1] = np.linalg.solve(R, np.eye(p + 1))
        use[li] = T >= 2 * L + 1 and rpiv[li] >= rmin and kz[li] < 1e8
    return yc, Rinv, kz, zn, ssr_r, use


_LANES = 64  # causes per batch of the CPU kernel (the innermost loops run across them)


def granger_shared_precompute(y, lags):
    """Restricted fits of the shared effect row y (T,) for every lag (host side, both backends)."""
    T = y.shape[0]
    n_lags = lags.shape[0]
    k = int(lags.max()) + 1
    Q = np.zeros((n_lags, T, k))
    e = np.zeros((n_lags, T))
    rstat = np.zeros(n_lags, dtype=np.int8)
    rpiv = np.zeros(n_lags)
    tss = np.zeros(n_lags)
    _granger_restricted(y, lags, Q, e, rstat, rpiv, tss, np.empty((k, T)), np.empty(T), np.empty(k))
    return Q, e, rstat, rpiv, tss


def _granger_shared_py(
    cause,
    lags,
    rank_tol,
    Q,
    e,
    rstat,
    rpiv,
    tss,
    yc,
    Rinv,
    kz,
    zn,
    ssr_r,
    use,
    out_ssr_r,
    out_diff,
    out_ssr_u,
    out_status,
):
    """Unrestricted fits of every cause against one shared effect (prange over lane batches).

    Each lag runs the Gram route (``_granger_gram_lag_py``) unless the restricted fit is
    degenerate or badly conditioned (then the QR lanes take the whole batch); causes the Gram
    route flags are packed into a second batch and refitted by the QR lanes.
    """
    n_series, T = cause.shape
    pmax = _max_of(lags)
    L = pmax
    n_lags = lags.shape[0]
    B = _LANES
    n_batches = (n_series + B - 1) // B
    n_chunks = min(n_batches, _N_CHUNKS)
    for ch in nb.prange(n_chunks):
        cb = np.empty((T, B))
        nxt = np.empty((T, B), dtype=np.int64)
        bad = np.empty(B, dtype=np.int8)
        A = np.empty((pmax + 1, pmax, B))
        W = np.empty((pmax, T, B))
        ev = np.empty((T, B))
        sc = np.empty((4, B))
        cc = np.empty((T, B))
        cm = np.empty(B)
        PY = np.empty((2 * L - 1, 2 * L + 1, B))
        PC = np.empty((L, 2 * L + 1, B))
        P1 = np.empty((2 * L + 1, B))
        Bm = np.empty((L + 1, L, B))
        M = np.empty((L, L, B))
        rr = np.empty((L, B))
        fb = np.empty(B, dtype=np.int8)
        cb2 = np.empty((T, B))
        nxt2 = np.empty((T, B), dtype=np.int64)
        bad2 = np.empty(B, dtype=np.int8)
        idx = np.empty(B, dtype=np.int64)
        t_r = np.empty((B, n_lags))
        t_d = np.empty((B, n_lags))
        t_u = np.empty((B, n_lags))
        t_s = np.empty((B, n_lags), dtype=np.int8)
        for bt in range(ch * n_batches // n_chunks, (ch + 1) * n_batches // n_chunks):
            s = bt * B
            m = min(B, n_series - s)
            for t in range(T):
                for ln in range(m):
                    cb[t, ln] = cause[s + ln, t]
            _granger_prep_lanes(cb, 0, m, nxt, bad)
            if _max_of(use) != 0:
                _granger_gram_prefix(cb, yc, L, 0, m, cc, cm, PY, PC, P1, sc[0])
            for li in range(n_lags):
                p = lags[li]
                o_r = out_ssr_r[s : s + m]
                o_d = out_diff[s : s + m]
                o_u = out_ssr_u[s : s + m]
                o_s = out_status[s : s + m]
                if use[li] == 0:
                    _granger_lag_lanes(
                        cb,
                        p,
                        li,
                        Q,
                        e,
                        rstat,
                        rpiv,
                        tss,
                        rank_tol,
                        nxt,
                        bad,
                        A,
                        W,
                        ev,
                        sc,
                        0,
                        m,
                        o_r,
                        o_d,
                        o_u,
                        o_s,
                    )
                    continue
                _granger_gram_lag(
                    p,
                    li,
                    L,
                    cc,
                    cm,
                    PY,
                    PC,
                    P1,
                    e,
                    ssr_r,
                    Rinv,
                    kz,
                    zn,
                    rank_tol,
                    nxt,
                    bad,
                    Bm,
                    M,
                    rr,
                    sc,
                    fb,
                    0,
                    m,
                    o_r,
                    o_d,
                    o_u,
                    o_s,
                )
                m2 = 0
                for ln in range(m):
                    if fb[ln] != 0:
                        idx[m2] = ln
                        m2 += 1
                if m2 == 0:
                    continue
                for t in range(T):
                    for q in range(m2):
                        cb2[t, q] = cb[t, idx[q]]
                        nxt2[t, q] = nxt[t, idx[q]]
                for q in range(m2):
                    bad2[q] = bad[idx[q]]
                _granger_lag_lanes(
                    cb2,
                    p,
                    li,
                    Q,
                    e,
                    rstat,
                    rpiv,
                    tss,
                    rank_tol,
                    nxt2,
                    bad2,
                    A,
                    W,
                    ev,
                    sc,
                    0,
                    m2,
                    t_r,
                    t_d,
                    t_u,
                    t_s,
                )
                for q in range(m2):
                    ln = idx[q]
                    o_r[ln, li] = t_r[q, li]
                    o_d[ln, li] = t_d[q, li]
                    o_u[ln, li] = t_u[q, li]
                    o_s[ln, li] = t_s[q, li]


_granger_shared, _granger_shared_serial = njit_serial_and_parallel(_granger_shared_py)

# --- one effect row per cause: the Gram route per pair -------------------------------------
#: Rounding error of a window sum or Cholesky entry: |dG_ij| <= delta sqrt(F_i F_j) with
#: delta = (4 sqrt(T) + K + 1) eps -- two prefix sums of <= T terms at the statistical
#: sqrt(T) growth (the worst case, 2T, is never approached by sums of rounding errors of
#: random sign; calibrated in the tests: the measured SSR errors stay far below the
#: estimate), then the backward error of a K-column Cholesky; F_i is the full-series sum of
#: squares of column i.
_PAIR_ERR_SQRT = 4.0


def _granger_pair_sums_py(yb, cb, l0, l1, sc):
    """Full-series sums of lanes l0..l1-1 of yb, cb (T, lanes): sc[0] (effect) and sc[1]
    (cause), in t order."""
    T = yb.shape[0]
    for ln in range(l0, l1):
        sc[0, ln] = 0.0
        sc[1, ln] = 0.0
    for t in range(T):
        for ln in range(l0, l1):
            sc[0, ln] += yb[t, ln]
            sc[1, ln] += cb[t, ln]


def _granger_pair_ends_py(yb, cb, L, l0, l1, nxy, nxc, bad, sc):
    """Per-pair facts from the sums of ``_granger_pair_sums_py``: bad[ln] (a non-finite value
    in either series), the means sc[0] (effect) and sc[1] (cause), and the run ends nxy / nxc
    at t = 0..L (the last index of the run of equal values starting at t, as in
    ``_granger_prep_lanes_py``; the lag fits read no others). A sum is finite only when all
    its terms are, so only a lane with a non-finite sum (a non-finite value, or finite ones
    that overflow) is scanned for one. O(L) per lane unless a run starts before L."""
    T = yb.shape[0]
    for ln in range(l0, l1):
        fin = math.isfinite(sc[0, ln]) and math.isfinite(sc[1, ln])
        if not fin:
            fin = True
            for t in range(T):
                if not (math.isfinite(yb[t, ln]) and math.isfinite(cb[t, ln])):
                    fin = False
                    break
        bad[ln] = 0 if fin else 1
        sc[0, ln] /= T
        sc[1, ln] /= T
        r = L
        while r < T - 1 and not (yb[r, ln] != yb[r + 1, ln]):
            r += 1
        nxy[L, ln] = r
        r = L
        while r < T - 1 and not (cb[r, ln] != cb[r + 1, ln]):
            r += 1
        nxc[L, ln] = r
    for t in range(L - 1, -1, -1):
        for ln in range(l0, l1):
            nxy[t, ln] = t if yb[t, ln] != yb[t + 1, ln] else nxy[t + 1, ln]
            nxc[t, ln] = t if cb[t, ln] != cb[t + 1, ln] else nxc[t + 1, ln]


def _granger_pair_centre_py(yb, cb, l0, l1, sc, yc, cc):
    """The centred series yc = yb - sc[0] and cc = cb - sc[1] of lanes l0..l1-1."""
    T = yb.shape[0]
    for t in range(T):
        for ln in range(l0, l1):
            yc[t, ln] = yb[t, ln] - sc[0, ln]
            cc[t, ln] = cb[t, ln] - sc[1, ln]


def _granger_pair_load_py(effect, cause, s, m, yb, cb, sc):
    """Pairs s..s+m-1 of the row-major effect, cause (n, T) into the lanes 0..m-1 of yb, cb
    (T, lanes). (CPU only: the CUDA kernel gets its lane-major copies from the host.)

    The batch's rows are one contiguous block per array; a first pass reads one value per
    cache line of it in address order (their sum goes to the scratch sc[7, 0], unused), so
    the hardware streams the block into cache instead of serving the copy's 2 x 64
    interleaved strided reads from memory: ~25 % off the whole lag-1 kernel, cold or warm.
    The copy goes in 4 x 4 tiles (four consecutive values of four rows, then the next four
    rows): each row's four values share a cache line and each tile's stores fill four lanes
    of four rows, 30-40 % faster than one value of every row per time step (measured at
    T = 120, 64 lanes). The tiles also add each value to its lane's full-series sum,
    sc[0] (effect) and sc[1] (cause), in t order: bit-identical to
    ``_granger_pair_sums_py``, without a second pass over the lanes.
    """
    T = yb.shape[0]
    e = effect[s : s + m].ravel()
    c = cause[s : s + m].ravel()
    touch = 0.0
    for i in range(0, m * T, 8):
        touch += e[i] + c[i]
    sc[7, 0] = touch
    for ln in range(m):
        sc[0, ln] = 0.0
        sc[1, ln] = 0.0
    t4 = T - T % 4
    m4 = m - m % 4
    for t0 in range(0, t4, 4):
        for l0 in range(0, m4, 4):
            _copy_tile(effect, s + l0, t0, yb, l0, sc[0])
            _copy_tile(cause, s + l0, t0, cb, l0, sc[1])
        for ln in range(m4, m):
            for t in range(t0, t0 + 4):
                _copy_one(effect, cause, s, ln, t, yb, cb, sc)
    for t in range(t4, T):
        for ln in range(m):
            _copy_one(effect, cause, s, ln, t, yb, cb, sc)


def _copy_tile_py(x, r0, t0, xb, l0, total):
    """xb[t0 + j, l0 + k] = x[r0 + k, t0 + j] for j, k < 4 (one 4 x 4 tile of the copy), each
    value also added to total[l0 + k] in j order."""
    for k in range(4):
        v0 = x[r0 + k, t0]
        v1 = x[r0 + k, t0 + 1]
        v2 = x[r0 + k, t0 + 2]
        v3 = x[r0 + k, t0 + 3]
        xb[t0, l0 + k] = v0
        xb[t0 + 1, l0 + k] = v1
        xb[t0 + 2, l0 + k] = v2
        xb[t0 + 3, l0 + k] = v3
        total[l0 + k] = (((total[l0 + k] + v0) + v1) + v2) + v3


def _copy_one_py(effect, cause, s, ln, t, yb, cb, sc):
    """One value of each series into its lane (the copy's edges), added to the lane sums."""
    y = effect[s + ln, t]
    c = cause[s + ln, t]
    yb[t, ln] = y
    cb[t, ln] = c
    sc[0, ln] += y
    sc[1, ln] += c


def _granger_pair_prefix_py(yb, cb, L, l0, l1, nxy, nxc, bad, yc, cc, PYY, PCC, PYC, PY1, PC1, sc):
    """Per-pair facts and lagged cross-products for lanes l0..l1-1 of yb, cb (T, lanes).

    ``_granger_pair_sums_py``, ``_granger_pair_ends_py`` and ``_granger_pair_centre_py``
    (the per-pair facts and the centred series yc, cc), then, with S(k) the sum of the terms u < k, the prefix values
    at k = 0..L (slot k) and k = T-L..T (slot k - (T - 2L - 1)) of yc[u+d] yc[u]
    (PYY[d], 0 <= d <= L), cc[u+d] cc[u] (PCC[d], d < L), yc[u+d] cc[u] (PYC[d + L - 1],
    1-L <= d <= L), yc[u] (PY1) and cc[u] (PC1). Every window sum of the lag regressions at
    any lag p <= L is the difference of two kept values. O(T L) per lane; T >= 2L + 1.
    (numba only: the CUDA kernel makes the same calls itself.)
    """
    _granger_pair_sums(yb, cb, l0, l1, sc)
    _granger_pair_ends(yb, cb, L, l0, l1, nxy, nxc, bad, sc)
    _granger_pair_centre(yb, cb, l0, l1, sc, yc, cc)
    _granger_pair_tables(yc, cc, L, l0, l1, PYY, PCC, PYC, PY1, PC1, sc)


def _granger_pair_tables_py(yc, cc, L, l0, l1, PYY, PCC, PYC, PY1, PC1, sc):
    """The prefix tables of ``_granger_pair_prefix_py`` from the centred series (sc[2] is
    scratch). (numba only: the CUDA kernel makes the same calls itself.)"""
    for d in range(L + 1):
        _pair_prefix_table(yc, yc, d, L, l0, l1, PYY[d], sc[2])
    for d in range(L):
        _pair_prefix_table(cc, cc, d, L, l0, l1, PCC[d], sc[2])
    for dd in range(2 * L):
        _pair_prefix_table(yc, cc, dd - (L - 1), L, l0, l1, PYC[dd], sc[2])
    _pair_prefix_sum(yc, L, l0, l1, PY1, sc[2])
    _pair_prefix_sum(cc, L, l0, l1, PC1, sc[2])


def _granger_pair_tables_l1_py(yb, cb, l0, l1, PYY, PCC, PYC, PY1, PC1, sc, acc):
    """``_granger_pair_centre_py`` and ``_granger_pair_tables_py`` at L = 1 in one pass.

    The seven tables of lag 1 (yc[u]^2, yc[u+1] yc[u], cc[u]^2, yc[u] cc[u], yc[u+1] cc[u],
    yc[u], cc[u]) are accumulated together, with yc = yb - sc[0] and cc = cb - sc[1] taken
    on the fly: the same products added in the same order as the per-table passes, so the
    kept prefix values are bit-identical to theirs (and to the L > 1 tables' values at the
    same k). Scratch: acc (>= 7, lanes).
    """
    T = yb.shape[0]
    for ln in range(l0, l1):
        for r in range(7):
            acc[r, ln] = 0.0
        PYY[0, 0, ln] = 0.0
        PYY[1, 0, ln] = 0.0
        PCC[0, 0, ln] = 0.0
        PYC[0, 0, ln] = 0.0
        PYC[1, 0, ln] = 0.0
        PY1[0, ln] = 0.0
        PC1[0, ln] = 0.0
    # row u = 0 (then slot 1, k = 1), rows 1..T-2 four at a time (each sum still adds its
    # terms one by one in row order; the grouping only cuts the loads and stores of acc),
    # slot 2 (k = T - 1), the last row without the lead products, slot 3 (k = T)
    _pair_l1_rows(yb, cb, 0, 1, l0, l1, sc, acc)
    _pair_fused_keep(1, 1, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)
    _pair_l1_rows(yb, cb, 1, T - 1, l0, l1, sc, acc)
    _pair_fused_keep(2, 1, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)
    for ln in range(l0, l1):
        y0 = yb[T - 1, ln] - sc[0, ln]
        c0 = cb[T - 1, ln] - sc[1, ln]
        acc[0, ln] += y0 * y0
        acc[2, ln] += c0 * c0
        acc[3, ln] += y0 * c0
        acc[5, ln] += y0
        acc[6, ln] += c0
    _pair_fused_keep(3, 1, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)


def _pair_l1_rows_py(yb, cb, u0, u1, l0, l1, sc, acc):
    """Add rows u0..u1-1 (u1 <= T - 1: each has its lead row u + 1) to the lag-1 sums acc.

    Four rows per pass over the lanes, then two, then one: each sum still adds its terms one
    by one in row order (bit-identical to one row at a time); the grouping only cuts the
    loads and stores of acc and of the means.
    """
    u = u0
    while u + 3 < u1:
        for ln in range(l0, l1):
            my = sc[0, ln]
            mc = sc[1, ln]
            y0 = yb[u, ln] - my
            y1 = yb[u + 1, ln] - my
            y2 = yb[u + 2, ln] - my
            y3 = yb[u + 3, ln] - my
            y4 = yb[u + 4, ln] - my
            c0 = cb[u, ln] - mc
            c1 = cb[u + 1, ln] - mc
            c2 = cb[u + 2, ln] - mc
            c3 = cb[u + 3, ln] - mc
            acc[0, ln] = (((acc[0, ln] + y0 * y0) + y1 * y1) + y2 * y2) + y3 * y3
            acc[1, ln] = (((acc[1, ln] + y1 * y0) + y2 * y1) + y3 * y2) + y4 * y3
            acc[2, ln] = (((acc[2, ln] + c0 * c0) + c1 * c1) + c2 * c2) + c3 * c3
            acc[3, ln] = (((acc[3, ln] + y0 * c0) + y1 * c1) + y2 * c2) + y3 * c3
            acc[4, ln] = (((acc[4, ln] + y1 * c0) + y2 * c1) + y3 * c2) + y4 * c3
            acc[5, ln] = (((acc[5, ln] + y0) + y1) + y2) + y3
            acc[6, ln] = (((acc[6, ln] + c0) + c1) + c2) + c3
        u += 4
    while u + 1 < u1:
        for ln in range(l0, l1):
            my = sc[0, ln]
            mc = sc[1, ln]
            y0 = yb[u, ln] - my
            y1 = yb[u + 1, ln] - my
            y2 = yb[u + 2, ln] - my
            c0 = cb[u, ln] - mc
            c1 = cb[u + 1, ln] - mc
            a = acc[0, ln] + y0 * y0
            acc[0, ln] = a + y1 * y1
            a = acc[1, ln] + y1 * y0
            acc[1, ln] = a + y2 * y1
            a = acc[2, ln] + c0 * c0
            acc[2, ln] = a + c1 * c1
            a = acc[3, ln] + y0 * c0
            acc[3, ln] = a + y1 * c1
            a = acc[4, ln] + y1 * c0
            acc[4, ln] = a + y2 * c1
            a = acc[5, ln] + y0
            acc[5, ln] = a + y1
            a = acc[6, ln] + c0
            acc[6, ln] = a + c1
        u += 2
    if u < u1:
        for ln in range(l0, l1):
            my = sc[0, ln]
            mc = sc[1, ln]
            y0 = yb[u, ln] - my
            y1 = yb[u + 1, ln] - my
            c0 = cb[u, ln] - mc
            acc[0, ln] += y0 * y0
            acc[1, ln] += y1 * y0
            acc[2, ln] += c0 * c0
            acc[3, ln] += y0 * c0
            acc[4, ln] += y1 * c0
            acc[5, ln] += y0
            acc[6, ln] += c0


def _granger_pair_tables_l2_py(yb, cb, l0, l1, PYY, PCC, PYC, PY1, PC1, sc, acc):
    """``_granger_pair_centre_py`` and ``_granger_pair_tables_py`` at L = 2 in one pass.

    The eleven tables of lags <= 2 (yc[u + d] yc[u] for d = 0, 1, 2; cc[u + d] cc[u] for
    d = 0, 1; yc[u + d] cc[u] for d = -1..2; yc[u]; cc[u]) accumulated together with the
    centring on the fly, each sum adding its terms one by one in row order as the per-table
    passes do, so the kept prefix values (k = 0, 1, 2 and T - 2, T - 1, T in slots 0..5) are
    bit-identical to theirs and to the L > 2 tables' values at the same k. T >= 5.
    Scratch: acc (>= 11, lanes).
    """
    T = yb.shape[0]
    for ln in range(l0, l1):
        for r in range(11):
            acc[r, ln] = 0.0
    _pair_fused_keep(0, 2, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)
    _pair_l2_row(yb, cb, 0, False, True, True, l0, l1, sc, acc)
    _pair_fused_keep(1, 2, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)
    _pair_l2_row(yb, cb, 1, True, True, True, l0, l1, sc, acc)
    _pair_fused_keep(2, 2, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)
    _pair_l2_rows(yb, cb, 2, T - 3, l0, l1, sc, acc)
    _pair_l2_row(yb, cb, T - 3, True, True, True, l0, l1, sc, acc)
    _pair_fused_keep(3, 2, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)
    _pair_l2_row(yb, cb, T - 2, True, True, False, l0, l1, sc, acc)
    _pair_fused_keep(4, 2, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)
    _pair_l2_row(yb, cb, T - 1, True, False, False, l0, l1, sc, acc)
    _pair_fused_keep(5, 2, l0, l1, PYY, PCC, PYC, PY1, PC1, acc)


def _pair_l2_row_py(yb, cb, u, back, lead1, lead2, l0, l1, sc, acc):
    """Add row u's terms of the L = 2 tables to acc; ``back``: u >= 1 (the d = -1 term),
    ``lead1`` / ``lead2``: u + 1 / u + 2 inside the series (the d = 1 / d = 2 terms)."""
    for ln in range(l0, l1):
        my = sc[0, ln]
        mc = sc[1, ln]
        y0 = yb[u, ln] - my
        c0 = cb[u, ln] - mc
        acc[0, ln] += y0 * y0
        acc[3, ln] += c0 * c0
        acc[6, ln] += y0 * c0
        acc[9, ln] += y0
        acc[10, ln] += c0
        if back:
            acc[5, ln] += (yb[u - 1, ln] - my) * c0
        if lead1:
            y1 = yb[u + 1, ln] - my
            acc[1, ln] += y1 * y0
            acc[4, ln] += (cb[u + 1, ln] - mc) * c0
            acc[7, ln] += y1 * c0
        if lead2:
            y2 = yb[u + 2, ln] - my
            acc[2, ln] += y2 * y0
            acc[8, ln] += y2 * c0


def _pair_l2_rows_py(yb, cb, u0, u1, l0, l1, sc, acc):
    """Add rows u0..u1-1 (1 <= u0, u1 <= T - 2: every term present) to the L = 2 sums acc.

    Two passes (each series' own products, then the cross products), two rows per pass over
    the lanes; each sum still adds its terms one by one in row order. (One pass with all
    eleven sums measured slower: its lane loop has too many arrays for LLVM's alias checks
    and stays scalar.)
    """
    u = u0
    while u + 1 < u1:
        for ln in range(l0, l1):
            my = sc[0, ln]
            mc = sc[1, ln]
            y0 = yb[u, ln] - my
            y1 = yb[u + 1, ln] - my
            y2 = yb[u + 2, ln] - my
            y3 = yb[u + 3, ln] - my
            c0 = cb[u, ln] - mc
            c1 = cb[u + 1, ln] - mc
            c2 = cb[u + 2, ln] - mc
            acc[0, ln] = (acc[0, ln] + y0 * y0) + y1 * y1
            acc[1, ln] = (acc[1, ln] + y1 * y0) + y2 * y1
            acc[2, ln] = (acc[2, ln] + y2 * y0) + y3 * y1
            acc[3, ln] = (acc[3, ln] + c0 * c0) + c1 * c1
            acc[4, ln] = (acc[4, ln] + c1 * c0) + c2 * c1
            acc[9, ln] = (acc[9, ln] + y0) + y1
            acc[10, ln] = (acc[10, ln] + c0) + c1
        u += 2
    v = u0
    while v + 1 < u1:
        for ln in range(l0, l1):
            my = sc[0, ln]
            mc = sc[1, ln]
            ym = yb[v - 1, ln] - my
            y0 = yb[v, ln] - my
            y1 = yb[v + 1, ln] - my
            y2 = yb[v + 2, ln] - my
            y3 = yb[v + 3, ln] - my
            c0 = cb[v, ln] - mc
            c1 = cb[v + 1, ln] - mc
            acc[5, ln] = (acc[5, ln] + ym * c0) + y0 * c1
            acc[6, ln] = (acc[6, ln] + y0 * c0) + y1 * c1
            acc[7, ln] = (acc[7, ln] + y1 * c0) + y2 * c1
            acc[8, ln] = (acc[8, ln] + y2 * c0) + y3 * c1
        v += 2
    if u < u1:
        _pair_l2_row(yb, cb, u, True, True, True, l0, l1, sc, acc)


def _pair_fused_keep_py(slot, L, l0, l1, PYY, PCC, PYC, PY1, PC1, acc):
    """Store the fused passes' sums acc as the kept prefix values of ``slot``: acc rows in
    table order, PYY[0..L], PCC[0..L-1], PYC[0..2L-1], PY1, PC1 (L = 1: 7 rows, L = 2: 11)."""
    for d in range(L + 1):
        for ln in range(l0, l1):
            PYY[d, slot, ln] = acc[d, ln]
    for d in range(L):
        for ln in range(l0, l1):
            PCC[d, slot, ln] = acc[L + 1 + d, ln]
    for d in range(2 * L):
        for ln in range(l0, l1):
            PYC[d, slot, ln] = acc[2 * L + 1 + d, ln]
    for ln in range(l0, l1):
        PY1[slot, ln] = acc[4 * L + 1, ln]
        PC1[slot, ln] = acc[4 * L + 2, ln]


def _pair_prefix_table_py(x, z, d, L, l0, l1, P, acc):
    """Kept prefix values (see ``_granger_pair_prefix_py``) of x[u + d] z[u] into P (S, lanes).

    Terms u0 <= u < u1 (those with x[u + d] inside the series) are added one by one in u
    order; between the kept values (L <= u < T - L - 1) two rows share one load and store
    of the running sum (the same additions in the same order).
    """
    T = x.shape[0]
    tail = T - 2 * L - 1
    for ln in range(l0, l1):
        acc[ln] = 0.0
        P[0, ln] = 0.0
    u0 = max(0, -d)
    u1 = min(T, T - d)
    for u in range(L):
        if u >= u0 and u < u1:
            for ln in range(l0, l1):
                acc[ln] += x[u + d, ln] * z[u, ln]
        for ln in range(l0, l1):
            P[u + 1, ln] = acc[ln]
    u = max(L, u0)
    hi = min(T - L - 1, u1)
    while u + 1 < hi:
        for ln in range(l0, l1):
            a = acc[ln] + x[u + d, ln] * z[u, ln]
            acc[ln] = a + x[u + 1 + d, ln] * z[u + 1, ln]
        u += 2
    if u < hi:
        for ln in range(l0, l1):
            acc[ln] += x[u + d, ln] * z[u, ln]
    for u in range(T - L - 1, T):
        if u >= u0 and u < u1:
            for ln in range(l0, l1):
                acc[ln] += x[u + d, ln] * z[u, ln]
        for ln in range(l0, l1):
            P[u + 1 - tail, ln] = acc[ln]


def _pair_prefix_sum_py(x, L, l0, l1, P, acc):
    """Kept prefix values of x[u] into P (S, lanes) (middle rows two at a time, as above)."""
    T = x.shape[0]
    tail = T - 2 * L - 1
    for ln in range(l0, l1):
        acc[ln] = 0.0
        P[0, ln] = 0.0
    for u in range(L):
        for ln in range(l0, l1):
            acc[ln] += x[u, ln]
            P[u + 1, ln] = acc[ln]
    u = L
    while u + 1 < T - L - 1:
        for ln in range(l0, l1):
            a = acc[ln] + x[u, ln]
            acc[ln] = a + x[u + 1, ln]
        u += 2
    if u < T - L - 1:
        for ln in range(l0, l1):
            acc[ln] += x[u, ln]
    for u in range(T - L - 1, T):
        for ln in range(l0, l1):
            acc[ln] += x[u, ln]
            P[u + 1 - tail, ln] = acc[ln]


def _granger_pair_lag_py(
    p,
    li,
    L,
    nxy,
    nxc,
    bad,
    PYY,
    PCC,
    PYC,
    PY1,
    PC1,
    rank_tol,
    M,
    gd,
    cn,
    bt,
    sc,
    fb,
    l0,
    l1,
    out_ssr_r,
    out_diff,
    out_ssr_u,
    out_status,
):
    """Fit at lag ``p`` (index li) of lanes l0..l1-1 by the Gram route, one effect per lane.

    Columns [1, y lags, c lags, y] of the centred series (the span of the statsmodels design
    [y lags, 1, c lags] and its response): their window Gram from the prefix tables, then its
    Cholesky factor U (upper triangle of M). The last column of U holds z; SSR_u is its last
    pivot squared, SSR_r - SSR_u the sum of z^2 over the cause columns (no cancellation).
    The first-order error of SSR (the Gram entries are off by at most delta sqrt(F_i F_j),
    delta = (4 sqrt(T) + K + 1) eps, F_i the full-series sum of squares of column i) is
    delta (sum_i |v_i| sqrt(F_i))^2 with v = [-beta, 1] the fit's coefficients; the lane
    is handed to the QR (fb[ln, li] = 1, outputs not written) unless that estimate for
    SSR_r plus SSR_u is at most ``_GRAM_TOL`` SSR_u, min_j(pivot_j^2 / G_jj) >= 1e3 delta
    K^2 (so the second-order term, ~delta / lambda_min of the scaled Gram times the
    first, is negligible), and the
    relative pivots of the full design (cause columns: equal to the QR's; effect lags and
    intercept: their lower bound, the product of ours) stay 4x above rank_tol, so the QR's
    ``check_rank`` decision is never needed. O(p^3) per lane.
    Scratch: M (>= 2L+2, >= 2L+2, lanes), gd, cn, bt (>= 2L+2, lanes), sc (>= 8, lanes).
    """
    T = nxy.shape[0]
    n = T - p
    K = 2 * p + 2
    nan = math.nan
    nf = float(n)
    # window Gram (upper triangle), its diagonal and the uncentred squared column norms
    tail = T - 2 * L - 1
    for j in range(K):
        # column j of [1, y lags 1..p, c lags 1..p, y]: kind (0 one, 1 y, 2 c) and lag
        kj = 0 if j == 0 else (1 if j <= p or j == K - 1 else 2)
        aj = 0 if j == 0 or j == K - 1 else (j if j <= p else j - p)
        for i in range(j + 1):
            ki = 0 if i == 0 else (1 if i <= p or i == K - 1 else 2)
            ai = 0 if i == 0 or i == K - 1 else (i if i <= p else i - p)
            # the window sum over t = p..T-1 of x_i[t - ai] x_j[t - aj] is
            # table[row, hi] - table[row, lo]; tables 0 (the count n), 1 PY1, 2 PC1, 3 PYY,
            # 4 PCC, 5 PYC (with u = t - cause lag, effect index u + cause lag - effect lag)
            if ki == 0 and kj == 0:
                tab, row, top = 0, 0, 0
            elif ki == 0:
                tab, row, top = kj, 0, aj
            elif ki == kj:
                tab, row, top = 2 + ki, max(ai, aj) - min(ai, aj), max(ai, aj)
            elif ki == 1:
                tab, row, top = 5, aj - ai + L - 1, aj
            else:
                tab, row, top = 5, ai - aj + L - 1, ai
            hi = T - top
            lo = p - top
            hi = hi if hi <= L else hi - tail
            lo = lo if lo <= L else lo - tail
            if tab == 0:
                for ln in range(l0, l1):
                    M[i, j, ln] = nf
            elif tab == 1:
                for ln in range(l0, l1):
                    M[i, j, ln] = PY1[hi, ln] - PY1[lo, ln]
            elif tab == 2:
                for ln in range(l0, l1):
                    M[i, j, ln] = PC1[hi, ln] - PC1[lo, ln]
            elif tab == 3:
                for ln in range(l0, l1):
                    M[i, j, ln] = PYY[row, hi, ln] - PYY[row, lo, ln]
            elif tab == 4:
                for ln in range(l0, l1):
                    M[i, j, ln] = PCC[row, hi, ln] - PCC[row, lo, ln]
            else:
                for ln in range(l0, l1):
                    M[i, j, ln] = PYC[row, hi, ln] - PYC[row, lo, ln]
        for ln in range(l0, l1):
            g = M[j, j, ln]
            gd[j, ln] = g
            m0 = sc[1, ln] if kj == 2 else sc[0, ln]
            cn[j, ln] = g + 2.0 * m0 * M[0, j, ln] + nf * m0 * m0 if j > 0 else g
    # Cholesky M = U^T U (left-looking, column by column); pivot ratios on the way
    for ln in range(l0, l1):
        sc[2, ln] = math.inf  # min pivot^2 / G_jj
        sc[3, ln] = math.inf  # min pivot^2 / |C_j|^2 over cause columns
        sc[4, ln] = 1.0  # prod pivot^2 / |Y_j|^2 over effect lags
    for j in range(K):
        for i in range(j + 1):
            # M[i, j] -= sum_k U[k, i] U[k, j], four k per pass over the lanes (a quarter of
            # the loads and stores of M[i, j]; the sum's order is fixed in the source)
            k = 0
            while k + 4 <= i:
                for ln in range(l0, l1):
                    M[i, j, ln] -= (
                        M[k, i, ln] * M[k, j, ln] + M[k + 1, i, ln] * M[k + 1, j, ln]
                    ) + (M[k + 2, i, ln] * M[k + 2, j, ln] + M[k + 3, i, ln] * M[k + 3, j, ln])
                k += 4
            for kk in range(k, i):
                for ln in range(l0, l1):
                    M[i, j, ln] -= M[kk, i, ln] * M[kk, j, ln]
            if i < j:
                for ln in range(l0, l1):
                    M[i, j, ln] /= M[i, i, ln]
        if j < K - 1:
            for ln in range(l0, l1):
                piv2 = M[j, j, ln]
                g = gd[j, ln]
                ok = piv2 > 0.0 and g > 0.0  # (NaN counts as 0: the lane is handed off)
                sc[2, ln] = min(sc[2, ln], piv2 / g if ok else 0.0)
                c2 = cn[j, ln]
                rel = piv2 / c2 if ok and c2 > 0.0 else 0.0
                if j > p:  # (loop-invariant branches: the compiler unswitches them)
                    sc[3, ln] = min(sc[3, ln], rel)
                elif j > 0:
                    sc[4, ln] *= rel
                M[j, j, ln] = math.sqrt(piv2) if ok else nan
    # SSR_r - SSR_u = sum of z^2 over the cause columns
    for ln in range(l0, l1):
        sc[5, ln] = 0.0
    for j in range(p + 1, K - 1):
        for ln in range(l0, l1):
            sc[5, ln] += M[j, K - 1, ln] * M[j, K - 1, ln]
    # error estimates: restricted (first p + 1 columns) and unrestricted coefficients by back
    # substitution; sc[6] accumulates sum_i |v_i| sqrt(F_i) for both fits
    F0 = math.sqrt(float(T))  # the intercept column's norm
    for ln in range(l0, l1):
        sc[6, ln] = 0.0
    for fit in range(2):
        m = p + 1 if fit == 0 else K - 1
        for i in range(m - 1, -1, -1):
            for ln in range(l0, l1):
                bt[i, ln] = M[i, K - 1, ln]
            for k in range(i + 1, m):
                for ln in range(l0, l1):
                    bt[i, ln] -= M[i, k, ln] * bt[k, ln]
            for ln in range(l0, l1):
                bt[i, ln] /= M[i, i, ln]
        # |v_i| summed by column kind (the response's coefficient is 1): sc[7] effect
        # columns, gd[0] cause columns (gd is free after the Cholesky)
        for ln in range(l0, l1):
            sc[7, ln] = 1.0
            gd[0, ln] = 0.0
        for i in range(1, min(p + 1, m)):
            for ln in range(l0, l1):
                sc[7, ln] += abs(bt[i, ln])
        for i in range(p + 1, m):
            for ln in range(l0, l1):
                gd[0, ln] += abs(bt[i, ln])
        for ln in range(l0, l1):
            s = (
                F0 * abs(bt[0, ln])
                + math.sqrt(PYY[0, 2 * L + 1, ln]) * sc[7, ln]
                + math.sqrt(PCC[0, 2 * L + 1, ln]) * gd[0, ln]
            )
            sc[6, ln] += s * s
    delta = (_PAIR_ERR_SQRT * math.sqrt(float(T)) + K + 1) * 2.220446049250313e-16
    rt2 = 16.0 * rank_tol * rank_tol
    # the second-order term is about delta / lambda_min of the scaled Gram times the first;
    # with min pivot^2 / G_jj as the proxy of lambda_min (and K^2 to spare) it stays < 1e-3
    second = 1e3 * delta * K * K
    for ln in range(l0, l1):
        if bad[ln] != 0:
            status = 3
        else:
            status = 0
            for j in range(1, p + 1):
                if nxy[p - j, ln] >= T - 1 - j:
                    status = 2
            if nxy[p, ln] >= T - 1:
                status = 2
            if status == 0:
                for j in range(1, p + 1):
                    if nxc[p - j, ln] >= T - 1 - j:
                        status = 1
        fb[ln, li] = 0
        if status != 0:
            out_ssr_r[ln, li] = nan
            out_diff[ln, li] = nan
            out_ssr_u[ln, li] = nan
            out_status[ln, li] = status
            continue
        ssr_u = M[K - 1, K - 1, ln]  # the last pivot squared (not yet square-rooted)
        diff = sc[5, ln]
        est = delta * sc[6, ln]
        ok = (
            ssr_u > 0.0
            and sc[3, ln] >= rt2
            and sc[4, ln] >= rt2
            and est <= _GRAM_TOL * ssr_u
            and sc[2, ln] >= second
        )
        if not ok:
            fb[ln, li] = 1
            continue
        out_ssr_r[ln, li] = ssr_u + diff
        out_diff[ln, li] = diff
        out_ssr_u[ln, li] = ssr_u
        out_status[ln, li] = 0


_pair_prefix_table = njit(_pair_prefix_table_py)
_pair_prefix_sum = njit(_pair_prefix_sum_py)
_granger_pair_sums = njit(_granger_pair_sums_py)
_granger_pair_ends = njit(_granger_pair_ends_py)
_granger_pair_centre = njit(_granger_pair_centre_py)
_copy_tile = njit(_copy_tile_py, inline="always")
_copy_one = njit(_copy_one_py, inline="always")
_granger_pair_load = njit(_granger_pair_load_py)
_granger_pair_tables = njit(_granger_pair_tables_py)
_pair_l1_rows = njit(_pair_l1_rows_py)
_pair_fused_keep = njit(_pair_fused_keep_py)
_granger_pair_tables_l1 = njit(_granger_pair_tables_l1_py)
_pair_l2_row = njit(_pair_l2_row_py)
_pair_l2_rows = njit(_pair_l2_rows_py)
_granger_pair_tables_l2 = njit(_granger_pair_tables_l2_py)
_granger_pair_prefix = njit(_granger_pair_prefix_py, error_model="numpy")
_granger_pair_lag = njit(_granger_pair_lag_py, error_model="numpy")


_PAIR_LANES = 64


def _granger_pairs_py(
    effect, cause, lags, rank_tol, max_chunks, out_ssr_r, out_diff, out_ssr_u, out_status
):
    """One effect row per cause: Gram route in batches of 64 pairs, QR where it hands off.

    The batches are split into at most ``max_chunks`` work units, each of which allocates
    its own scratch (MBs at large lags, page-faulted on first touch): 1 on one thread, a
    few per thread in parallel.
    """
    n_series, T = cause.shape
    L = _max_of(lags)
    n_lags = lags.shape[0]
    B = _PAIR_LANES
    S = 2 * L + 2
    Km = 2 * L + 2
    n_batches = (n_series + B - 1) // B
    n_chunks = max(1, min(n_batches, max_chunks))
    for ch in nb.prange(n_chunks):
        yb = np.empty((T, B))
        cb = np.empty((T, B))
        yc = np.empty((T, B))
        cc = np.empty((T, B))
        nxy = np.empty((T, B), dtype=np.int64)
        nxc = np.empty((T, B), dtype=np.int64)
        bad = np.empty(B, dtype=np.int8)
        PYY = np.empty((L + 1, S, B))
        PCC = np.empty((L, S, B))
        PYC = np.empty((2 * L, S, B))
        PY1 = np.empty((S, B))
        PC1 = np.empty((S, B))
        M = np.empty((Km, Km, B))
        gd = np.empty((Km, B))
        cn = np.empty((Km, B))
        bt = np.empty((Km, B))
        sc = np.empty((8, B))
        acc = np.empty((11, B))
        fb = np.empty((B, n_lags), dtype=np.int8)
        A = np.empty((2 * L + 1, T))
        v = np.empty(T)
        for bi in range(ch * n_batches // n_chunks, (ch + 1) * n_batches // n_chunks):
            s = bi * B
            m = min(B, n_series - s)
            if m == B:  # (a constant trip count: the copy loop compiles to wider code)
                _granger_pair_load(effect, cause, s, B, yb, cb, sc)
            else:
                _granger_pair_load(effect, cause, s, m, yb, cb, sc)  # (and the sums)
            _granger_pair_ends(yb, cb, L, 0, m, nxy, nxc, bad, sc)
            if L == 1:
                _granger_pair_tables_l1(yb, cb, 0, m, PYY, PCC, PYC, PY1, PC1, sc, acc)
            elif L == 2:
                _granger_pair_tables_l2(yb, cb, 0, m, PYY, PCC, PYC, PY1, PC1, sc, acc)
            else:
                _granger_pair_centre(yb, cb, 0, m, sc, yc, cc)
                _granger_pair_tables(yc, cc, L, 0, m, PYY, PCC, PYC, PY1, PC1, sc)
            o_r = out_ssr_r[s : s + m]
            o_d = out_diff[s : s + m]
            o_u = out_ssr_u[s : s + m]
            o_s = out_status[s : s + m]
            for li in range(n_lags):
                _granger_pair_lag(
                    lags[li],
                    li,
                    L,
                    nxy,
                    nxc,
                    bad,
                    PYY,
                    PCC,
                    PYC,
                    PY1,
                    PC1,
                    rank_tol,
                    M,
                    gd,
                    cn,
                    bt,
                    sc,
                    fb,
                    0,
                    m,
                    o_r,
                    o_d,
                    o_u,
                    o_s,
                )
            for ln in range(m):
                for li in range(n_lags):
                    if fb[ln, li] != 0:
                        b = s + ln
                        _granger_core(
                            effect[b],
                            cause[b],
                            lags[li : li + 1],
                            rank_tol,
                            A,
                            v,
                            out_ssr_r[b, li : li + 1],
                            out_diff[b, li : li + 1],
                            out_ssr_u[b, li : li + 1],
                            out_status[b, li : li + 1],
                        )


_granger_pairs, _granger_pairs_serial = njit_serial_and_parallel(_granger_pairs_py)


#: Below this many work units (n_series * T * sum((p + 1)^2), ~1 ns each), the shared-effect
#: kernel runs on one thread: a few milliseconds of work gains little from the thread pool,
#: and a parallel region waits for its slowest thread, which on a busy machine can be
#: descheduled for longer than the whole job.
_SERIAL_WORK = 4_000_000


def _pairs_work_ns(n_series: int, T: int, lags: np.ndarray) -> float:
    """Estimated one-thread time (ns) of the per-pair kernel, in the units of _SERIAL_WORK:
    window sums ~0.25 ns per (t, table) with 4L + 3 tables, Cholesky ~0.4 ns per
    (2p + 2)^3 / 6 multiply-add and lag, ~80 ns per pair of fixed cost (fitted on T = 120,
    L = 1..14)."""
    L = int(lags.max())
    chol = float(((2 * lags.astype(np.float64) + 2) ** 3).sum()) / 6.0
    return n_series * (0.25 * T * (4 * L + 3) + 0.4 * chol + 80.0)


@njit(parallel=True)
def _granger_per_series(effect, cause, lags, rank_tol, out_ssr_r, out_diff, out_ssr_u, out_status):
    """One effect row per cause: the full per-series fit (prange over series)."""
    n_series, T = cause.shape
    kmax = 2 * _max_of(lags) + 1
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


def granger(effect, cause, lags, rank_tol, out_ssr_r, out_diff, out_ssr_u, out_status):
    """Batched Granger regressions (numba, parallel over series).

    effect : float64 (n_eff, T) with n_eff in {1, n_series} (row 0 shared when n_eff == 1);
    cause : float64 (n_series, T); lags : int64 (n_lags,); rank_tol : float.
    Writes out_ssr_r, out_diff (= SSR_r - SSR_u), out_ssr_u : float64 (n_series, n_lags) and
    out_status : int8 (n_series, n_lags).

    A shared effect row (the LEGCNet case: every weight against the training error) is
    fitted once per lag (restricted basis Q and residual e); each cause then only needs its
    p lag columns projected off Q and a p-column Householder QR, batched 64 causes at a time
    with the cause index innermost. One effect row per cause runs the per-pair Gram route
    (``_granger_pairs_py``), with the full per-series QR for every (pair, lag) it hands off.
    """
    if effect.shape[0] == 1:
        Q, e, rstat, rpiv, tss = granger_shared_precompute(effect[0], lags)
        yc, Rinv, kz, zn, ssr_r, use = granger_gram_precompute(
            effect[0], lags, rank_tol, rstat, rpiv, e
        )
        work = cause.shape[0] * cause.shape[1] * int(((lags + 1) ** 2).sum())
        kernel = _granger_shared_serial if work < _SERIAL_WORK else _granger_shared
        kernel(
            cause,
            lags,
            rank_tol,
            Q,
            e,
            rstat,
            rpiv,
            tss,
            yc,
            Rinv,
            kz,
            zn,
            ssr_r,
            use,
            out_ssr_r,
            out_diff,
            out_ssr_u,
            out_status,
        )
    else:
        serial = _pairs_work_ns(cause.shape[0], cause.shape[1], lags) < _SERIAL_WORK
        serial = serial or nb.get_num_threads() == 1
        kernel = _granger_pairs_serial if serial else _granger_pairs
        chunks = 1 if serial else 4 * nb.get_num_threads()
        kernel(effect, cause, lags, rank_tol, chunks, out_ssr_r, out_diff, out_ssr_u, out_status)


# ----------------------------------------------------------------------------- Lyapunov
def _lyapunov_core_py(x, order, emb_dim, lag, theiler, steps, P, nb, out_sum, out_count):
    """TISEAN ``lyap_r`` divergence sums for one rescaled window.

    x : float64 (L,) already mapped to [0, 1]; order : int64 (n_pts,), the points
    0..n_pts-1 (n_pts = L - (m-1)d - steps) sorted by their first coordinate x[t] (any
    order of ties). Scratch: P float64 (>= n_pts, >= m), nb int64 (>= n_pts). Writes
    out_sum[k] (sum of log squared distances) and out_count[k] for k = 0..steps.

    Nearest neighbour of each point among the same n_pts points: the smallest squared
    distance in (0, 1) outside the Theiler band |n - j| <= theiler, ties going to the largest
    index (TISEAN's rule, identical to its exhaustive scan). The search walks outward from the
    point in sorted order over P, the embedded points copied in that order (contiguous reads),
    and stops once the first-coordinate gap alone exceeds the best distance, so it costs
    O(L * neighbours examined) instead of O(L^2). The log distances are then summed in point
    order, so the result does not depend on how ties in the sort were ordered, as the log of
    their product (exact to ~1e-16 relative; one log per k instead of one per pair).
    """
    n_pts = order.shape[0]
    for q in range(n_pts):
        t = order[q]
        for e in range(emb_dim):
            P[q, e] = x[t + e * lag]
    for pos in range(n_pts):
        n = order[pos]
        xn = P[pos, 0]
        best = 1.0
        bj = -1
        for side in range(2):
            step = -1 if side == 0 else 1
            q = pos + step
            while q >= 0 and q < n_pts:
                dx = xn - P[q, 0]
                d2 = dx * dx
                if d2 > best:
                    break
                j = order[q]
                if abs(n - j) > theiler:
                    for e in range(1, emb_dim):
                        dx = P[pos, e] - P[q, e]
                        d2 += dx * dx
                    if d2 > 0.0 and (d2 < best or (d2 == best and bj >= 0 and j > bj)):
                        best = d2
                        bj = j
                q += step
        nb[n] = bj
    # sum of log d2 over the pairs = log of their product: the product is kept as mantissa
    # times 2^ex (renormalised with frexp when it leaves [1e-150, 1e150]), so there is one
    # log per row instead of one per pair; d2 outside that range takes its own log
    for k in range(steps + 1):
        s = 0.0
        cnt = 0
        prod = 1.0
        ex = 0
        for n in range(n_pts):
            bj = nb[n]
            if bj >= 0:
                d2 = 0.0
                for e in range(emb_dim):
                    dx = x[n + k + e * lag] - x[bj + k + e * lag]
                    d2 += dx * dx
                if d2 > 0.0:
                    cnt += 1
                    if d2 >= 1e-150 and d2 <= 1e150:
                        prod *= d2
                        if prod < 1e-150 or prod > 1e150:
                            fm, fe = math.frexp(prod)
                            prod = fm
                            ex += fe
                    else:
                        s += math.log(d2)
        out_sum[k] = s + (math.log(prod) + ex * 0.6931471805599453)
        out_count[k] = cnt


_lyapunov_core = njit(_lyapunov_core_py)


@njit
def _bucket_argsort(keys, order, count):
    """Indices 0..n-1 sorted by keys (n = order.shape[0]) in scratch, for keys in [0, 1].

    Counting sort into n buckets of width 1/n, then insertion sort inside each bucket: O(n)
    for spread-out keys, no allocation. Ties in any order; values outside [0, 1] (or NaN)
    go to the end buckets, so any input terminates.
    """
    n = order.shape[0]
    for b in range(n + 1):
        count[b] = 0
    for i in range(n):
        v = keys[i] * n
        b = int(v) if v >= 0.0 and v < n else (n - 1 if v >= n else 0)
        count[b + 1] += 1
    for b in range(n):
        count[b + 1] += count[b]
    for i in range(n):
        v = keys[i] * n
        b = int(v) if v >= 0.0 and v < n else (n - 1 if v >= n else 0)
        order[count[b]] = i
        count[b] += 1
    # count[b] is now the end of bucket b; insertion sort each bucket
    start = 0
    for b in range(n):
        end = count[b]
        for i in range(start + 1, end):
            t = order[i]
            kt = keys[t]
            q = i - 1
            while q >= start and keys[order[q]] > kt:
                order[q + 1] = order[q]
                q -= 1
            order[q + 1] = t
        start = end


def _lyapunov_windows_py(windows, emb_dim, lag, theiler, steps, out_sum, out_count):
    """Body of :func:`lyapunov` (``prange`` over chunks of windows)."""
    n_windows = windows.shape[0]
    n_pts = windows.shape[1] - (emb_dim - 1) * lag - steps
    n_chunks = min(n_windows, _N_CHUNKS)
    for ch in nb.prange(n_chunks):
        P = np.empty((n_pts, emb_dim))
        nbr = np.empty(n_pts, dtype=np.int64)
        order = np.empty(n_pts, dtype=np.int64)
        count = np.empty(n_pts + 1, dtype=np.int64)
        for w in range(ch * n_windows // n_chunks, (ch + 1) * n_windows // n_chunks):
            _bucket_argsort(windows[w], order, count)
            _lyapunov_core(
                windows[w], order, emb_dim, lag, theiler, steps, P, nbr, out_sum[w], out_count[w]
            )


_lyapunov_windows, _lyapunov_windows_serial = njit_serial_and_parallel(_lyapunov_windows_py)


def lyapunov(windows, emb_dim, lag, theiler, steps, out_sum, out_count):
    """Batched nearest-neighbour divergence sums (numba, ``prange`` over windows).

    windows : float64 (n_windows, L), each row rescaled to [0, 1] (any finite values are
    safe). Writes out_sum : float64 (n_windows, steps+1) and out_count : int64
    (n_windows, steps+1). Windows are split into up to 256 chunks, each allocating its
    scratch once; each window's points are bucket-sorted by first coordinate (the core's
    result does not depend on the order of ties), then the shared core runs. Small batches
    (fewer than ``_SERIAL_WORK`` point pairs) run serially, so a first call on one series does
    not compile the threaded driver.
    """
    n_pts = windows.shape[1]
    small = windows.shape[0] * n_pts * n_pts < _SERIAL_WORK or nb.get_num_threads() == 1
    kernel = _lyapunov_windows_serial if small else _lyapunov_windows
    kernel(windows, emb_dim, lag, theiler, steps, out_sum, out_count)

"""Tail probabilities for the Granger statistics, in numba: F (incomplete beta) and chi-square.

:func:`f_sf` is ``scipy.special.fdtrc`` and :func:`chi2_sf_int` is ``scipy.special.chdtrc``
for an integer df, as scalar numba functions, so :func:`granger_f_pvalues` and
:func:`granger_chi2_pvalues` turn a whole result's statistics into p-values in one compiled
loop each (scipy's ufuncs cost ~130 ns per F value, more than a lag-1 fit).

The regularised incomplete beta function follows Cephes' ``incbet`` (the algorithm behind
scipy's ``betainc`` before Boost): the power series where ``b x <= 1`` and ``x <= 0.95``,
otherwise the symmetry ``I_x(a, b) = 1 - I_{1-x}(b, a)`` when x lies above the mean, then one
of two continued fractions (evaluated forward, as successive convergents with rescaling), and
the factor ``x^a (1-x)^b / (a B(a, b))``. Both x and 1 - x are passed in, computed without
cancellation from the F statistic. When ``I_x(a, b)`` has an integer b (an even numerator df),
the finite sum ``x^a sum_{k<b} (a)_k / k! (1-x)^k`` of positive terms is used instead: a few
ulp, and several times faster. Measured against ``fdtrc`` the relative difference stays below
1e-14 (see tests/unit/test_causal_special.py). ``1 / B(a, b)`` comes from ``math.gamma``, so
a + b must stay below 171; larger arguments are flagged for the caller to hand to scipy.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._jit import njit, njit_serial_and_parallel

__all__ = [
    "f_sf",
    "chi2_sf_int",
    "granger_statistics",
    "granger_f_pvalues",
    "granger_chi2_pvalues",
    "BETA_MAX_AB",
    "CHI2_CLOSED_MAX_X",
]

_MACHEP = 1.11022302462515654042e-16
_BIG = 4.503599627370496e15
_BIGINV = 2.22044604925031308085e-16
#: Largest a + b for which 1 / B(a, b) is taken from math.gamma (Gamma(171.6) overflows).
BETA_MAX_AB = 170.0
#: Closed-form chi-square tails are used for x <= this and df <= CHI2_CLOSED_MAX_DF.
CHI2_CLOSED_MAX_X = 600.0
CHI2_CLOSED_MAX_DF = 64
_SQRT_PI_HALF = 0.88622692545275801365  # Gamma(3/2)


@njit(error_model="numpy")
def _inv_beta(a, b):
    """1 / B(a, b) = Gamma(a + b) / (Gamma(a) Gamma(b)) for a + b <= BETA_MAX_AB."""
    return math.gamma(a + b) / math.gamma(a) / math.gamma(b)


@njit(error_model="numpy")
def _pseries(a, b, x, ib):
    """Power series for I_x(a, b) (Cephes ``pseries``), valid for b x <= 1, x <= 0.95."""
    ai = 1.0 / a
    u = (1.0 - b) * x
    v = u / (a + 1.0)
    t1 = v
    t = u
    n = 2.0
    s = 0.0
    z = _MACHEP * ai
    while abs(v) > z:
        u = (n - b) * x / n
        t *= u
        v = t / (a + n)
        s += v
        n += 1.0
    s += t1
    s += ai
    return s * ib * x**a


@njit(error_model="numpy")
def _beta_cf(a, z, k2, dk2, k6, dk6):
    """The continued fraction both Cephes expansions of I_x(a, b) share (``incbcf``/``incbd``).

    They differ only in the argument ``z`` and in how the factors ``k2`` and ``k6`` start and
    step (``dk2``, ``dk6``); the recurrence, the convergence test and the rescaling are one.
    """
    k1 = a
    k3 = a
    k4 = a + 1.0
    k5 = 1.0
    k7 = a + 1.0
    k8 = a + 2.0
    pkm2 = 0.0
    qkm2 = 1.0
    pkm1 = 1.0
    qkm1 = 1.0
    ans = 1.0
    r = 1.0
    thresh = 3.0 * _MACHEP
    for _ in range(300):
        xk = -(z * k1 * k2) / (k3 * k4)
        pk = pkm1 + pkm2 * xk
        qk = qkm1 + qkm2 * xk
        pkm2 = pkm1
        pkm1 = pk
        qkm2 = qkm1
        qkm1 = qk
        xk = (z * k5 * k6) / (k7 * k8)
        pk = pkm1 + pkm2 * xk
        qk = qkm1 + qkm2 * xk
        pkm2 = pkm1
        pkm1 = pk
        qkm2 = qkm1
        qkm1 = qk
        if qk != 0.0:
            r = pk / qk
        if r != 0.0:
            t = abs((ans - r) / r)
            ans = r
        else:
            t = 1.0
        if t < thresh:
            break
        k1 += 1.0
        k2 += dk2
        k3 += 2.0
        k4 += 2.0
        k5 += 1.0
        k6 += dk6
        k7 += 2.0
        k8 += 2.0
        if abs(qk) + abs(pk) > _BIG:
            pkm2 *= _BIGINV
            pkm1 *= _BIGINV
            qkm2 *= _BIGINV
            qkm1 *= _BIGINV
        if abs(qk) < _BIGINV or abs(pk) < _BIGINV:
            pkm2 *= _BIG
            pkm1 *= _BIG
            qkm2 *= _BIG
            qkm1 *= _BIG
    return ans


@njit(error_model="numpy")
def _incbcf(a, b, x):
    """Continued fraction 1 for I_x(a, b) (Cephes ``incbcf``), for x below (a - 1)/(a + b - 2)."""
    return _beta_cf(a, x, a + b, 1.0, b - 1.0, -1.0)


@njit(error_model="numpy")
def _incbd(a, b, x, xc):
    """Continued fraction 2 for I_x(a, b) (Cephes ``incbd``), in z = x / (1 - x)."""
    return _beta_cf(a, x / xc, b - 1.0, -1.0, a + b, 1.0)


@njit(error_model="numpy")
def _incbet_int_b(a, m, x, xc):
    """I_x(a, m) for a positive integer m: x^a sum_{k<m} (a)_k / k! (1-x)^k (positive terms)."""
    term = 1.0
    s = 1.0
    for k in range(1, m):
        term *= (a + (k - 1)) / k * xc
        s += term
    la = a * math.log(x)
    if la < -700.0:  # x^a would be subnormal: keep the precision in the log domain
        return math.exp(la + math.log(s))
    return math.exp(la) * s if la < -600.0 else x**a * s


def _bgrat_coefficients(b: float, n: int) -> np.ndarray:
    """DiDonato & Morris (1992) eq. 9.3: p_0 = 1, p_k = (b - 1) / (2k + 1)! +
    (1 / k) sum_{m=1}^{k-1} (m b - k) / (2m + 1)! p_{k-m} (they depend on b only)."""
    p = np.zeros(n)
    p[0] = 1.0
    for k in range(1, n):
        acc = 0.0
        for m in range(1, k):
            acc += (m * b - k) * p[k - m] / math.factorial(2 * m + 1)
        p[k] = acc / k + (b - 1.0) / math.factorial(2 * k + 1)
    return p


_BGRAT_P = _bgrat_coefficients(0.5, 30)
_BGRAT_MIN_A = 15.0  # the expansion is used at a >= 15 (smaller a steps up by 20 first)
_BGRAT_MIN_X = 0.7  # and for x >= 0.7 (|ln x| small); elsewhere the continued fractions


@njit(error_model="numpy")
def _bgrat_half(a, x, xc, ratio):
    """I_x(a, 1/2) for a >= 15, x >= 0.7 by DiDonato & Morris' asymptotic expansion BGRAT
    (eq. 9: I_x(a, b) = Gamma(a + b) / Gamma(a) / t^b sum_n p_n J_n h(b, u), t = a + (b-1)/2,
    u = -t ln x, J_0 = Q(b, u) / h, h = u^b e^-u / Gamma(b)), all terms positive for b = 1/2.

    ``ratio`` = Gamma(a + 1/2) / Gamma(a). Returns NaN when it has not converged in 30 terms
    or u > 690 (the caller falls back).
    """
    b = 0.5
    t = a - 0.25
    lx = math.log1p(-xc) if xc < 0.35 else math.log(x)
    u = -t * lx
    if u > 690.0:
        return math.nan
    ru = math.sqrt(u)
    h = ru * math.exp(-u) / 1.7724538509055160273  # u^(1/2) e^-u / Gamma(1/2)
    prefix = h * ratio / math.sqrt(t)
    j = math.erfc(ru) / h if h > 0.0 else math.inf
    total = prefix * j
    lx2 = 0.25 * lx * lx
    lxp = 1.0
    inv_t4 = 0.25 / (t * t)
    b2n = b
    for n in range(1, 30):
        j = (b2n * (b2n + 1.0) * j + (u + b2n + 1.0) * lxp) * inv_t4
        lxp *= lx2
        b2n += 2.0
        r = prefix * _BGRAT_P[n] * j
        total += r
        if abs(r) <= _MACHEP * 0.5 * abs(total):
            return total
    return math.nan


@njit(error_model="numpy")
def _incbet_half_b(a, m, x, xc, ibh, gr0):
    """I_x(a, m + 1/2) = I_x(a, 1/2) + sum_{k<m} x^a xc^(k+1/2) / ((k+1/2) B(a, k+1/2)) with
    I_x(a, 1/2) from BGRAT (at a + 20 and a 20-term positive sum when a < 15). NaN when
    BGRAT does not apply (the caller uses the continued fractions)."""
    s0 = 0.0
    a0 = a
    if a < _BGRAT_MIN_A:
        # I_x(a, b) = I_x(a + 20, b) + sum_{k<20} x^(a+k) xc^b / ((a+k) B(a+k, b))
        term = x**a * math.sqrt(xc) / a * ibh
        for k in range(20):
            s0 += term
            term *= x * (a + k + 0.5) / (a + k + 1.0)
        a0 = a + 20.0
    base = _bgrat_half(a0, x, xc, gr0)
    if math.isnan(base):
        return math.nan
    total = base + s0
    if m > 0:
        term = x**a * math.sqrt(xc) * 2.0 * ibh
        for k in range(m):
            total += term
            term *= xc * (a + k + 0.5) / (k + 1.5)
    return total


@njit(error_model="numpy")
def beta_consts(a, b):
    """(1 / B(a, b), 1 / B(a, 1/2), Gamma(a0 + 1/2) / Gamma(a0)) with a0 = a, or a + 20 when
    a < 15: the gamma-function factors of :func:`betainc_pair`, computed once per (a, b)."""
    ib = _inv_beta(a, b)
    ibh = _inv_beta(a, 0.5) if a + 0.5 <= BETA_MAX_AB else math.nan
    a0 = a if a >= _BGRAT_MIN_A else a + 20.0
    gr0 = math.gamma(a0 + 0.5) / math.gamma(a0) if a0 + 0.5 <= BETA_MAX_AB else math.nan
    return ib, ibh, gr0


@njit(error_model="numpy")
def betainc_pair(a, b, x, xc, ib, ibh, gr0):
    """Regularised incomplete beta I_x(a, b) with xc = 1 - x given exactly (0 <= x <= 1).

    Requires a, b > 0 and a + b <= ``BETA_MAX_AB``; ib, ibh, gr0 from :func:`beta_consts`.
    """
    if x <= 0.0:
        return 0.0
    if xc <= 0.0:
        return 1.0
    mb = int(b)
    if mb == b and mb <= 64:
        return min(_incbet_int_b(a, mb, x, xc), 1.0)
    if mb + 0.5 == b and mb <= 64 and x >= _BGRAT_MIN_X and not math.isnan(gr0):
        t = _incbet_half_b(a, mb, x, xc, ibh, gr0)
        if not math.isnan(t):
            return min(t, 1.0)  # (a sum of positive terms can round above 1 near x = 1)
    flag = False
    if b * x <= 1.0 and x <= 0.95:
        return _pseries(a, b, x, ib)
    if x > a / (a + b):
        flag = True
        a, b = b, a
        x, xc = xc, x
    if flag and b * x <= 1.0 and x <= 0.95:
        t = _pseries(a, b, x, ib)
    else:
        y = x * (a + b - 2.0) - (a - 1.0)
        if y < 0.0:
            w = _incbcf(a, b, x)
        else:
            w = _incbd(a, b, x, xc) / xc
        t = xc**b * x**a / a * w * ib
    if flag:
        return 1.0 - _MACHEP if t <= _MACHEP else 1.0 - t
    return t


@njit(error_model="numpy")
def f_sf_c(dfn, dfd, f, ib, ibh, gr0):
    """:func:`f_sf` with the constants ``beta_consts(dfd / 2, dfn / 2)`` given."""
    if math.isnan(f) or not (dfd > 0.0 and dfn > 0.0):
        return math.nan
    if f <= 0.0:
        return 1.0
    if math.isinf(f):
        return 0.0
    den = dfd + dfn * f
    return betainc_pair(0.5 * dfd, 0.5 * dfn, dfd / den, dfn * f / den, ib, ibh, gr0)


@njit(error_model="numpy")
def f_sf(dfn, dfd, f):
    """``scipy.special.fdtrc(dfn, dfd, f)``: P(F > f) for F ~ F(dfn, dfd).

    NaN in, NaN out; f <= 0 gives 1, f = inf gives 0. Requires (dfn + dfd) / 2 <=
    ``BETA_MAX_AB`` (callers check it).
    """
    if math.isnan(f) or not (dfd > 0.0 and dfn > 0.0):
        return math.nan
    if f <= 0.0:
        return 1.0
    if math.isinf(f):
        return 0.0
    ib, ibh, gr0 = beta_consts(0.5 * dfd, 0.5 * dfn)
    return f_sf_c(dfn, dfd, f, ib, ibh, gr0)


@njit(error_model="numpy")
def chi2_sf_int(df, x):
    """``scipy.special.chdtrc(df, x)`` for an integer df >= 1 by its closed forms.

    Even df = 2m: ``exp(-h) sum_{i<m} h^i / i!``; odd df = 2m + 1:
    ``erfc(sqrt h) + exp(-h) sum_{i=1..m} h^(i-1/2) / Gamma(i+1/2)`` with h = x / 2 (positive
    terms, a few ulp). Valid for 0 <= x <= ``CHI2_CLOSED_MAX_X`` and df <=
    ``CHI2_CLOSED_MAX_DF``; NaN in, NaN out; x < 0 gives 1.
    """
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    h = 0.5 * x
    m = df // 2
    if df % 2 == 0:
        term = 1.0
        s = 1.0
        for i in range(1, m):
            term *= h / i
            s += term
        return math.exp(-h) * s
    rh = math.sqrt(h)
    res = math.erfc(rh)
    if m > 0:
        eh = math.exp(-h)
        term = rh / _SQRT_PI_HALF
        s = term
        for i in range(2, m + 1):
            term *= h / (i - 0.5)
            s += term
        res += eh * s
    return res


def _granger_statistics_py(lags, nobs, ssr_r, diff, ssr_u, df_denom, f_stat, chi2, lr, n_chunks):
    """Body of :func:`granger_statistics` (``prange`` over ``n_chunks`` blocks of series)."""
    n_series, n_lags = ssr_r.shape
    for ch in nb.prange(n_chunks):
        b0 = ch * n_series // n_chunks
        b1 = (ch + 1) * n_series // n_chunks
        for li in range(n_lags):
            pf = float(lags[li])
            nf = float(nobs[li])
            for b in range(b0, b1):
                sr = ssr_r[b, li]
                su = ssr_u[b, li]
                dd = diff[b, li]
                q = sr / su
                f_stat[b, li] = dd / su / pf * df_denom[b, li]
                chi2[b, li] = nf * dd / su
                lr[b, li] = nf * (math.log(q) if q > 0.0 else (-math.inf if q == 0.0 else math.nan))


def _granger_f_pvalues_py(lags, f_stat, df_denom, f_p, scipy_todo, n_chunks):
    """Body of :func:`granger_f_pvalues`: each block keeps its own cache of the beta
    constants (a pure function of df_denom, so every value is the same whatever the blocks
    or threads)."""
    n_series, n_lags = f_stat.shape
    for ch in nb.prange(n_chunks):
        b0 = ch * n_series // n_chunks
        b1 = (ch + 1) * n_series // n_chunks
        for li in range(n_lags):
            pf = float(lags[li])
            last = -1.0
            ib = ibh = gr0 = math.nan
            for b in range(b0, b1):
                fs = f_stat[b, li]
                dfd = df_denom[b, li]
                scipy_todo[b, li] = 0
                if fs < 0.0:
                    f_p[b, li] = 1.0
                elif math.isnan(fs) or math.isnan(dfd):
                    f_p[b, li] = math.nan
                elif 0.5 * (pf + dfd) <= BETA_MAX_AB:
                    if dfd != last:
                        ib, ibh, gr0 = beta_consts(0.5 * dfd, 0.5 * pf)
                        last = dfd
                    f_p[b, li] = f_sf_c(pf, dfd, fs, ib, ibh, gr0)
                else:
                    f_p[b, li] = math.nan
                    scipy_todo[b, li] = 1


def _granger_chi2_pvalues_py(lags, stat, out_p, scipy_todo, n_chunks):
    """Body of :func:`granger_chi2_pvalues` (``prange`` over ``n_chunks`` blocks)."""
    n_series, n_lags = stat.shape
    for ch in nb.prange(n_chunks):
        b0 = ch * n_series // n_chunks
        b1 = (ch + 1) * n_series // n_chunks
        for li in range(n_lags):
            p = lags[li]
            for b in range(b0, b1):
                s = stat[b, li]
                scipy_todo[b, li] = 0
                if s < 0.0:
                    out_p[b, li] = 1.0
                elif p <= CHI2_CLOSED_MAX_DF and (s <= CHI2_CLOSED_MAX_X or math.isnan(s)):
                    out_p[b, li] = chi2_sf_int(p, s)
                else:
                    out_p[b, li] = math.nan
                    scipy_todo[b, li] = 1


_granger_statistics, _granger_statistics_serial = njit_serial_and_parallel(
    _granger_statistics_py, error_model="numpy"
)
_granger_f_pvalues, _granger_f_pvalues_serial = njit_serial_and_parallel(
    _granger_f_pvalues_py, error_model="numpy"
)
_granger_chi2_pvalues, _granger_chi2_pvalues_serial = njit_serial_and_parallel(
    _granger_chi2_pvalues_py, error_model="numpy"
)

#: Entries (series x lags) from which the Granger statistics and p-values run in parallel:
#: ~80 ns each at lag 1, so ~4 ms of one thread, the size below which the causal kernels stay
#: serial (a parallel region waits for its slowest thread, and on a busy machine a thread can
#: wait for a core longer than a few milliseconds of work: 0.16 ms with two free cores,
#: 3.7 ms min with the second core busy, for 4000 entries that take 0.31 ms on one thread).
_PARALLEL_ENTRIES = 50_000


def _run_blocks(serial, parallel, first, *args):
    """Call a (serial, parallel) kernel pair over blocks of series: serial below
    ``_PARALLEL_ENTRIES`` entries or on one thread, else a few blocks per thread (every entry
    is computed alone, so the values never depend on the blocks or the thread count)."""
    n_series = first.shape[0]
    threads = nb.get_num_threads()
    if first.size < _PARALLEL_ENTRIES or threads == 1 or n_series < 2:
        serial(*args, 1)
    else:
        parallel(*args, min(n_series, 4 * threads))


def granger_statistics(lags, nobs, ssr_r, diff, ssr_u, df_denom, f_stat, chi2, lr):
    """The three Granger statistics from the fits, all (n_series, n_lags) float64 arrays:
    ``f_stat = diff / ssr_u / p * df_denom``, ``chi2 = nobs * diff / ssr_u`` and
    ``lr = nobs * log(ssr_r / ssr_u)`` (NaN stays NaN)."""
    _run_blocks(
        _granger_statistics_serial, _granger_statistics, ssr_r,
        lags, nobs, ssr_r, diff, ssr_u, df_denom, f_stat, chi2, lr,
    )  # fmt: skip


def granger_f_pvalues(lags, f_stat, df_denom, f_p, scipy_todo):
    """P(F(p, df_denom) > f_stat) by :func:`f_sf` into f_p; 1 for a negative statistic
    (below the support, as ``scipy.stats``), NaN for NaN. Entries with (p + df) / 2 >
    ``BETA_MAX_AB`` get ``scipy_todo`` = 1 and are left for the caller (scipy)."""
    _run_blocks(
        _granger_f_pvalues_serial, _granger_f_pvalues, f_stat,
        lags, f_stat, df_denom, f_p, scipy_todo,
    )  # fmt: skip


def granger_chi2_pvalues(lags, stat, out_p, scipy_todo):
    """P(chi2(p) > stat) by :func:`chi2_sf_int` into out_p (the chi-square and LR tests); 1
    for a negative statistic, NaN for NaN. Entries with df > 64 or a statistic above 600 get
    ``scipy_todo`` = 1 and are left for the caller (scipy)."""
    _run_blocks(
        _granger_chi2_pvalues_serial, _granger_chi2_pvalues, stat,
        lags, stat, out_p, scipy_todo,
    )  # fmt: skip

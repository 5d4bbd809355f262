"""The numba F and chi-square tails (netstruct.backends.numba._special) against scipy and a
40-digit mpmath reference, and exact identities of the incomplete beta function."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from netstruct.backends.numba import _special as S
from netstruct.causal.granger import _chi2_pvalues, _f_pvalues, _statistics
from tests.oracles.naive_causal import naive_f_sf

DFN = [1, 2, 3, 5, 6, 7, 9, 13, 14, 21, 28]
DFD = [1, 2, 3, 5, 8, 12, 19, 30, 31, 57, 77, 101, 116, 200, 299]
F_GRID = np.r_[np.geomspace(1e-10, 1e5, 60), np.linspace(0.05, 6.0, 40)]


def _f_sf(dfn, dfd, f):
    return np.array([S.f_sf(float(dfn), float(dfd), float(v)) for v in np.atleast_1d(f)])


@pytest.mark.parametrize("dfn", DFN)
def test_f_sf_equals_fdtrc_over_a_wide_grid(dfn):
    """Within 5e-13 relative of scipy (down to 1e-290, the extreme tails included); the
    median difference is ~1e-16.

    The largest differences (1.6e-13 at dfn 14, dfd 77, f 1.48; 3.2e-13 at dfn 14, dfd 299,
    f 1.42) are scipy's: the 40-digit reference agrees with ours there to 2e-15. Where f is tiny and dfd <= 2,
    scipy's 1 - x cancels (2e-12 at dfn = dfd = 1, f = 3e-10): those go to the reference.
    """
    for dfd in DFD:
        ours, ref = _f_sf(dfn, dfd, F_GRID), special.fdtrc(dfn, dfd, F_GRID)
        keep = (ref > 1e-290) & ~((dfd <= 2) & (F_GRID < 1e-4))
        np.testing.assert_allclose(ours[keep], ref[keep], rtol=5e-13, atol=0, err_msg=str(dfd))
        assert ((ours >= 0) & (ours <= 1)).all()


def test_f_sf_equals_the_40_digit_reference():
    """Random (dfn, dfd, f) including the far tails: within 1e-13 relative of mpmath."""
    pytest.importorskip("mpmath")
    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(400):
        dfn = int(rng.integers(1, 29))
        dfd = int(rng.choice([1, 2, 3, 4, 7, 10, 16, 30, 31, 60, 77, 116, 250, 300]))
        f = float(10.0 ** rng.uniform(-11, 5))
        ref = naive_f_sf(dfn, dfd, f)
        if ref < 1e-290:
            continue
        worst = max(worst, abs(S.f_sf(float(dfn), float(dfd), f) - ref) / ref)
    assert worst <= 1e-13, worst
    # the points where scipy is the one that is off
    for dfn, dfd, f in (
        (14, 77, 1.4773776525985096),
        (14, 299, 1.4230769230769231),
        (1, 1, 3.224590545296398e-10),
    ):
        ref = naive_f_sf(dfn, dfd, f)
        assert abs(S.f_sf(float(dfn), float(dfd), f) - ref) <= 1e-14 * ref


def test_f_sf_edges():
    assert S.f_sf(3.0, 10.0, 0.0) == 1.0 and S.f_sf(3.0, 10.0, -1.0) == 1.0
    assert S.f_sf(3.0, 10.0, math.inf) == 0.0
    assert math.isnan(S.f_sf(3.0, 10.0, math.nan)) and math.isnan(S.f_sf(3.0, 0.0, 1.0))


_half = st.integers(1, 160).map(lambda k: k / 2.0)


@settings(max_examples=300, deadline=None)
@given(a=_half, b=_half, x=st.floats(1e-6, 1.0 - 1e-6))
def test_betainc_symmetry(a, b, x):
    """I_x(a, b) + I_{1-x}(b, a) = 1 (the two calls take different routes)."""
    if a + b > S.BETA_MAX_AB - 20:
        return
    xc = 1.0 - x
    i1 = S.betainc_pair(a, b, x, xc, *S.beta_consts(a, b))
    i2 = S.betainc_pair(b, a, xc, x, *S.beta_consts(b, a))
    assert 0.0 <= i1 <= 1.0 and 0.0 <= i2 <= 1.0
    assert abs(i1 + i2 - 1.0) <= 4e-14


@settings(max_examples=300, deadline=None)
@given(a=_half, b=_half, x=st.floats(0.01, 0.99))
def test_betainc_recurrence_in_b(a, b, x):
    """I_x(a, b + 1) - I_x(a, b) = x^a (1-x)^b / (b B(a, b)) (positive terms: no cancellation
    in the check beyond the difference itself)."""
    if a + b + 1 > S.BETA_MAX_AB - 20:
        return
    xc = 1.0 - x
    lo = S.betainc_pair(a, b, x, xc, *S.beta_consts(a, b))
    hi = S.betainc_pair(a, b + 1.0, x, xc, *S.beta_consts(a, b + 1.0))
    # the step in 30 digits: in doubles, exp(a log x + ...) of an exponent near -400 is itself
    # off by ~1e-13 relative (|exponent| ulps), more than the kernel's own error (~1e-16)
    with mpmath.workdps(30):
        mx = mpmath.mpf(x)
        step = float(mx**a * (1 - mx) ** b / (b * mpmath.beta(a, b)))
    assert abs((hi - lo) - step) <= 1e-13 * hi + 1e-300


@settings(max_examples=200, deadline=None)
@given(
    dfn=st.integers(1, 28),
    dfd=st.integers(1, 250),
    f1=st.floats(0.0, 1e4),
    f2=st.floats(0.0, 1e4),
)
def test_f_sf_is_monotone_in_f(dfn, dfd, f1, f2):
    lo, hi = sorted((f1, f2))
    assert S.f_sf(float(dfn), float(dfd), lo) >= S.f_sf(float(dfn), float(dfd), hi) * (1 - 1e-13)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 14, 15, 63, 64])
def test_chi2_closed_forms_equal_chdtrc(df):
    rng = np.random.default_rng(df)
    x = np.r_[0.0, 5e-324, 1e-300, 1e-12, 0.5, rng.exponential(df, 2000), rng.uniform(0, 600, 2000)]
    x = np.r_[x, 600.0]
    ours = np.array([S.chi2_sf_int(df, v) for v in x])
    np.testing.assert_allclose(ours, special.chdtrc(df, x), rtol=1e-12, atol=0)
    assert S.chi2_sf_int(df, -2.0) == 1.0 and math.isnan(S.chi2_sf_int(df, math.nan))


def test_statistics_equal_scipy_including_the_fallbacks():
    """The wrapper's numba statistics == scipy on every branch: NaN (infeasible), negative
    statistics (p = 1), large df_denom and chi-square statistics above 600 (scipy fallback)."""
    rng = np.random.default_rng(0)
    n = 400
    lags = np.array([1, 2, 3, 14, 70], dtype=np.int64)
    nobs = np.array([900, 899, 898, 887, 831], dtype=np.int64)
    ssr_u = rng.uniform(0.5, 2.0, (n, lags.size))
    diff = ssr_u * rng.exponential(0.05, (n, lags.size))
    diff[:20] *= 400.0  # chi2 > 600 for some
    diff[20:25] = -1e-16  # rank-deficient fits: tiny negative statistics
    ssr_u[25:30, 1] = np.nan  # infeasible
    ssr_r = ssr_u + diff
    df_denom = np.broadcast_to((nobs - 2 * lags - 1).astype(float), (n, lags.size)).copy()
    df_denom[30:40, :3] = 40.0  # small df as well
    f_stat, chi2, lr = _statistics(lags, nobs, ssr_r, diff, ssr_u, df_denom)
    f_p, chi2_p, lr_p = (
        _f_pvalues(lags, f_stat, df_denom),
        _chi2_pvalues(lags, chi2),
        _chi2_pvalues(lags, lr),
    )
    p = lags.astype(float)[None, :]
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(f_stat, diff / ssr_u / p * df_denom)
        np.testing.assert_array_equal(chi2, nobs * diff / ssr_u)
        np.testing.assert_allclose(lr, nobs * np.log(ssr_r / ssr_u), rtol=1e-15)
        ref = (
            (special.fdtrc(p, df_denom, f_stat), f_p, f_stat),
            (special.chdtrc(p, chi2), chi2_p, chi2),
            (special.chdtrc(p, lr), lr_p, lr),
        )
    for want, got, stat in ref:
        want = np.where(stat < 0, 1.0, want)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=5e-13, atol=1e-300)


def test_parallel_pvalues_equal_serial_bit_for_bit():
    """Blocks of series in parallel (each with its own cache of beta constants) give the
    values of one serial pass, whatever the number of blocks."""
    rng = np.random.default_rng(3)
    n = 301
    lags = np.array([1, 2, 5], dtype=np.int64)
    nobs = np.array([119, 118, 115], dtype=np.int64)
    ssr_u = rng.uniform(0.5, 2.0, (n, lags.size))
    diff = ssr_u * rng.exponential(0.05, (n, lags.size))
    diff[:5] *= 1e4  # chi-square above 600: flagged for scipy
    ssr_u[7, 1] = np.nan
    df_denom = np.broadcast_to((nobs - 2 * lags - 1).astype(float), (n, lags.size)).copy()
    df_denom[50:60] = 40.0  # runs of another df (the per-block constant cache)
    shape = (n, lags.size)

    def run(chunks):
        parallel = chunks > 1
        stats = [np.empty(shape) for _ in range(3)]
        kern = S._granger_statistics if parallel else S._granger_statistics_serial
        kern(lags, nobs, ssr_u + diff, diff, ssr_u, df_denom, *stats, chunks)
        f_stat, chi2, lr = stats
        outs = [*stats]
        for stat, f in ((f_stat, True), (chi2, False), (lr, False)):
            pv, todo = np.empty(shape), np.empty(shape, np.int8)
            if f:
                kern = S._granger_f_pvalues if parallel else S._granger_f_pvalues_serial
                kern(lags, stat, df_denom, pv, todo, chunks)
            else:
                kern = S._granger_chi2_pvalues if parallel else S._granger_chi2_pvalues_serial
                kern(lags, stat, pv, todo, chunks)
            outs += [pv, todo]
        return outs

    serial = run(1)
    todo_chi2 = serial[6]
    assert todo_chi2[:5].any() and not todo_chi2[10:].any()
    for chunks in (2, 7, n):
        for a, b in zip(run(chunks), serial):
            np.testing.assert_array_equal(a, b)

"""netstruct.causal.granger against statsmodels (oracle), the naive lstsq reference and spec §6."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from netstruct import InvalidParameterError, NetstructWarning
from netstruct.causal import GRANGER_STATUS, granger, max_granger_lag
from netstruct.exceptions import InfeasibleTestError
from tests.oracles.naive_causal import naive_granger

sm_stattools = pytest.importorskip("statsmodels.tsa.stattools")

RTOL_STAT = 1e-10
ATOL_STAT = 1e-12  # statistics near 0 inherit statsmodels' own cancellation error (~1e-14 abs)
RTOL_P = 1e-10


def _statsmodels(cause, effect, lags):
    """statsmodels results per lag, or the exception type it raised for that lag."""
    out = {}
    for lag in lags:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[lag] = sm_stattools.grangercausalitytests(
                    np.column_stack([effect, cause]), [lag]
                )[lag][0]
        except Exception as exc:  # noqa: BLE001 - the oracle's exception type is the expectation
            out[lag] = type(exc)
    return out


def _assert_matches_statsmodels(res, b, cause, effect):
    sm = _statsmodels(cause, effect, res.lags.tolist())
    for li, lag in enumerate(res.lags.tolist()):
        ref = sm[lag]
        if isinstance(ref, type):
            assert not res.feasible[b, li], (lag, ref)
            assert np.isnan(res.f_pvalue[b, li]) and np.isnan(res.chi2_pvalue[b, li])
            continue
        assert res.feasible[b, li]
        for stat, pv, key in (
            (res.f_stat, res.f_pvalue, "ssr_ftest"),
            (res.chi2_stat, res.chi2_pvalue, "ssr_chi2test"),
            (res.lr_stat, res.lr_pvalue, "lrtest"),
        ):
            np.testing.assert_allclose(stat[b, li], ref[key][0], rtol=RTOL_STAT, atol=ATOL_STAT)
            # rank-deficient designs: statistics are ~1e-15 rounding noise in statsmodels too,
            # and sf(x) ~ 1 - sqrt(x) near 0 amplifies it; compare those p-values absolutely
            # (and below the normal range, 2.2e-308, neither library keeps relative precision:
            # scipy returns 0 for some subnormal tails and a subnormal value for others)
            atol_p = 1e-6 if res.status[b, li] == GRANGER_STATUS.index("singular") else 1e-300
            np.testing.assert_allclose(pv[b, li], ref[key][1], rtol=RTOL_P, atol=atol_p)
        assert res.df_denom[b, li] == ref["ssr_ftest"][2]
        assert res.df_num[li] == ref["ssr_ftest"][3] == ref["ssr_chi2test"][2]


@pytest.fixture(scope="module")
def causal_pair():
    """Spec §6 F: x drives y."""
    rng = np.random.default_rng(42)
    x = rng.standard_normal(200)
    e = rng.standard_normal(200)
    y = np.empty(200)
    y[0] = e[0]
    for t in range(1, 200):
        y[t] = 0.4 * y[t - 1] + 0.6 * x[t - 1] + 0.5 * e[t]
    return x, y


def test_spec_example_f_known_direction(causal_pair):
    x, y = causal_pair
    np.testing.assert_allclose(x[:3], [0.304717, -1.039984, 0.750451], atol=1e-6)
    np.testing.assert_allclose(y[:3], [0.337575, 1.021601, -0.170058], atol=1e-6)
    res = granger(x, y, lags=3)
    np.testing.assert_allclose(res.f_stat[0], [183.1489, 91.3308, 59.8119], atol=1e-4)
    np.testing.assert_allclose(res.f_pvalue[0], [6.740e-30, 1.226e-28, 2.844e-27], rtol=1e-3)
    np.testing.assert_allclose(res.chi2_stat[0], [185.9522, 187.3938, 186.0466], atol=1e-4)
    np.testing.assert_allclose(res.chi2_pvalue[0], [2.432e-42, 2.032e-41, 4.361e-40], rtol=1e-3)
    assert res.df_denom[0].tolist() == [196.0, 193.0, 190.0]
    assert res.df_num.tolist() == [1, 2, 3]
    assert res.lr_stat[0, 0] == pytest.approx(131.3030, abs=1e-4)
    _assert_matches_statsmodels(res, 0, x, y)
    rev = granger(y, x, lags=3)
    np.testing.assert_allclose(rev.f_stat[0], [0.0992, 2.6786, 2.3464], atol=1e-4)
    np.testing.assert_allclose(rev.f_pvalue[0], [0.7532, 0.0712, 0.0742], atol=1e-4)
    np.testing.assert_allclose(rev.chi2_pvalue[0], [0.7510, 0.0641, 0.0630], atol=1e-4)
    _assert_matches_statsmodels(rev, 0, y, x)


def test_spec_example_g_small_sample():
    rng = np.random.default_rng(3)
    m = rng.standard_normal(16)
    le = rng.standard_normal(16)
    res = granger(le, m, lags=[1, 2, 4])
    np.testing.assert_allclose(res.f_stat[0], [0.8606, 1.8364, 1.9638], atol=1e-4)
    np.testing.assert_allclose(res.f_pvalue[0], [0.3719, 0.2144, 0.3030], atol=1e-4)
    assert res.df_denom[0].tolist() == [12.0, 9.0, 3.0]
    np.testing.assert_allclose(res.chi2_stat[0], [1.0757, 5.7133, 31.4212], atol=1e-4)
    np.testing.assert_allclose(res.chi2_pvalue[0], [0.2997, 0.0575, 2.51e-6], rtol=2e-3)
    _assert_matches_statsmodels(res, 0, le, m)
    assert max_granger_lag(16) == 4
    with pytest.raises(InvalidParameterError, match="at most floor\\(\\(T - 2\\) / 3\\) = 4"):
        granger(le, m, lags=5)
    with pytest.raises(ValueError):  # the oracle agrees that lag 5 is too many
        sm_stattools.grangercausalitytests(np.column_stack([m, le]), 5)


@pytest.mark.parametrize("shared_effect", [True, False])
@pytest.mark.parametrize("T", [20, 57])
def test_random_series_match_statsmodels(seed, shared_effect, T):
    rng = np.random.default_rng(seed)
    n = 12
    cause = rng.standard_normal((n, T))
    effect = rng.standard_normal(T) if shared_effect else rng.standard_normal((n, T))
    lags = max_granger_lag(T)
    res = granger(cause, effect, lags=lags)
    assert res.f_stat.shape == (n, lags) and (res.status == 0).all()
    for b in range(n):
        _assert_matches_statsmodels(res, b, cause[b], effect if shared_effect else effect[b])


def test_causal_series_match_statsmodels_and_naive(seed):
    rng = np.random.default_rng(seed)
    n, T = 8, 80
    cause = rng.standard_normal((n, T))
    effect = np.zeros((n, T))
    strength = np.linspace(0.0, 1.0, n)
    for t in range(2, T):
        effect[:, t] = (
            0.3 * effect[:, t - 1] + strength * cause[:, t - 2] + 0.5 * rng.standard_normal(n)
        )
    res = granger(cause, effect, lags=[1, 2, 5])
    for b in range(n):
        _assert_matches_statsmodels(res, b, cause[b], effect[b])
        for li, lag in enumerate(res.lags.tolist()):
            ref = naive_granger(cause[b], effect[b], lag)
            np.testing.assert_allclose(res.f_stat[b, li], ref["F"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(res.chi2_pvalue[b, li], ref["chi2_p"], rtol=1e-9)


def _degenerate_cases(T=40):
    rng = np.random.default_rng(7)
    e = rng.standard_normal(T)
    c = rng.standard_normal(T)
    return {
        "constant_cause": (np.full(T, 1.5), e, "constant_cause"),
        "zero_cause": (np.zeros(T), e, "constant_cause"),
        "constant_effect": (c, np.full(T, -2.0), "constant_effect"),
        "cause_nan": (np.r_[np.nan, c[1:]], e, "nonfinite"),
        "effect_inf": (c, np.r_[e[:-1], np.inf], "nonfinite"),
        "perfect_fit": (c, np.r_[0.0, c[:-1]], "perfect_fit"),
        "cause_equals_effect": (e.copy(), e, "singular"),
        "cause_affine_in_effect": (3.0 * e + 1.0, e, "singular"),
        "period_two_cause": (np.tile([0.3, 0.7], T // 2), e, None),
        "cause_constant_late": (np.r_[c[:5], np.ones(T - 5)], e, "ok"),
    }


@pytest.mark.parametrize("case", list(_degenerate_cases()))
def test_degenerate_cases_follow_statsmodels(case):
    cause, effect, expected = _degenerate_cases()[case]
    res = granger(cause, effect, lags=3, errors="ignore")
    names = res.status_names()[0].tolist()
    if expected is not None:
        assert expected in names
    if case == "period_two_cause":  # lag 1 is fine; lags >= 2 are collinear with the intercept
        assert names == ["ok", "singular", "singular"]
    if not np.isfinite(cause).all() or not np.isfinite(effect).all():
        with pytest.raises(ValueError, match="NaN or inf"):
            sm_stattools.grangercausalitytests(np.column_stack([effect, cause]), 3)
        assert names == ["nonfinite"] * 3
        return
    _assert_matches_statsmodels(res, 0, cause, effect)


@pytest.mark.parametrize("level", [0.1, 0.7, 1 / 3])
def test_constant_response_rows_are_constant_effect(level):
    """Deliberate deviation: statsmodels' TSS == 0 check can miss these (rounding noise)."""
    rng = np.random.default_rng(0)
    effect = np.r_[1.0, 2.0, 3.0, 4.0, np.full(36, level)]
    res = granger(rng.standard_normal(40), effect, lags=[3, 4], errors="ignore")
    assert res.status_names()[0].tolist() == ["ok", "constant_effect"]
    assert np.isnan(res.f_pvalue[0, 1])


def test_infeasible_policy_warn_raise_ignore():
    rng = np.random.default_rng(0)
    cause = rng.standard_normal((3, 30))
    cause[1] = 0.0
    effect = rng.standard_normal(30)
    with pytest.warns(NetstructWarning, match="series 1 at lag 1 \\(constant_cause\\)"):
        res = granger(cause, effect, lags=2)
    assert res.status[1].tolist() == [1, 1] and np.isnan(res.f_stat[1]).all()
    assert np.isfinite(res.f_stat[[0, 2]]).all()
    with pytest.raises(InfeasibleTestError, match="constant_cause"):
        granger(cause, effect, lags=2, errors="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        granger(cause, effect, lags=2, errors="ignore")


def test_min_p_is_the_authors_rule():
    rng = np.random.default_rng(1)
    T, L = 40, 6
    cause = rng.standard_normal((5, T))
    cause[3] = 0.0  # the authors' blanket except -> p = 0 (kept)
    effect = rng.standard_normal(T)
    res = granger(cause, effect, lags=L, errors="ignore")
    p_min, lag = res.min_p("ssr_chi2test", decimals=4, infeasible="zero")
    for b in range(5):
        try:
            sm = sm_stattools.grangercausalitytests(np.column_stack([effect, cause[b]]), L)
            expected = min(round(sm[k][0]["ssr_chi2test"][1], 4) for k in range(1, L + 1))
        except Exception:  # noqa: BLE001 - reproducing `except: p = 0`
            expected = 0.0
        assert p_min[b] == expected
    assert lag[3] == -1
    p_nan, _ = res.min_p("ssr_ftest")
    assert np.isnan(p_nan[3]) and np.isfinite(p_nan[[0, 1, 2, 4]]).all()


def test_single_lag_mode_equals_that_column_of_all_lags():
    rng = np.random.default_rng(2)
    c, e = rng.standard_normal((4, 50)), rng.standard_normal((4, 50))
    all_lags = granger(c, e, lags=4)
    single = granger(c, e, lags=[3])
    np.testing.assert_array_equal(single.f_pvalue[:, 0], all_lags.f_pvalue[:, 2])
    assert single.pvalue("ssr_ftest").shape == (4, 1)


def test_null_calibration_property_h():
    """Spec §6 H: lag-1 F is calibrated; the authors' min-p chi2 rule is not."""
    rng = np.random.default_rng(11)
    K, n = 40, 4000
    cause = rng.standard_normal((n, K))
    effect = rng.standard_normal((n, K))
    single = granger(cause, effect, lags=[1])
    rate = float(np.mean(single.f_pvalue[:, 0] < 0.05))
    assert 0.035 <= rate <= 0.065
    L = min(14, max_granger_lag(K))
    authors = granger(cause, effect, lags=L)
    p_min, _ = authors.min_p("ssr_chi2test", decimals=4, infeasible="zero")
    assert np.mean(p_min < 0.05) >= 0.3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"cause": np.zeros((2, 30)), "effect": np.zeros(29), "lags": 1},
            "'effect' parameter of granger must be series of the same length",
        ),
        (
            {"cause": np.zeros((2, 30)), "effect": np.zeros((3, 30)), "lags": 1},
            "1 row \\(shared\\) or 2 rows",
        ),
        ({"cause": np.zeros((2, 3, 4)), "effect": np.zeros(4), "lags": 1}, "'cause' parameter"),
        ({"cause": np.zeros(30), "effect": np.zeros(30), "lags": 0}, "'lags' parameter"),
        ({"cause": np.zeros(30), "effect": np.zeros(30), "lags": [1, -2]}, "'lags' parameter"),
        ({"cause": np.zeros(30), "effect": np.zeros(30), "lags": []}, "'lags' parameter"),
        ({"cause": np.zeros(30), "effect": np.zeros(30), "lags": 10}, "at most floor"),
        (
            {"cause": np.zeros(30), "effect": np.zeros(30), "lags": 1, "errors": "boom"},
            "'errors' parameter",
        ),
        ({"cause": [["a"]], "effect": np.zeros(30), "lags": 1}, "'cause' parameter"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        granger(**kwargs)


def test_status_names_cover_codes():
    assert GRANGER_STATUS[0] == "ok" and len(set(GRANGER_STATUS)) == len(GRANGER_STATUS)


def test_empty_batch():
    res = granger(np.zeros((0, 20)), np.zeros(20), lags=2)
    assert res.f_stat.shape == (0, 2)


@pytest.mark.parametrize("T", [14, 23, 120])
def test_per_pair_near_collinear_and_short_series_match_statsmodels(T):
    """One effect row per cause (the per-pair Gram route and its QR hand-off) == statsmodels.

    Nearer-collinear pairs are checked against the QR in test_causal_kernels.py: there
    statsmodels' own pinv error exceeds 1e-10.
    """
    rng = np.random.default_rng(T)
    n = 6
    effect = rng.standard_normal((n, T)).cumsum(axis=1)
    cause = rng.standard_normal((n, T))
    cause[1] = np.roll(effect[1], -1) + 1e-3 * rng.standard_normal(T)  # ~ a lead of the effect
    cause[2] = effect[2] + 1e-2 * rng.standard_normal(T)  # ~ the effect's own lags
    cause[3] = 100.0 + rng.standard_normal(T)  # large mean
    effect[4] = 0.5 * np.roll(cause[4], 1) + 0.01 * rng.standard_normal(T)  # strong cause
    lags = list(range(1, min((T - 4) // 3, 6) + 1))  # df_denom >= 3: no saturated fits
    res = granger(cause, effect, lags=lags, errors="ignore")
    for b in range(n):
        _assert_matches_statsmodels(res, b, cause[b], effect[b])


@pytest.mark.parametrize("kind", ["white", "ar_driven"])
def test_per_pair_every_lag_1_to_14_matches_statsmodels(kind):
    """The benchmark's shape (T = 120, one effect row per cause) at every lag 1..14, each lag
    on its own and all together: statistics and p-values within 1e-10 of statsmodels."""
    rng = np.random.default_rng(len(kind))
    n, T = 5, 120
    effect = rng.standard_normal((n, T))
    cause = rng.standard_normal((n, T))
    if kind == "ar_driven":
        for t in range(1, T):
            effect[:, t] += 0.6 * effect[:, t - 1] + 0.3 * cause[:, t - 1]
    together = granger(cause, effect, lags=14)
    for lag in range(1, 15):
        alone = granger(cause, effect, lags=[lag])
        np.testing.assert_array_equal(alone.f_pvalue[:, 0], together.f_pvalue[:, lag - 1])
    for b in range(n):
        _assert_matches_statsmodels(together, b, cause[b], effect[b])


def test_pvalues_are_computed_on_first_read_and_kept():
    """Each test's p-values are computed when first read (from read-only statistics), kept,
    and equal the tails of the statistics computed directly."""
    from scipy import special

    rng = np.random.default_rng(11)
    cause, effect = rng.standard_normal((30, 60)), rng.standard_normal((30, 60))
    res = granger(cause, effect, lags=3)
    assert "f_pvalue" not in vars(res) and "chi2_pvalue" not in vars(res)
    p = res.pvalue("ssr_chi2test")
    assert "chi2_pvalue" in vars(res) and "f_pvalue" not in vars(res)
    assert res.chi2_pvalue is p  # kept, not recomputed
    lags = res.lags.astype(float)[None, :]
    np.testing.assert_allclose(p, special.chdtrc(lags, res.chi2_stat), rtol=1e-13)
    np.testing.assert_allclose(
        res.f_pvalue, special.fdtrc(lags, res.df_denom, res.f_stat), rtol=5e-13
    )
    np.testing.assert_allclose(res.lr_pvalue, special.chdtrc(lags, res.lr_stat), rtol=1e-13)
    for name in ("f_stat", "chi2_stat", "lr_stat", "df_denom", "lags", "f_pvalue", "chi2_pvalue"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(res, name)[0, ...] = 0.0

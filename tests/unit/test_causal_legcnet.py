"""LEGCNet decision rules, null calibration, the end-to-end pipeline and its invariants."""

from __future__ import annotations

import numpy as np
import pytest

from netstruct import InvalidParameterError
from netstruct.causal import (
    GRANGER_STATUS,
    LEGCNetConfig,
    causal_scores,
    decide,
    granger,
    lyapunov,
    null_calibration,
    window_bounds,
)

sm_stattools = pytest.importorskip("statsmodels.tsa.stattools")


def test_authors_config_is_the_replication_setting():
    cfg = LEGCNetConfig.authors()
    assert (cfg.window, cfg.stride, cfg.le_mode, cfg.theiler, cfg.steps, cfg.le_fit) == (
        200,
        180,
        "authors",
        0,
        3,
        "k0k1",
    )
    assert (cfg.max_lag, cfg.alpha) == (14, 0.05)
    assert LEGCNetConfig.authors(160).stride == 144
    rec = LEGCNetConfig.recommended()
    assert (rec.rule, rec.lag, rec.q, rec.theiler, rec.le_fit) == ("recommended", 1, 0.05, 5, "lsq")


def test_authors_rule_equals_statsmodels_loop_with_blanket_except():
    rng = np.random.default_rng(4)
    K, E = 30, 12
    lam = rng.standard_normal((K, E))
    lam[:, 3] = 0.0  # constant LE column -> InfeasibleTestError -> p = 0 -> kept
    m = rng.standard_normal(K)
    s = decide(lam, m, LEGCNetConfig.authors(max_lag=14))
    L = (K - 2) // 3  # capped lag
    assert s.lags.tolist() == list(range(1, L + 1))
    for e in range(E):
        try:
            res = sm_stattools.grangercausalitytests(np.column_stack([m, lam[:, e]]), L)
            p = min(round(res[k][0]["ssr_chi2test"][1], 4) for k in range(1, L + 1))
        except Exception:  # noqa: BLE001 - the authors' `except: p = 0`
            p = 0.0
        assert s.gc_p[e] == p
        assert s.prune[e] == (p >= 0.05)
    assert not s.prune[3] and GRANGER_STATUS[s.gc_status[3]] == "constant_cause"


def test_recommended_rule_is_single_lag_f_with_bh():
    rng = np.random.default_rng(5)
    K, E = 150, 30
    lam = rng.standard_normal((K, E))
    m = 0.3 * rng.standard_normal(K)
    m[1:] += lam[:-1, :5].sum(axis=1)  # the LE series of edges 0..4 lead the effect
    s = decide(lam, m, LEGCNetConfig.recommended())
    res = granger(lam.T, m, lags=[1])
    np.testing.assert_array_equal(s.gc_p, res.f_pvalue[:, 0])
    assert not s.prune[:5].any() and s.prune[5:].mean() > 0.8
    assert (s.gc_q >= s.gc_p).all()
    assert ((s.influence >= 0) & (s.influence <= 1)).all()
    assert s.influence[:5].min() > s.influence[5:].max()


def test_target_sparsity_prunes_lowest_influence_and_keeps_infeasible():
    rng = np.random.default_rng(6)
    lam = rng.standard_normal((40, 20))
    lam[:, 0] = 1.0
    s = decide(lam, rng.standard_normal(40), LEGCNetConfig.recommended(amount=0.5))
    assert s.prune.sum() == round(0.5 * 19) and not s.prune[0]
    pruned, kept = s.influence[s.prune], s.influence[~s.prune & (np.arange(20) > 0)]
    assert pruned.max() <= kept.min()


def test_null_calibration_authors_rule_is_liberal_recommended_is_calibrated():
    rng = np.random.default_rng(7)
    lam, m = rng.standard_normal((36, 400)), rng.standard_normal(36)
    cal = null_calibration(
        lam,
        m,
        {"authors": LEGCNetConfig.authors(), "recommended": LEGCNetConfig.recommended()},
        n_shuffles=4,
        seed=0,
    )
    assert cal["authors"].shape == (4,)
    assert cal["authors"].mean() > 0.9  # spec §5.3: K = 36, L = 11 -> 0.995
    assert cal["recommended"].mean() < 0.02


def test_causal_scores_windows_and_effect_rows():
    rng = np.random.default_rng(8)
    n_rows, E, W, S = 24001, 3, 160, 144
    weights = np.cumsum(rng.standard_normal((n_rows, E)) * 1e-3, axis=0)
    effect_rows = np.full(n_rows, np.nan)
    _, last = window_bounds(n_rows, W, S)
    effect_rows[last] = rng.uniform(0, 0.5, last.size)
    s = causal_scores(weights, effect_rows, LEGCNetConfig.authors(W))
    assert s.lyap.shape == (166, 3)
    np.testing.assert_array_equal(s.effect, effect_rows[last])
    np.testing.assert_array_equal(
        s.lyap[5, 1], lyapunov(weights[144 * 5 : 144 * 5 + 160, 1], mode="authors")[0]
    )
    assert s.prune.shape == (3,)


def test_bad_inputs():
    with pytest.raises(InvalidParameterError, match="'lyap' parameter"):
        decide(np.zeros((10, 2)), np.zeros(9), LEGCNetConfig.recommended())
    with pytest.raises(InvalidParameterError, match="at least 5 windows"):
        decide(np.zeros((4, 2)), np.zeros(4), LEGCNetConfig.authors())
    with pytest.raises(InvalidParameterError, match="'effect_rows' parameter"):
        causal_scores(np.zeros((400, 2)), np.full(400, np.nan), LEGCNetConfig.recommended(40))


def test_the_calibrated_rule_is_the_default():
    import inspect

    from netstruct.causal import pipeline

    assert LEGCNetConfig().rule == "recommended"
    assert inspect.signature(pipeline.legcnet_prune).parameters["config"].default is None
    assert "default=LEGCNetConfig.recommended()" in pipeline.legcnet_prune.__doc__

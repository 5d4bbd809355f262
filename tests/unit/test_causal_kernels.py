"""Internals of the fast causal paths: shared-effect and per-pair Granger lanes, sort."""

from __future__ import annotations

import numpy as np
import pytest

from netstruct.backends.numba import causal as K
from netstruct.causal import granger


def _per_series(effect_row, cause, lags):
    """The full per-series QR (one effect row per cause) for the same pairs."""
    n, T = cause.shape
    outs = [np.empty((n, lags.size)) for _ in range(3)] + [np.empty((n, lags.size), np.int8)]
    K._granger_per_series(np.repeat(effect_row[None], n, 0), cause, lags, 1e-7, *outs)
    return outs


@pytest.mark.parametrize("T", [20, 57, 120])
def test_shared_effect_lanes_equal_per_series_qr(T):
    """Shared-effect path (restricted fit once, 64-cause batches) == full QR per series."""
    rng = np.random.default_rng(T)
    n = 150  # several batches, the last one partial
    y = rng.standard_normal(T)
    cause = rng.standard_normal((n, T))
    cause[3] = 0.0  # constant_cause
    cause[4, 7] = np.nan  # nonfinite
    cause[5] = 2.0 * y + 1.0  # singular
    cause[6, 4:] = 1.0  # constant only at the larger lags
    cause[7] = np.tile([0.3, 0.7], T // 2 + 1)[:T]  # collinear with the intercept at lag >= 2
    lags = np.arange(1, (T - 2) // 3 + 1, dtype=np.int64)
    outs = [np.empty((n, lags.size)) for _ in range(3)] + [np.empty((n, lags.size), np.int8)]
    K.granger(y[None], cause, lags, 1e-7, *outs)
    ref = _per_series(y, cause, lags)
    np.testing.assert_array_equal(outs[3], ref[3])
    ok = ref[3] == 0
    for a, b in zip(outs[:3], ref[:3]):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-11, atol=1e-12 * np.abs(b[ok]).max())


def test_shared_effect_degenerate_effect_rows():
    rng = np.random.default_rng(0)
    cause = rng.standard_normal((5, 40))
    for y, code in ((np.full(40, 3.0), 2), (np.r_[np.nan, rng.standard_normal(39)], 3)):
        res = granger(cause, y, lags=3, errors="ignore")
        assert (res.status == code).all()


@pytest.mark.parametrize("kind", ["random", "ties", "constant", "outside"])
def test_bucket_argsort_sorts(kind):
    rng = np.random.default_rng(1)
    n = 97
    keys = {
        "random": rng.random(n + 5),
        "ties": np.round(rng.random(n + 5), 1),
        "constant": np.zeros(n + 5),
        "outside": rng.standard_normal(n + 5) * 3,
    }[kind]
    order = np.empty(n, dtype=np.int64)
    count = np.empty(n + 1, dtype=np.int64)
    K._bucket_argsort(keys, order, count)
    assert sorted(order.tolist()) == list(range(n))
    assert (np.diff(keys[order]) >= 0).all()


def _gram_and_qr_lanes(y, cause, lags, rank_tol=1e-7):
    """One batch (<= 64 causes) through the Gram route and through the QR lanes, lag by lag."""
    m, T = cause.shape
    L, nl = int(lags.max()), lags.size
    cb = np.ascontiguousarray(cause.T)
    Q, e, rstat, rpiv, tss = K.granger_shared_precompute(y, lags)
    yc, Rinv, kz, zn, ssr_r, use = K.granger_gram_precompute(y, lags, rank_tol, rstat, rpiv, e)
    assert use.all()
    nxt, bad = np.empty((T, m), np.int64), np.empty(m, np.int8)
    K._granger_prep_lanes(cb, 0, m, nxt, bad)
    qr = [np.full((m, nl), -1.0) for _ in range(3)] + [np.full((m, nl), -1, np.int8)]
    gram = [np.full((m, nl), -1.0) for _ in range(3)] + [np.full((m, nl), -1, np.int8)]
    flags = np.zeros((m, nl), bool)
    A, W, ev, sc = (np.empty(s) for s in ((L + 1, L, m), (L, T, m), (T, m), (4, m)))
    cc, cm = np.empty((T, m)), np.empty(m)
    PY, PC, P1 = (
        np.empty((2 * L - 1, 2 * L + 1, m)),
        np.empty((L, 2 * L + 1, m)),
        np.empty((2 * L + 1, m)),
    )
    Bm, M, r, fb = (
        np.empty((L + 1, L, m)),
        np.empty((L, L, m)),
        np.empty((L, m)),
        np.empty(m, np.int8),
    )
    K._granger_gram_prefix(cb, yc, L, 0, m, cc, cm, PY, PC, P1, np.empty(m))
    for li, p in enumerate(lags):
        K._granger_lag_lanes(
            cb, p, li, Q, e, rstat, rpiv, tss, rank_tol, nxt, bad, A, W, ev, sc, 0, m, *qr
        )
        args = (
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
        )
        K._granger_gram_lag(*args, 0, m, *gram)
        flags[:, li] = fb[:m] != 0
    return gram, qr, flags


def _assert_gram_matches_qr(gram, qr, flags, rtol=1e-12):
    done = ~flags
    np.testing.assert_array_equal(gram[3][done], qr[3][done])
    ok = done & (qr[3] == 0)
    ssr_r = qr[0][ok]
    np.testing.assert_allclose(gram[0][ok], ssr_r, rtol=rtol, atol=0)
    np.testing.assert_allclose(gram[2][ok], qr[2][ok], rtol=rtol, atol=0)
    # SSR_r - SSR_u: relative to SSR_r (the QR route itself only has that absolute accuracy)
    assert (np.abs(gram[1][ok] - qr[1][ok]) <= rtol * ssr_r).all()


@pytest.mark.parametrize("effect", ["white", "random_walk"])
@pytest.mark.parametrize("kind", ["random", "random_walk", "near_collinear"])
def test_gram_route_equals_qr_lanes(effect, kind):
    """The O(p^3) Gram route == the QR lanes within 1e-12 wherever it does not hand off."""
    rng = np.random.default_rng(hash((effect, kind)) % 2**32)
    T, m = 120, 64
    lags = np.arange(1, 15, dtype=np.int64)
    y = rng.standard_normal(T) + 5.0
    if effect == "random_walk":
        y = y.cumsum()
    if kind == "random":
        cause = rng.standard_normal((m, T)) * 3.0 - 7.0
    elif kind == "random_walk":
        cause = rng.standard_normal((m, T)).cumsum(axis=1) + 100.0
    else:  # leads/copies of the effect plus noise of decreasing size: W nearly singular
        scale = np.logspace(-1, -6, m)[:, None]
        shifted = np.stack([np.roll(y, -s) for s in rng.integers(0, 3, m)])
        cause = shifted + scale * rng.standard_normal((m, T))
    gram, qr, flags = _gram_and_qr_lanes(y, cause, lags)
    _assert_gram_matches_qr(gram, qr, flags)
    if kind == "near_collinear":
        assert flags.any() and (~flags).any()  # both routes exercised
    elif effect == "white":
        assert not flags.any()  # well-conditioned fits all stay on the Gram route
    elif kind == "random":
        assert flags.mean() < 0.5  # most stay (a smooth effect's collinear lags cost margin)


def test_gram_route_hands_off_ill_conditioned_causes():
    """Near-singular residualised Grams, perfect fits and near-rank-deficient columns go to QR."""
    rng = np.random.default_rng(7)
    T = 120
    lags = np.arange(1, 15, dtype=np.int64)
    y = rng.standard_normal(T)
    cause = rng.standard_normal((8, T))
    cause[1] = 2.0 * y + 1.0 + 1e-9 * rng.standard_normal(T)  # ~ the effect's own lags
    cause[2, :-1] = y[1:] / 3.0  # effect is an exact lag of the cause: perfect fit
    cause[2, -1] = 0.4
    cause[3] = np.tile([0.3, 0.7], T // 2)[:T] + 1e-10 * rng.standard_normal(T)  # ~ collinear
    cause[4] = 1e6 + 1e-4 * rng.standard_normal(T)  # large mean: tiny relative pivots
    gram, qr, flags = _gram_and_qr_lanes(y, cause, lags)
    assert not flags[[0, 5, 6, 7]].any()
    assert flags[1].all() and flags[2].all() and flags[3, 1:].all()
    assert flags[4].all()
    _assert_gram_matches_qr(gram, qr, flags)
    # the public kernel (Gram route + hand-off) equals the full per-series QR
    outs = [np.empty((8, lags.size)) for _ in range(3)] + [np.empty((8, lags.size), np.int8)]
    K.granger(y[None], cause, lags, 1e-7, *outs)
    ref = _per_series(y, cause, lags)
    np.testing.assert_array_equal(outs[3], ref[3])
    ok = ref[3] == 0
    for a, b in zip(outs[:3], ref[:3]):
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-11, atol=1e-12 * np.abs(b[ok]).max())


# --- one effect row per cause: the per-pair Gram route ---------------------------------------
def _pair_gram_flags(effect, cause, lags, rank_tol=1e-7):
    """Run the per-pair Gram cores on one batch: outputs (NaN where handed off) and flags."""
    m, T = cause.shape
    L, nl = int(lags.max()), lags.size
    S = Km = 2 * L + 2
    yb, cb = np.ascontiguousarray(effect.T), np.ascontiguousarray(cause.T)
    nxy, nxc = np.empty((T, m), np.int64), np.empty((T, m), np.int64)
    bad, yc, cc = np.empty(m, np.int8), np.empty((T, m)), np.empty((T, m))
    PYY, PCC, PYC = np.empty((L + 1, S, m)), np.empty((L, S, m)), np.empty((2 * L, S, m))
    PY1, PC1, sc = np.empty((S, m)), np.empty((S, m)), np.empty((8, m))
    M, gd, cn, bt = np.empty((Km, Km, m)), np.empty((Km, m)), np.empty((Km, m)), np.empty((Km, m))
    fb = np.empty((m, nl), np.int8)
    outs = [np.full((m, nl), np.nan) for _ in range(3)] + [np.full((m, nl), -1, np.int8)]
    K._granger_pair_prefix(yb, cb, L, 0, m, nxy, nxc, bad, yc, cc, PYY, PCC, PYC, PY1, PC1, sc)
    for li, p in enumerate(lags):
        K._granger_pair_lag(
            p, li, L, nxy, nxc, bad, PYY, PCC, PYC, PY1, PC1, rank_tol, M, gd, cn, bt, sc, fb,
            0, m, *outs,
        )  # fmt: skip
    return outs, fb != 0


def _per_pair_qr(effect, cause, lags):
    n = cause.shape[0]
    outs = [np.empty((n, lags.size)) for _ in range(3)] + [np.empty((n, lags.size), np.int8)]
    K._granger_per_series(effect, cause, lags, 1e-7, *outs)
    return outs


def _pair_series(kind, m, T, rng):
    effect = rng.standard_normal((m, T))
    cause = rng.standard_normal((m, T))
    if kind == "random_walk":
        effect, cause = effect.cumsum(axis=1) + 50.0, cause.cumsum(axis=1) - 20.0
    elif kind == "ar_driven":
        for t in range(1, T):
            effect[:, t] += 0.8 * effect[:, t - 1] + 0.5 * cause[:, t - 1]
    elif kind == "near_collinear":  # cause ~ a lead/copy of the effect, noise of falling size
        scale = np.logspace(-1, -7, m)[:, None]
        cause = np.roll(effect, -1, axis=1) + scale * rng.standard_normal((m, T))
    return effect, cause


@pytest.mark.parametrize("kind", ["white", "random_walk", "ar_driven", "near_collinear"])
@pytest.mark.parametrize("T", [23, 120])
def test_pair_gram_route_equals_per_series_qr(kind, T):
    """Per-pair Gram route == the per-series QR within 1e-12 wherever it does not hand off."""
    rng = np.random.default_rng(T + len(kind))
    m = 64
    lags = np.arange(1, min(14, (T - 2) // 3) + 1, dtype=np.int64)
    effect, cause = _pair_series(kind, m, T, rng)
    gram, flags = _pair_gram_flags(effect, cause, lags)
    qr = _per_pair_qr(effect, cause, lags)
    done = ~flags
    np.testing.assert_array_equal(gram[3][done], qr[3][done])
    ok = done & (qr[3] == 0)
    for a, b in ((gram[0], qr[0]), (gram[2], qr[2])):
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-12, atol=0)
    assert (np.abs(gram[1][ok] - qr[1][ok]) <= 1e-12 * qr[0][ok]).all()
    if kind == "white" and T == 120:
        assert not flags.any()  # well-conditioned fits all stay on the Gram route
    elif kind == "white":  # short series: the near-saturated fits at the top lags hand off
        assert not flags[:, :3].any() and flags.mean() < 0.5
    if kind == "near_collinear":
        assert flags.any() and (~flags).any()  # both routes exercised


def test_pair_gram_route_hands_off_degenerate_pairs():
    """Singular, perfect, near-rank-deficient and large-mean pairs go to the QR; statuses kept."""
    rng = np.random.default_rng(11)
    T = 60
    lags = np.arange(1, 8, dtype=np.int64)
    effect = rng.standard_normal((10, T))
    cause = rng.standard_normal((10, T))
    cause[1] = 2.0 * effect[1] + 1.0  # singular (exact copy of the effect's lags)
    cause[2, :-1] = effect[2, 1:] / 3.0  # the effect is an exact lag of the cause: perfect fit
    cause[3] = np.tile([0.3, 0.7], T // 2) + 1e-10 * rng.standard_normal(T)  # ~ the intercept
    cause[4] = 1e6 + 1e-4 * rng.standard_normal(T)  # large mean: tiny relative pivots
    effect[5] = 1e6 + 1e-4 * rng.standard_normal(T)  # the same on the effect side
    cause[6] = 0.0  # constant cause
    effect[7, 30:] = 1.0  # constant effect rows at the larger lags
    cause[8, 3] = np.inf  # non-finite
    gram, flags = _pair_gram_flags(effect, cause, lags)
    assert not flags[[0, 9]].any()
    assert flags[1].all() and flags[2].all() and flags[3, 1:].all()
    assert flags[4].all() and flags[5].all()
    assert (gram[3][6] == 1).all() and (gram[3][8] == 3).all() and not flags[[6, 8]].any()
    # the public kernel (Gram route + hand-off), serial and parallel, equals the per-series QR
    ref = _per_pair_qr(effect, cause, lags)
    for kernel, chunks in ((K._granger_pairs_serial, 1), (K._granger_pairs, 3)):
        outs = [np.empty((10, lags.size)) for _ in range(3)] + [np.empty((10, lags.size), np.int8)]
        kernel(effect, cause, lags, 1e-7, chunks, *outs)
        np.testing.assert_array_equal(outs[3], ref[3])
        for a, b in zip(outs[:3], ref[:3]):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            ok = ref[3] == 0
            np.testing.assert_allclose(a[ok], b[ok], rtol=1e-12, atol=1e-12 * np.abs(b[ok]).max())


def _pair_lanes(effect, cause, L):
    """Lane-major copies, facts and empty prefix tables of one batch (per-pair Gram route)."""
    m, T = cause.shape
    S = 2 * L + 2
    yb, cb, sc = np.empty((T, m)), np.empty((T, m)), np.empty((8, m))
    K._granger_pair_load(effect, cause, 0, m, yb, cb, sc)
    np.testing.assert_array_equal(yb, effect.T)
    np.testing.assert_array_equal(cb, cause.T)
    sums = sc[:2].copy()  # the copy's sums == the separate pass's, bit for bit
    nxy, nxc, bad = np.empty((T, m), np.int64), np.empty((T, m), np.int64), np.empty(m, np.int8)
    K._granger_pair_sums(yb, cb, 0, m, sc)
    np.testing.assert_array_equal(sums, sc[:2])
    K._granger_pair_ends(yb, cb, L, 0, m, nxy, nxc, bad, sc)
    tables = [np.full((L + 1, S, m), -1.0), np.full((L, S, m), -1.0), np.full((2 * L, S, m), -1.0)]
    tables += [np.full((S, m), -1.0), np.full((S, m), -1.0)]
    return yb, cb, sc, tables


_FUSED_TABLES = {1: (K._granger_pair_tables_l1, 7), 2: (K._granger_pair_tables_l2, 11)}


@pytest.mark.parametrize("kind", ["white", "random_walk", "near_collinear", "degenerate"])
@pytest.mark.parametrize(
    ("L", "T"),
    [(1, 5), (1, 6), (1, 23), (1, 120), (2, 5), (2, 6), (2, 7), (2, 8), (2, 23), (2, 120)],
)
def test_fused_tables_equal_the_per_table_passes(kind, L, T):
    """The one-pass tables of L = 1 (rows four, two, one at a time) and L = 2 (middle rows two
    at a time; T = 5 has none, 6 one, 7 two), with on-the-fly centring, are bit-identical to
    centring + one pass per table, so lags=[1] or [2] alone equal that lag of any longer list."""
    rng = np.random.default_rng(100 * (L - 1) + T)
    m = 37  # not a multiple of the SIMD width
    if kind == "degenerate":
        effect, cause = rng.standard_normal((m, T)), rng.standard_normal((m, T))
        cause[1] = 3.0
        effect[2, 1:] = 1.0
        cause[3, 2] = np.nan
        effect[4, 0] = np.inf
        cause[5] = 1e6 + 1e-4 * rng.standard_normal(T)
    else:
        effect, cause = _pair_series(kind, m, T, rng)
    yb, cb, sc, fused = _pair_lanes(effect, cause, L)
    _, _, sc2, split = _pair_lanes(effect, cause, L)
    tables, n_acc = _FUSED_TABLES[L]
    tables(yb, cb, 0, m, *fused, sc, np.empty((n_acc, m)))
    yc, cc = np.empty_like(yb), np.empty_like(cb)
    K._granger_pair_centre(yb, cb, 0, m, sc2, yc, cc)
    K._granger_pair_tables(yc, cc, L, 0, m, *split, sc2)
    for a, b in zip(fused, split):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("T", [5, 14, 120])
def test_lag1_pairs_kernel_equals_per_series_qr(T):
    """lags=[1] through the public per-pair kernel (the fused lag-1 tables, 64-pair batches
    and a partial one, QR hand-off), serial and parallel: the statuses of the per-series QR
    and its values within 1e-12, and the values of lag 1 within lags 1..L bit for bit."""
    rng = np.random.default_rng(T + 1)
    n = 150
    effect, cause = rng.standard_normal((n, T)), rng.standard_normal((n, T))
    cause[1] = 2.0 * effect[1] + 1.0  # singular
    cause[2, :-1] = effect[2, 1:] / 3.0  # perfect fit
    cause[4] = 1e6 + 1e-4 * rng.standard_normal(T)  # large mean: handed off
    cause[6] = 0.0
    effect[7, 2:] = 1.0
    cause[8, 3] = np.inf
    cause[70] = np.roll(effect[70], -1) + 1e-6 * rng.standard_normal(T)  # near-collinear
    lag1 = np.array([1], dtype=np.int64)
    ref = _per_pair_qr(effect, cause, lag1)
    L = (T - 2) // 3
    many = np.arange(1, L + 1, dtype=np.int64)
    outs_many = [np.empty((n, L)) for _ in range(3)] + [np.empty((n, L), np.int8)]
    K._granger_pairs_serial(effect, cause, many, 1e-7, 1, *outs_many)
    for kernel, chunks in ((K._granger_pairs_serial, 1), (K._granger_pairs, 3)):
        outs = [np.empty((n, 1)) for _ in range(3)] + [np.empty((n, 1), np.int8)]
        kernel(effect, cause, lag1, 1e-7, chunks, *outs)
        np.testing.assert_array_equal(outs[3], ref[3])
        ok = ref[3] == 0
        for a, b in zip(outs[:3], ref[:3]):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            np.testing.assert_allclose(a[ok], b[ok], rtol=1e-12, atol=1e-12 * np.abs(b[ok]).max())
        for a, b in zip(outs, outs_many):
            np.testing.assert_array_equal(a[:, 0], b[:, 0])

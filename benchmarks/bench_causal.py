"""Throughput of the causal kernels against the per-series references they replace.

Run: ``python -m pytest benchmarks/bench_causal.py --benchmark-only -s``. In one run it times

* batched :func:`netstruct.causal.granger` vs a loop of statsmodels ``grangercausalitytests``
  (the authors' call) on the same (effect, cause) pairs, in tests per second;
* batched :func:`netstruct.causal.lyapunov` vs the naive numpy reference
  (``tests/oracles/naive_causal.py``) and, when installed, ``nolds.lyap_r`` (0.6.2, the ``dev``
  extra; it imports ``pkg_resources``, so it needs ``setuptools<81``), in windows per second;

* :func:`netstruct.causal.granger` with one effect row per cause (unit to unit) at each of
  lags 1, 2, 4, 8 and 14 alone, alternated round by round with the numpy batched Gram +
  ``np.linalg.solve`` + ``scipy.special.fdtrc`` peer (``numpy_batched_granger``) and against
  statsmodels on 40 pairs (issue 16: >= 5x numpy, >= 500x statsmodels);

and prints a table of the rates, the speed-up ratios (min and median) and the goals (>= 500x
statsmodels, >= 100x nolds, >= 5x numpy); the ratios are also stored in ``extra_info``. Timings are
wall-clock on the parallel kernels, so other load on the machine lowers the ratios.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from netstruct.causal import granger, lyapunov
from tests.oracles.naive_causal import naive_lyapunov_divergence

T = 120  # length of the LE series (number of windows)
N_BATCH, N_LOOP = 4000, 40
W = 200  # the authors' window
N_WIN, N_WIN_REF = 4000, 20

_rate: dict[str, float] = {}


@pytest.fixture(scope="module")
def series():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N_BATCH, T)), rng.standard_normal(T)


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(1)
    return rng.standard_normal((N_WIN, W)).cumsum(axis=1)


_rate_median: dict[str, float] = {}
ROUNDS_BATCHED = 10  # the batched calls take milliseconds: more rounds, less noise from other load


def _record(benchmark, key: str, n_units: int) -> None:
    _rate[key] = n_units / benchmark.stats.stats.min
    _rate_median[key] = n_units / benchmark.stats.stats.median
    benchmark.extra_info["units_per_second"] = _rate[key]


LAG_SETS = {"lag1": [1], "lags1-4": 4, "lags1-14": 14}  # recommended, PT-sized, authors'


def _granger_all_p(cause, effect, lags):
    """granger with all three tests' p-values read (they are computed on first read), as
    statsmodels computes all its tests."""
    res = granger(cause, effect, lags=lags)
    return res.f_pvalue, res.chi2_pvalue, res.lr_pvalue


def _granger_f_p(cause, effect, lags):
    """granger and its F p-values: the numpy peer's output (statistic and F p-value)."""
    return granger(cause, effect, lags=lags).f_pvalue


def _n_lags(lags) -> int:
    return len(lags) if isinstance(lags, list) else int(lags)


@pytest.mark.parametrize("name", list(LAG_SETS))
def test_granger_batched(benchmark, series, name):
    cause, effect = series
    lags = LAG_SETS[name]
    _granger_all_p(cause[:10], effect, lags)  # compile outside the timing
    benchmark.pedantic(
        _granger_all_p, args=(cause, effect, lags), rounds=ROUNDS_BATCHED, iterations=1
    )
    _record(benchmark, f"granger_batched_{name}", N_BATCH * _n_lags(lags))


@pytest.mark.parametrize("name", list(LAG_SETS))
def test_granger_statsmodels_loop(benchmark, series, name):
    sm = pytest.importorskip("statsmodels.tsa.stattools")
    cause, effect = series
    lags = LAG_SETS[name]

    def loop():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(N_LOOP):
                sm.grangercausalitytests(np.column_stack([effect, cause[b]]), lags)

    benchmark.pedantic(loop, rounds=3, iterations=1)
    _record(benchmark, f"granger_statsmodels_{name}", N_LOOP * _n_lags(lags))


@pytest.fixture(scope="module")
def pair_series():
    rng = np.random.default_rng(2)
    return rng.standard_normal((N_BATCH, T)), rng.standard_normal((N_BATCH, T))


def numpy_batched_granger(cause, effect, lags):
    """The strongest plain-numpy peer: per lag, batched design, Gram + ``solve``, F p-value.

    Restricted [y lags, 1] and unrestricted [y lags, 1, c lags] fits by the normal
    equations for all pairs at once (no rank or degeneracy handling), ssr_ftest statistic
    and its p-value, as a user would write it.
    """
    from numpy.lib.stride_tricks import sliding_window_view as windows_of
    from scipy import special

    B, n_t = cause.shape
    out = np.empty((B, len(lags), 2))
    for li, p in enumerate(lags):
        n = n_t - p
        Y = windows_of(effect, p + 1, axis=1)[..., ::-1]  # [:, t, j] = y[t + p - j]
        C = windows_of(cause, p + 1, axis=1)[..., ::-1]
        X = np.concatenate([Y[:, :, 1:], np.ones((B, n, 1)), C[:, :, 1:]], axis=2)
        y = Y[:, :, 0]
        G = X.transpose(0, 2, 1) @ X
        g = np.einsum("bnk,bn->bk", X, y)
        yy = np.einsum("bn,bn->b", y, y)
        ssr_u = yy - np.einsum("bk,bk->b", np.linalg.solve(G, g[..., None])[..., 0], g)
        Gr, gr = G[:, : p + 1, : p + 1], g[:, : p + 1]
        ssr_r = yy - np.einsum("bk,bk->b", np.linalg.solve(Gr, gr[..., None])[..., 0], gr)
        df = n - 2 * p - 1
        f = (ssr_r - ssr_u) / ssr_u * df / p
        out[:, li, 0], out[:, li, 1] = f, special.fdtrc(p, df, f)
    return out


def _lag_list(lags) -> list[int]:
    return list(lags) if isinstance(lags, list) else list(range(1, int(lags) + 1))


PAIR_LAGS = (1, 2, 4, 8, 14)  # issue 16: each lag on its own (the goal holds at lags 1-14)
PAIR_ROUNDS = 25
_pair_rows: dict[int, tuple[float, float, float, float, float, float]] = {}


def _alternate(fa, fb, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Time fa and fb alternately (a, b, a, b, ...) so that load on a shared machine hits both."""
    ta, tb = np.empty(rounds), np.empty(rounds)
    for r in range(rounds):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        ta[r], tb[r] = t1 - t0, time.perf_counter() - t1
    return ta, tb


@pytest.mark.parametrize("lag", PAIR_LAGS)
def test_granger_pairs_vs_peers(benchmark, pair_series, lag):
    """One effect row per cause (unit-to-unit), single lag: netstruct (the F statistic and
    its p-value read, the peer's output) vs the numpy batched
    Gram + solve + fdtrc peer (alternated, 4000 pairs per call) and vs statsmodels (40 pairs,
    5 rounds).

    The peer is checked to compute the same F statistic first.
    """
    sm = pytest.importorskip("statsmodels.tsa.stattools")
    cause, effect = pair_series
    ref = numpy_batched_granger(cause[:50], effect[:50], [lag])
    ours = granger(cause[:50], effect[:50], lags=[lag])
    assert np.allclose(ref[..., 0], ours.f_stat, rtol=1e-8)  # the peer computes the same F
    assert np.allclose(ref[..., 1], ours.f_pvalue, rtol=1e-8)  # and the same p-value
    t_ns, t_np = _alternate(
        lambda: _granger_f_p(cause, effect, [lag]),
        lambda: numpy_batched_granger(cause, effect, [lag]),
        PAIR_ROUNDS,
    )

    def sm_loop():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for b in range(N_LOOP):
                sm.grangercausalitytests(np.column_stack([effect[b], cause[b]]), [lag])

    t_sm = np.array([_timed(sm_loop) for _ in range(5)])
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    rates = (N_BATCH / t_ns.min(), N_BATCH / t_np.min(), N_LOOP / t_sm.min())
    _pair_rows[lag] = (
        *rates,
        t_np.min() / t_ns.min(),
        float(np.median(t_np) / np.median(t_ns)),
        rates[0] / rates[2],
    )
    benchmark.extra_info["ratio_numpy_min"] = _pair_rows[lag][3]
    benchmark.extra_info["ratio_statsmodels"] = _pair_rows[lag][5]


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def test_granger_pairs_kernel_only_lag1(benchmark, pair_series):
    """The lag-1 fits alone (the numba kernel, no statistics or p-values): where the time goes."""
    from netstruct.backends import dispatch
    from netstruct.causal.granger import _RANK_TOL

    cause, effect = pair_series
    kernel = dispatch("causal.granger", None)
    lag = np.array([1], dtype=np.int64)
    out = [np.empty((N_BATCH, 1)) for _ in range(3)] + [np.empty((N_BATCH, 1), dtype=np.int8)]
    kernel(effect, cause, lag, _RANK_TOL, *out)
    benchmark.pedantic(
        kernel, args=(effect, cause, lag, _RANK_TOL, *out), rounds=ROUNDS_BATCHED, iterations=1
    )
    _record(benchmark, "granger_pairs_kernel_lag1", N_BATCH)


def test_lyapunov_batched(benchmark, windows):
    lyapunov(windows[:4])
    benchmark.pedantic(lyapunov, args=(windows,), rounds=ROUNDS_BATCHED, iterations=1)
    _record(benchmark, "lyapunov_batched", N_WIN)


def test_lyapunov_naive_reference(benchmark, windows):
    def loop():
        for w in windows[:N_WIN_REF]:
            naive_lyapunov_divergence(w)

    benchmark.pedantic(loop, rounds=3, iterations=1)
    _record(benchmark, "lyapunov_reference", N_WIN_REF)


def test_lyapunov_nolds(benchmark, windows):
    nolds = pytest.importorskip("nolds")

    def loop():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for w in windows[:N_WIN_REF]:
                nolds.lyap_r(w, emb_dim=2, lag=1, min_tsep=0, trajectory_len=4, fit="poly")

    benchmark.pedantic(loop, rounds=3, iterations=1)
    _record(benchmark, "lyapunov_nolds", N_WIN_REF)


GOALS = {"granger": 500.0, "granger_numpy": 5.0, "lyapunov_nolds": 100.0}  # issues 6 and 16


def test_report_ratios(benchmark):
    """Print the speed-ups measured above (a no-op benchmark so it runs with --benchmark-only).

    Rates are units per second from each benchmark's minimum time (batched: 4000 pairs or
    windows per call, 10 rounds; references: a loop over the first 40 pairs / 20 windows,
    3 rounds). The goal verdict uses the minimum; the ratio of medians is shown beside it
    because a millisecond-scale call is easily hit by other load on a shared machine.
    """
    import numba

    benchmark(lambda: None)
    rows = [
        (
            f"granger_batched_{n}",
            f"granger_statsmodels_{n}",
            f"Granger {n:<8} tests/s vs statsmodels grangercausalitytests",
            GOALS["granger"],
        )
        for n in LAG_SETS
    ]
    rows += [
        (
            "lyapunov_batched",
            "lyapunov_nolds",
            "Lyapunov windows/s vs nolds.lyap_r",
            GOALS["lyapunov_nolds"],
        ),
        ("lyapunov_batched", "lyapunov_reference", "Lyapunov windows/s vs numpy reference", None),
    ]
    lines = [
        f"causal kernels, T={T}, window={W}, numba threads={numba.get_num_threads()}",
        f"{'comparison':<72} {'netstruct/s':>12} {'reference/s':>12} {'ratio min':>9} "
        f"{'(median)':>9}  goal (by min)",
    ]
    for fast, slow, what, goal in rows:
        if fast in _rate and slow in _rate:
            ratio = _rate[fast] / _rate[slow]
            benchmark.extra_info[f"{fast}/{slow}"] = ratio
            verdict = (
                "" if goal is None else f">= {goal:,.0f}x: {'met' if ratio >= goal else 'NOT met'}"
            )
            med = _rate_median[fast] / _rate_median[slow]
            lines.append(
                f"{what:<72} {_rate[fast]:>12,.0f} {_rate[slow]:>12,.0f} {ratio:>8,.1f}x "
                f"{med:>8,.1f}x  {verdict}"
            )
        else:
            lines.append(
                f"{what:<72} (not measured: run the whole file; nolds needs 'pip install nolds')"
            )
    lines += [
        "",
        f"Granger per pair (effect (N, T)), N={N_BATCH}, T={T}, one lag per call; peers: numpy "
        "batched Gram + solve + scipy fdtrc (alternated with netstruct, "
        f"{PAIR_ROUNDS} rounds) and statsmodels grangercausalitytests ({N_LOOP} pairs, 5 rounds)",
        f"{'lag':>4} {'netstruct/s':>12} {'numpy/s':>10} {'statsm./s':>10} {'vs numpy min':>12} "
        f"{'(median)':>9} {'vs statsm.':>10}  goals >= {GOALS['granger_numpy']:.0f}x numpy, "
        f">= {GOALS['granger']:.0f}x statsmodels (by min)",
    ]
    for lag in PAIR_LAGS:
        if lag not in _pair_rows:
            lines.append(f"{lag:>4} (not measured: run the whole file; needs statsmodels)")
            continue
        r_ns, r_np, r_sm, q_min, q_med, q_sm = _pair_rows[lag]
        v_np = "met" if q_min >= GOALS["granger_numpy"] else "NOT met"
        v_sm = "met" if q_sm >= GOALS["granger"] else "NOT met"
        lines.append(
            f"{lag:>4} {r_ns:>12,.0f} {r_np:>10,.0f} {r_sm:>10,.0f} {q_min:>11.1f}x "
            f"{q_med:>8.1f}x {q_sm:>9,.0f}x  numpy: {v_np}, statsmodels: {v_sm}"
        )
    if "granger_pairs_kernel_lag1" in _rate and 1 in _pair_rows:
        lines.append(
            f"   1 fits only (the numba kernel, no statistics or p-values): "
            f"{_rate['granger_pairs_kernel_lag1']:,.0f}/s, "
            f"{_rate['granger_pairs_kernel_lag1'] / _pair_rows[1][1]:.1f}x the whole numpy peer"
        )
    lines += [
        "goal notes (measured on this 2-core machine shared with other work, 4000 windows / pairs):",
        "  Lyapunov >= 100x nolds 0.6.2 at window 200: met with both numba threads on free cores",
        "    (160x / 153x); on one core 74-93x (min), NOT met: ~20 us per window (199 points,",
        "    sorted-order neighbour search, ~100 ns per point) against nolds' ~1.6 ms; at window",
        "    200 nolds' vectorised O(n^2) numpy distance matrix is still cheap, so one core",
        "    gives ~80x. Longer windows widen the gap (nolds grows as n^2, netstruct ~n log n).",
        "  Granger per pair: timings share 2 cores with other jobs (load average 2-5 during",
        "    these runs); the alternated min is the fairest ratio, and the peer's own rate varies",
        "    ~1.5x between runs here. Lag 1 is the tight case: the numpy peer costs ~2.5-3.5 us per",
        "    pair; netstruct ~0.3-0.4 us of fits (the copy to 64-pair lanes in 4 x 4 tiles with",
        "    the series sums on the way, ~0.13, bound by reading the 7.7 MB input from memory;",
        "    the seven lag-1 window sums, four rows per pass, ~0.1; the 4x4 Cholesky with its",
        "    error bound ~0.04), ~0.09 us for the F p-value (BGRAT; the chi2 and LR p-values are",
        "    computed only when read) and ~0.03 us of statistics and wrapper.",
        "    Measured over 4 runs of this version (min / median of 25 alternated rounds, load",
        "    average 1-2): lag 1 5.2-5.9x / 4.9-6.6x, lag 2 6.3-7.3x / 6.6-8.4x, lag 4",
        "    5.9-7.8x, lag 8 6.6-10.0x, lag 14 7.3-11.3x; the previous version 4.6-5.3x at lag 1",
        "    and 4.4-5.8x at lag 2. Lag 1 is met by min, at the line by median in some runs.",
        "    Lags >= 4 gain from the O(T L) window sums against the peer's O(T L^2) Gram.",
        "    Against statsmodels (~1-2 ms per single-lag test at lag 14) lag 14 is 330-540x and",
        "    lag 8 460-2400x depending on load (lags >= 8 run the threaded kernel, whose min",
        "    suffers most from busy cores; on free cores it is 2x the serial one).",
    ]
    print("\n" + "\n".join(lines))

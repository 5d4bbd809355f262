"""netstruct.causal.lyapunov: spec §6 worked examples, the naive oracle, windowing (§2.3)."""

from __future__ import annotations

import numpy as np
import pytest

from netstruct import InvalidParameterError
from netstruct.causal import (
    LYAPUNOV_STATUS,
    lyapunov,
    lyapunov_windows,
    sliding_windows,
    window_bounds,
)
from tests.oracles.naive_causal import (
    jacobian_lyapunov_logistic,
    logistic_orbit,
    naive_lyapunov_divergence,
)

LN2 = float(np.log(2.0))


@pytest.mark.parametrize("n", [1000, 2000])
def test_logistic_map_r4_gives_ln2(n):
    x = logistic_orbit(4.0, 0.1, n)
    assert abs(jacobian_lyapunov_logistic(4.0, x) - LN2) < 0.01
    lam = lyapunov(x, emb_dim=2, lag=1)
    assert abs(lam[0] - LN2) < 0.03


def test_spec_example_b_tisean_golden_values():
    x = np.array([float(f"{v:f}") for v in logistic_orbit(4.0, 0.1, 200, burn=100)])
    res = lyapunov(x, mode="authors", return_divergence=True)
    np.testing.assert_allclose(
        res.divergence[0], [-5.631786, -4.943939, -4.258956, -3.554612], atol=1e-6
    )
    assert res.exponent[0] == 0.687847
    assert res.counts[0].tolist() == [196] * 4


@pytest.mark.parametrize(
    ("a", "authors_value"), [(0.98, -0.020168), (0.95, 0.012882), (0.9, 1.820127)]
)
def test_spec_example_c_geometric_decay_both_modes(a, authors_value):
    x = 0.5 + 0.1 * a ** np.arange(200)
    assert abs(lyapunov(x)[0] - np.log(a)) < 1e-6
    assert abs(lyapunov(x, fit="lsq")[0] - np.log(a)) < 1e-6
    assert lyapunov(x, mode="authors")[0] == pytest.approx(authors_value, abs=1e-12)


@pytest.mark.parametrize(
    "window",
    [
        0.5 + 0.001 * np.arange(200),
        np.full(200, 0.3),
        logistic_orbit(3.2, 0.1, 200, burn=500),
    ],
    ids=["ramp", "constant", "period2"],
)
def test_spec_example_d_degenerate_windows_authors_mode(window):
    assert lyapunov(window, mode="authors")[0] == 0.0


def test_degenerate_windows_are_nan_with_status_in_exact_mode():
    windows = np.stack(
        [np.full(200, 0.3), logistic_orbit(3.2, 0.1, 200, burn=500), logistic_orbit(4.0, 0.2, 200)]
    )
    res = lyapunov(windows, return_divergence=True)
    assert [LYAPUNOV_STATUS[s] for s in res.status] == ["constant", "no_neighbour", "ok"]
    assert np.isnan(res.exponent[:2]).all() and np.isfinite(res.exponent[2])


def test_period2_jacobian_reference():
    x = logistic_orbit(3.2, 0.1, 200, burn=500)
    assert jacobian_lyapunov_logistic(3.2, x) == pytest.approx(-0.9163, abs=1e-4)


def test_spec_example_e_noise_bias_and_sine():
    noise = np.random.default_rng(0).standard_normal(200) * 1e-3
    assert lyapunov(noise, mode="authors")[0] == 1.916528
    many = np.random.default_rng(5).standard_normal((20, 200))
    assert (lyapunov(many, mode="authors") > 1).all()
    sine = np.sin(2 * np.pi * np.arange(200) / 37)
    assert abs(lyapunov(sine, mode="authors")[0]) < 0.05


@pytest.mark.parametrize(
    ("emb_dim", "lag", "theiler", "steps"), [(2, 1, 0, 3), (3, 2, 5, 4), (1, 1, 2, 2)]
)
def test_kernel_matches_naive_oracle(seed, emb_dim, lag, theiler, steps):
    rng = np.random.default_rng(seed)
    windows = [
        rng.standard_normal(60),
        np.round(rng.standard_normal(60), 1),  # heavy ties and duplicates
        np.cumsum(rng.standard_normal(60)),
        logistic_orbit(4.0, rng.uniform(0.05, 0.95), 60),
    ]
    res = lyapunov(
        np.stack(windows), emb_dim, lag, theiler=theiler, steps=steps, return_divergence=True
    )
    for w, x in enumerate(windows):
        S, counts = naive_lyapunov_divergence(x, emb_dim, lag, theiler, steps)
        np.testing.assert_array_equal(res.counts[w], counts)
        np.testing.assert_allclose(res.divergence[w], S, rtol=1e-12, equal_nan=True)
        if counts[0] and counts[1]:
            assert res.exponent[w] == pytest.approx(S[1] - S[0], rel=1e-12)


def test_spec_example_i_window_arithmetic():
    starts, last = window_bounds(24001, 160, 144)
    assert starts.size == 166
    assert (starts[1], last[1]) == (144, 303)
    assert last[-1] == 144 * 165 + 159
    starts, _ = window_bounds(1990, 200, 180)
    assert starts.size == 10 and starts[-1] + 200 <= 1990


def test_lyapunov_windows_equals_per_window_calls():
    rng = np.random.default_rng(3)
    traj = rng.standard_normal((130, 4)).cumsum(axis=0)
    lam = lyapunov_windows(traj, 50, 40, theiler=1)
    assert lam.shape == (3, 4)
    w = sliding_windows(traj, 50, 40)
    assert w.shape == (4, 3, 50)
    np.testing.assert_array_equal(w[2, 1], traj[40:90, 2])
    np.testing.assert_array_equal(lam[1, 2], lyapunov(traj[40:90, 2], theiler=1)[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"series": np.r_[np.nan, np.ones(30)]}, "non-finite"),
        ({"series": np.ones(4)}, "windows of length >= 6"),
        ({"series": np.ones((2, 2, 20))}, "'series' parameter"),
        ({"series": np.ones(20), "emb_dim": 0}, "'emb_dim' parameter"),
        ({"series": np.ones(20), "fit": "ransac"}, "'fit' parameter"),
        ({"series": np.ones(20), "mode": "tisean"}, "'mode' parameter"),
        ({"series": np.ones(20), "theiler": -1}, "'theiler' parameter"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        lyapunov(**kwargs)

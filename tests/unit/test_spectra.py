"""Spectral diagnostics: ESD, power-law tail exponent (WeightWatcher as oracle), stable rank."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import netstruct as ns
from netstruct.algorithms.spectra import (
    esd,
    layer_spectra,
    powerlaw_fit,
    spectra_trajectory,
    stable_rank,
)
from netstruct.exceptions import InvalidParameterError


def _naive_fit(x):
    """Brute force over xmin: MLE alpha per candidate, KS distance by a loop, the smallest D wins."""
    x = np.sort(x[x > 1e-5])
    best = (np.inf, None, None)
    small = len(x) < 20
    for i in range(len(x) - 1):
        t = x[i:]
        n = len(t)
        s = np.sum(np.log(t / t[0]))
        if small and (n < 8 or s <= 1e-12):
            continue
        a = 1 + ((n - 1) if small else n) / s
        if a <= 1:
            continue
        d = max(abs(1 - (t[j] / t[0]) ** (1 - a) - j / n) for j in range(n))
        if d < best[0]:
            best = (d, a, t[0])
    return best


@pytest.mark.parametrize("shape", [(50, 30), (12, 10), (200, 64)])
def test_powerlaw_fit_equals_brute_force(shape, seed):
    W = np.random.default_rng(seed).standard_t(3, size=shape)
    f = powerlaw_fit(esd(W))
    d, a, xmin = _naive_fit(esd(W))
    assert f.alpha == pytest.approx(a, rel=1e-10)
    assert f.xmin == pytest.approx(xmin)
    assert f.D == pytest.approx(d, rel=1e-10)


def test_powerlaw_fit_recovers_known_exponent(seed):
    x = (1 - np.random.default_rng(seed).random(4000)) ** (-1 / 1.5)
    assert powerlaw_fit(x).alpha == pytest.approx(2.5, abs=0.1)


@pytest.mark.parametrize("sizes", [[100, 64, 32, 10], [300, 200, 50], [64, 16, 12]])
def test_alpha_agrees_with_weightwatcher_on_linear_layers(sizes, seed):
    ww = pytest.importorskip(
        "weightwatcher", reason="WeightWatcher is the oracle for the tail exponent"
    )
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    m = ns.training.mlp(sizes, seed=seed)
    ns.training.train(
        m,
        np.random.default_rng(seed).normal(size=(256, sizes[0])).astype(np.float32),
        np.random.default_rng(seed).integers(0, sizes[-1], 256),
        epochs=2,
        seed=seed,
        progress=False,
    )
    ref = ww.WeightWatcher(model=m).analyze()["alpha"].to_numpy()
    ours = layer_spectra(ns.from_torch(m))["alpha"].to_numpy()
    np.testing.assert_allclose(ours, ref, atol=0.05)


def test_stable_rank_and_esd():
    assert stable_rank(np.diag([1.0, 1.0, 1.0])) == pytest.approx(3.0)
    assert stable_rank(np.outer([1.0, 2.0], [3.0, 1.0])) == pytest.approx(1.0)
    np.testing.assert_allclose(esd(np.array([[3.0, 0.0], [0.0, -2.0]])), [4.0, 9.0])


def test_lstm_blocks_are_split_per_gate():
    G = ns.from_torch(ns.training.recurrent_classifier("LSTM", 8, 16, 3, seed=0))
    df = layer_spectra(G)
    ih = df[df["block"] == "rnn.weight_ih_l0"]
    assert ih["gate"].tolist() == ["i", "f", "g", "o"]
    assert (ih["n_out"] == 16).all() and (ih["n_in"] == 8).all()
    assert len(layer_spectra(G, per_gate=False)) == len(G.blocks)


def test_spectra_over_training_snapshots(tmp_path):
    import torch

    from netstruct.causal import TrajectoryRecorder

    m = ns.training.mlp([20, 16, 3], seed=0)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    X, y = torch.randn(32, 20), torch.randint(0, 3, (32,))
    with TrajectoryRecorder(m, tmp_path) as rec:
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(m(X), y)
            loss.backward()
            opt.step()
            rec.record(loss=loss.item())
    df = spectra_trajectory(tmp_path)
    assert sorted(df["row"].unique()) == [0, 1, 2, 3]
    last = df[df["row"] == 3].set_index("block")["alpha"]
    ref = layer_spectra(ns.from_torch(m)).set_index("block")["alpha"]
    np.testing.assert_allclose(last.to_numpy(), ref.loc[last.index].to_numpy(), rtol=1e-5)


def test_bad_input_raises():
    with pytest.raises(InvalidParameterError, match="'evals' parameter of powerlaw_fit"):
        powerlaw_fit([1.0])
    with pytest.raises(InvalidParameterError, match="'evals' parameter"):
        powerlaw_fit([1.0, np.nan, 2.0])

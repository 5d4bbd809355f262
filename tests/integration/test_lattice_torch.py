"""Torch round trip of lattice pruning: export, prune, re-import masked and shrunk."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct import training  # noqa: E402
from netstruct.lattice import lattice_prune, magnitude_prune, random_prune  # noqa: E402

D, H, C, STEPS = 6, 24, 4, 5


def _n_params(m):
    return sum(int(p.numel()) for p in m.parameters())


def _model(kind, seed):
    m = training.recurrent_classifier(kind, D, H, C, seed=seed)
    if kind == "LSTM":  # a briefly trained model, so the weights are not just the init
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(64, STEPS, D)).astype(np.float32)
        y = (X[:, :, 0].sum(1) > 0).astype(np.int64) + 2 * (X[:, :, 1].sum(1) > 0)
        training.train(m, X, y, epochs=2, lr=0.01, progress=False, seed=seed)
    return m


def _check_roundtrip(G, res, x):
    masked = ns.to_torch(res.graph)
    small = ns.to_torch(res.graph, shrink=True)
    assert _n_params(small) < _n_params(masked)
    with torch.no_grad():
        np.testing.assert_allclose(small(x).numpy(), masked(x).numpy(), atol=1e-5)
    # pruned entries are exactly zero in the re-imported (masked) module
    sd = masked.state_dict()
    for name, mask in res.masks.items():
        assert (sd[name].numpy()[~mask] == 0).all()
    # input and output units are never removed
    assert small.rnn.input_size == D and small.head.out_features == C
    kinds = ns.from_torch(small).nodes()["kind"].value_counts()
    assert kinds["input"] == D and kinds["output"] == C
    assert small.rnn.hidden_size == H - len(res.config["removed_units"])


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("variant", ["binary", "continuous"])
def test_prune_reimport_and_shrink(kind, variant, seed):
    m = _model(kind, seed)
    G = ns.from_torch(m)
    x = torch.as_tensor(np.random.default_rng(seed).normal(size=(7, STEPS, D)), dtype=torch.float32)
    if variant == "binary":
        res = lattice_prune(G, quantile=0.95, construction="unrolled_dm", structured=True)
    else:  # three units whose every incoming weight is zero: no input reaches them
        cut = [1, 5, 7]
        n_gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
        rows = [g * H + u for g in range(n_gates) for u in cut]
        with torch.no_grad():
            m.rnn.weight_ih_l0[rows] = 0.0
            m.rnn.weight_hh_l0[rows] = 0.0
        G = ns.from_torch(m)
        res = lattice_prune(G, variant="continuous", amount=0.6, structured=True)
        assert len(res.config["removed_units"]) >= len(cut)
    assert 0 < len(res.config["removed_units"]) < H, "the setting must remove some hidden units"
    _check_roundtrip(G, res, x)
    # the unstructured default: same module size, masked outputs reproduced by to_torch
    plain = lattice_prune(G, variant=variant)
    assert plain.global_sparsity > 0.0
    with torch.no_grad():
        out = ns.to_torch(plain.graph)(x).numpy()
        ref = ns.to_torch(plain.graph, shrink=True)(x).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_baselines_reimport_at_matched_sparsity(kind, seed):
    G = ns.from_torch(_model(kind, seed))
    lat = lattice_prune(G, quantile=0.6)
    mag = magnitude_prune(G, amount=lat.global_sparsity)
    rnd = random_prune(G, amount=lat.sparsity, seed=seed)
    for res in (mag, rnd):
        assert abs(res.global_sparsity - lat.global_sparsity) < 1e-3
        model = ns.to_torch(res.graph)
        sd = model.state_dict()
        for name, mask in res.masks.items():
            assert (sd[name].numpy()[~mask] == 0).all()
            assert (sd[name].numpy()[mask] == G.block(name).weight[mask]).all()

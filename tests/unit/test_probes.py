"""Probes as graph transforms: known answers (spec §8 E1, E2), identities, counts, errors."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.probes import (
    add_noise,
    binarize,
    expected_flip_fraction,
    flip_probability,
    flip_signs,
    perturb,
    prune,
    shuffle_weights,
)

W1 = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
B1 = np.array([0.1, -0.2])
W2 = np.array([[1.0, -0.5], [-0.3, 0.8]])
B2 = np.array([0.05, -0.05])
X1 = np.array([[1.0, -1.0, 0.5]])


def _f(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


@pytest.fixture
def layer() -> ns.SignedGraph:
    """Spec E1: one layer, 3 inputs, 2 outputs, with bias."""
    return ns.SignedGraph(
        {"name": list("abcde")},
        [ns.make_block(name="fc", weight=W1, bias=B1, sources=[0, 1, 2], targets=[3, 4])],
    )


@pytest.fixture
def net2():
    """Spec E2: a 3-2-2 ReLU network exported from torch."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 2))
    with torch.no_grad():
        for lin, W, b in ((model[0], W1, B1), (model[2], W2, B2)):
            lin.weight.copy_(torch.tensor(W, dtype=torch.float32))
            lin.bias.copy_(torch.tensor(b, dtype=torch.float32))
    return ns.from_torch(model)


# ----------------------------------------------------------------------------- E1
def test_binarize_known_matrix(layer):
    S = binarize(layer)
    assert S.blocks[0].weight.tolist() == [[1, -1, 1], [-1, 1, -1]]
    assert S.blocks[0].bias.tolist() == [1, -1]
    assert layer.blocks[0].weight.tolist() == _f(W1).tolist()  # input untouched


def test_binarize_mean_scale(layer):
    S = binarize(layer, scale="mean")
    alpha = np.abs(_f(W1)).mean()
    np.testing.assert_allclose(S.blocks[0].weight, np.sign(W1) * alpha, rtol=1e-6)


def test_prune_half_smallest_e1(layer):
    P = prune(layer, 0.5)
    np.testing.assert_array_equal(P.blocks[0].weight, _f([[0.5, 0, 0], [-0.4, 0.3, 0]]))
    assert P.blocks[0].mask.tolist() == [[True, False, False], [True, True, False]]
    np.testing.assert_array_equal(P.blocks[0].bias, _f([0.0, -0.2]))
    assert binarize(P).blocks[0].weight.tolist() == [[1, 0, 0], [-1, 1, 0]]


def test_prune_largest_keeps_smallest(layer):
    P = prune(layer, 0.5, rule="largest")
    np.testing.assert_array_equal(P.blocks[0].weight, _f([[0, -0.2, 0.1], [0, 0, -0.05]]))
    np.testing.assert_array_equal(P.blocks[0].bias, _f([0.1, 0.0]))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 1.0])
def test_prune_random_count(layer, fraction, seed):
    P = prune(layer, fraction, rule="random", seed=seed)
    kept = int(np.floor((1 - fraction) * 6 + 1e-9))
    assert P.blocks[0].n_edges == kept
    assert set(P.blocks[0].weight[P.blocks[0].mask].tolist()) <= set(_f(W1).ravel().tolist())


def test_prune_float_pitfall():
    """int((1 - 0.9) * 10) == 0 in floating point; netstruct keeps 1 of 10 (spec G6)."""
    G = ns.SignedGraph(
        {"name": [str(i) for i in range(11)]},
        [
            ns.make_block(
                name="w", weight=np.arange(1, 11)[None, :] / 10, sources=range(10), targets=[10]
            )
        ],
    )
    assert prune(G, 0.9).blocks[0].n_edges == 1


def test_flip_smallest_and_largest_e1(layer):
    F = flip_signs(layer, 0.5, flip_bias=False)
    np.testing.assert_array_equal(F.blocks[0].weight, _f([[0.5, 0.2, -0.1], [-0.4, 0.3, 0.05]]))
    F = flip_signs(layer, 0.5, rule="largest", flip_bias=False)
    np.testing.assert_array_equal(F.blocks[0].weight, _f([[-0.5, -0.2, 0.1], [0.4, -0.3, -0.05]]))


def test_flip_bias_with_same_rule(layer):
    F = flip_signs(layer, 0.5)
    np.testing.assert_array_equal(F.blocks[0].bias, _f([-0.1, -0.2]))


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("rule", ["smallest", "largest", "random"])
def test_flip_counts_exact(fraction, rule, rng):
    W = rng.normal(size=(7, 9))
    G = ns.SignedGraph(
        {"name": [str(i) for i in range(16)]},
        [
            ns.make_block(
                name="w", weight=W, bias=rng.normal(size=7), sources=range(9), targets=range(9, 16)
            )
        ],
    )
    F = flip_signs(G, fraction, rule=rule, seed=1)
    changed = np.sign(F.blocks[0].weight) != np.sign(G.blocks[0].weight)
    assert changed.sum() == int(np.floor(fraction * 63 + 1e-9))
    assert (np.sign(F.blocks[0].bias) != np.sign(G.blocks[0].bias)).sum() == int(
        np.floor(fraction * 7 + 1e-9)
    )
    np.testing.assert_array_equal(np.abs(F.blocks[0].weight), np.abs(G.blocks[0].weight))


def test_flip_skips_pruned_edges(layer):
    P = prune(layer, 0.5)  # 3 edges left
    F = flip_signs(P, 1.0)
    assert F.blocks[0].mask.tolist() == P.blocks[0].mask.tolist()
    np.testing.assert_array_equal(F.blocks[0].weight, -P.blocks[0].weight)


# ----------------------------------------------------------------------------- identities
def test_zero_levels_leave_graph_unchanged(layer):
    assert add_noise(layer, 0.0, seed=0) is layer
    assert add_noise(layer, 0.0, dist="gaussian", mode="multiplicative") is layer
    assert prune(layer, 0.0) is layer
    assert flip_signs(layer, 0.0) is layer
    for probe in ("noise", "prune-random", "flip-random"):
        st = perturb(layer, probe, 0.0, n_samples=3, seed=1)
        for k in range(3):
            assert st.weights["fc"][k].tobytes() == layer.blocks[0].weight.tobytes()
            assert st.biases["fc"][k].tobytes() == layer.blocks[0].bias.tobytes()


def test_noise_bounds_support_and_seed(layer, seed):
    P = prune(layer, 0.5)
    N = add_noise(P, 0.05, seed=seed)
    w, w0 = N.blocks[0].weight, P.blocks[0].weight
    assert np.all(np.abs(w - w0) <= 0.05 + 1e-7)
    assert np.all(w[~P.blocks[0].mask] == 0)  # pruned stay 0
    assert N.blocks[0].bias[0] == 0  # pruned bias stays 0
    assert not np.array_equal(N.blocks[0].bias, P.blocks[0].bias)
    same = add_noise(P, 0.05, seed=seed)
    np.testing.assert_array_equal(same.blocks[0].weight, w)


def test_noise_bias_optional(layer):
    N = add_noise(layer, 0.3, seed=0, noise_bias=False)
    np.testing.assert_array_equal(N.blocks[0].bias, layer.blocks[0].bias)


def test_multiplicative_noise_is_product(layer):
    N = add_noise(layer, 1.0, mode="multiplicative", seed=3)
    u = np.random.default_rng(3).uniform(-1, 1, size=(2, 3))
    np.testing.assert_allclose(N.blocks[0].weight, W1 * u, rtol=1e-6)


def test_probes_select_layers(net2):
    P = prune(net2, 0.5, blocks=["2.weight"])
    assert P.blocks[0].weight.tobytes() == net2.blocks[0].weight.tobytes()
    assert P.blocks[1].n_edges == 2


# ----------------------------------------------------------------------------- flip probability
def test_flip_probability_uniform_e1():
    assert flip_probability(W1, 0.05).tolist() == [[0] * 3] * 2
    np.testing.assert_allclose(flip_probability(W1, 0.1).ravel(), [0, 0, 0, 0, 0, 0.25])
    np.testing.assert_allclose(flip_probability(W1, 0.2).ravel(), [0, 0, 0.25, 0, 0, 0.375])
    np.testing.assert_allclose(flip_probability(W1, 0.5).ravel(), [0, 0.3, 0.4, 0.1, 0.2, 0.45])


def test_flip_probability_gaussian_e1():
    np.testing.assert_allclose(
        flip_probability(W1, 0.2, dist="gaussian").ravel(),
        [0.0062, 0.1587, 0.3085, 0.0228, 0.0668, 0.4013],
        atol=1e-4,
    )


def test_expected_flip_fraction_matches_monte_carlo(layer):
    a = 0.2
    G = layer
    draws = np.stack([add_noise(G, a, seed=s).blocks[0].weight for s in range(4000)])
    mc = (np.sign(draws) != np.sign(W1)).mean()
    assert abs(mc - expected_flip_fraction(G, a)) < 0.01
    assert expected_flip_fraction(W1, 0.0) == 0.0


# ----------------------------------------------------------------------------- E2 (network)
@pytest.mark.torch
def test_two_layer_logits_e2(net2):
    from netstruct.training import predict

    full = predict(ns.to_torch(net2), X1)
    np.testing.assert_allclose(full, [[0.9, -0.305]], atol=1e-6)
    sign = predict(ns.to_torch(binarize(net2)), X1)
    np.testing.assert_allclose(sign, [[4.5, -4.5]], atol=1e-6)


@pytest.mark.torch
def test_two_layer_batched_e2(net2):
    from netstruct.probes import predict_batch

    st = perturb(net2, "none", 0.0, n_samples=1)
    sb = st.binarized()
    W = {k: np.concatenate([st.weights[k], sb.weights[k]]) for k in st.weights}
    B = {k: np.concatenate([st.biases[k], sb.biases[k]]) for k in st.biases}
    np.testing.assert_allclose(
        predict_batch(net2, X1, weights=W, biases=B), [[[0.9, -0.305]], [[4.5, -4.5]]], atol=1e-6
    )


@pytest.mark.torch
@pytest.mark.parametrize("model", ["B", "E", "F"])
def test_sign_preserving_shuffles_keep_binarized_network_e6(net2, model):
    S = shuffle_weights(net2, model, seed=0)
    for a, b in zip(binarize(S).blocks, binarize(net2).blocks):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_shuffle_after_pruning_keeps_support(layer):
    S = shuffle_weights(layer, "A", prune_fraction=0.5, seed=2)
    P = prune(layer, 0.5)
    assert S.blocks[0].mask.tolist() == P.blocks[0].mask.tolist()
    assert sorted(S.blocks[0].weight[S.blocks[0].mask].tolist()) == sorted(
        P.blocks[0].weight[P.blocks[0].mask].tolist()
    )
    np.testing.assert_array_equal(
        S.blocks[0].bias, P.blocks[0].bias
    )  # biases: pruned, not shuffled


# ----------------------------------------------------------------------------- perturb stacks
@pytest.mark.filterwarnings("ignore::netstruct.algorithms.randomize.LayerTooSmallWarning")
@pytest.mark.parametrize(
    "probe",
    ["noise-uniform", "noise-gaussian", "prune-random", "flip-random", "null-A", "null-G-left"],
)
def test_perturb_copy_k_independent_of_n(net2, probe):
    a = perturb(net2, probe, 0.3, n_samples=2, seed=5)
    b = perturb(net2, probe, 0.3, n_samples=8, seed=5)
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name][:2])
    w = b.weights["0.weight"]
    assert any(not np.array_equal(w[0], w[k]) for k in range(1, 8))


def test_perturb_graph_matches_transform(layer):
    st = perturb(layer, "prune", 0.5, n_samples=2)
    G = st.graph(1)
    assert G.blocks[0].weight.tolist() == prune(layer, 0.5).blocks[0].weight.tolist()
    assert G.blocks[0].mask.tolist() == prune(layer, 0.5).blocks[0].mask.tolist()
    assert (
        perturb(layer, "flip", 0.5).graph(0).blocks[0].weight.tolist()
        == flip_signs(layer, 0.5).blocks[0].weight.tolist()
    )


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda G: prune(G, 1.5), "'amount' parameter of prune"),
        (lambda G: prune(G, -0.1), "'amount' parameter of prune"),
        (lambda G: prune(G, 0.5, rule="median"), "'rule' parameter of prune"),
        (lambda G: flip_signs(G, 2), "'fraction' parameter of flip_signs"),
        (lambda G: flip_signs(G, 0.1, rule="big"), "'rule' parameter of flip_signs"),
        (lambda G: add_noise(G, -0.1), "'scale' parameter of add_noise"),
        (lambda G: add_noise(G, 0.1, dist="cauchy"), "'dist' parameter of add_noise"),
        (lambda G: add_noise(G, 0.1, mode="xor"), "'mode' parameter of add_noise"),
        (lambda G: add_noise(G, float("nan")), "'scale' parameter of add_noise"),
        (lambda G: binarize(G, scale="max"), "'scale' parameter of binarize"),
        (lambda G: shuffle_weights(G, "Z"), "'model' parameter of randomize"),
        (
            lambda G: shuffle_weights(G, "B", prune_fraction=3),
            "'prune_fraction' parameter of shuffle_weights",
        ),
        (lambda G: prune(G, 0.5, blocks=[7]), "out of range"),
        (lambda G: perturb(G, "shrink", 0.1), "'probe' parameter of perturb"),
        (lambda G: perturb(G, "noise", -1.0), "'level' parameter of perturb"),
        (lambda G: perturb(G, "prune", 1.1), "'level' parameter of perturb"),
        (lambda G: flip_probability(W1, -1), "'scale' parameter of flip_probability"),
        (lambda G: prune("not a graph", 0.5), "'G' parameter of prune"),
    ],
)
def test_bad_input_raises_clear_error(layer, call, param):
    with pytest.raises(ns.InvalidParameterError, match=param):
        call(layer)

"""ODF2NNA: the spec's worked examples A-F and properties P1-P3, P6; bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct.pruning import activation_stats, count_params, odf2nna  # noqa: E402
from tests.models import mlp  # noqa: E402

pytestmark = pytest.mark.torch

XA = np.array([[0.0, 0], [0, 1], [1, 0], [1, 1]])


def _set(lin, w, b):
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w, dtype=torch.float32))
        lin.bias.copy_(torch.tensor(b, dtype=torch.float32))


def example_a():
    net = mlp([2, 5, 1])
    _set(net[0], [[1, 0], [0, 1], [-1, -1], [0, 0], [1, 0]], [0, 0, -10, 2, 0])
    _set(net[2], [[1, -2, 5, 0.5, 3]], [0.1])
    return net


def _out(model, X):
    with torch.no_grad():
        return model(torch.tensor(X, dtype=torch.float32)).numpy().ravel()


def test_example_a_dead_constant_and_duplicate_units():
    net = example_a()
    np.testing.assert_allclose(_out(net, XA), [1.1, -0.9, 5.1, 3.1], atol=1e-6)
    res = odf2nna(net, XA, eps=0.0)
    d = res.layers[0]
    np.testing.assert_allclose(d.sigma, [0.5, 0.5, 0, 0, 0.5], atol=1e-15)
    assert d.kept.tolist() == [0, 1, 4] and d.removed.tolist() == [2, 3]
    assert d.constant.tolist() == [False, False, True, True, False]
    model = res.model()
    assert model[0].out_features == 3 and count_params(model) == count_params(res.graph) == 13
    assert model[2].bias.item() == pytest.approx(1.1, abs=1e-7)
    np.testing.assert_allclose(_out(model, XA), [1.1, -0.9, 5.1, 3.1], atol=1e-6)
    nofold = odf2nna(net, XA, eps=0.0, fold=False).model()
    np.testing.assert_allclose(_out(nofold, XA), [0.1, -1.9, 4.1, 2.1], atol=1e-6)
    # the scored graph answers queries about usefulness
    nodes = res.scored.nodes()
    assert nodes.query("kind == 'hidden' and not useful").name.tolist() == ["0[2]", "0[3]"]
    assert "odf2nna" in res.plan.steps[0].reason and res.plan.steps[0].constants == {
        "0[2]": 0.0,
        "0[3]": 2.0,
    }


@pytest.mark.parametrize(
    "rule,eps,kept",
    [
        ("mean", 0.0, [0, 1, 4]),
        ("mean", 1.0, [0, 1, 4]),
        ("mean", 5 / 3, [0, 1, 4]),
        ("max", 0.5, [0, 1, 4]),
        ("max", 1.0, [0, 1, 4]),
        ("quantile", 0.4, [0, 1, 4]),
        ("absolute", 0.5, [0, 1, 4]),
    ],
)
def test_example_a_threshold_rules(rule, eps, kept):
    assert odf2nna(example_a(), XA, eps=eps, rule=rule).layers[0].kept.tolist() == kept


def test_example_a_width_guard_keeps_most_variable_lowest_index():
    with pytest.warns(ns.NetstructWarning, match="fewer than min_units=1 units of hidden layer 1"):
        res = odf2nna(example_a(), XA, eps=1.7)
    assert res.layers[0].kept.tolist() == [0] and res.layers[0].guard
    with pytest.warns(ns.NetstructWarning, match="keeping the 2 most variable"):
        pass_ = odf2nna(example_a(), XA, eps=0.6, rule="absolute", min_units=2)
    assert pass_.layers[0].kept.tolist() == [0, 1] and pass_.widths_after == [2, 2, 1]  # P6


def test_example_b_population_std():
    lin = torch.nn.Linear(1, 1)
    _set(lin, [[1.0]], [0.0])
    st = activation_stats(lin, np.array([[1.0], [2.0], [3.0], [4.0]]))
    assert st["std"].iloc[-1] == pytest.approx(1.118034, abs=1e-6)


def test_example_c_saturated_unit_and_tolerance():
    net = torch.nn.Sequential(torch.nn.Linear(1, 2), torch.nn.Tanh(), torch.nn.Linear(2, 1))
    _set(net[0], [[1.0], [1.0]], [8.0, 0.0])
    X = np.array([[0.0], [0.5], [1.0], [1.5]])
    res = odf2nna(net, X, eps=0.0, tol_rel=1e-5)  # float32 activations: spec's float32 tolerance
    assert res.layers[0].removed.tolist() == [0]
    assert res.layers[0].mean[0] == pytest.approx(0.9999999, abs=1e-6)
    kept = odf2nna(net, X, eps=0.0, tol_rel=0.0)
    assert kept.layers[0].kept.tolist() == [0, 1]
    assert odf2nna(net, X, eps=1e-6, rule="absolute", tol_rel=0.0).layers[0].kept.tolist() == [1]


def example_d():
    net = mlp([1, 2, 2, 1])
    _set(net[0], [[1.0], [0.1]], [0, 0])
    _set(net[2], [[0, 10.0], [1.0, 0]], [-1.0, 0])  # k = relu(10 v - 1), m = relu(u)
    _set(net[4], [[1.0, 1.0]], [0.0])
    return net


def test_example_d_progressive_and_static_differ():
    X = np.array([[0.0], [1], [2], [3]])
    static = odf2nna(example_d(), X, eps=0.5, rule="max", mode="static")
    np.testing.assert_allclose(static.layers[0].sigma, [1.118034, 0.111803], atol=1e-6)
    np.testing.assert_allclose(static.layers[1].sigma, [0.829156, 1.118034], atol=1e-6)
    assert static.widths_after == [1, 1, 2, 1]
    prog = odf2nna(example_d(), X, eps=0.5, rule="max")
    assert prog.widths_after == [1, 1, 1, 1] and prog.layers[1].constant.tolist() == [True, False]
    assert odf2nna(example_d(), X, eps=0.5, rule="max", fold=False).widths_after == [1, 1, 1, 1]


@pytest.mark.parametrize(
    "sizes,expected",
    [
        ((30, 128, 128, 128, 2), 37250),
        ((30, 40, 25, 12, 2), 2603),
        ((30, 64, 64, 2), 6274),
        ((64, 64, 32, 10), 6570),
    ],
)
def test_example_e_parameter_counts(sizes, expected):
    assert (
        count_params(mlp(list(sizes))) == count_params(ns.from_torch(mlp(list(sizes)))) == expected
    )


def test_example_f_physical_shapes_and_index_maps(seed, rng):
    torch.manual_seed(seed)
    net = mlp([30, 128, 128, 2])
    k1, k2 = (
        np.sort(rng.choice(128, 40, replace=False)),
        np.sort(rng.choice(128, 25, replace=False)),
    )
    G = ns.from_torch(net)
    drop = ~np.isin(G.nodes()["index"], k1) & (G.nodes().group == 1) | ~np.isin(
        G.nodes()["index"], k2
    ) & (G.nodes().group == 2)
    H = ns.prune(G, nodes=drop.to_numpy())
    small = ns.to_torch(H, shrink=True)
    assert [(m.in_features, m.out_features) for m in small if isinstance(m, torch.nn.Linear)] == [
        (30, 40),
        (40, 25),
        (25, 2),
    ]
    np.testing.assert_array_equal(
        small[2].weight.detach().numpy(), net[2].weight.detach().numpy()[k2][:, k1]
    )
    x = torch.from_numpy(rng.normal(size=(10, 30)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(small(x), ns.to_torch(H)(x), atol=1e-6, rtol=1e-5)


def _random_relu_mlp(seed):
    g = torch.Generator().manual_seed(seed)
    net = mlp([4, 12, 10, 3])
    with torch.no_grad():
        for lin in (net[0], net[2]):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g))
            lin.bias[:3] = -50.0  # dead units
            lin.weight[3].zero_()  # a constant unit
    return net


@pytest.mark.parametrize("seed_", range(4))
def test_p1_eps_zero_changes_no_output_and_p2_dead_units_always_go(seed_):
    net = _random_relu_mlp(seed_)
    X = np.random.default_rng(seed_).normal(size=(64, 4))
    res = odf2nna(net, X, eps=0.0, tol_rel=0.0)
    np.testing.assert_allclose(_out(res.model(), X), _out(net, X), atol=1e-5)
    for eps in (0.0, 0.5, 1.5):
        for d in odf2nna(net, X, eps=eps).layers:
            assert not np.isin([0, 1, 2, 3], d.kept).any()


@pytest.mark.parametrize(
    "rule,grid",
    [
        ("mean", [0, 0.5, 1.0, 1.5]),
        ("max", [0, 0.3, 0.6, 1.0]),
        ("quantile", [0, 0.3, 0.6, 0.9]),
        ("absolute", [0, 0.1, 0.5, 1.0]),
    ],
)
def test_p3_static_mode_is_monotone_in_eps(rule, grid, seed):
    net = _random_relu_mlp(seed)
    X = np.random.default_rng(seed).normal(size=(64, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ns.NetstructWarning)
        kept = [
            [set(d.kept.tolist()) for d in odf2nna(net, X, eps=e, rule=rule, mode="static").layers]
            for e in grid
        ]
    for a, b in zip(kept, kept[1:]):
        assert all(y <= x for x, y in zip(a, b))


def test_bad_input_errors():
    net, X = example_a(), XA
    with pytest.raises(ns.InvalidParameterError, match="'eps' parameter of odf2nna"):
        odf2nna(net, X, eps=-0.1)
    with pytest.raises(
        ns.InvalidParameterError,
        match="'eps' parameter of odf2nna must be a real number >= 0.0 and <= 1.0",
    ):
        odf2nna(net, X, eps=1.5, rule="max")
    with pytest.raises(ns.InvalidParameterError, match="'rule'"):
        odf2nna(net, X, rule="median")
    with pytest.raises(ns.InvalidParameterError, match="'X' parameter"):
        odf2nna(net, X[:, :1])
    with pytest.raises(ns.GraphError, match="dense feed-forward"):
        odf2nna(torch.nn.LSTM(3, 4), np.zeros((2, 3)))

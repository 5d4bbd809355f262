"""One source of layer semantics: defects that came from private activation tables stay fixed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert.elementwise import (
    ELEMENTWISE_ATTRS,
    activation_map,
    activation_slope,
    layer_type,
)

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("type_name", sorted(set(ELEMENTWISE_ATTRS) - {"Dropout", "AlphaDropout"}))
def test_handler_forward_and_slope_equal_torch(type_name):
    mod = layer_type(type_name)(
        **({"scale": -1.5, "shift": 0.25} if type_name == "ScalarAffine" else {})
    )
    h = ns.convert.handlers.handler_for_name(type_name)
    z = np.linspace(-4, 4, 17).reshape(1, -1)
    cfg = h.config(mod)
    want = (
        mod.double()(torch.as_tensor(z)).detach().numpy()
        if type_name not in ("Softmax", "LogSoftmax")
        else None
    )
    if want is not None:
        np.testing.assert_allclose(h.forward(cfg, z), want, rtol=1e-12)
        zz = torch.as_tensor(z).requires_grad_(True)
        (g,) = torch.autograd.grad(mod(zz).sum(), zz)
        np.testing.assert_allclose(h.slope(cfg, z), g.numpy(), rtol=1e-12)
    else:
        with pytest.raises(ns.GraphError, match="element-wise slope"):
            h.slope(cfg, z)


def test_leaky_relu_slope_is_exported_and_used_everywhere():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LeakyReLU(0.2), torch.nn.Linear(4, 2))
    G = ns.from_torch(m)
    label = G.nodes().activation.iloc[3]
    assert activation_map(label)(np.array([-1.0]))[0] == pytest.approx(-0.2)
    assert activation_slope(label)(np.array([-1.0]))[0] == pytest.approx(0.2)
    # path influence accepts LeakyReLU models (it used to look up a name export never wrote)
    X = np.random.default_rng(0).normal(size=(20, 3))
    _, infl = ns.path_influence(G, X)
    # the data-weighted influence is the mean input-output Jacobian: compare with autograd
    xt = torch.as_tensor(X, dtype=torch.float32)
    J = torch.autograd.functional.jacobian(lambda x: m(x).sum(0), xt).numpy()  # (out, n, in)
    inputs = np.flatnonzero(G.nodes().kind.to_numpy() == "input")
    np.testing.assert_allclose(infl[inputs].T, J.mean(axis=1), rtol=1e-4, atol=1e-6)


def test_odf2nna_uses_the_exported_leaky_slope():
    from netstruct.pruning.odf2nna import _activation

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LeakyReLU(0.2), torch.nn.Linear(4, 2))
    G = ns.from_torch(m)
    f = _activation(G.nodes().activation.iloc[3], 1)
    assert f(np.array([-1.0]))[0] == pytest.approx(-0.2)


def test_batched_evaluation_applies_a_softmax_between_layers():
    # Softmax between layers changes the next layer's input: it is applied, not skipped
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        torch.nn.Softmax(dim=1),
        torch.nn.Linear(6, 3),
        torch.nn.Softmax(dim=1),
    )
    G = ns.from_torch(m)
    X = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    y = m(torch.as_tensor(X)).argmax(1).numpy()
    acc = ns.probes.evaluate_batch(G, X, y)
    assert float(np.ravel(acc)[0]) == 1.0


def test_shared_modules_in_a_sequential_are_exported_as_the_network_they_are():
    torch.manual_seed(0)
    relu = torch.nn.ReLU()
    lin = torch.nn.Linear(4, 4)
    m = torch.nn.Sequential(lin, relu, lin, relu, torch.nn.Linear(4, 2))
    G = ns.from_torch(m)
    assert [b.name for b in G.blocks] == ["0.weight", "2.weight", "4.weight"]
    assert G.spec["tied"] == {"2.weight": "0.weight", "2.bias": "0.bias"}
    x = torch.randn(5, 4)
    r = ns.to_torch(G)
    assert torch.allclose(r(x), m(x), atol=1e-6)
    assert r[0].weight is r[2].weight  # tied weights stay tied
    assert sorted(r.state_dict()) == sorted(m.state_dict())
    # pruning one use only of a tied parameter is refused, not silently split
    e = G.edges()
    H = G.remove_edges(((e.block == "2.weight") & (e.row == 0)).to_numpy())
    with pytest.raises(ns.GraphError, match="tied"):
        ns.to_torch(H)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_dtype_is_kept(dtype):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).to(dtype)
    G = ns.from_torch(m)
    r = ns.to_torch(G)
    assert next(r.parameters()).dtype == dtype
    x = torch.randn(5, 3).to(dtype)
    tol = 1e-6 if dtype == torch.float64 else 1e-2
    assert torch.allclose(r(x).double(), m(x).double(), atol=tol)
    if dtype != torch.float64:  # half types are exact in float32 blocks
        assert torch.equal(r[0].weight, m[0].weight)


@pytest.mark.parametrize("type_name", ["Identity", "ReLU", "Tanh", "Sigmoid"])
def test_numpy_fast_paths_equal_torch(type_name):
    h = ns.convert.handlers.handler_for_name(type_name)
    fwd, slope_from_out = h.numpy_map({})
    z = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(fwd(z), h.forward({}, z), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(slope_from_out(fwd(z)), h.slope({}, z), rtol=1e-9, atol=1e-12)


def test_no_numpy_fast_path_for_other_layers():
    assert ns.convert.handlers.handler_for_name("GELU").numpy_map({}) is None

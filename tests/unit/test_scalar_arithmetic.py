"""Scalar arithmetic on units (``h * c``, ``h / c``, ``h + c``, ``c - h``, ``-h``).

Re-import replays the traced operation; the graph labels the units with ``ScalarAffine``
(one handler), so activation maps, slopes, shrink's constant folding and path influence see
the arithmetic. Oracles: the model itself, and the operations applied one by one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns
from netstruct.convert._scalar import ScalarAffine
from netstruct.convert.elementwise import activation_map, activation_slope
from netstruct.exceptions import UnsupportedModuleError

OPS = {
    "mul": lambda h, c: h * c,
    "rmul": lambda h, c: c * h,
    "div": lambda h, c: h / c,
    "add": lambda h, c: h + c,
    "radd": lambda h, c: c + h,
    "sub": lambda h, c: h - c,
    "rsub": lambda h, c: c - h,
    "neg": lambda h, c: -h,
    "method_mul": lambda h, c: h.mul(c),
    "method_div": lambda h, c: h.div(c),
    "method_sub": lambda h, c: h.sub(c),
    "method_neg": lambda h, c: h.neg(),
}


class _Chain(torch.nn.Module):
    def __init__(self, steps: list[tuple[str, float]]) -> None:
        super().__init__()
        self.steps = steps
        self.a = torch.nn.Linear(5, 6)
        self.b = torch.nn.Linear(6, 3)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        for op, c in self.steps:
            h = OPS[op](h, c)
        return self.b(h)


def _hidden_label(G) -> str:
    nodes = G.nodes()
    return str(nodes.loc[nodes["kind"] == "hidden", "activation"].iloc[-1])


@pytest.mark.parametrize("op", sorted(OPS))
def test_each_scalar_form_round_trips_and_is_labelled(op):
    torch.manual_seed(0)
    model = _Chain([(op, 2.5)]).eval()
    x = torch.randn(4, 5)
    G = ns.from_torch(model, x)
    with torch.no_grad():
        assert torch.equal(ns.to_torch(G)(x), model(x))
    z = np.linspace(-2, 2, 9)
    want = OPS[op](torch.tanh(torch.as_tensor(z)), 2.5).numpy()
    np.testing.assert_allclose(activation_map(_hidden_label(G))(z), want, rtol=1e-12)
    assert "scalaraffine" in _hidden_label(G)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(OPS)),
            st.floats(0.1, 4.0) | st.floats(-4.0, -0.1) | st.integers(1, 5),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_chains_of_scalar_ops_match_the_ops_one_by_one(steps):
    torch.manual_seed(1)
    model = _Chain(steps).eval()
    x = torch.randn(3, 5)
    G = ns.from_torch(model, x)
    with torch.no_grad():
        assert torch.equal(ns.to_torch(G)(x), model(x))
    z = torch.linspace(-3, 3, 13, dtype=torch.float64, requires_grad=True)
    h = torch.tanh(z)
    for op, c in steps:
        h = OPS[op](h, c)
    (slope,) = torch.autograd.grad(h.sum(), z)
    label = _hidden_label(G)
    zn = z.detach().numpy()
    np.testing.assert_allclose(activation_map(label)(zn), h.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(activation_slope(label)(zn), slope.numpy(), rtol=1e-9, atol=1e-12)


def test_shrink_folds_a_shifted_unit_exactly():
    torch.manual_seed(2)

    class Shifted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 8), torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.b(1.0 - torch.relu(self.a(x)) * 0.5 + 3)

    model = Shifted().eval()
    x = torch.randn(16, 4)
    G = ns.from_torch(model, x)
    hidden = np.flatnonzero(G.nodes()["kind"].to_numpy() == "hidden")
    drop = np.zeros(G.n_nodes, dtype=bool)
    drop[hidden[::2]] = True
    plan = ns.PruningPlan.for_graph(G).remove_units(G, drop)
    masked = ns.to_torch(plan.apply(G))
    small = ns.to_torch(ns.prune(G, plan, shrink=True))
    assert small.a.out_features == 4
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked(x), atol=1e-5, rtol=0)


def test_math_on_a_traced_size_exports_by_one_run():
    """``h / math.sqrt(x.size(-1))``: fx cannot trace it (math on a proxy); a run records it."""
    torch.manual_seed(3)

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x) / math.sqrt(x.size(-1)) - 0.5)

    model = Scaled().eval()
    x = torch.randn(3, 4)
    G = ns.from_torch(model, x)
    assert G.spec.get("specialised")
    with torch.no_grad():
        assert torch.equal(ns.to_torch(G)(x), model(x))
    assert "scalaraffine" in _hidden_label(G)
    with pytest.raises(UnsupportedModuleError, match="example_input"):
        ns.from_torch(model)  # without an example there is nothing to record


def test_a_number_divided_by_units_is_refused_with_its_line():
    class Reciprocal(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            return self.b(1.0 / self.a(x))

    with pytest.raises(UnsupportedModuleError, match="truediv") as err:
        ns.from_torch(Reciprocal(), torch.randn(2, 4))
    assert "test_scalar_arithmetic.py" in str(err.value)


def test_scalar_affine_is_a_layer_with_a_handler():
    torch.manual_seed(4)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), ScalarAffine(scale=-2.0, shift=0.5), torch.nn.Linear(4, 1)
    ).eval()
    x = torch.randn(5, 3)
    G = ns.from_torch(model, x)
    with torch.no_grad():
        assert torch.equal(ns.to_torch(G)(x), model(x))
    assert _hidden_label(G) == 'scalaraffine{"scale": -2.0, "shift": 0.5}'
    np.testing.assert_allclose(activation_slope(_hidden_label(G))(np.zeros(3)), [-2.0] * 3)


def test_zero_operands_export_and_division_by_zero_is_refused():
    torch.manual_seed(5)
    model = _Chain([("add", 0), ("mul", 0.0), ("sub", 0)]).eval()
    x = torch.randn(2, 5)
    G = ns.from_torch(model, x)
    with torch.no_grad():
        assert torch.equal(ns.to_torch(G)(x), model(x))
    np.testing.assert_array_equal(activation_slope(_hidden_label(G))(np.ones(3)), np.zeros(3))
    with pytest.raises(UnsupportedModuleError, match="truediv"):
        ns.from_torch(_Chain([("div", 0)]).eval(), x)

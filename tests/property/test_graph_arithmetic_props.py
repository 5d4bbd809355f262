"""Property tests: an exported graph *computes* the model, by its own blocks and node labels.

The round-trip check rebuilds a module that replays the model's recorded operations, so it
cannot see a graph whose edges or activation labels say something else (it once missed
``h + relu(h)`` exported as ``relu(h) + relu(h)``). Here random programs of Linear layers,
activations (functions and modules), residual sums, products of two values, scalar arithmetic
and re-used values are traced, exported, and the graph is evaluated node by node,
``activation(Σ w · source + bias)`` as ``docs/concepts/layers.md`` defines a node's value (the
product of its sources for a node fed by a ``product`` operator block), against the model's
output. A second family views the width as ``(heads, head_dim)`` and rotates part of each head
by halves (a partial rotary embedding's slices, negation and concatenations, with 1-wide and
empty slices and single-head views).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import netstruct as ns
from netstruct.convert.elementwise import activation_map
from netstruct.exceptions import UnsupportedModuleError
from netstruct.graphs.block import elementwise_operator

_ACTS = {
    "relu": (torch.relu, torch.nn.ReLU),
    "tanh": (torch.tanh, torch.nn.Tanh),
    "sigmoid": (torch.sigmoid, torch.nn.Sigmoid),
    "leaky": (lambda h: torch.nn.functional.leaky_relu(h, 0.2), lambda: torch.nn.LeakyReLU(0.2)),
}


class _Program(torch.nn.Module):
    """Runs ``ops`` on a list of values (value 0: the first layer's output)."""

    def __init__(self, n_in: int, width: int, ops: list[tuple], n_out: int) -> None:
        super().__init__()
        self.ops = ops
        self.first = torch.nn.Linear(n_in, width)
        self.layers = torch.nn.ModuleDict()
        self.acts = torch.nn.ModuleDict()
        for k, op in enumerate(ops):
            if op[0] == "linear":
                self.layers[str(k)] = torch.nn.Linear(width, width)
            elif op[0] == "act" and op[3]:
                self.acts[str(k)] = _ACTS[op[2]][1]()
        self.head = torch.nn.Linear(width, n_out)

    def forward(self, x):
        vals = [self.first(x)]
        for k, op in enumerate(self.ops):
            kind, a = op[0], vals[op[1]]
            if kind == "linear":
                vals.append(self.layers[str(k)](a))
            elif kind == "act":
                vals.append(self.acts[str(k)](a) if op[3] else _ACTS[op[2]][0](a))
            elif kind == "add":
                vals.append(a + vals[op[2]])
            elif kind == "mul":
                vals.append(a * vals[op[2]])
            elif kind == "scale":
                vals.append(a * op[2])
            elif kind == "shift":
                vals.append(a + op[2])
            elif kind == "rot":  # a partial rotary pattern on a head-split value
                vals.append(_rotate_part(a, op[2], op[3]))
            else:  # "neg"
                vals.append(-a)
        return self.head(vals[-1])


def _rotate_part(a, heads: int, r: int):
    """``a`` viewed as ``(heads, head_dim)``: the first ``r`` dims of each head rotated by
    halves (``cat(-x2, x1)``, as ``rotate_half``), the others passed, then merged back. Slices
    may be 1 wide (``r = 2``) or empty (``r = head_dim``: no pass-through part)."""
    B, width = a.shape
    v = a.view(B, heads, width // heads)
    rot, rest = v[..., :r], v[..., r:]
    x1, x2 = rot[..., : r // 2], rot[..., r // 2 :]
    return torch.cat([torch.cat([-x2, x1], dim=-1), rest], dim=-1).reshape(B, width)


@st.composite
def head_programs(draw):
    """Programs on a width of ``heads x head_dim`` (head_dim even) with ``rot`` operations."""
    heads = draw(st.integers(1, 3))
    head_dim = draw(st.sampled_from([2, 4, 6]))
    n_ops = draw(st.integers(1, 6))
    ops: list[tuple] = []
    for k in range(n_ops):
        src = draw(st.integers(0, k))
        kind = draw(st.sampled_from(["rot", "rot", "linear", "act", "add", "mul"]))
        if kind == "rot":
            ops.append((kind, src, heads, draw(st.sampled_from(range(2, head_dim + 1, 2)))))
        elif kind == "act":
            ops.append((kind, src, draw(st.sampled_from(sorted(_ACTS))), draw(st.booleans())))
        elif kind in ("add", "mul"):
            ops.append((kind, src, draw(st.integers(0, k))))
        else:
            ops.append((kind, src))
    return ops, heads * head_dim, draw(st.integers(0, 2**16))


@st.composite
def programs(draw):
    n_ops = draw(st.integers(1, 7))
    ops: list[tuple] = []
    for k in range(n_ops):
        src = draw(st.integers(0, k))  # any earlier value: values are read more than once
        kind = draw(
            st.sampled_from(["linear", "act", "act", "add", "mul", "scale", "shift", "neg"])
        )
        if kind == "act":
            ops.append((kind, src, draw(st.sampled_from(sorted(_ACTS))), draw(st.booleans())))
        elif kind in ("add", "mul"):
            ops.append((kind, src, draw(st.integers(0, k))))
        elif kind in ("scale", "shift"):
            ops.append((kind, src, draw(st.sampled_from([0.5, -2.0, 3.0]))))
        else:
            ops.append((kind, src))
    return ops, draw(st.integers(1, 4)), draw(st.integers(0, 2**16))


def graph_forward(G: ns.SignedGraph, x: np.ndarray) -> np.ndarray:
    """The output nodes' values, each node ``activation(Σ w · source + bias)``."""
    nodes = G.nodes()
    kinds, labels = nodes["kind"].to_numpy(), nodes["activation"].to_numpy()
    V = np.full((len(x), G.n_nodes), np.nan)
    V[:, np.flatnonzero(kinds == "input")] = x
    incoming: dict[int, list[tuple]] = {}
    products: dict[int, np.ndarray] = {}  # node -> the sources whose values it multiplies
    for b in G.blocks:
        if elementwise_operator(b) == "product":
            for r, t in enumerate(b.targets.tolist()):
                products[t] = b.sources[b.mask[r]]
            continue
        W = np.where(b.mask, b.weight, 0.0).astype(np.float64)
        for r, t in enumerate(b.targets.tolist()):
            bias = 0.0 if b.bias is None else float(b.bias[r])
            incoming.setdefault(t, []).append((W[r], b.sources, bias))
    for t in range(G.n_nodes):  # a block's sources come before its targets
        if kinds[t] == "input":
            continue
        if t in products:
            src = products[t]
            pre = np.prod(V[:, src], axis=1) if src.size > 1 else V[:, src[0]] ** 2
        else:
            pre = sum(V[:, src] @ w + bias for w, src, bias in incoming[t])
        assert not np.isnan(pre).any(), f"node {t} reads a node not yet computed"
        V[:, t] = activation_map(labels[t])(pre)
    return V[:, np.flatnonzero(kinds == "output")]


@settings(max_examples=60, deadline=None)
@given(programs())
def test_the_graph_computes_what_the_model_computes(case):
    ops, width, seed = case
    torch.manual_seed(seed)
    model = _Program(3, width, ops, 2).eval()
    x = torch.randn(6, 3)
    G = ns.from_torch(model, x)
    with torch.no_grad():
        want = model(x).double().numpy()
    np.testing.assert_allclose(graph_forward(G, x.double().numpy()), want, atol=1e-4, rtol=1e-4)


@settings(max_examples=40, deadline=None)
@given(head_programs())
def test_head_split_slices_and_concatenations_compute_the_model(case):
    """Slices of a ``(heads, head_dim)`` view that leave 1-wide or empty parts keep both
    feature axes (partial rotary embeddings); the graph still computes the model."""
    ops, width, seed = case
    torch.manual_seed(seed)
    model = _Program(3, width, ops, 2).eval()
    x = torch.randn(6, 3)
    try:
        G = ns.from_torch(model, x)
    except UnsupportedModuleError as exc:  # the one refusal these programs can meet
        assert "share some units at different positions" in str(exc)
        assume(False)
    with torch.no_grad():
        want = model(x).double().numpy()
    np.testing.assert_allclose(graph_forward(G, x.double().numpy()), want, atol=1e-4, rtol=1e-4)

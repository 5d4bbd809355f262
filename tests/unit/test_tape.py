"""The tape tracer: models torch.fx cannot trace, recorded by running them once."""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
from torch.fx.node import map_arg

import netstruct as ns
from netstruct.convert._tape import tape_trace
from netstruct.exceptions import InvalidParameterError

pytestmark = pytest.mark.torch


class TokenModel(torch.nn.Module):
    """A ViT-like forward that branches on a size: class token, positions, layer scale."""

    def __init__(self, d=6, vocab=9):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(8, d)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, d))
        self.scale = torch.nn.Parameter(torch.rand(d) + 0.5)
        self.norm = torch.nn.LayerNorm(d)
        self.fc = torch.nn.Linear(d, d)
        self.head = torch.nn.Linear(d, 3)

    def forward(self, ids):
        B, T = ids.shape
        if T > 8:  # fx cannot trace a branch on a size
            raise ValueError("too long")
        h = self.emb(ids) + self.pos(torch.arange(T).unsqueeze(0))
        h = torch.cat([self.cls.expand(B, -1, -1), h], dim=1)
        h = h + self.scale * torch.relu(self.fc(self.norm(h)))
        return self.head(h[:, 0]), h


def _token_model():
    torch.manual_seed(0)
    return TokenModel().eval(), torch.randint(0, 9, (2, 5))


def test_untraceable_model_exports_and_reimports_exactly():
    m, x = _token_model()
    G = ns.from_torch(m, x)
    r = ns.to_torch(G)
    with torch.no_grad():
        for a, b in zip(m(x), r(x)):
            assert torch.allclose(a, b, atol=1e-6)
    assert sorted(r.state_dict()) == sorted(m.state_dict())
    assert G.spec["specialised"] == {
        "input_shapes": [[2, 5]],
        "input_dtypes": ["int64"],
        "outputs": ["0", "1"],
    }


def test_parameters_read_directly_become_blocks_named_like_them():
    m, x = _token_model()
    G = ns.from_torch(m, x)
    cls = G.block("cls")  # an embedding of its one row
    assert cls.shape == (6, 1) and G.nodes().loc[cls.sources[0], "name"] == "cls[0]"
    np.testing.assert_array_equal(cls.parameter().reshape(1, 1, 6), m.cls.detach().numpy())
    scale = G.block("scale")  # a per-unit factor: diagonal
    assert scale.kind == "weight" and scale.n_edges == 6
    np.testing.assert_array_equal(scale.parameter(), m.scale.detach().numpy())
    # pruning a scale edge zeroes that factor on re-import
    e = G.edges()
    r = ns.to_torch(G.remove_edges(((e.block == "scale") & (e.row == 2)).to_numpy()))
    assert r.scale[2] == 0 and torch.equal(r.scale[:2], m.scale[:2].detach())
    # the class token's row and the tokens' units meet in fresh units (skip edges)
    parts = [b for b in G.blocks if b.kind == "skip" and ".part" in b.name]
    assert len(parts) == 2


def test_constants_are_folded_and_the_module_is_specialised():
    m, x = _token_model()
    G = ns.from_torch(m, x)
    consts = [
        a
        for rec in G.spec["ops"]
        for a in rec.get("args", [])
        if isinstance(a, dict) and "$tensor" in a
    ]
    assert consts and consts[0]["$tensor"]["data"] == [[0, 1, 2, 3, 4]][0]
    r = ns.to_torch(G)
    with pytest.raises(InvalidParameterError, match=r"specialised to input shapes \[\[2, 5\]\]"):
        r(torch.randint(0, 9, (2, 6)))


def test_reflected_operators_keep_their_operand_order():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            h = self.lin(x)
            return 1 - h, 2 * h, 3 / (h + 5), -h, h @ h.T, h[0], h.T

    m, x = M(), torch.randn(3, 3)
    graph, _ = tape_trace(m, x, lambda mod: isinstance(mod, torch.nn.Linear))
    subs = [n for n in graph.nodes if n.target is operator.sub]
    assert len(subs) == 1 and subs[0].args[0] == 1
    vals = {}
    for n in graph.nodes:
        a = map_arg(n.args, vals.__getitem__)
        if n.op == "placeholder":
            vals[n] = x
        elif n.op == "call_module":
            vals[n] = m.lin(*a)
        elif n.op == "call_function":
            vals[n] = n.target(*a)
        elif n.op == "call_method":
            vals[n] = getattr(a[0], n.target)(*a[1:])
        elif n.op == "output":
            out = a[0]
    with torch.no_grad():
        for want, got in zip(m(x), out):
            assert torch.equal(want, got)


def test_a_branch_on_a_value_is_guarded_on_replay():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            h = self.lin(x)
            if x.sum() > 0:
                return torch.relu(h)
            return torch.tanh(h)

    torch.manual_seed(0)
    m = M().eval()
    x = torch.ones(2, 3)
    r = ns.to_torch(ns.from_torch(m, x))
    with torch.no_grad():
        assert torch.equal(r(2 * x), m(2 * x))  # same branch
    with pytest.raises(InvalidParameterError, match="another path than example_input"):
        r(-x)


def test_writing_into_a_value_is_reported_not_lost():
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            if x.shape[0] > 0:
                h = self.lin(x)
                h[:, 0] = 0.0  # an in-place write netstruct cannot express
                return h
            return x

    with pytest.raises(ns.UnsupportedModuleError, match="setitem") as info:
        ns.from_torch(M(), torch.randn(2, 3), check=False)
    assert "test_tape.py, line" in str(info.value)

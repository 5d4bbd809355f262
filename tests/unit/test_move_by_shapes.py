"""A CNN head's pooling and flatten followed by shapes give the code-tensor run's graph.

The exporter follows shape operations by running them on code tensors (``_values.encode``)
and decoding the result: the slow, obvious reference. A pooling whose handler says it keeps
each channel whole, and a flatten of a channel map from the channel axis on, are read off
the shapes instead (``_Exporter._move_channels``). Both routes must give the same graph,
and the same refusal where the run refuses (a zero-padded average mixes in zeros).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns
from netstruct.convert import _values
from netstruct.convert import from_torch as ft
from netstruct.exceptions import UnsupportedModuleError

pytestmark = pytest.mark.torch


class _Head(torch.nn.Module):
    def __init__(self, pool: torch.nn.Module, flatten: str, channels: int, size: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, channels, 3, padding=1)
        self.pool = pool
        self.flatten = flatten
        with torch.no_grad():
            width = self.pool(torch.zeros(1, channels, size, size)).numel()
        self.fc = torch.nn.Linear(width, 3)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv(x)))
        if self.flatten == "method":
            h = h.flatten(1)
        elif self.flatten == "function":
            h = torch.flatten(h, start_dim=1)
        elif self.flatten == "module":
            h = torch.nn.Flatten()(h)
        else:  # a view: followed by the run either way
            h = h.view(h.size(0), -1)
        return self.fc(h)


_POOLS = {
    "adaptive avg 1": lambda: torch.nn.AdaptiveAvgPool2d(1),
    "adaptive avg 2": lambda: torch.nn.AdaptiveAvgPool2d(2),
    "adaptive max 3": lambda: torch.nn.AdaptiveMaxPool2d((3, 2)),
    "max 2": lambda: torch.nn.MaxPool2d(2),
    "max 3 pad 1 ceil": lambda: torch.nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
    "avg 2": lambda: torch.nn.AvgPool2d(2),
    "avg 3 pad 1 excluding pad": lambda: torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    "avg 3 pad 1 zero padded": lambda: torch.nn.AvgPool2d(3, 1, 1),
    "avg 2 divisor": lambda: torch.nn.AvgPool2d(2, divisor_override=3),
    "identity": lambda: torch.nn.Identity(),
}


def _export(model, x, by_shapes: bool, monkeypatch):
    monkeypatch.setattr(ft, "MOVE_BY_SHAPES", by_shapes)
    try:
        return ns.from_torch(model, x)
    except UnsupportedModuleError as exc:
        return exc


def _same(G, H) -> None:
    if isinstance(G, Exception) or isinstance(H, Exception):
        assert type(G) is type(H) and str(G) == str(H)
        return
    assert G.spec == H.spec and G.n_nodes == H.n_nodes
    for col in ns.graphs.signed.NODE_COLUMNS:
        np.testing.assert_array_equal(G.node_column(col), H.node_column(col))
    for a, b in zip(G.blocks, H.blocks, strict=True):
        assert (a.name, a.kind, a.shape, a.layout) == (b.name, b.kind, b.shape, b.layout)
        np.testing.assert_array_equal(a.sources, b.sources)
        np.testing.assert_array_equal(a.targets, b.targets)
        np.testing.assert_array_equal(a.weight, b.weight)


@settings(max_examples=40, deadline=None)
@given(
    pool=st.sampled_from(sorted(_POOLS)),
    flatten=st.sampled_from(["method", "function", "module", "reshape"]),
    channels=st.integers(1, 5),
    size=st.integers(4, 7),
    batch=st.integers(1, 3),
)
def test_both_routes_give_one_graph(pool, flatten, channels, size, batch):
    torch.manual_seed(0)
    x = torch.randn(batch, 2, size, size)
    model = _Head(_POOLS[pool](), flatten, channels, size).eval()
    with pytest.MonkeyPatch.context() as mp:
        by_shapes = _export(model, x, True, mp)
        ft._FX_TRACES.pop(model, None)
        by_run = _export(model, x, False, mp)
    _same(by_shapes, by_run)


def test_the_head_of_a_cnn_needs_no_code_tensors(monkeypatch):
    calls = []
    real = _values.encode
    monkeypatch.setattr(ft, "encode", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 6)
    for flatten in ("method", "function", "module"):
        model = _Head(torch.nn.AdaptiveAvgPool2d(1), flatten, 4, 6).eval()
        G = ns.from_torch(model, x)
        assert G.block("fc.weight").shape == (3, 4)
    assert calls == []
    ns.from_torch(_Head(torch.nn.AdaptiveAvgPool2d(1), "reshape", 4, 6).eval(), x)
    assert calls  # a view is followed by the run


def test_a_zero_padded_average_is_still_refused():
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 6)
    model = _Head(torch.nn.AvgPool2d(3, 1, 1), "method", 4, 6).eval()
    with pytest.raises(UnsupportedModuleError, match="mixes the values"):
        ns.from_torch(model, x)


@pytest.mark.parametrize("flatten", ["method", "function", "module", "reshape"])
@pytest.mark.parametrize("pool", sorted(_POOLS))
def test_every_head_exports_or_is_refused_alike(pool, flatten, monkeypatch):
    """The deterministic grid behind the property test: which heads export at all."""
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 6)
    model = _Head(_POOLS[pool](), flatten, 3, 6).eval()
    by_shapes = _export(model, x, True, monkeypatch)
    ft._FX_TRACES.pop(model, None)
    _same(by_shapes, _export(model, x, False, monkeypatch))
    refused = pool in ("avg 3 pad 1 zero padded", "avg 2 divisor")
    assert isinstance(by_shapes, UnsupportedModuleError) == refused
    if not refused:
        with torch.no_grad():
            torch.testing.assert_close(ns.to_torch(by_shapes)(x), model(x), atol=1e-5, rtol=1e-4)

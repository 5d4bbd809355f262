"""The dual tracer records torch.fx's graph and the example run's values in one pass.

The oracle is torch.fx itself: for every model of the zoo the dual run's graph equals
``Tracer.trace``'s node by node (op, name, target, arguments, type, ``nn_module_stack``), and
its values equal those of running fx's graph on the example (``_run_example``, the slow,
obvious path it replaces). Where fx's trace fails the dual run stops with ``FxFails``; where
it would not be fx's trace it refuses with ``DualUnsupported``, and ``from_torch`` gives the
graph of the fx path in both cases.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import netstruct as ns
from netstruct.convert import _dual
from netstruct.convert import from_torch as ft
from netstruct.convert.attention import traced_through

pytestmark = pytest.mark.torch


class _Res(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = F.relu(x + self.conv(x))
        return self.fc(x.mean((2, 3)))


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.down = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        return torch.relu(self.conv(x) + identity)


class _Stages(nn.Module):
    """Nested blocks, a ModuleList, a module called twice, shapes read in Python."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([_Block(2, 4), _Block(4, 4)])
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 5 * 5, 6))

    def forward(self, x):
        for blk in self.blocks:
            x = self.act(blk(x))
        b, c, h, w = x.shape
        y = self.act(x).reshape(b, c, h * w).view(x.size(0), -1)
        return self.head(y.view(b, c, h, w))


class _Shapes(nn.Module):
    """Tensor methods, operators (reflected ones too), slicing with traced sizes, chunk and
    cat, a root parameter and buffer, ``torch.arange`` of a traced size."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)
        self.scale = nn.Parameter(torch.ones(8))
        self.register_buffer("offset", torch.full((8,), 0.5))

    def forward(self, x, gain: float = 2.0):
        h = self.fc(x) * self.scale + self.offset
        a, b = h.chunk(2, dim=1)
        h = torch.cat([F.gelu(a), 1 - b], dim=1)
        h = -h[:, : h.size(1)] * gain + self.scale
        h = h + torch.arange(h.shape[1]).to(h.dtype) / 8
        return self.out(h.transpose(0, 1).t().contiguous())


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(5, 3)

    def forward(self, u, v):
        return {"sum": self.a(u) + self.b(v), "pair": (self.a(u), torch.tanh(self.b(v)))}


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
            1,
            enable_nested_tensor=False,
        )
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.fc(self.encoder(h).mean(1))


class _Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


ZOO = {
    "residual": (_Res, lambda: torch.randn(2, 1, 5, 5)),
    "stages": (_Stages, lambda: torch.randn(2, 2, 5, 5)),
    "shapes": (_Shapes, lambda: torch.randn(3, 8)),
    "two inputs": (_TwoInputs, lambda: (torch.randn(2, 4), torch.randn(2, 5))),
    "attention": (_Attention, lambda: torch.randn(2, 4, 6)),
    "recurrent": (_Recurrent, lambda: torch.randn(2, 3, 4)),
}


def _model(name: str):
    torch.manual_seed(0)
    cls, example = ZOO[name]
    return cls().eval(), example()


def _fx_graph(model):
    tracer = ft._tracer_cls()()
    tracer.record_stack_traces = False
    return tracer.trace(model)


def _dual_run(model, x):
    return _dual.dual_trace(model, x, traced_through(), ft._tracer_cls())


def _described(graph) -> list[tuple]:
    def arg(a):
        return torch.fx.node.map_arg(a, lambda n: ("node", n.name))

    return [
        (n.op, n.name, n.target, arg(n.args), arg(n.kwargs), n.type, n.meta.get("nn_module_stack"))
        for n in graph.nodes
    ]


def _same_value(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same_value(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same_value(a[k], b[k])
    else:
        assert a == b


@pytest.mark.parametrize("name", list(ZOO))
def test_the_dual_run_records_fx_s_graph(name):
    model, x = _model(name)
    run = _dual_run(model, x)
    assert _described(run.graph) == _described(_fx_graph(model))


@pytest.mark.parametrize("name", list(ZOO))
def test_the_dual_run_s_values_are_the_example_run_s(name):
    model, x = _model(name)
    run = _dual_run(model, x)
    reference = ft._run_example(ft._Traced(_fx_graph(model), model), x)
    assert reference is not None
    by_name = {n.name: v for n, v in reference.items()}
    for node, value in run.values.items():
        _same_value(value, by_name[node.name])
    with torch.no_grad():
        expected = model(*x) if isinstance(x, tuple) else model(x)
    _same_value(run.output, expected)


#: the zoo's models netstruct exports (``_Shapes`` adds a buffer to units, which it refuses)
EXPORTED = [name for name in ZOO if name != "shapes"]


@pytest.mark.parametrize("name", EXPORTED)
def test_from_torch_gives_the_fx_path_s_graph(name, monkeypatch):
    model, x = _model(name)
    G = ns.from_torch(model, x)

    def refuse(*a, **k):
        raise _dual.DualUnsupported("the fx path, for comparison")

    monkeypatch.setattr(ft, "dual_trace", refuse)
    ft.forget_traces(model)
    H = ns.from_torch(model, x)
    assert G.spec == H.spec and G.n_nodes == H.n_nodes
    assert G.nodes().equals(H.nodes())
    for a, b in zip(G.blocks, H.blocks, strict=True):
        assert (a.name, a.kind, a.shape) == (b.name, b.kind, b.shape)
        np.testing.assert_array_equal(a.sources, b.sources)
        np.testing.assert_array_equal(a.targets, b.targets)
        np.testing.assert_array_equal(a.weight, b.weight)


def test_the_classes_are_restored_after_a_run():
    model, x = _model("stages")
    before = {c: dict(vars(c)) for c in {type(m) for m in model.modules()}}
    _dual_run(model, x)
    with pytest.raises(_dual.FxFails):
        _dual_run(_Branching().eval(), torch.randn(2, 3))
    assert {c: dict(vars(c)) for c in before} == before
    assert not torch.fx._symbolic_trace.is_fx_tracing() and _dual._ACTIVE is None


class _Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent: fx fails here, and so does the dual run
            return self.fc(x)
        return self.fc(-x)


class _Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x) + torch.ones(3)  # a tensor fx stores on the model as a constant


def test_where_fx_fails_the_dual_run_stops_and_a_tape_records_the_model():
    model = _Branching().eval()
    x = torch.randn(2, 3)
    with pytest.raises(_dual.FxFails):
        _dual_run(model, x)
    G = ns.from_torch(model, x)
    assert "specialised" in G.spec  # the tape's graph
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), model(x))


@pytest.mark.parametrize(
    "make",
    [
        lambda: _Constant().eval(),
        lambda: _Res().train(),  # a trace in training mode is not the eval-mode run
        lambda: _with_hook(_Res().eval()),
    ],
    ids=["constant tensor", "training mode", "forward hook"],
)
def test_what_the_dual_run_does_not_mirror_goes_to_fx(make):
    model = make()
    x = torch.randn(2, 1, 5, 5) if isinstance(model, _Res) else torch.randn(2, 3)
    with pytest.raises(_dual.DualUnsupported) as info:
        _dual_run(model, x)
    assert not isinstance(info.value, _dual.FxFails)
    if isinstance(model, _Constant):  # fx traces it (the exporter refuses the constant's add)
        assert any(n.op == "get_attr" for n in _fx_graph(model).nodes)
        return
    G = ns.from_torch(model, x)
    assert "specialised" not in G.spec  # fx traced it
    with torch.no_grad(), ft.eval_mode(model):
        torch.testing.assert_close(ns.to_torch(G)(x), model(x), atol=1e-5, rtol=1e-4)


def _with_hook(model):
    model.fc.register_forward_hook(lambda m, i, o: None)
    return model


def test_a_dual_run_records_the_forward_under_the_caller_s_grad_mode():
    seen = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            seen.append(torch.is_grad_enabled())
            return self.fc(x)

    run = _dual_run(Probe().eval(), torch.randn(1, 2))
    assert seen == [True]  # as under torch.fx; the values carry no autograd history
    assert all(not getattr(v, "requires_grad", False) for v in run.values.values())


class _Keywords(nn.Module):
    def __init__(self, branch: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.branch = branch

    def forward(self, x, scale=None, **kwargs):
        if self.branch and x.shape[0] > 1:  # what Hugging Face forwards do: fx fails
            return self.fc(x)
        return self.fc(-x)


def test_a_forward_with_keyword_arguments_is_traced_by_fx_or_taped(monkeypatch):
    tried = []
    real = ft._tracer_cls

    def counting():
        cls = real()

        class Counting(cls):  # type: ignore[misc, valid-type]
            def trace(self, *a, **k):
                tried.append(1)
                return super().trace(*a, **k)

        return Counting

    monkeypatch.setattr(ft, "_tracer_cls", counting)
    x = torch.randn(2, 3)
    plain = _Keywords(branch=False).eval()
    with pytest.raises(_dual.DualUnsupported):  # **kwargs: fx's placeholder, not a dict
        _dual_run(plain, x)
    G = ns.from_torch(plain, x)
    assert "specialised" not in G.spec and tried  # torch.fx traced it
    tried.clear()
    branching = _Keywords(branch=True).eval()
    with pytest.raises(_dual.FxFails):
        _dual_run(branching, x)
    G = ns.from_torch(branching, x)
    assert "specialised" in G.spec and not tried  # taped, without trying fx
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), branching(x))


def test_module_calls_of_another_thread_pass_through_a_run():
    import threading

    other = nn.Linear(4, 3).eval()  # of a class the run patches (the model has Linears)
    seen = []

    class Waits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            t = threading.Thread(target=lambda: seen.append(other(torch.ones(1, 4))))
            t.start()
            t.join()
            return self.fc(x)

    run = _dual_run(Waits().eval(), torch.randn(2, 4))
    assert [n.op for n in run.graph.nodes] == ["placeholder", "call_module", "output"]
    assert isinstance(seen[0], torch.Tensor)  # a real result, not a traced value


class _AsksTensors(nn.Module):
    """A forward whose Python asks what its input is (a proxy answers otherwise)."""

    def __init__(self, ask: str) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.ask = ask

    def forward(self, x):
        tensor = isinstance(x, torch.Tensor) if self.ask == "isinstance" else not hasattr(x, "q")
        return self.fc(x) if tensor else self.fc(-x)


@pytest.mark.parametrize("ask", ["isinstance", "hasattr"])
@pytest.mark.parametrize("dual", [True, False], ids=["dual", "fx"])
def test_a_forward_that_asks_for_tensors_is_checked_against_its_own_run(ask, dual, monkeypatch):
    """Traced, it takes the proxy's branch (``-x``); the check runs the model itself, sees
    the difference and the tape records the run the model makes."""
    model, x = _AsksTensors(ask).eval(), torch.randn(2, 3)
    if not dual:
        monkeypatch.setattr(ft, "_dual", lambda *a: None)
    traced = ft._trace(model, x)
    assert traced.facts is None  # a trace, by proxies: the other branch
    with torch.no_grad():
        assert not torch.allclose(
            ft._run_example(traced, x)[traced.graph.output_node().args[0]], model(x)
        )
    G = ns.from_torch(model, x)
    assert "specialised" in G.spec  # taped
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), model(x))
    again = ft._trace(model, x)
    assert again.facts is not None  # this model's next export goes to the tape directly


def test_an_export_without_example_input_warns_of_a_forward_that_asks_for_tensors():
    """Nothing checks such a graph (the trace takes the proxy's branch): the warning names the
    forward and what it asks, and says how to get a checked export."""
    import warnings

    from netstruct.exceptions import UncheckedExportWarning

    with pytest.warns(
        UncheckedExportWarning, match=r"_AsksTensors.forward \(hasattr, isinstance\)"
    ):
        ns.from_torch(_AsksTensors("hasattr").eval())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncheckedExportWarning)
        ns.from_torch(_AsksTensors("isinstance").eval(), torch.randn(2, 3))  # checked: silent
        ns.from_torch(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))  # read off, nothing traced
        ns.from_torch(_Plain())  # a forward that asks nothing


class _Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return torch.relu(self.fc(x))


#: the zoo's forwards the bytecode proof accepts (``_Shapes`` has a defaulted argument, which
#: reaches the forward as a dual value: refused)
FAITHFUL = {"residual", "stages", "two inputs", "attention", "recurrent"}


@pytest.mark.parametrize("name", list(ZOO))
def test_the_proof_of_a_faithful_run_holds_on_the_zoo(name):
    """Where ``faithful_run`` accepts a forward, the dual run's output is ``model(x)``
    exactly (the oracle of the test above, for every member), so the check may use it."""
    from netstruct.convert._faithful import faithful_run

    model, x = _model(name)
    inputs = x if isinstance(x, tuple) else (x,)
    accepted = faithful_run(model, inputs, lambda m: _dual.is_leaf(m, traced_through()))
    assert accepted == (name in FAITHFUL)
    if accepted:
        with torch.no_grad():
            _same_value(_dual_run(model, x).output, model(*inputs))

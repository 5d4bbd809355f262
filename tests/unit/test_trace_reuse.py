"""Re-exporting a model replays its checked fx trace; nothing the trace may have missed passes.

``from_torch(model, x)`` with the check on keeps the fx trace of ``model`` (weakly, by model)
once its export reproduced the model. A later export of the same, unchanged model replays it
and is checked against the model's own forward; a changed module tree, mode or scalar
attribute traces afresh, and a change the key cannot see (a list changed in place, a global)
fails the check and is exported again from a fresh trace. The slow, obvious reference: an
export with a fresh trace every time.
"""

from __future__ import annotations

import gc
import operator
import weakref

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert import from_torch as ft

pytestmark = pytest.mark.torch

#: read by _Gated.forward: a global the trace bakes in and no key can see
_GLOBAL_SCALE = [1.0]


class _Gated(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 3)
        self.scale = 1.0  # a scalar attribute: part of the trace key
        self.options = {"skip": True}  # a dict: changed in place, the key does not see it
        self.use_global = False

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        if self.options["skip"]:
            h = h + self.conv(x)
        if self.use_global:
            h = h * _GLOBAL_SCALE[0]
        return self.fc(h.mean((2, 3)) * self.scale)


def _model():
    torch.manual_seed(0)
    return _Gated().eval(), torch.randn(2, 2, 5, 5)


@pytest.fixture
def traces(monkeypatch):
    """Count fresh traces: fx's (``record_stack_traces``) and dual runs (False, like fx's first)."""
    calls = []
    real = ft._tracer_cls()
    dual = ft.dual_trace

    def counting_dual(*a, **k):
        run = dual(*a, **k)  # a run that stops where fx would not follow is no trace
        calls.append(False)
        return run

    monkeypatch.setattr(ft, "dual_trace", counting_dual)

    class Counting(real):  # type: ignore[misc, valid-type]
        def trace(self, *a, **k):
            calls.append(self.record_stack_traces)
            return super().trace(*a, **k)

    monkeypatch.setattr(ft, "_tracer_cls", lambda: Counting)
    return calls


@pytest.fixture
def references(monkeypatch):
    """What each export's round-trip check compares with (None: a run of the model)."""
    refs: list = []
    real = ft._check_roundtrip

    def spy(model, G, example_input, reference=None):
        refs.append(reference)
        return real(model, G, example_input, reference)

    monkeypatch.setattr(ft, "_check_roundtrip", spy)
    return refs


def _same_graph(G, H) -> None:
    assert G.spec == H.spec and G.n_nodes == H.n_nodes
    for a, b in zip(G.blocks, H.blocks, strict=True):
        assert (a.name, a.kind, a.shape) == (b.name, b.kind, b.shape)
        np.testing.assert_array_equal(a.sources, b.sources)
        np.testing.assert_array_equal(a.targets, b.targets)
        np.testing.assert_array_equal(a.weight, b.weight)


def _fresh(m, x):
    ft._FX_TRACES.pop(m, None)
    return ns.from_torch(m, x)


def test_a_second_export_replays_the_trace_and_gives_the_same_graph(traces):
    m, x = _model()
    G = ns.from_torch(m, x)
    H = ns.from_torch(m, x)
    assert traces == [False]  # one trace for both exports
    _same_graph(G, H)
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(H)(x), m(x), atol=1e-5, rtol=1e-4)


def test_a_replayed_trace_is_checked_against_the_models_own_forward(references):
    m, x = _model()
    ns.from_torch(m, x)
    references.clear()
    ns.from_torch(m, x)
    assert references == [None]  # None: the check runs the model, not a replay of the trace


def test_new_weights_are_exported_from_the_replayed_trace(traces):
    m, x = _model()
    ns.from_torch(m, x)
    with torch.no_grad():
        m.conv.weight.mul_(-2.0)
        m.bn.running_var.add_(1.0)
    G = ns.from_torch(m, x)
    assert len(traces) == 1
    np.testing.assert_array_equal(
        G.block("conv.weight").parameter(), m.conv.weight.detach().numpy()
    )
    _same_graph(G, _fresh(m, x))


@pytest.mark.parametrize(
    "change",
    [
        lambda m: setattr(m, "scale", 0.5),  # a scalar attribute
        lambda m: setattr(m, "fc", torch.nn.Sequential(torch.nn.Linear(4, 3))),  # the tree
    ],
    ids=["scalar attribute", "module tree"],
)
def test_a_change_the_key_sees_traces_afresh(traces, change):
    m, x = _model()
    ns.from_torch(m, x)
    change(m)
    G = ns.from_torch(m, x)
    assert len(traces) == 2
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), m(x), atol=1e-5, rtol=1e-4)
    _same_graph(G, _fresh(m, x))


def test_the_mode_of_every_module_is_part_of_the_key():
    m, _ = _model()
    key = ft._fx_key(m)
    m.bn.train()
    assert ft._fx_key(m) != key
    m.bn.eval()
    assert ft._fx_key(m) == key


def test_a_module_swapped_for_one_of_its_kind_replays_the_trace(traces):
    """Same path, same type: the trace (code and tree) is the same; the new weights export."""
    m, x = _model()
    ns.from_torch(m, x)
    m.fc = torch.nn.Linear(4, 3).eval()
    G = ns.from_torch(m, x)
    assert len(traces) == 1
    np.testing.assert_array_equal(G.block("fc.weight").parameter(), m.fc.weight.detach().numpy())


@pytest.mark.parametrize(
    "change, undo",
    [
        (lambda m: m.options.update(skip=False), lambda m: m.options.update(skip=True)),
        (lambda m: _GLOBAL_SCALE.__setitem__(0, 3.0), lambda m: _GLOBAL_SCALE.__setitem__(0, 1.0)),
    ],
    ids=["dict changed in place", "global"],
)
def test_a_change_the_key_misses_fails_the_check_and_is_traced_again(traces, change, undo):
    m, x = _model()
    m.use_global = True
    try:
        ns.from_torch(m, x)
        change(m)
        G = ns.from_torch(m, x)  # the replayed trace is stale: its check fails, then fresh
        assert len(traces) >= 2
        with torch.no_grad():
            torch.testing.assert_close(ns.to_torch(G)(x), m(x), atol=1e-5, rtol=1e-4)
        _same_graph(G, _fresh(m, x))
    finally:
        undo(m)


def test_without_the_check_nothing_is_kept_or_replayed(traces):
    m, x = _model()
    ns.from_torch(m, x, check=False)
    ns.from_torch(m, x, check=False)
    assert traces == [False, False]
    assert m not in ft._FX_TRACES
    ns.from_torch(m, x)
    ns.from_torch(m, x, check=False)  # a kept trace is not used unchecked either
    assert len(traces) == 4


def test_a_kept_trace_does_not_keep_the_model_alive():
    m, x = _model()
    ns.from_torch(m, x)
    assert m in ft._FX_TRACES
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None


def test_folding_a_replayed_trace_is_checked_against_the_model(references):
    m, x = _model()
    m.options["skip"] = False  # the conv then feeds the norm alone: foldable
    ns.from_torch(m, x, fold_batchnorm=True)
    references.clear()
    F = ns.from_torch(m, x, fold_batchnorm=True)
    assert references == [None] and F.spec["folded_batchnorm"] == {"bn": "conv"}


def test_a_forward_set_on_the_instance_is_the_one_exported(traces):
    """fx traces ``type(model).forward``; a forward set on the instance is recorded by a run
    (before, the class's forward was exported and the check compared it with itself)."""
    m, x = _model()
    ns.from_torch(m, x)
    m.forward = lambda x: m.fc(m.conv(x).mean((2, 3)))
    G = ns.from_torch(m, x)
    assert len(traces) == 1 and G.spec.get("specialised")  # a tape: recorded by one run
    assert "bn.weight" not in [b.name for b in G.blocks]
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), m(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(ns.exceptions.UnsupportedModuleError, match="set on the instance"):
        ns.from_torch(m)


# ---------------------------------------------------------------- kept shapes (convert._kept)
@pytest.fixture
def runs(monkeypatch):
    """Count the runs of a trace on the example (True: on the meta device; a dual run,
    which is the trace and its run on the example at once, counts as a real one)."""
    calls: list = []
    real = ft._run_example
    dual = ft.dual_trace

    def counting_dual(*a, **k):
        run = dual(*a, **k)
        calls.append(False)
        return run

    monkeypatch.setattr(ft, "dual_trace", counting_dual)

    def spy(traced, example_input, meta=False):
        calls.append(meta)
        return real(traced, example_input, meta)

    monkeypatch.setattr(ft, "_run_example", spy)
    return calls


def _reproduces(G, m, x) -> None:
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), m(x), atol=1e-5, rtol=1e-4)


def test_a_replay_on_an_example_of_the_same_signature_starts_from_the_kept_shapes(runs):
    m, x = _model()
    ns.from_torch(m, x)
    assert runs == [False]
    y = torch.randn_like(x)
    G = ns.from_torch(m, y)
    assert runs == [False]  # no run of the trace: its kept shapes
    _reproduces(G, m, y)
    _same_graph(G, _fresh(m, y))


def test_an_example_of_another_signature_runs_the_trace(runs):
    m, x = _model()
    ns.from_torch(m, x)
    for y in (torch.randn(3, 2, 5, 5), x.double().float().contiguous().transpose(2, 3)):
        G = ns.from_torch(m, y)
        _reproduces(G, m, y)
    assert runs == [False, False, False]


class _ReadsData(torch.nn.Module):
    """Keeps as many outputs as a number read from the data says (fx fails; the tape records
    the read and guards it): a run whose shapes must not be kept."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x):
        k = 1 if x.sum().item() > 0 else 2
        return self.fc(x)[:, :k]


def test_a_number_read_from_data_keeps_no_shapes(tapes):
    torch.manual_seed(0)
    m = _ReadsData().eval()
    x = torch.ones(4, 3)
    G = ns.from_torch(m, x)
    assert G.spec.get("specialised") and m not in ft._FX_TRACES  # nothing kept to replay
    _reproduces(G, m, x)
    y = -torch.ones(4, 3)  # the same signature, the other branch
    H = ns.from_torch(m, y)
    assert len(tapes) == 2
    _reproduces(H, m, y)


class _ShapeChecked(torch.nn.Module):
    """fx cannot trace the size check (a branch on a size); the tape records one run."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(4, 3)
        self.options = {"use_b": False}  # a dict: changed in place, the key does not see it

    def forward(self, x):
        if x.shape[1] != self.a.in_features:
            raise ValueError("wrong width")
        return torch.relu(self.b(x) if self.options["use_b"] else self.a(x))


@pytest.fixture
def tapes(monkeypatch):
    """Count tape recordings."""
    from netstruct.convert import _tape

    calls: list = []
    real = _tape.tape_trace

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(_tape, "tape_trace", spy)
    return calls


def test_a_tape_is_replayed_for_its_own_signature_only(tapes):
    torch.manual_seed(0)
    m, x = _ShapeChecked().eval(), torch.randn(2, 4)
    G = ns.from_torch(m, x)
    assert G.spec.get("specialised") and len(tapes) == 1
    y = torch.randn(2, 4)
    H = ns.from_torch(m, y)
    assert len(tapes) == 1  # replayed, checked against the model's forward on y
    _reproduces(H, m, y)
    z = torch.randn(5, 4)
    _reproduces(ns.from_torch(m, z), m, z)
    assert len(tapes) == 2  # another signature: recorded again


def test_a_stale_tape_fails_its_check_and_is_recorded_again(tapes):
    torch.manual_seed(0)
    m, x = _ShapeChecked().eval(), torch.randn(2, 4)
    ns.from_torch(m, x)
    m.options["use_b"] = True
    G = ns.from_torch(m, x)
    assert len(tapes) == 2
    assert "b.weight" in [b.name for b in G.blocks] and "a.weight" not in [b.name for b in G.blocks]
    _reproduces(G, m, x)


def test_forget_traces_makes_the_next_export_a_first_one(traces, tapes):
    m, x = _model()
    ns.from_torch(m, x)
    ft.forget_traces(m)
    ns.from_torch(m, x)
    assert len(traces) == 2
    t = _ShapeChecked().eval()
    ns.from_torch(t, torch.randn(2, 4))
    ft.forget_traces(t)
    ns.from_torch(t, torch.randn(2, 4))
    # recorded afresh: the dual run stops where fx would fail, and a tape records the model
    assert len(tapes) == 2 and len(traces) == 2


# ------------------------------------------------ shared structural analyses (graphs._derived)
class _Residual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(2, 6, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(6)
        self.conv2 = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(h + self.conv2(h))
        return self.fc(h.mean((2, 3)))


def test_exports_from_kept_shapes_share_their_structural_analyses():
    from netstruct.graphs._derived import structural

    torch.manual_seed(0)
    m, x = _Residual().eval(), torch.randn(2, 2, 5, 5)
    G = ns.from_torch(m, x)
    with torch.no_grad():
        m.conv2.weight.mul_(-0.5)  # new weights, same structure
    H = ns.from_torch(m, torch.randn_like(x))
    assert structural(H) is structural(G)
    ft.forget_traces(m)
    F = ns.from_torch(m, x)  # the oracle: a first export, analysed on its own
    assert structural(F) is not structural(G)
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(ns.structured_groups(H), ns.structured_groups(F))
    plan_h = ns.structured_prune(H, amount=0.5)
    plan_f = ns.structured_prune(F, amount=0.5)
    assert plan_h.steps[0].units == plan_f.steps[0].units
    masked = plan_h.apply(H)
    assert structural(masked) is not structural(H)  # another structure: its own analyses
    np.testing.assert_array_equal(
        ns.graph_params(plan_h.apply(H, shrink=True)), ns.graph_params(plan_f.apply(F, shrink=True))
    )


def test_another_signature_does_not_share_the_structural_analyses():
    from netstruct.graphs._derived import structural

    m, x = _model()
    G = ns.from_torch(m, x)
    H = ns.from_torch(m, torch.randn(3, 2, 5, 5))
    assert structural(H) is not structural(G)


def test_a_sequential_chain_shares_its_structural_analyses_with_its_next_export():
    from netstruct.graphs._derived import structural

    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.ReLU(),
        torch.nn.Linear(8, 2),
    ).eval()  # fmt: skip
    x = torch.randn(3, 4)
    G = ns.from_torch(m, x)
    with torch.no_grad():
        m[2].weight.mul_(-1.0)
    H = ns.from_torch(m, torch.randn(3, 4))
    assert structural(H) is structural(G)
    assert structural(ns.from_torch(m, torch.randn(5, 4))) is not structural(G)  # signature
    m[1] = torch.nn.Tanh()  # another module tree: analysed afresh
    T = ns.from_torch(m, x)
    assert structural(T) is not structural(G)
    ft.forget_traces(m)
    F = ns.from_torch(m, x)
    assert structural(F) is not structural(T)
    assert ns.structured_prune(T, amount=0.5).steps[0].units == (
        ns.structured_prune(F, amount=0.5).steps[0].units
    )


def test_meta_shapes_keeps_sizes_and_tensor_structures_and_refuses_data():
    import collections

    from netstruct.convert._kept import meta_shapes

    g = torch.fx.Graph()
    x = g.placeholder("x")
    n = g.call_function(len, (x,))
    shape = g.call_function(getattr, (x, "shape"))
    twice = g.call_function(operator.mul, (n, 2))
    best = g.call_function(torch.max, (x, 1))
    pair = g.call_module("m", (x,))
    x_val = torch.randn(3, 4)
    Pair = collections.namedtuple("Pair", "a b")
    values = {
        x: x_val, n: 3, shape: x_val.shape, twice: 6, best: torch.max(x_val, 1),
        pair: Pair(x_val, x_val[:1]),
    }  # fmt: skip
    out = meta_shapes(g, values)
    assert out is not None
    assert (out[n], out[shape], out[twice]) == (3, torch.Size([3, 4]), 6)
    assert type(out[best]) is type(values[best]) and out[best].values.is_meta
    assert isinstance(out[pair], Pair) and out[pair].b.shape == (1, 4) and out[pair].a.is_meta
    total = g.call_method("sum", (x,))
    read = g.call_function(float, (total,))  # a number read from the data
    assert meta_shapes(g, {**values, total: x_val.sum(), read: float(x_val.sum())}) is None
    mixed = g.call_module("k", (x,))  # a module returning a tensor and a number
    assert meta_shapes(g, {**values, mixed: (x_val, 1.5)}) is None

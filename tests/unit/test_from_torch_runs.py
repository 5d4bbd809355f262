"""Export's example runs: a meta-device run, a tape's own run and the real run give one graph.

``from_torch`` reads shapes off one run of the model on ``example_input``. Big models run on
the meta device (no arithmetic), a tape trace reuses the run it recorded, small models run
for real; the graph must not depend on which (the slow, obvious reference is the real run).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert import from_torch as ft

pytestmark = pytest.mark.torch


class _Res(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        h = h + self.conv2(h)
        return self.fc(torch.nn.functional.max_pool2d(h, 2).flatten(1))


class _Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = torch.nn.Embedding(11, 8)
        layer = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, dropout=0.0)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, t):
        return self.head(self.enc(self.tok(t))[:, 0])


class _Pick(torch.nn.Module):
    """Indexes by its second input: the shape operation reads that tensor's data."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 6)
        self.out = torch.nn.Linear(3, 2)

    def forward(self, x, idx):
        return self.out(torch.relu(self.lin(x))[:, idx])


class _Rnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(3, 5, batch_first=True)
        self.fc = torch.nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def _cases():
    torch.manual_seed(0)
    seq = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2)
    )
    return [
        ("sequential", seq, torch.randn(2, 1, 6, 6)),
        ("residual cnn", _Res(), torch.randn(2, 2, 6, 6)),
        ("encoder", _Encoder(), torch.randint(0, 11, (2, 5))),
        ("pick by index", _Pick(), (torch.randn(3, 4), torch.tensor([0, 2, 5]))),
        ("lstm", _Rnn(), torch.randn(2, 4, 3)),
    ]


def _same_graph(G, H) -> None:
    assert json.dumps(G.spec, sort_keys=True) == json.dumps(H.spec, sort_keys=True)
    assert G.n_nodes == H.n_nodes
    for col in ns.graphs.signed.NODE_COLUMNS:
        np.testing.assert_array_equal(G.node_column(col), H.node_column(col))
    assert [b.name for b in G.blocks] == [b.name for b in H.blocks]
    for a, b in zip(G.blocks, H.blocks):
        assert (a.kind, a.shape, a.module, a.param) == (b.kind, b.shape, b.module, b.param)
        np.testing.assert_array_equal(a.sources, b.sources)
        np.testing.assert_array_equal(a.targets, b.targets)
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert G.provenance["structure"] == H.provenance["structure"]


@pytest.mark.parametrize("name, model, x", _cases(), ids=[c[0] for c in _cases()])
def test_meta_run_gives_the_real_runs_graph(monkeypatch, name, model, x):
    model.eval()
    monkeypatch.setattr(ft, "META_RUN_PARAMS", 10**18)  # always the real run
    real = ns.from_torch(model, x)
    monkeypatch.setattr(ft, "META_RUN_PARAMS", 0)  # always the meta run (real where needed)
    meta = ns.from_torch(model, x)
    _same_graph(real, meta)
    args = x if isinstance(x, tuple) else (x,)
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(meta)(*args), model(*args), atol=1e-5, rtol=1e-4)


def test_meta_run_asks_for_the_real_run_only_when_data_is_read(monkeypatch):
    monkeypatch.setattr(ft, "META_RUN_PARAMS", 0)
    calls = []
    run = ft._run_example

    def spy(traced, example_input, meta=False):
        calls.append(meta)
        return run(traced, example_input, meta=meta)

    monkeypatch.setattr(ft, "_run_example", spy)
    ns.from_torch(_Res().eval(), torch.randn(2, 2, 6, 6), check=False)
    assert calls == [True]
    calls.clear()
    ns.from_torch(_Pick().eval(), (torch.randn(3, 4), torch.tensor([0, 2, 5])), check=False)
    assert calls == [True, False]


def test_a_tape_trace_reuses_its_run_and_matches_a_second_run():
    """The tape's recorded values have the shapes a fresh run of the tape gives."""
    from netstruct.convert.handlers import get_handler

    class Branchy(torch.nn.Module):  # fx cannot trace a branch on a size
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.b = torch.nn.Linear(4, 2)

        def forward(self, x):
            h = self.a(x)
            if h.shape[0] > 1:
                h = h + x
            return self.b(torch.tanh(h))

    torch.manual_seed(3)
    m, x = Branchy().eval(), torch.randn(3, 4)
    traced = ft._tape(m, x)
    assert traced.kept is not None and get_handler(m) is None
    again = ft._run_example(traced, x)
    kept = traced.kept["values"]
    for n in traced.graph.nodes:
        if n.op == "output":
            continue
        a, b = kept[n], again[n]
        if isinstance(a, torch.Tensor):
            assert a.shape == b.shape and a.dtype == b.dtype
            torch.testing.assert_close(a, b)
    with torch.no_grad():
        torch.testing.assert_close(traced.kept["output"], m(x))
    G = ns.from_torch(m, x)  # the check compares with the kept output
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), m(x), atol=1e-5, rtol=1e-4)


def test_the_check_still_catches_a_forward_the_graph_does_not_record():
    class Sneaky(torch.nn.Sequential):  # a Sequential whose forward is not the stock one
        def forward(self, x):
            return super().forward(x) * 2

    m = Sneaky(torch.nn.Linear(3, 2)).eval()
    with pytest.raises(ns.exceptions.GraphError, match="does not reproduce"):
        ns.from_torch(m, torch.randn(4, 3))


class _Asks(_Res):
    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        if isinstance(h, torch.Tensor):  # False for a trace's stand-in: another branch there
            h = h + self.conv2(h)
        return self.fc(torch.nn.functional.max_pool2d(h, 2).flatten(1))


def _spy_check(monkeypatch) -> list:
    calls = []
    real = ft._check_roundtrip

    def spy(model, G, example_input, reference=None):
        calls.append(reference)
        return real(model, G, example_input, reference)

    monkeypatch.setattr(ft, "_check_roundtrip", spy)
    return calls


def test_a_trace_whose_forward_asks_what_its_values_are_is_checked_against_the_model(
    monkeypatch,
):
    """A trace's forward saw stand-ins (``isinstance(x, torch.Tensor)`` is False there), so
    the run of its operations is no reference: the check runs the model itself, sees the
    other branch, and the tape records what the model does."""
    torch.manual_seed(5)
    m, x = _Asks().eval(), torch.randn(2, 2, 6, 6)
    calls = _spy_check(monkeypatch)
    G = ns.from_torch(m, x)
    assert calls[0] is None  # the dual run's output is not the model's
    assert "specialised" in G.spec  # the trace took the other branch: a tape instead
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), m(x))


def test_a_plain_forward_s_dual_run_is_the_reference(monkeypatch):
    """A forward that asks nothing about its values (read off its bytecode, see
    ``_faithful``) computed the model's output in the dual run: the check compares with it
    and does not run the model again."""
    torch.manual_seed(5)
    m, x = _Res().eval(), torch.randn(2, 2, 6, 6)
    calls = _spy_check(monkeypatch)
    runs = []
    conv_forward = torch.nn.Conv2d.forward
    monkeypatch.setattr(
        torch.nn.Conv2d, "forward", lambda self, t: runs.append(self) or conv_forward(self, t)
    )
    G = ns.from_torch(m, x)
    assert "specialised" not in G.spec and calls[0] is not None
    with torch.no_grad():
        torch.testing.assert_close(calls[0], m(x))  # the reference is the model's output
    own = [r for r in runs if r is m.conv]
    assert len(own) == 2  # the dual run and m(x) above: the check did not run the model


class _TrainOnly(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 2)

    def forward(self, x):
        y = self.a(x)
        return torch.tanh(y) if self.training else y  # fx freezes the trace mode's branch


def test_a_training_mode_model_is_traced_as_its_eval_mode_run():
    """fx would freeze the training branch; the dual tracer runs the model in eval mode, the
    mode the check compares in, and gives every module its own mode back."""
    x = torch.randn(4, 3)
    trained = _TrainOnly().train()
    trained.a.eval()  # a submodule's own mode, kept
    G = ns.from_torch(trained, x)
    assert "specialised" not in G.spec  # a trace, not a tape
    assert trained.training and not trained.a.training
    with torch.no_grad(), ft.eval_mode(trained):
        torch.testing.assert_close(ns.to_torch(G)(x), trained(x))
    res = _Res().train()
    stats = [b.clone() for b in res.bn.buffers()]
    ns.from_torch(res, torch.randn(2, 2, 6, 6))
    assert all(torch.equal(a, b) for a, b in zip(stats, res.bn.buffers()))  # no update


def test_where_a_trace_differs_from_the_model_s_run_the_tape_records_the_run(monkeypatch):
    """A trace does not see a forward hook on the root, and torch.fx's trace of a
    training-mode model freezes the training branch: the check compares with a real
    (eval-mode) run, sees the difference, and the tape records what the model does (the
    hook's ``+ 1`` too)."""
    x = torch.randn(4, 3)
    m = _TrainOnly().eval()
    m.register_forward_hook(lambda mod, args, out: out + 1)
    G = ns.from_torch(m, x)
    assert "specialised" in G.spec
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(x), m(x))
    monkeypatch.setattr(ft, "_dual", lambda *a: None)  # torch.fx's trace, in training mode
    trained = _TrainOnly().train()
    G = ns.from_torch(trained, x)
    assert "specialised" in G.spec and trained.training  # taped, the mode left as it was
    with torch.no_grad(), ft.eval_mode(trained):
        torch.testing.assert_close(ns.to_torch(G)(x), trained(x))
    assert "specialised" not in ns.from_torch(_TrainOnly().eval(), x).spec  # eval: fx's trace


def test_rebuilding_draws_nothing_from_torchs_random_generator():
    """Small layers are built with their initialiser run; the random state is restored."""
    torch.manual_seed(0)
    models = [
        (_Res().eval(), torch.randn(2, 2, 6, 6)),
        (_Encoder().eval(), torch.randint(0, 11, (2, 5))),
    ]
    for model, x in models:
        G = ns.from_torch(model, x)
        before = torch.get_rng_state()
        rebuilt = ns.to_torch(G)
        assert torch.equal(before, torch.get_rng_state())
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), model(x), atol=1e-5, rtol=1e-4)
        assert rebuilt.state_dict().keys() == model.state_dict().keys()


class _DataDependent(torch.nn.Module):
    """fx cannot trace the branch on a value: the tape tracer records the run."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(3, 4)
        self.drop = torch.nn.Dropout(0.5)
        self.b = torch.nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.a(x))
        if float(h.sum()) > -1.0:
            h = self.drop(h)
        return self.b(h)


@pytest.mark.parametrize("factory", ["sequential", "data_dependent"])
@pytest.mark.parametrize("root_training", [False, True])
def test_export_gives_every_submodule_its_own_mode_back(factory, root_training):
    """Mixed modes (a dropout left on in an eval model, a frozen layer in a training one)
    survive the export's eval-mode runs exactly; they used to take the root's mode."""
    torch.manual_seed(0)
    if factory == "sequential":
        model = torch.nn.Sequential(
            torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2)
        )
        odd = model[2]
    else:
        model = _DataDependent()
        odd = model.drop
    model.train(root_training)
    odd.train(not root_training)
    before = {name: m.training for name, m in model.named_modules()}
    ns.from_torch(model, torch.randn(5, 3))
    assert {name: m.training for name, m in model.named_modules()} == before

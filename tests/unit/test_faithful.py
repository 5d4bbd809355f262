"""``faithful_run``: when a dual run's output is provably the model's own (bytecode proof).

Every refusal below is a forward whose run on dual values may differ from its run on
tensors (or whose code the proof cannot see); every acceptance a forward that treats both
alike. The end-to-end oracle: wherever the proof says yes, the dual run's output equals
``model(x)`` exactly, and the export reproduces the model.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import netstruct as ns
from netstruct.convert import from_torch as ft
from netstruct.convert._dual import dual_trace, is_leaf
from netstruct.convert._faithful import faithful_run
from netstruct.convert.attention import traced_through

pytestmark = pytest.mark.torch

SCALE = 0.5
LOOKUP = {"a": 1}


def _helper(x):
    return x * 2


class _Base(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
        self.seq = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
        self.width = 4
        self.register_buffer("shift", torch.ones(4))

    def forward(self, x):
        return self.a(x)


# -- forwards the proof accepts ----------------------------------------------------------------
class Plain(_Base):
    def forward(self, x):
        h = torch.relu(self.a(x)) + F.gelu(self.b(x)) * SCALE
        for blk in self.blocks:
            h = h + blk(h)
        return (self.seq(h).flatten(1) + self.shift) * math.pi / self.width


class Helper(_Base):
    def mix(self, x):
        return self.a(x) - self.b(x)

    def forward(self, x):
        return self.mix(x).view(x.shape[0], -1)


class TwoInputs(_Base):
    def forward(self, x, y):
        return self.a(x) * torch.sigmoid(self.b(y))


class Stores(_Base):
    def forward(self, x):
        self.last_width = self.width  # state written the same in both runs
        return self.a(x)


class ChecksNone(_Base):
    def forward(self, x):
        h = self.a(x)
        return h if self.width is None else self.b(h)


ACCEPTED = [Plain, Helper, Stores, ChecksNone]


# -- forwards it refuses -----------------------------------------------------------------------
class AsksIsinstance(_Base):
    def forward(self, x):
        return self.a(x) if isinstance(x, torch.Tensor) else self.b(x)


class AsksType(_Base):
    def forward(self, x):
        return self.a(x) if type(x) is torch.Tensor else self.b(x)


class AsksHasattr(_Base):
    def forward(self, x):
        return self.a(x) if hasattr(x, "grad_fn") else self.b(x)


class AsksIsTensor(_Base):
    def forward(self, x):
        return self.a(x) if torch.is_tensor(x) else self.b(x)


class AsksTracing(_Base):
    def forward(self, x):
        return self.b(x) if torch.fx._symbolic_trace.is_fx_tracing() else self.a(x)


class Catches(_Base):
    def forward(self, x):
        try:
            return self.a(x)
        except Exception:  # noqa: BLE001 - a dual's error caught here would change the path
            return self.b(x)


class WithBlock(_Base):
    def forward(self, x):
        with torch.no_grad():
            return self.a(x)


class Super(_Base):
    def forward(self, x):
        return super().forward(x) + self.b(x)


class CallsHelper(_Base):
    def forward(self, x):
        return _helper(self.a(x))


class PassesSelf(_Base):
    def forward(self, x):
        return _Base.forward(self, x)


class AliasesSelf(_Base):
    def forward(self, x):
        me = self
        return me.a(x)


class CallsSubmoduleMethod(_Base):
    def forward(self, x):
        return self.a.forward(x)


class Imports(_Base):
    def forward(self, x):
        import operator

        return operator.add(self.a(x), x)


class ReadsGlobalObject(_Base):
    def forward(self, x):
        return self.a(x) * LOOKUP["a"]


class Defaulted(_Base):
    def forward(self, x, mask=None):
        return self.a(x) if mask is None else self.b(x)


class Decorated(_Base):
    @torch.no_grad()
    def forward(self, x):
        return self.a(x)


class Generator(_Base):
    def forward(self, x):
        return sum(layer(x) for layer in (self.a, self.b))


class ComparesIdentity(_Base):
    def forward(self, x):
        y = x.float()  # the same tensor in a real run, another dual value in the trace
        return self.a(x) if y is x else self.b(x)


REFUSED = [
    ComparesIdentity,
    AsksIsinstance,
    AsksType,
    AsksHasattr,
    AsksIsTensor,
    AsksTracing,
    Catches,
    WithBlock,
    Super,
    CallsHelper,
    PassesSelf,
    AliasesSelf,
    CallsSubmoduleMethod,
    Imports,
    ReadsGlobalObject,
    Defaulted,
    Decorated,
    Generator,
]


def _leaf(m):
    return is_leaf(m, traced_through())


def _inputs(cls):
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    return (x, torch.randn(3, 4)) if cls is TwoInputs else (x,)


@pytest.mark.parametrize("cls", ACCEPTED + [TwoInputs], ids=lambda c: c.__name__)
def test_accepted_forwards_give_the_model_s_output_in_the_dual_run(cls):
    torch.manual_seed(1)
    m = cls().eval()
    inputs = _inputs(cls)
    assert faithful_run(m, inputs, _leaf)
    run = dual_trace(m, inputs if len(inputs) > 1 else inputs[0], traced_through(), None)
    with torch.no_grad():
        assert torch.equal(run.output, m(*inputs))  # the oracle: the model's own run


@pytest.mark.parametrize("cls", REFUSED, ids=lambda c: c.__name__)
def test_forwards_that_may_see_a_stand_in_differently_are_refused(cls):
    m = cls().eval()
    assert not faithful_run(m, _inputs(cls), _leaf)


def test_a_class_defined_in_a_function_reads_torch_from_its_closure():
    def make():
        import torch as t

        class Local(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = t.nn.Linear(4, 4)

            def forward(self, x):
                return t.relu(self.a(x))

        return Local().eval()

    assert faithful_run(make(), (torch.randn(2, 4),), _leaf)


def test_a_closure_over_a_user_function_is_refused():
    def make():
        def helper(x):
            return x if isinstance(x, torch.Tensor) else -x

        class Local(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.a = torch.nn.Linear(4, 4)

            def forward(self, x):
                return helper(self.a(x))

        return Local().eval()

    assert not faithful_run(make(), (torch.randn(2, 4),), _leaf)


class _Custom(torch.nn.Module):
    """A user layer (not torch's): traced through, its forward read too."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.w(x) if isinstance(x, torch.Tensor) else x


class _Holds(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = _Custom()

    def forward(self, x):
        return self.inner(x)


def test_a_traced_through_submodule_s_forward_is_read_too():
    assert not faithful_run(_Holds().eval(), (torch.randn(2, 4),), _leaf)


def test_a_registered_user_leaf_is_refused():
    """A registered layer runs on real tensors, but its own code may read torch.fx's flag."""
    m = _Holds().eval()
    assert not faithful_run(m, (torch.randn(2, 4),), lambda mod: mod is m.inner or _leaf(mod))


@pytest.mark.parametrize("cls", ACCEPTED + REFUSED, ids=lambda c: c.__name__)
def test_every_export_reproduces_the_model(cls):
    """Accepted or not, the export's check makes the graph the model's: the proof only
    decides which run the rebuilt module is compared with."""
    torch.manual_seed(2)
    m = cls().eval()
    inputs = _inputs(cls)
    x = inputs if len(inputs) > 1 else inputs[0]
    try:
        G = ns.from_torch(m, x)
    except ns.exceptions.UnsupportedModuleError:
        return  # not exportable (e.g. a Python loop over values): nothing to compare
    with torch.no_grad():
        torch.testing.assert_close(ns.to_torch(G)(*inputs), m(*inputs), atol=1e-5, rtol=1e-4)


def test_the_proof_is_read_once_per_code_object():
    ft.forget_traces  # noqa: B018 - the module is loaded
    from netstruct.convert import _faithful

    m = Plain().eval()
    before = _faithful._read_code.cache_info().hits
    faithful_run(m, (torch.randn(2, 4),), _leaf)
    faithful_run(m, (torch.randn(2, 4),), _leaf)
    assert _faithful._read_code.cache_info().hits > before

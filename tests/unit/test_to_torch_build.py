"""``to_torch`` builds layers without initialising them (issue 16 item 3).

``nn.Linear`` layers are built directly from the graph's arrays (one copy, no ``__init__``),
guarded by a once-per-process check that the result looks exactly like a real ``nn.Linear``;
when the check fails the handler falls back to ``skip_init`` + copy. Both routes must give
the same module.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct.convert import handlers  # noqa: E402


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3, bias=False)
    ).eval()


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "skip_init fallback"])
def test_rebuilt_linears_equal_real_ones(direct, monkeypatch):
    monkeypatch.setattr(handlers, "_DIRECT_LINEAR_OK", [direct])
    model = _model()
    rebuilt = ns.to_torch(ns.from_torch(model))
    for real, got in zip(model, rebuilt):
        assert type(got) is type(real) and repr(got) == repr(real)
        assert vars(got).keys() == vars(real).keys()
    sd = rebuilt.state_dict()
    assert sd.keys() == model.state_dict().keys()
    assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad and p.dtype == torch.float32 for p in rebuilt.parameters())
    x = torch.randn(4, 6)
    assert torch.equal(rebuilt(x), model(x))


def test_direct_linear_matches_this_torch():
    assert handlers._direct_linear_matches_torch()


def test_rebuilt_parameters_do_not_share_memory_with_the_graph():
    G = ns.from_torch(_model())
    rebuilt = ns.to_torch(G)
    with torch.no_grad():
        rebuilt[0].weight.add_(1.0)
    assert torch.equal(ns.to_torch(G)[0].weight, _model()[0].weight)


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "skip_init fallback"])
def test_a_bias_of_the_wrong_length_is_refused(direct, monkeypatch):
    monkeypatch.setattr(handlers, "_DIRECT_LINEAR_OK", [direct])
    lin = handlers.handler_for_name("Linear")
    w = torch.zeros(3, 4).numpy()
    with pytest.raises(ns.GraphError, match="'bias'"):
        lin.build({"bias": True}, {"weight": w, "bias": torch.zeros(5).numpy()})


@pytest.mark.parametrize(
    ("cls", "args", "kwargs"),
    [
        (torch.nn.Conv2d, (3, 8, 3), {"padding": 1, "bias": False}),
        (torch.nn.Conv2d, (3, 8, (3, 1)), {"padding": [1, 0], "stride": [2, 1]}),
        (torch.nn.ConvTranspose1d, (4, 2, 3), {"stride": 2}),
        (torch.nn.Linear, (5, 7), {"dtype": torch.float64}),
        (torch.nn.BatchNorm2d, (6,), {"momentum": 0.2}),
        (torch.nn.GroupNorm, (2, 6), {"affine": False}),
        (torch.nn.Embedding, (11, 4), {"padding_idx": 0}),
    ],
)
def test_cloned_layers_are_independent_and_shaped_as_built(cls, args, kwargs):
    """Small torch layers are cloned from a meta prototype instead of built: same class,
    attributes, tensor names, shapes and dtypes as ``cls(*args, **kwargs)``, nothing shared
    between two clones (tensors, parameter/buffer/hook dictionaries)."""
    from netstruct.convert.layers import _quiet_build

    plain = cls(*args, **kwargs)
    a = _quiet_build(cls, *args, numel=1, **kwargs)
    b = _quiet_build(cls, *args, numel=1, **kwargs)
    assert type(a) is cls and repr(a) == repr(plain)
    want = {k: (v.shape, v.dtype) for k, v in plain.state_dict().items()}
    assert {k: (v.shape, v.dtype) for k, v in a.state_dict().items()} == want
    assert [n for n, p in a.named_parameters() if p.requires_grad] == [
        n for n, _ in plain.named_parameters()
    ]
    for (_, ta), (_, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ta.data_ptr() != tb.data_ptr() or ta.numel() == 0
    assert a._parameters is not b._parameters and a._buffers is not b._buffers
    a.register_forward_hook(lambda *_: None)
    assert not b._forward_hooks
    a.eval()
    assert b.training


def test_a_conv_config_with_lists_is_cloned_not_built(monkeypatch):
    """A conv handler's config holds padding and stride as lists (JSON): the prototype cache
    still serves it (no ``__init__`` run), and the clone matches the plain build."""
    from netstruct.convert.layers import _quiet_build

    kwargs = {"padding": [1, 1], "stride": [1, 2], "dilation": [1, 1], "groups": 1}
    first = _quiet_build(torch.nn.Conv2d, 4, 6, (3, 3), numel=1, **kwargs)
    calls = []
    init = torch.nn.Conv2d.__init__
    monkeypatch.setattr(
        torch.nn.Conv2d, "__init__", lambda self, *a, **k: calls.append(1) or init(self, *a, **k)
    )
    again = _quiet_build(torch.nn.Conv2d, 4, 6, (3, 3), numel=1, **kwargs)
    assert not calls
    monkeypatch.undo()
    assert repr(again) == repr(first) == repr(torch.nn.Conv2d(4, 6, (3, 3), **kwargs))
    assert again.stride == (1, 2) and again.padding == (1, 1)


def test_placed_containers_are_independent_modules_in_eval_mode():
    """Containers cloned from one prototype own their tables; the flags ``set_eval`` sets are
    those ``model.eval()`` sets; a name torch refuses is refused as ``add_module`` does."""
    from netstruct.convert.rebuilt import set_eval, set_submodule

    root_a, root_b = torch.nn.Module(), torch.nn.Module()
    set_submodule(root_a, "x.y.lin", torch.nn.Linear(2, 2), torch.nn.Module)
    set_submodule(root_b, "x.z.lin", torch.nn.Linear(2, 3), torch.nn.Module)
    assert list(root_a.state_dict()) == ["x.y.lin.weight", "x.y.lin.bias"]
    assert list(root_b.state_dict()) == ["x.z.lin.weight", "x.z.lin.bias"]
    assert root_a.x is not root_b.x and "z" not in root_a.x._modules
    root_a.x.register_forward_hook(lambda *a: None)
    assert not root_b.x._forward_hooks  # hook tables are each container's own
    set_eval(root_a)
    assert not any(m.training for m in root_a.modules())
    assert all(m.training for m in root_b.modules())
    root_a.register_buffer("taken", torch.zeros(1))
    with pytest.raises(KeyError, match="attribute 'taken' already exists"):
        set_submodule(root_a, "taken", torch.nn.ReLU(), torch.nn.Module)

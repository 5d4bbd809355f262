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

"""``to_torch`` rebuild time against ``skip_init`` + ``load_state_dict`` (issue 16 item 3).

The peer is what a torch user writes to rebuild a model from weights they already hold: every
layer built with ``torch.nn.utils.skip_init`` (no random initialisation), then
``load_state_dict`` from a state dict of tensors. netstruct starts from the graph (numpy
arrays, unchanged wiring) and returns the same model in eval mode. One torch thread, the same
models in the same run: an MLP 784-512-256-10 and an LSTM(64, 128, 2 layers) + Linear head.

Run with ``python -m pytest benchmarks/bench_to_torch.py --benchmark-only -q``.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import skip_init

import netstruct as ns


class LSTMHead(torch.nn.Module):
    def __init__(self, build=lambda cls, *a, **k: cls(*a, **k)):
        super().__init__()
        self.lstm = build(torch.nn.LSTM, 64, 128, num_layers=2, batch_first=True)
        self.head = build(torch.nn.Linear, 128, 10)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


def mlp(build=lambda cls, *a, **k: cls(*a, **k)) -> torch.nn.Module:
    return torch.nn.Sequential(
        build(torch.nn.Linear, 784, 512),
        torch.nn.ReLU(),
        build(torch.nn.Linear, 512, 256),
        torch.nn.ReLU(),
        build(torch.nn.Linear, 256, 10),
    )


MODELS = {
    "mlp": (mlp, None),
    "lstm": (LSTMHead, torch.zeros(2, 5, 64)),
}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    factory, example = MODELS[request.param]
    torch.manual_seed(0)
    model = factory().eval()
    G = ns.from_torch(model, example)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rebuilt = ns.to_torch(G)
    assert all(torch.equal(rebuilt.state_dict()[k], v) for k, v in state.items())
    return request.param, factory, G, state


def _no_init(cls, *args, **kwargs):
    """``skip_init``; recurrent layers (no ``device`` in their signature) the same way by hand."""
    if issubclass(cls, torch.nn.RNNBase):
        return cls(*args, device="meta", **kwargs).to_empty(device="cpu")
    return skip_init(cls, *args, **kwargs)


def _peer(factory, state):
    model = factory(_no_init)
    model.load_state_dict(state)
    return model.eval()


def test_to_torch_netstruct(benchmark, case):
    name, _, G, _ = case
    benchmark.group = f"to_torch {name}"
    benchmark.pedantic(ns.to_torch, args=(G,), rounds=200, warmup_rounds=5)


def test_skip_init_load_state_dict(benchmark, case):
    name, factory, _, state = case
    benchmark.group = f"to_torch {name}"
    benchmark.pedantic(_peer, args=(factory, state), rounds=200, warmup_rounds=5)

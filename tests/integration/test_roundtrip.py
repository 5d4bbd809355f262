"""to_torch(from_torch(m)) reproduces outputs and state; pruned graphs re-import masked or shrunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from tests.models import FinalState, LastStep, mlp

pytestmark = pytest.mark.torch
TOL = 1e-6


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize(
    "sizes,act,bias",
    [
        ([5, 3], torch.nn.ReLU, True),
        ([6, 4, 3], torch.nn.Tanh, True),
        ([6, 5, 4, 3, 2], torch.nn.GELU, True),
        ([4, 4, 2], torch.nn.Sigmoid, False),
        ([4, 8, 2], torch.nn.LeakyReLU, True),
    ],
)
def test_mlp_roundtrip(sizes, act, bias):
    torch.manual_seed(0)
    m = mlp(sizes, act, bias)
    r = ns.to_torch(ns.from_torch(m))
    assert isinstance(r, torch.nn.Sequential)
    x = torch.randn(16, sizes[0])
    assert (r(x) - m(x)).abs().max() <= TOL
    _same_state(m, r)


def test_nested_sequential_with_flatten_dropout_identity():
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Dropout(0.3),
        torch.nn.Sequential(torch.nn.Linear(12, 5), torch.nn.ELU(), torch.nn.Identity()),
        torch.nn.Linear(5, 2),
        torch.nn.LogSoftmax(dim=1),
    ).eval()
    r = ns.to_torch(ns.from_torch(m))
    x = torch.randn(3, 3, 4)
    assert (r(x) - m(x)).abs().max() <= TOL
    _same_state(m, r)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [True, False])
def test_recurrent_classifier_roundtrip(kind, num_layers, bidirectional, batch_first):
    torch.manual_seed(0)
    m = LastStep(
        kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first
    ).eval()
    G = ns.from_torch(m)
    r = ns.to_torch(G)
    x = torch.randn(4, 6, 5) if batch_first else torch.randn(6, 4, 5)
    assert (r(x) - m(x)).abs().max() <= TOL
    _same_state(m, r)
    n_weights = sum(p.numel() for n, p in m.named_parameters() if "weight" in n)
    assert G.n_edges == n_weights


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_final_state_models_roundtrip(kind):
    torch.manual_seed(0)
    m = FinalState(kind)
    r = ns.to_torch(ns.from_torch(m))
    x = torch.randn(5, 2, 3)
    assert (r(x) - m(x)).abs().max() <= TOL


def test_bare_recurrent_module_roundtrip():
    m = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    r = ns.to_torch(ns.from_torch(m))
    assert type(r) is torch.nn.LSTM
    x = torch.randn(5, 2, 3)
    assert (r(x)[0] - m(x)[0]).abs().max() <= TOL


def test_example_input_check_passes_on_supported_models():
    m = LastStep("LSTM", bidirectional=True)
    G = ns.from_torch(m, torch.randn(2, 4, 5))
    assert G.spec["input_shape"] == [2, 4, 5]


def _prune_random(G, frac, seed):
    rng = np.random.default_rng(seed)
    return G.remove_edges(rng.random(G.n_edges) < frac)


def test_masked_reimport_keeps_zeros_and_prune_masks():
    torch.manual_seed(0)
    m = mlp([6, 5, 3])
    H = _prune_random(ns.from_torch(m), 0.4, 0)
    r = ns.to_torch(H)
    for b in H.blocks:
        w = r.get_submodule(b.module).weight.detach().numpy()
        assert np.all(w[~b.mask] == 0) and np.array_equal(w[b.mask], b.weight[b.mask])
    rp = ns.to_torch(H, prune_masks=True)
    assert hasattr(rp[0], "weight_mask") and torch.equal(
        rp[0].weight_mask.bool(), torch.from_numpy(H.blocks[0].mask.copy())
    )


def test_shrink_mlp_removes_dead_and_inputless_units_exactly():
    torch.manual_seed(0)
    m = mlp([6, 8, 5, 3], torch.nn.ReLU)
    G = ns.from_torch(m)
    e = G.edges()
    dead_in = 6 + 1  # unit 0[1]: no inputs -> folded constant
    dead_out = 6 + 3  # unit 0[3]: no outputs
    H = G.remove_edges(((e.target == dead_in) | (e.source == dead_out)).to_numpy())
    S = ns.shrink(H)
    assert S.provenance["shrink"]["removed_units"] == ["0[1]", "0[3]"]
    assert S.provenance["shrink"]["folded_units"] == ["0[1]"]
    masked, small = ns.to_torch(H), ns.to_torch(H, shrink=True)
    assert small[0].out_features == 6 and small[2].in_features == 6
    x = torch.randn(32, 6)
    assert (masked(x) - small(x)).abs().max() <= 1e-5
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in masked.parameters())


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_shrink_recurrent_layers_physically(kind):
    torch.manual_seed(0)
    m = LastStep(kind, n_in=5, hidden=6, num_layers=2, bidirectional=True)
    G = ns.from_torch(m)
    n = G.nodes()
    unit = n.unit.to_numpy()
    kill = n[(n.kind == "hidden") & (n["index"] < 2)].index.to_numpy()
    e = G.edges()
    drop = np.isin(e.source, kill) & (unit[e.target] != e.source.to_numpy())
    H = G.remove_edges(drop)
    masked, small = ns.to_torch(H), ns.to_torch(H, shrink=True)
    assert small.rnn.hidden_size == 4
    x = torch.randn(3, 7, 5)
    assert (masked(x) - small(x)).abs().max() <= 1e-5


def test_shrink_never_removes_inputs_or_outputs():
    m = mlp([3, 2])
    G = ns.from_torch(m)
    H = G.remove_edges(np.ones(G.n_edges, dtype=bool))
    S = ns.shrink(H)
    assert S.n_nodes == G.n_nodes


def test_tampered_block_shape_is_a_graph_error():
    m = mlp([4, 3, 2])
    G = ns.from_torch(m)
    b = G.blocks[1]
    bad = ns.make_block(
        name=b.name,
        module=b.module,
        param=b.param,
        weight=np.zeros((2, 2)),
        sources=b.sources[:2],
        targets=b.targets,
        bias=b.bias,
        bias_param=b.bias_param,
    )
    T = ns.SignedGraph(G.nodes()[["name", "kind", "group"]], [G.blocks[0], bad], spec=G.spec)
    with pytest.raises(ns.GraphError, match="altered"):
        ns.to_torch(T)


def test_unrolled_graph_cannot_be_reimported():
    U = ns.unroll(ns.from_torch(torch.nn.RNN(2, 2)), 2)
    with pytest.raises(ns.GraphError, match="no architecture spec"):
        ns.to_torch(U)

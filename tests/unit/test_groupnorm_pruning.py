"""GroupNorm channels prune by whole statistics group: coupling, plans, masked == shrunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.exceptions import GraphError
from netstruct.graphs.coupling import coupled_units
from netstruct.pruning.structured import structured_groups, structured_prune

pytestmark = pytest.mark.torch


def _perturb(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial norm parameters (torch initialises them to ones and zeros)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


class GNNet(torch.nn.Module):
    """conv-GN(4 groups of 3)-SiLU, a residual conv-GN stage, conv-GN(1 group) head, mean."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(2, 12, 3, padding=1)
        self.gn0 = torch.nn.GroupNorm(4, 12)
        self.c1 = torch.nn.Conv2d(12, 12, 3, padding=1)
        self.gn1 = torch.nn.GroupNorm(4, 12)
        self.mid = torch.nn.Conv2d(12, 8, 1)
        self.gn2 = torch.nn.GroupNorm(2, 8, affine=False)
        self.head = torch.nn.Conv2d(8, 6, 1)
        self.gn3 = torch.nn.GroupNorm(1, 6)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        h = torch.nn.functional.silu(self.gn0(self.stem(x)))
        h = torch.relu(h + self.gn1(self.c1(h)))
        h = torch.relu(self.gn2(self.mid(h)))
        h = torch.relu(self.gn3(self.head(h)))
        return self.fc(h.mean((2, 3)))


@pytest.fixture(scope="module")
def gn_graph():
    torch.manual_seed(0)
    model = _perturb(GNNet())
    x = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    return model, x, ns.from_torch(model, x)


def _norm_nodes(G, module: str) -> np.ndarray:
    b = next(b for b in G.blocks if b.kind == "norm" and b.module == module)
    return np.asarray(b.sources)


def test_coupling_ties_the_channels_of_one_group(gn_graph):
    _, _, G = gn_graph
    cg = coupled_units(G)
    mid = cg[_norm_nodes(G, "gn2")]  # 8 channels in 2 groups of 4
    assert len(set(mid[:4].tolist())) == 1 and len(set(mid[4:].tolist())) == 1
    assert mid[0] != mid[4]
    head = cg[_norm_nodes(G, "gn3")]  # one group: every channel tied
    assert len(set(head.tolist())) == 1


def test_groups_are_whole_statistics_groups(gn_graph):
    _, _, G = gn_graph
    gs = structured_groups(G)
    by_module = gs.explode("modules").groupby("modules")["group"].nunique()
    # gn0 and gn1 share a residual stage: 4 groups of 3 channels; gn2: 2 groups of 4
    assert by_module["gn0"] == by_module["gn1"] == by_module["stem"] == 4
    assert by_module["gn2"] == by_module["mid"] == 2
    assert "gn3" not in by_module  # one group: its width goes only as a whole, never
    assert "head" not in by_module


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_masked_equals_shrunk(gn_graph, amount):
    model, x, G = gn_graph
    plan = structured_prune(G, amount=amount)
    masked = ns.to_torch(ns.prune(G, plan))
    small = ns.to_torch(ns.prune(G, plan, shrink=True))
    with torch.no_grad():
        assert torch.allclose(masked(x), small(x), atol=1e-5)
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < sum(p.numel() for p in model.parameters())
    for name in ("gn0", "gn1", "gn2"):
        old, new = getattr(model, name), getattr(small, name)
        per = old.num_channels // old.num_groups
        assert new.num_channels == per * new.num_groups  # channels per group kept
        assert new.num_groups >= 1
    assert small.gn3.num_groups == 1 and small.gn3.num_channels == 6


def test_shrunk_groupnorm_saves_and_loads(gn_graph, tmp_path):
    _, x, G = gn_graph
    small = ns.to_torch(ns.prune(G, structured_prune(G, amount=0.5), shrink=True))
    path = tmp_path / "gn_small"
    ns.save_model(small, path, example_input=x)
    back = ns.load_model(path)
    with torch.no_grad():
        assert torch.equal(back(x), small(x))
    assert back.gn2.num_groups == small.gn2.num_groups


def test_one_channel_names_its_whole_group(gn_graph):
    _, _, G = gn_graph
    one = _norm_nodes(G, "gn2")[:1]
    H = ns.shrink(G, units=one)
    small = ns.to_torch(H)
    assert small.gn2.num_groups == 1 and small.gn2.num_channels == 4
    assert small.mid.out_channels == 4


def test_one_group_groupnorm_is_refused_with_a_clear_error(gn_graph):
    _, _, G = gn_graph
    with pytest.raises(GraphError, match="GroupNorm with one group"):
        ns.shrink(G, units=_norm_nodes(G, "gn3")[:1])


def test_statistics_depend_on_whole_groups_only():
    """The reason the rule is exact: a GroupNorm's other groups ignore a removed group."""
    torch.manual_seed(0)
    gn = _perturb(torch.nn.GroupNorm(3, 6))
    x = torch.randn(2, 6, 4, 4)
    keep = torch.tensor([0, 1, 4, 5])  # groups 0 and 2
    small = torch.nn.GroupNorm(2, 4).eval()
    with torch.no_grad():
        small.weight.copy_(gn.weight[keep])
        small.bias.copy_(gn.bias[keep])
        assert torch.allclose(gn(x)[:, keep], small(x[:, keep]), atol=1e-6)


@pytest.mark.parametrize(
    "norm",
    [
        torch.nn.GroupNorm(2, 4, affine=False),
        torch.nn.BatchNorm2d(4, affine=False, track_running_stats=False),
        torch.nn.GroupNorm(4, 4, affine=False),
    ],
    ids=["groupnorm", "batchnorm-no-stats", "groupnorm-per-channel"],
)
def test_norm_without_tensors_saves_and_loads(norm, tmp_path):
    """A norm with no parameters or buffers has no size in its state_dict: the spec keeps it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), norm, torch.nn.ReLU()).eval()
    x = torch.randn(2, 2, 6, 6)
    path = tmp_path / "m"
    ns.save_model(model, path, example_input=x)
    back = ns.load_model(path)
    with torch.no_grad():
        assert torch.allclose(back(x), model(x), atol=1e-6)


def test_layernorm_without_affine_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 5),
        torch.nn.LayerNorm(5, elementwise_affine=False),
        torch.nn.Linear(5, 2),
    ).eval()
    x = torch.randn(4, 3)
    path = tmp_path / "m"
    ns.save_model(model, path)
    with torch.no_grad():
        assert torch.allclose(ns.load_model(path)(x), model(x), atol=1e-6)

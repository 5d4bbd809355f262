"""Torch-Pruning as an oracle: the same channels removed by both tools give the same model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.pruning import PruningPlan

tp = pytest.importorskip("torch_pruning", reason="torch-pruning (dev extra) is the oracle")


def _mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(6, 10),
        torch.nn.ReLU(),
        torch.nn.Linear(10, 8),
        torch.nn.Tanh(),
        torch.nn.Linear(8, 3),
    )


def _cnn():
    m = torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 3),
    )  # fmt: skip
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for bn in (m[1], m[5]):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g))
    return m


# model, input shape, {root module: (torch-pruning function, coupled norm module)}
CASES = {
    "mlp": (
        _mlp,
        (6,),
        {"0": ("prune_linear_out_channels", None), "2": ("prune_linear_out_channels", None)},
    ),
    "cnn": (
        _cnn,
        (2, 8, 8),
        {"0": ("prune_conv_out_channels", "1"), "4": ("prune_conv_out_channels", "5")},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_same_channels_give_same_shapes_and_outputs(case, seed):
    factory, shape, roots = CASES[case]
    torch.manual_seed(seed)
    model = factory().eval()
    x = torch.randn(16, *shape)
    rng = np.random.default_rng(seed)
    removed = {
        root: sorted(
            rng.choice(model.get_submodule(root).weight.shape[0], size=3, replace=False).tolist()
        )
        for root in roots
    }

    theirs = copy.deepcopy(model)
    DG = tp.DependencyGraph().build_dependency(theirs, example_inputs=x[:2])
    for root, (fn, _) in roots.items():
        DG.get_pruning_group(
            theirs.get_submodule(root), getattr(tp, fn), idxs=removed[root]
        ).prune()
    theirs.eval()

    G = ns.from_torch(model, x[:2])
    nodes = G.nodes()
    drop = np.zeros(G.n_nodes, dtype=bool)
    for root, (_, norm) in roots.items():
        for mod in (root, norm):
            if mod is not None:
                drop |= ((nodes.module == mod) & nodes["index"].isin(removed[root])).to_numpy()
    ours = ns.to_torch(PruningPlan.for_graph(G).remove_units(G, drop).apply(G), shrink=True)

    want = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert got == want
    with torch.no_grad():
        np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), atol=1e-5, rtol=0)

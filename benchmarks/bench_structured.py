"""Removing the same units of an MLP: netstruct (shrink + to_torch) against Torch-Pruning.

Run: ``python -m pytest benchmarks/bench_structured.py --benchmark-only``. The conftest prints
netstruct time / peer time per group, by the min and by the median of the rounds.

Both remove the same 256 of 512 units in each hidden layer of a 784-512-512-512-10 MLP and
return a smaller ``nn.Module`` (checked equal in outputs and parameter count below):

* group ``structured-from-graph``: from an exported graph, ``ns.shrink(G, units=mask)`` then
  ``ns.to_torch``, against Torch-Pruning's ``group.prune()`` for the three layers on a model
  whose ``DependencyGraph`` was built beforehand (the model copy and the graph build are in
  the setup, not timed);
* group ``structured-end-to-end``: export included (``ns.from_torch``) against
  ``DependencyGraph().build_dependency`` + prune (the model copy is in the setup);
* ``test_plan_path_netstruct_plan`` (same group as from-graph, for information) goes through
  a replayable :class:`~netstruct.PruningPlan` (``plan.apply(G, shrink=True)``).

Issue 12's goal: at most 2x Torch-Pruning's time. Both run with one torch thread.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tp = pytest.importorskip("torch_pruning", reason="the peer: pip install torch-pruning==1.6.1")

import netstruct as ns  # noqa: E402

# one intra-op thread for both sides: the timings measure the pruning work, not thread pools
# fighting over a shared machine's cores
torch.set_num_threads(1)

WIDTHS = [784, 512, 512, 512, 10]
HIDDEN = (0, 2, 4)  # Sequential indices of the Linear layers whose units go


def _mlp():
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(WIDTHS) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def case():
    model = _mlp()
    x = torch.randn(1, WIDTHS[0])
    rng = np.random.default_rng(0)
    drop = {i: np.sort(rng.choice(512, 256, replace=False)) for i in HIDDEN}
    G = ns.from_torch(model)
    mask = np.zeros(G.n_nodes, dtype=bool)
    for i, idx in drop.items():
        mask[G.block(f"{i}.weight").targets[idx]] = True
    ours = ns.to_torch(ns.shrink(G, units=mask))
    theirs = _tp_prune(*_tp_setup(model, x), drop)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    return model, x, G, mask, drop


def _tp_setup(model, x):
    m = copy.deepcopy(model)
    return m, tp.DependencyGraph().build_dependency(m, example_inputs=x)


def _tp_prune(m, DG, drop):
    for i, idx in drop.items():
        DG.get_pruning_group(m[i], tp.prune_linear_out_channels, idxs=idx.tolist()).prune()
    return m


@pytest.mark.benchmark(group="structured-from-graph")
def test_from_graph_netstruct(benchmark, case):
    _, _, G, mask, _ = case
    benchmark(lambda: ns.to_torch(ns.shrink(G, units=mask)))


@pytest.mark.benchmark(group="structured-from-graph")
def test_from_graph_torch_pruning(benchmark, case):
    model, x, _, _, drop = case
    benchmark.pedantic(
        lambda m, DG: _tp_prune(m, DG, drop),
        setup=lambda: (_tp_setup(model, x), {}),
        rounds=30,
    )


@pytest.mark.benchmark(group="structured-from-graph")
def test_plan_path_netstruct_plan(benchmark, case):
    _, _, G, mask, _ = case

    def run():
        plan = ns.PruningPlan.for_graph(G).remove_units(G, mask)
        return ns.to_torch(plan.apply(G, shrink=True))

    benchmark(run)


@pytest.mark.benchmark(group="structured-end-to-end")
def test_end_to_end_netstruct(benchmark, case):
    model, _, _, _, drop = case

    def run():
        G = ns.from_torch(model)
        mask = np.zeros(G.n_nodes, dtype=bool)
        for i, idx in drop.items():
            mask[G.block(f"{i}.weight").targets[idx]] = True
        return ns.to_torch(ns.shrink(G, units=mask))

    benchmark(run)


@pytest.mark.benchmark(group="structured-end-to-end")
def test_end_to_end_torch_pruning(benchmark, case):
    model, x, _, _, drop = case

    def run(m):
        DG = tp.DependencyGraph().build_dependency(m, example_inputs=x)
        return _tp_prune(m, DG, drop)

    benchmark.pedantic(run, setup=lambda: ((copy.deepcopy(model),), {}), rounds=30)

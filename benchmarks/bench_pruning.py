"""Inference time of a shrunk (query-pruned) MLP against the dense original on CPU batches.

Goal of issue 7: speed-up >= 0.8 x the parameter ratio. The ratio printed by
``benchmarks/conftest.py`` for group ``shrink-inference`` is dense time / shrunk time; compare it
with the parameter ratio printed by ``test_parameter_ratio``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct.pruning import count_params, largest, select_nodes  # noqa: E402

WIDTHS = [784, 1024, 1024, 1024, 10]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    dense = ns.training.mlp(WIDTHS)
    G = ns.from_torch(dense)
    keep = largest("abs(bias)", fraction=0.25, per="group", within="kind == 'hidden'")
    drop = (G.nodes().kind == "hidden").to_numpy() & ~select_nodes(G, keep)
    small = ns.to_torch(ns.prune(G, nodes=drop), shrink=True)
    x = torch.randn(512, WIDTHS[0])
    with torch.no_grad():
        torch.testing.assert_close(
            small(x), ns.to_torch(ns.prune(G, nodes=drop))(x), atol=1e-4, rtol=1e-4
        )
    return dense.eval(), small.eval(), x


def _run(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.benchmark(group="shrink-inference")
def test_inference_netstruct(benchmark, models):
    _, small, x = models
    benchmark(_run, small, x)


@pytest.mark.benchmark(group="shrink-inference")
def test_inference_dense(benchmark, models):
    dense, _, x = models
    benchmark(_run, dense, x)


def test_parameter_ratio(models):
    dense, small, _ = models
    ratio = count_params(dense) / count_params(small)
    print(f"\nparameter ratio dense/shrunk = {ratio:.2f}  (goal: time ratio >= {0.8 * ratio:.2f})")
    assert np.isfinite(ratio) and ratio > 1

"""Batched evaluation of perturbed copies, and a sweep's overhead over its forward passes.

Network: the study's 784-64-2 ReLU MLP (PyTorch init, untrained: timing does not depend on
the values), 2 000 test inputs in [-1, 1] (the size of a Fashion-MNIST class-pair test set).

* group ``probes_eval_K64``: 64 noisy copies (uniform noise, a = 0.05) evaluated by
  :func:`netstruct.probes.evaluate_batch` (one GEMM + one bmm) vs a Python loop of
  ``to_torch`` + ``training.evaluate`` over the same 64 graphs.
* group ``probes_sweep_overhead``: ``sweep`` of the noise probe (4 levels x 16 repeats, full
  precision and binarized = 128 variants) vs the bare forward passes those 128 variants need
  (raw torch GEMM/bmm/argmax on pre-stacked weights, no perturbation, no table). The issue's
  goal is a sweep wall time <= 1.2x the bare passes, i.e. a printed ratio >= 0.83.

Run with ``python -m pytest benchmarks/bench_probes.py --benchmark-only -q``.
"""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.probes import evaluate_batch, perturb, sweep

K = 64
N_TEST = 2000
LEVELS = [0.02, 0.05, 0.1, 0.2]
REPEATS = 16


@pytest.fixture(scope="module")
def graph() -> ns.SignedGraph:
    return ns.from_torch(ns.training.mlp([784, 64, 2], seed=0))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, size=(N_TEST, 784)).astype(np.float32), rng.integers(0, 2, N_TEST)


@pytest.fixture(scope="module")
def stack(graph):
    return perturb(graph, "noise", 0.05, n_samples=K, seed=0)


@pytest.mark.benchmark(group="probes_eval_K64")
def test_batched_eval_netstruct(benchmark, graph, data, stack):
    X, y = data
    acc = benchmark(evaluate_batch, graph, X, y, weights=stack.weights, biases=stack.biases)
    assert acc.shape == (K,)


@pytest.mark.benchmark(group="probes_eval_K64")
def test_loop_to_torch_evaluate(benchmark, graph, data, stack):
    from netstruct.training import evaluate

    X, y = data
    graphs = [stack.graph(k) for k in range(K)]  # graph construction is not timed

    def loop():
        return [evaluate(ns.to_torch(g), X, y) for g in graphs]

    acc = benchmark.pedantic(loop, rounds=3, iterations=1)
    np.testing.assert_allclose(
        acc,
        evaluate_batch(graph, X, y, weights=stack.weights, biases=stack.biases),
        atol=2.0 / N_TEST,
    )


@pytest.mark.benchmark(group="probes_sweep_overhead")
def test_noise_sweep_netstruct(benchmark, graph, data):
    X, y = data
    df = benchmark.pedantic(
        sweep,
        args=(graph, X, y, {"noise": LEVELS}),
        kwargs={"n_repeats": REPEATS},
        rounds=5,
        iterations=1,
    )
    assert len(df) == len(LEVELS) * REPEATS * 2


@pytest.mark.benchmark(group="probes_sweep_overhead")
def test_bare_forward_passes(benchmark, graph, data):
    import torch

    X, y = data
    W1 = torch.from_numpy(
        np.ascontiguousarray(
            np.broadcast_to(graph.blocks[0].weight, (2 * len(LEVELS) * REPEATS, 64, 784))
        )
    )
    b1 = torch.from_numpy(graph.blocks[0].bias.copy())
    W2 = torch.from_numpy(
        np.ascontiguousarray(
            np.broadcast_to(graph.blocks[1].weight, (2 * len(LEVELS) * REPEATS, 2, 64))
        )
    )
    b2 = torch.from_numpy(graph.blocks[1].bias.copy())
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    k = W1.shape[0]

    def forward():
        with torch.no_grad():
            h = torch.relu(
                (Xt @ W1.reshape(k * 64, 784).T).reshape(N_TEST, k, 64).transpose(0, 1) + b1
            )
            out = torch.bmm(h, W2.transpose(1, 2)) + b2
            return (out.argmax(-1) == yt).double().mean(1).numpy()

    acc = benchmark.pedantic(forward, rounds=5, iterations=1)
    assert acc.shape == (k,)

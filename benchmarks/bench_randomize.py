"""Signed swap chain and signed curveball against igraph, NetworKit and networkx (per core).

All runs use the same 784x256 layer (n_in = 784 inputs, n_out = 256 outputs) at 10 % density
with random signs. The references are unsigned: they rewire the digraph of positive edges
E+ (input -> output), know nothing about the support, and handle no weights; netstruct keeps
signs, support and weights. Every run is single-threaded (one chain, numba/NetWorKit set to
one thread). Rates are recorded in ``extra_info`` (``per_second``: attempts for swaps, trades
for curveballs; ``rounds_per_second`` for the curveballs).

Run with ``python -m pytest benchmarks/bench_randomize.py --benchmark-only -q``.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from netstruct.backends.numba.randomize import signed_curveball, signed_swap

N_OUT, N_IN, DENSITY = 256, 784, 0.10
SWAP_ATTEMPTS = 2_000_000
CB_ROUNDS = 200
REF_TRIALS = 200_000
NX_SWAPS = 20_000
NK_ROUNDS = 20


@pytest.fixture(scope="module")
def layer() -> np.ndarray:
    rng = np.random.default_rng(0)
    support = rng.random((N_OUT, N_IN)) < DENSITY
    return (rng.standard_normal((N_OUT, N_IN)) * support).astype(np.float32)


@pytest.fixture(scope="module")
def positive_edges(layer: np.ndarray) -> list[tuple[int, int]]:
    rows, cols = np.nonzero(layer > 0)
    return list(zip(cols.tolist(), (N_IN + rows).tolist()))  # input i -> output node N_IN + j


@pytest.fixture(autouse=True)
def one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def _record(benchmark, n: int, unit: str, **extra: float) -> None:
    rate = n / benchmark.stats.stats.mean
    benchmark.extra_info.update({"unit": unit, "per_second": rate, **extra})


def test_signed_swap_chain(benchmark, layer):
    seeds = np.array([1], dtype=np.uint64)
    signed_swap(layer, 10, seeds, False)  # compile outside the timing
    _, acc = benchmark.pedantic(signed_swap, args=(layer, SWAP_ATTEMPTS, seeds, False), rounds=5)
    _record(benchmark, SWAP_ATTEMPTS, "swap attempts", acceptance=float(acc[0]) / SWAP_ATTEMPTS)


def test_signed_curveball(benchmark, layer):
    seeds = np.array([1], dtype=np.uint64)
    wt = np.ascontiguousarray(layer.T)  # trade the 784 input nodes
    signed_curveball(wt, 1, seeds)
    _, changed = benchmark.pedantic(signed_curveball, args=(wt, CB_ROUNDS, seeds), rounds=5)
    trades = CB_ROUNDS * (N_IN // 2)
    _record(
        benchmark,
        trades,
        "trades",
        rounds_per_second=CB_ROUNDS / benchmark.stats.stats.mean,
        changed_fraction=float(changed[0]) / trades,
    )


def test_igraph_rewire(benchmark, positive_edges):
    ig = pytest.importorskip("igraph")
    base = ig.Graph(n=N_IN + N_OUT, edges=positive_edges, directed=True)

    def setup():
        return (base.copy(),), {}

    benchmark.pedantic(
        lambda g: g.rewire(n=REF_TRIALS, allowed_edge_types="simple"), setup=setup, rounds=5
    )
    _record(benchmark, REF_TRIALS, "rewire trials")


def test_networkit_global_curveball(benchmark, positive_edges):
    nk = pytest.importorskip("networkit")
    nk.setNumberOfThreads(1)
    g = nk.Graph(N_IN + N_OUT, directed=True)
    for u, v in positive_edges:
        g.addEdge(u, v)

    def run():
        algo = nk.randomization.GlobalCurveball(g, NK_ROUNDS, False, False)
        algo.run()
        return algo.getGraph()

    benchmark.pedantic(run, rounds=5)
    # a global round trades floor(n / 2) node pairs over all 1040 nodes (outputs have no out-edges)
    _record(
        benchmark,
        NK_ROUNDS * ((N_IN + N_OUT) // 2),
        "trades",
        rounds_per_second=NK_ROUNDS / benchmark.stats.stats.mean,
    )


def test_networkx_double_edge_swap(benchmark, positive_edges):
    nx = pytest.importorskip("networkx")
    base = nx.Graph(positive_edges)  # undirected and not bipartite-aware: a rate reference only

    def setup():
        return (base.copy(),), {}

    benchmark.pedantic(
        lambda g: nx.double_edge_swap(g, nswap=NX_SWAPS, max_tries=100 * NX_SWAPS, seed=0),
        setup=setup,
        rounds=3,
    )
    _record(benchmark, NX_SWAPS, "accepted swaps")


# --- model A through the public wrapper vs a numpy permutation of the same cells -------------
def _graph_of(layer: np.ndarray):
    import netstruct as ns

    n_out, n_in = layer.shape
    block = ns.make_block(
        name="fc", weight=layer, mask=layer != 0, sources=np.arange(n_in),
        targets=n_in + np.arange(n_out),
    )  # fmt: skip
    return ns.SignedGraph({"name": [str(i) for i in range(n_in + n_out)]}, [block])


@pytest.fixture(scope="module")
def dense_layer() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.standard_normal((N_OUT, N_IN)).astype(np.float32)


def _numpy_permute(layer: np.ndarray, seed: int) -> np.ndarray:
    """What a user writes for model A: find the non-zero cells, permute their values."""
    w = layer.copy()
    cells = np.flatnonzero(layer)
    w.flat[cells] = np.random.default_rng(seed).permutation(layer.flat[cells])
    return w


@pytest.mark.parametrize("which", ["sparse", "dense"])
def test_model_a_netstruct(benchmark, layer, dense_layer, which):
    import netstruct as ns

    benchmark.group = f"model A 256x784 {which}: randomize vs numpy permutation"
    G = _graph_of(layer if which == "sparse" else dense_layer)
    ns.randomize(G, "A", seed=0)
    benchmark.pedantic(lambda: ns.randomize(G, "A", seed=0), rounds=50, warmup_rounds=2)


@pytest.mark.parametrize("which", ["sparse", "dense"])
def test_model_a_numpy_permutation(benchmark, layer, dense_layer, which):
    benchmark.group = f"model A 256x784 {which}: randomize vs numpy permutation"
    w = layer if which == "sparse" else dense_layer
    benchmark.pedantic(lambda: _numpy_permute(w, 0), rounds=50, warmup_rounds=2)

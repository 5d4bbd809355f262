"""Signed modularity and the Leiden-type optimiser on a 4x256 MLP, against leidenalg.

The graph: ``ns.training.mlp([256, 256, 256, 256])`` (4 layers of 256 units, 196,608 signed
edges, PyTorch's default initialisation), projected onto its 1,024 units. Timed:

* ``modularity_netstruct``: projection + signed modularity of a partition (goal <= 0.3 s);
* ``optimise_netstruct``: projection + ``signed_communities`` (8 restarts);
* ``leidenalg_one_run``: one leidenalg multiplex run on the same signed objective (the igraph
  graphs are built outside the timing).

At the end the min and median time ratios (leidenalg / netstruct) and both modularities are
printed. Run with ``python -m pytest benchmarks/bench_communities.py --benchmark-only -q -s``.
"""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.algorithms.communities import (
    signed_communities,
    signed_modularity,
    signed_projection,
)

_TIMES: dict[str, list[float]] = {}
_Q: dict[str, float] = {}


@pytest.fixture(scope="module")
def graph():
    G = ns.from_torch(ns.training.mlp([256, 256, 256, 256], seed=0))
    signed_communities(G, seed=0, n_restarts=1)  # compile outside the timing
    yield G
    if "optimise" in _TIMES and "leidenalg" in _TIMES:
        ours, peer = np.array(_TIMES["optimise"]), np.array(_TIMES["leidenalg"])
        print(
            f"\noptimiser: netstruct min {ours.min():.3f} s, median {np.median(ours):.3f} s; leidenalg min "
            f"{peer.min():.3f} s, median {np.median(peer):.3f} s; ratio min {peer.min() / ours.min():.1f}x, "
            f"median {np.median(peer) / np.median(ours):.1f}x"
        )
        print(
            f"modularity: netstruct {_Q['netstruct']:.5f}, leidenalg {_Q['leidenalg']:.5f} "
            f"(ratio {_Q['netstruct'] / _Q['leidenalg']:.4f})"
        )
    if "modularity" in _TIMES:
        t = np.array(_TIMES["modularity"])
        print(
            f"projection + signed modularity: min {t.min() * 1e3:.1f} ms, median {np.median(t) * 1e3:.1f} ms (goal 300 ms)"
        )


def _keep(benchmark, key):
    _TIMES[key] = list(benchmark.stats.stats.data)


def test_modularity_netstruct(benchmark, graph):
    labels = graph.node_column("group").astype(np.int64)
    benchmark.group = "communities: modularity"
    benchmark.pedantic(lambda: signed_modularity(graph, labels), rounds=10)
    _keep(benchmark, "modularity")


def test_optimise_netstruct(benchmark, graph):
    benchmark.group = "communities: optimiser"
    C = benchmark.pedantic(lambda: signed_communities(graph, seed=0), rounds=5)
    _Q["netstruct"] = C.modularity
    _keep(benchmark, "optimise")


def test_leidenalg_one_run(benchmark, graph):
    la = pytest.importorskip("leidenalg", reason="leidenalg (GPL) is the benchmark peer")
    import igraph as ig

    P = signed_projection(graph)
    A = P.adjacency.toarray()
    n = len(A)
    iu = np.triu_indices(n, 1)

    def layer(M):
        sel = M[iu] != 0
        g = ig.Graph(n=n, edges=np.column_stack([iu[0][sel], iu[1][sel]]).tolist())
        g.es["weight"] = M[iu][sel].tolist()
        return g

    gp, gn = layer(np.maximum(A, 0)), layer(np.maximum(-A, 0))

    def run():
        pp = la.RBConfigurationVertexPartition(gp, weights="weight")
        pn = la.RBConfigurationVertexPartition(gn, weights="weight")
        opt = la.Optimiser()
        opt.set_rng_seed(0)
        opt.optimise_partition_multiplex([pp, pn], layer_weights=[1, -1], n_iterations=-1)
        return np.array(pp.membership)

    benchmark.group = "communities: optimiser"
    memb = benchmark.pedantic(run, rounds=3)
    _Q["leidenalg"] = signed_modularity(P, memb)
    _keep(benchmark, "leidenalg")

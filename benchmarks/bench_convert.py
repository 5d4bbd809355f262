"""Conversions to scipy, networkx and igraph: time and peak memory against the peers.

Run: ``python -m pytest benchmarks/bench_convert.py --benchmark-only -s``. Each conversion
starts from a :class:`~netstruct.SignedGraph`; its peer builds the same object from plain
numpy arrays of the same edges (extracted beforehand with ``tile``/``repeat``/``reshape``,
outside the timing), the way a user holding those arrays would:

* ``G.to_scipy()`` vs ``scipy.sparse.csr_array(coo_array((w, (src, tgt))))`` on a
  2048-2048-2048 MLP (8.4 M edges);
* ``G.to_networkx(payload=False)`` / ``G.to_igraph()`` vs ``DiGraph.add_edges_from`` /
  ``igraph.Graph(...)`` with the same node and edge attributes, on a 784-256-10 MLP.

Peak memory is the ``tracemalloc`` peak of one call (numpy reports its buffers to it).
Times are the min and median of the rounds, alternated netstruct / peer. The issue-11 goal
is netstruct within 2x of the peer in time and in memory.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.graphs.external import _edge_columns

pytestmark = pytest.mark.filterwarnings("ignore")

ROUNDS = 5
GOAL = 2.0
_rows: list[tuple[str, str, tuple[float, float, float], tuple[float, float, float]]] = []


def _mlp(sizes):
    torch.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def _numpy_edges(model):
    src, tgt, w, off = [], [], [], 0
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            W = layer.weight.detach().numpy()
            n_out, n_in = W.shape
            src.append(np.tile(np.arange(off, off + n_in), n_out))
            tgt.append(np.repeat(np.arange(off + n_in, off + n_in + n_out), n_in))
            w.append(W.reshape(-1))
            off += n_in
    return np.concatenate(src), np.concatenate(tgt), np.concatenate(w), off + n_out


def _peak(f) -> float:
    gc.collect()
    tracemalloc.start()
    out = f()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return peak / 2**20


def _compare(what: str, size: str, ours, peer) -> None:
    ours(), peer()  # warm up (imports, numba caches)
    t_o, t_p = [], []
    for _ in range(ROUNDS):
        for f, ts in ((ours, t_o), (peer, t_p)):
            gc.collect()
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
    m_o, m_p = _peak(ours), _peak(peer)
    _rows.append(
        (
            what,
            size,
            (min(t_o), float(np.median(t_o)), m_o),
            (min(t_p), float(np.median(t_p)), m_p),
        )
    )


@pytest.fixture(scope="module")
def big():
    m = _mlp([2048, 2048, 2048])
    return ns.from_torch(m), _numpy_edges(m)


@pytest.fixture(scope="module")
def medium():
    G = ns.from_torch(_mlp([784, 256, 10]))
    nodes = {c: G.nodes()[c].to_numpy() for c in G.nodes().columns}
    src, tgt, cols = _edge_columns(G, False)
    return G, nodes, src, tgt, cols


def test_to_scipy(benchmark, big):
    import scipy.sparse as sp

    benchmark(lambda: None)
    G, (src, tgt, w, n) = big
    _compare(
        "to_scipy",
        f"{G.n_edges / 1e6:.1f}M edges",
        G.to_scipy,
        lambda: sp.csr_array(sp.coo_array((w, (src, tgt)), shape=(n, n))),
    )


def test_to_networkx(benchmark, medium):
    import networkx as nx

    benchmark(lambda: None)
    G, nodes, src, tgt, cols = medium

    def peer():
        g = nx.DiGraph()
        nc = list(nodes)
        nv = zip(*(nodes[c].tolist() for c in nc))
        g.add_nodes_from(zip(range(G.n_nodes), (dict(zip(nc, v)) for v in nv)))
        ek = list(cols)
        ev = zip(*(cols[k].tolist() for k in ek))
        g.add_edges_from(zip(src.tolist(), tgt.tolist(), (dict(zip(ek, v)) for v in ev)))
        return g

    _compare(
        "to_networkx", f"{G.n_edges / 1e3:.0f}k edges", lambda: G.to_networkx(payload=False), peer
    )


def test_to_igraph(benchmark, medium):
    import igraph as ig

    benchmark(lambda: None)
    G, nodes, src, tgt, cols = medium

    def peer():
        return ig.Graph(
            n=G.n_nodes,
            edges=list(zip(src.tolist(), tgt.tolist())),
            directed=True,
            vertex_attrs={c: v.tolist() for c, v in nodes.items()},
            edge_attrs={k: v.tolist() for k, v in cols.items()},
        )

    _compare("to_igraph", f"{G.n_edges / 1e3:.0f}k edges", G.to_igraph, peer)


def test_report(benchmark):
    """Print time (min, median) and peak memory of each conversion and its peer."""
    benchmark(lambda: None)
    lines = [
        f"{'conversion':<12} {'size':<12} {'netstruct ms (min/med)':>24} {'peer ms (min/med)':>20} "
        f"{'ratio min/med':>14} {'MiB ns/peer':>14} {'mem ratio':>9}  goal <= {GOAL:g}x",
    ]
    for what, size, (a, am, ma), (b, bm, mb) in _rows:
        ok = a / b <= GOAL and ma / mb <= GOAL
        lines.append(
            f"{what:<12} {size:<12} {a * 1e3:>11.1f} /{am * 1e3:>10.1f} {b * 1e3:>9.1f} /{bm * 1e3:>8.1f} "
            f"{a / b:>6.2f} /{am / bm:>5.2f} {ma:>7.0f}/{mb:<6.0f} {ma / mb:>9.2f}  "
            f"{'met' if ok else 'NOT met'}"
        )
    print("\n" + "\n".join(lines))

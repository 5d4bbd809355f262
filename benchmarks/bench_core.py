"""Export and hand-off speed against plain numpy, networkx and igraph on the same inputs.

* export of a 784-512-256-10 MLP (``from_torch`` + the source/target/weight edge columns)
  vs plain numpy extraction of the same edges from the torch tensors;
* ``G.to_networkx()`` / ``G.to_igraph()`` vs each library's own fastest builder from the
  same edge arrays, with the same attributes (weight, sign, layer); ``G.to_scipy()`` vs
  scipy's CSR from the same arrays (``benchmarks/bench_convert.py`` adds peak memory);
* GraphML writing vs ``networkx.write_graphml`` of the same graph.
"""

from __future__ import annotations

import igraph as ig
import networkx as nx
import numpy as np
import pytest
import torch

import netstruct as ns

pytestmark = pytest.mark.filterwarnings("ignore")


def _mlp(sizes):
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


BIG = _mlp([784, 512, 256, 10])
MEDIUM = _mlp([784, 64, 10])


def _numpy_edges(model):
    """The fastest plain extraction: tile/repeat ids, the weight's own row-major buffer."""
    src, tgt, w = [], [], []
    offset = 0
    for layer in model:
        if not isinstance(layer, torch.nn.Linear):
            continue
        W = layer.weight.detach().numpy()
        n_out, n_in = W.shape
        src.append(np.tile(np.arange(offset, offset + n_in), n_out))
        tgt.append(np.repeat(np.arange(offset + n_in, offset + n_in + n_out), n_in))
        w.append(W.reshape(-1))
        offset += n_in
    return np.concatenate(src), np.concatenate(tgt), np.concatenate(w)


def _netstruct_edges(model):
    a = ns.from_torch(model).edge_arrays()
    return a["source"], a["target"], a["weight"]


@pytest.mark.benchmark(group="export 784-512-256-10")
def test_export_netstruct(benchmark):
    s, t, w = benchmark(_netstruct_edges, BIG)
    assert s.size == 784 * 512 + 512 * 256 + 256 * 10


@pytest.mark.benchmark(group="export 784-512-256-10")
def test_export_numpy(benchmark):
    benchmark(_numpy_edges, BIG)


G_MED = ns.from_torch(MEDIUM)
# The peers start from the same numpy columns netstruct holds and build the same attributes.
_NODES = {c: G_MED.nodes()[c].to_numpy() for c in G_MED.nodes().columns}
_SRC, _TGT, _ECOLS = __import__(
    "netstruct.graphs.external", fromlist=["_edge_columns"]
)._edge_columns(G_MED, False)


@pytest.mark.benchmark(group="to_networkx 784-64-10")
def test_to_networkx_netstruct(benchmark):
    benchmark(lambda: G_MED.to_networkx(payload=False))


@pytest.mark.benchmark(group="to_networkx 784-64-10")
def test_to_networkx_peer_add_edges_from(benchmark):
    def build():
        g = nx.DiGraph()
        ncols = list(_NODES)
        g.add_nodes_from(
            zip(
                range(G_MED.n_nodes),
                (dict(zip(ncols, v)) for v in zip(*(_NODES[c].tolist() for c in ncols))),
            )
        )
        ekeys = list(_ECOLS)
        g.add_edges_from(
            zip(
                _SRC.tolist(),
                _TGT.tolist(),
                (dict(zip(ekeys, v)) for v in zip(*(_ECOLS[k].tolist() for k in ekeys))),
            )
        )
        return g

    benchmark(build)


@pytest.mark.benchmark(group="to_igraph 784-64-10")
def test_to_igraph_netstruct(benchmark):
    benchmark(G_MED.to_igraph)


@pytest.mark.benchmark(group="to_igraph 784-64-10")
def test_to_igraph_peer_constructor(benchmark):
    benchmark(
        lambda: ig.Graph(
            n=G_MED.n_nodes,
            edges=np.column_stack([_SRC, _TGT]),
            directed=True,
            vertex_attrs={c: v.tolist() for c, v in _NODES.items()},
            edge_attrs={k: v.tolist() for k, v in _ECOLS.items()},
        )
    )


@pytest.mark.benchmark(group="graphml 784-64-10")
def test_graphml_netstruct(benchmark, tmp_path):
    benchmark(ns.write_graphml, G_MED, tmp_path / "g.graphml")


@pytest.mark.benchmark(group="graphml 784-64-10")
def test_graphml_networkx_writer(benchmark, tmp_path):
    Gx = G_MED.to_networkx(payload=False)
    benchmark.pedantic(nx.write_graphml, args=(Gx, tmp_path / "g.graphml"), rounds=3, iterations=1)


_W_MED = np.asarray(G_MED.edge_arrays()["weight"])


@pytest.mark.benchmark(group="to_scipy 784-64-10")
def test_to_scipy_netstruct(benchmark):
    benchmark(G_MED.to_scipy)


@pytest.mark.benchmark(group="to_scipy 784-64-10")
def test_to_scipy_peer_scipy_from_arrays(benchmark):
    import scipy.sparse as sp

    n = G_MED.n_nodes
    benchmark(lambda: sp.csr_array(sp.coo_array((_W_MED, (_SRC, _TGT)), shape=(n, n))))

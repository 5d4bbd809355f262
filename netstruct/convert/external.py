"""Conversions between :class:`~netstruct.SignedGraph` and networkx, igraph and scipy.sparse."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError, InvalidParameterError
from ..graphs.block import make_block
from ..graphs.signed import NODE_COLUMNS, SignedGraph
from ..utils.validation import check_graph

__all__ = ["to_networkx", "to_igraph", "to_scipy", "from_networkx", "coupling_edges"]

_GRAPH_KEY = "netstruct"


def coupling_edges(G: SignedGraph) -> tuple[np.ndarray, np.ndarray]:
    """``(gate_ids, unit_ids)``: the fixed gate-row -> unit links of LSTM/GRU layers."""
    unit = G.node_column("unit")
    gates = np.flatnonzero(unit != np.arange(G.n_nodes))
    return gates.astype(INDEX_DTYPE), unit[gates].astype(INDEX_DTYPE)


def _edge_columns(
    G: SignedGraph, coupling: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    a = G.edge_arrays()
    src, tgt = a["source"], a["target"]
    names = np.array([b.name for b in G.blocks], dtype=object)
    cols: dict[str, np.ndarray] = {
        "weight": a["weight"].astype(np.float64),
        "sign": a["sign"].astype(np.int64),
        "layer": a["layer"].astype(np.int64),
        "block": names[a["layer"]] if names.size else np.zeros(0, dtype=object),
        "row": a["row"],
        "col": a["col"],
        "delay": a["delay"].astype(np.int64),
        "kind": np.full(src.size, "weight", dtype=object),
    }
    for k in G.edge_attr_names:
        cols[k] = a[k]
    if coupling:
        gs, us = coupling_edges(G)
        m = gs.size
        fill = {
            "weight": 1.0,
            "sign": 1,
            "layer": -1,
            "block": "",
            "row": -1,
            "col": -1,
            "delay": 0,
            "kind": "coupling",
        }
        src = np.concatenate([src, gs])
        tgt = np.concatenate([tgt, us])
        for k, v in cols.items():
            if k in fill:
                cols[k] = np.concatenate([v, np.full(m, fill[k], dtype=v.dtype)])
            else:
                default = (
                    False if v.dtype == bool else (0 if np.issubdtype(v.dtype, np.number) else "")
                )
                cols[k] = np.concatenate([v, np.full(m, default, dtype=v.dtype)])
    return src, tgt, cols


def _has_duplicates(src: np.ndarray, tgt: np.ndarray, n: int) -> bool:
    key = src.astype(np.int64) * max(n, 1) + tgt.astype(np.int64)
    return np.unique(key).size != key.size


def _graph_payload(G: SignedGraph) -> str:
    blocks = [
        {
            "name": b.name,
            "module": b.module,
            "param": b.param,
            "bias_param": b.bias_param,
            "delay": b.delay,
            "shape": list(b.shape),
            "sources": b.sources.tolist(),
            "targets": b.targets.tolist(),
            "bias": None if b.bias is None else b.bias.tolist(),
        }
        for b in G.blocks
    ]
    return json.dumps({"blocks": blocks, "spec": G.spec, "provenance": dict(G.provenance)})


def to_networkx(G: SignedGraph, *, coupling: bool = False, payload: bool = True):
    """Convert to a :class:`networkx.DiGraph` (a ``MultiDiGraph`` if a pair has two edges).

    Nodes are the integer ids with every node-table column as attributes; edges carry
    ``weight``, ``sign``, ``layer``, ``block``, ``row``, ``col``, ``delay``, ``kind`` and the
    graph's edge attributes.

    Parameters
    ----------
    G : SignedGraph
    coupling : bool, default=False
        Also add the fixed gate -> unit edges of LSTM/GRU layers (``kind="coupling"``,
        weight 1), so paths run through recurrent units.
    payload : bool, default=True
        Store block metadata and the architecture spec as JSON in ``graph["netstruct"]``, so
        :func:`from_networkx` can restore the exact graph.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Linear(3, 2))
    >>> Gx = G.to_networkx()
    >>> Gx.number_of_nodes(), Gx.number_of_edges()
    (5, 6)
    """
    import networkx as nx

    check_graph(G, "to_networkx")
    src, tgt, cols = _edge_columns(G, coupling)
    multi = _has_duplicates(src, tgt, G.n_nodes)
    Gx = nx.MultiDiGraph() if multi else nx.DiGraph()
    nodes = G.nodes()
    ncols = list(nodes.columns)
    nvals = [nodes[c].tolist() for c in ncols]
    Gx.add_nodes_from(zip(range(G.n_nodes), (dict(zip(ncols, v)) for v in zip(*nvals))))
    ekeys = list(cols)
    evals = [cols[k].tolist() for k in ekeys]
    Gx.add_edges_from(zip(src.tolist(), tgt.tolist(), (dict(zip(ekeys, v)) for v in zip(*evals))))
    if payload:
        Gx.graph[_GRAPH_KEY] = _graph_payload(G)
    return Gx


def to_igraph(G: SignedGraph, *, coupling: bool = False):
    """Convert to a directed :class:`igraph.Graph` with node and edge attributes.

    Vertex ``i`` is node ``i``; edges are in :meth:`SignedGraph.edges` order (then the
    coupling edges when ``coupling=True``).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> g = ns.from_torch(torch.nn.Linear(3, 2)).to_igraph()
    >>> g.vcount(), g.ecount(), g.is_directed()
    (5, 6, True)
    """
    import igraph as ig

    check_graph(G, "to_igraph")
    src, tgt, cols = _edge_columns(G, coupling)
    nodes = G.nodes()
    g = ig.Graph(
        n=G.n_nodes,
        edges=list(zip(src.tolist(), tgt.tolist())),
        directed=True,
        vertex_attrs={c: nodes[c].tolist() for c in nodes.columns},
        edge_attrs={k: v.tolist() for k, v in cols.items()},
    )
    return g


def to_scipy(G: SignedGraph, *, weight: str | None = "weight", coupling: bool = False):
    """Adjacency matrix as ``scipy.sparse.csr_array`` of shape (n_nodes, n_nodes).

    ``A[s, t]`` is the value of edge ``s -> t``.

    Parameters
    ----------
    weight : str or None, default="weight"
        Edge column to use (``"weight"``, ``"sign"``, any numeric edge attribute), or None for
        a 0/1 pattern. Entries of parallel edges (custom handlers only) are summed.
    coupling : bool, default=False
        Include gate -> unit edges (value 1).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> A = ns.from_torch(torch.nn.Linear(3, 2)).to_scipy(weight="sign")
    >>> A.shape, A.nnz
    ((5, 5), 6)
    """
    import scipy.sparse as sp

    check_graph(G, "to_scipy")
    src, tgt, cols = _edge_columns(G, coupling)
    if weight is None:
        data = np.ones(src.size, dtype=np.int8)
    else:
        if weight not in cols or not np.issubdtype(np.asarray(cols[weight]).dtype, np.number):
            numeric = [k for k, v in cols.items() if np.issubdtype(np.asarray(v).dtype, np.number)]
            raise InvalidParameterError(
                f"The 'weight' parameter of to_scipy must be a numeric edge column {numeric} or None. "
                f"Got {weight!r} instead."
            )
        data = cols[weight]
        if weight == "weight":
            data = data.astype(np.float32)
    A = sp.coo_array((data, (src, tgt)), shape=(G.n_nodes, G.n_nodes)).tocsr()
    A.sum_duplicates()
    return A


def from_networkx(Gx: Any, *, layer: str = "layer", weight: str = "weight") -> SignedGraph:
    """Build a :class:`SignedGraph` from a networkx directed graph.

    Two cases are supported:

    * a graph written by :func:`to_networkx` (it carries ``graph["netstruct"]``): the exact
      graph is restored, architecture spec included, so it can be re-imported with
      :func:`netstruct.to_torch`;
    * any layered DiGraph whose nodes carry an integer ``layer`` attribute and whose edges go
      from layer ``k`` to ``k + 1`` with a numeric ``weight``: one block per pair of
      consecutive layers, absent edges are pruned entries, node attribute ``bias`` (if any)
      becomes the block bias. Such a graph has no architecture spec.

    Raises
    ------
    GraphError
        Nodes without a layer, edges that skip or go back a layer, non-numeric weights.

    Examples
    --------
    >>> import networkx as nx, netstruct as ns
    >>> Gx = nx.DiGraph()
    >>> Gx.add_nodes_from([("x", {"layer": 0}), ("y", {"layer": 1})])
    >>> Gx.add_edge("x", "y", weight=-0.5)
    >>> ns.from_networkx(Gx).edges()[["source", "target", "weight", "sign"]].values.tolist()
    [[0.0, 1.0, -0.5, -1.0]]
    """
    import networkx as nx

    if not isinstance(Gx, nx.DiGraph):
        raise InvalidParameterError(
            f"The 'Gx' parameter of from_networkx must be a networkx DiGraph. Got {type(Gx).__name__} instead."
        )
    if _GRAPH_KEY in Gx.graph:
        return _from_payload(Gx)
    return _from_layered(Gx, layer, weight)


def _from_payload(Gx: Any) -> SignedGraph:
    meta = json.loads(Gx.graph[_GRAPH_KEY])
    n = Gx.number_of_nodes()
    if set(Gx.nodes) != set(range(n)):
        raise GraphError("A netstruct networkx graph must keep its integer node ids 0..n-1.")
    cols = {c: [Gx.nodes[i].get(c, d) for i in range(n)] for c, d in NODE_COLUMNS.items()}
    weights = {b["name"]: np.zeros(b["shape"], dtype=np.float32) for b in meta["blocks"]}
    masks = {b["name"]: np.zeros(b["shape"], dtype=bool) for b in meta["blocks"]}
    for _, _, d in Gx.edges(data=True):
        if d.get("kind", "weight") != "weight":
            continue
        name = d.get("block")
        if name not in weights:
            raise GraphError(f"Edge refers to unknown block {name!r}.")
        weights[name][d["row"], d["col"]] = d["weight"]
        masks[name][d["row"], d["col"]] = True
    blocks = [
        make_block(
            name=b["name"],
            weight=weights[b["name"]],
            mask=masks[b["name"]],
            sources=b["sources"],
            targets=b["targets"],
            bias=b["bias"],
            module=b["module"],
            param=b["param"],
            bias_param=b["bias_param"],
            delay=b["delay"],
        )
        for b in meta["blocks"]
    ]
    return SignedGraph(cols, blocks, spec=meta["spec"], provenance=meta["provenance"])


def _from_layered(Gx: Any, layer: str, weight: str) -> SignedGraph:
    order = list(Gx.nodes)
    missing = [u for u in order if not isinstance(Gx.nodes[u].get(layer), (int, np.integer))]
    if missing:
        raise GraphError(
            f"from_networkx needs an integer node attribute {layer!r} on every node; {len(missing)} "
            f"node(s) lack it (e.g. {missing[:3]}). Set it, or pass layer=<attribute name>."
        )
    layers = sorted({int(Gx.nodes[u][layer]) for u in order})
    by_layer = {k: [u for u in order if Gx.nodes[u][layer] == k] for k in layers}
    ids: dict[Any, int] = {}
    for k in layers:
        for u in by_layer[k]:
            ids[u] = len(ids)
    pos = {k: {u: i for i, u in enumerate(by_layer[k])} for k in layers}
    last = layers[-1]
    cols = {
        "name": [str(u) for k in layers for u in by_layer[k]],
        "kind": [
            ("input" if k == layers[0] else "output" if k == last else "hidden")
            for k in layers
            for _ in by_layer[k]
        ],
        "group": [k for k in layers for _ in by_layer[k]],
        "index": [i for k in layers for i in range(len(by_layer[k]))],
    }
    blocks = []
    nxt = dict(zip(layers[:-1], layers[1:]))
    W = {
        k: np.zeros((len(by_layer[nxt[k]]), len(by_layer[k])), dtype=np.float64)
        for k in layers[:-1]
    }
    M = {k: np.zeros(W[k].shape, dtype=bool) for k in layers[:-1]}
    for u, v, d in Gx.edges(data=True):
        ku, kv = Gx.nodes[u][layer], Gx.nodes[v][layer]
        if nxt.get(ku) != kv:
            raise GraphError(
                f"Edge {u!r} -> {v!r} goes from layer {ku} to layer {kv}; from_networkx needs every edge "
                "to join consecutive layers."
            )
        w = d.get(weight)
        if not isinstance(w, (int, float, np.number)) or isinstance(w, bool):
            raise GraphError(
                f"Edge {u!r} -> {v!r} has no numeric {weight!r} attribute (got {w!r})."
            )
        W[ku][pos[kv][v], pos[ku][u]] = w
        M[ku][pos[kv][v], pos[ku][u]] = True
    for k in layers[:-1]:
        tgt_nodes = by_layer[nxt[k]]
        biases = [Gx.nodes[v].get("bias") for v in tgt_nodes]
        bias = (
            np.array(biases, dtype=float)
            if all(isinstance(b, (int, float, np.number)) for b in biases)
            else None
        )
        blocks.append(
            make_block(
                name=f"layer{k}",
                weight=W[k],
                mask=M[k],
                sources=[ids[u] for u in by_layer[k]],
                targets=[ids[v] for v in tgt_nodes],
                bias=bias,
            )
        )
    return SignedGraph(cols, blocks, provenance={"model_class": "networkx." + type(Gx).__name__})

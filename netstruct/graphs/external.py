"""Conversions between :class:`~netstruct.SignedGraph` and networkx, igraph and scipy.sparse."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError, InvalidParameterError
from ..utils.validation import check_graph
from ._schema import NODE_COLUMNS
from .block import make_block

if TYPE_CHECKING:  # the graph class is passed in (from_networkx), never imported: no cycle
    from .signed import SignedGraph

__all__ = ["to_networkx", "to_igraph", "to_scipy", "graph_from_networkx", "coupling_edges"]

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
        "kind": np.array([b.kind for b in G.blocks], dtype=object)[a["layer"]]
        if names.size
        else np.zeros(0, dtype=object),
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
            "kind": b.kind,
            "layout": dict(b.layout),
            "kernel": None if b.kernel is None else b.kernel.tolist(),
            "state": {k: np.asarray(v).tolist() for k, v in b.state.items()},
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

    Notes
    -----
    The CSR arrays are written block by block straight from each block's weight and mask
    (int32 indices while they fit), without an edge table: memory is the result plus
    per-block temporaries bounded by ``_CSR_CHUNK`` entries. Dtypes: ``weight`` float32,
    ``sign`` and the 0/1 pattern int8, ``layer``/``row``/``col``/``delay`` int64, attributes
    their own dtype.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> A = ns.from_torch(torch.nn.Linear(3, 2)).to_scipy(weight="sign")
    >>> A.shape, A.nnz
    ((5, 5), 6)
    """
    import scipy.sparse as sp

    check_graph(G, "to_scipy")
    attrs = {k: np.asarray(G.edge_arrays()[k]) for k in G.edge_attr_names}
    numeric = ["weight", "sign", "layer", "row", "col", "delay"] + [
        k for k, v in attrs.items() if np.issubdtype(v.dtype, np.number)
    ]
    if weight is not None and weight not in numeric:
        raise InvalidParameterError(
            f"The 'weight' parameter of to_scipy must be a numeric edge column {numeric} or None. "
            f"Got {weight!r} instead."
        )
    n = G.n_nodes
    dtype = _csr_value_dtype(weight, attrs)
    parts = _csr_groups(G, weight, attrs, dtype)
    if coupling:
        gs, us = coupling_edges(G)
        if gs.size:
            one = np.ones(gs.size, dtype=dtype)
            parts.append(sp.csr_array(sp.coo_array((one, (gs, us)), shape=(n, n))))
    if not parts:
        return sp.csr_array((n, n), dtype=dtype)
    return parts[0] if len(parts) == 1 else _merge_csr(parts, n)


def _merge_csr(parts: list[Any], n: int) -> Any:
    """Entries of several (n, n) CSR matrices in one, parallel entries summed, zeros kept.

    (``A + B`` in scipy drops explicit zeros, which are edges here.)
    """
    import scipy.sparse as sp

    counts = [np.diff(P.indptr).astype(np.int64) for P in parts]
    total = np.sum(counts, axis=0)
    nnz = int(total.sum())
    idx: type[np.signedinteger[Any]] = np.int32 if max(nnz, n) < 2**31 else np.int64
    indptr: np.ndarray = np.zeros(n + 1, dtype=idx)
    np.cumsum(total, out=indptr[1:])
    data = np.empty(nnz, dtype=parts[0].dtype)
    indices = np.empty(nnz, dtype=idx)
    before = np.zeros(n, dtype=np.int64)  # entries of earlier parts in each row
    for P, cnt in zip(parts, counts):
        rows = np.repeat(np.arange(n), cnt)
        pos = (
            indptr[:-1][rows] + before[rows] + (np.arange(P.nnz) - np.asarray(P.indptr)[:-1][rows])
        )
        data[pos] = P.data
        indices[pos] = P.indices
        before += cnt
    A = sp.csr_array((data, indices, indptr), shape=(n, n), copy=False)
    A.sum_duplicates()
    return A


#: Entries per temporary when a pruned or non-contiguous block is written (bounds the
#: int64 index temporaries of ``np.nonzero`` to ~8 * _CSR_CHUNK bytes).
_CSR_CHUNK = 1 << 22


def _csr_value_dtype(weight: str | None, attrs: dict[str, np.ndarray]) -> np.dtype:
    if weight is None or weight == "sign":
        return np.dtype(np.int8)
    if weight == "weight":
        return np.dtype(np.float32)
    if weight in attrs:
        return attrs[weight].dtype
    return np.dtype(np.int64)


def _block_values(G: SignedGraph, i: int, weight: str | None, attrs, offsets) -> np.ndarray:
    """Values of block i's entries as an array broadcastable to its (n_out, n_in) shape."""
    b = G.blocks[i]
    n_out, n_in = b.shape
    if weight is None:
        return np.ones((1, 1), dtype=np.int8)
    if weight == "weight":
        return b.weight
    if weight == "sign":
        return np.sign(b.weight).astype(np.int8)
    if weight in ("layer", "delay"):
        return np.full((1, 1), i if weight == "layer" else b.delay, dtype=np.int64)
    if weight == "row":
        return np.arange(n_out, dtype=np.int64)[:, None]
    if weight == "col":
        return np.arange(n_in, dtype=np.int64)[None, :]
    col = attrs[weight][offsets[i] : offsets[i + 1]]  # canonical order: row-major over the mask
    if b.is_dense:
        return col.reshape(n_out, n_in)
    full = np.zeros((n_out, n_in), dtype=col.dtype)
    full[b.mask] = col
    return full


def _csr_groups(G: SignedGraph, weight, attrs, dtype) -> list:
    """One CSR matrix per group of blocks whose source nodes are disjoint (usually one)."""
    import scipy.sparse as sp

    n = G.n_nodes
    blocks = G.blocks
    offsets = np.zeros(len(blocks) + 1, dtype=np.int64)
    np.cumsum([b.n_edges for b in blocks], out=offsets[1:])
    groups: list[list[int]] = []
    used: list[np.ndarray] = []
    for i, b in enumerate(blocks):
        for g, seen in zip(groups, used):
            if not seen[b.sources].any():
                g.append(i)
                seen[b.sources] = True
                break
        else:
            seen = np.zeros(n, dtype=bool)
            seen[b.sources] = True
            groups.append([i])
            used.append(seen)
    out = []
    for g in groups:
        counts = np.zeros(n, dtype=np.int64)
        for i in g:
            b = blocks[i]
            counts[b.sources] = b.shape[0] if b.is_dense else np.count_nonzero(b.mask, axis=0)
        nnz = int(counts.sum())
        idx = np.int32 if max(nnz, n) < 2**31 else np.int64
        indptr = np.zeros(n + 1, dtype=idx)
        np.cumsum(counts, out=indptr[1:])
        data = np.empty(nnz, dtype=dtype)
        indices = np.empty(nnz, dtype=idx)
        sorted_ = True
        for i in g:
            b = blocks[i]
            vals = np.broadcast_to(_block_values(G, i, weight, attrs, offsets), b.shape)
            _write_block(b, vals, indptr, data, indices)
            sorted_ &= bool(b.targets.size < 2 or (np.diff(b.targets) > 0).all())
        A = sp.csr_array((data, indices, indptr), shape=(n, n), copy=False)
        if not sorted_:
            A.sum_duplicates()
        out.append(A)
    return out


def _write_block(b, vals: np.ndarray, indptr, data, indices) -> None:
    """Write block b's entries (source-major, targets in row order) into the CSR arrays."""
    n_out, n_in = b.shape
    src = b.sources
    contiguous = n_in > 0 and bool((np.diff(src) == 1).all())
    if b.is_dense and contiguous:
        a, z = int(indptr[src[0]]), int(indptr[src[-1] + 1])
        data[a:z].reshape(n_in, n_out)[...] = vals.T
        indices[a:z].reshape(n_in, n_out)[...] = b.targets[None, :]
        return
    step = max(1, _CSR_CHUNK // max(n_out, 1))
    for c0 in range(0, n_in, step):
        c1 = min(n_in, c0 + step)
        m = b.mask[:, c0:c1].T  # (columns, rows): source-major order
        col, row = np.nonzero(m)
        v = vals[:, c0:c1].T[col, row]
        t = b.targets[row]
        if contiguous:
            a = int(indptr[src[c0]])
            data[a : a + v.size] = v
            indices[a : a + v.size] = t
        else:
            starts = indptr[src[c0:c1]].astype(np.int64)
            first = np.searchsorted(col, np.arange(c1 - c0))  # first entry of each column
            pos = starts[col] + (np.arange(col.size) - first[col])
            data[pos] = v
            indices[pos] = t


def graph_from_networkx(
    cls: type[SignedGraph], Gx: Any, *, layer: str = "layer", weight: str = "weight"
) -> SignedGraph:
    """A ``cls`` graph from a networkx DiGraph (the work of :func:`netstruct.from_networkx`)."""
    import networkx as nx

    if not isinstance(Gx, nx.DiGraph):
        raise InvalidParameterError(
            f"The 'Gx' parameter of from_networkx must be a networkx DiGraph. Got {type(Gx).__name__} instead."
        )
    if _GRAPH_KEY in Gx.graph:
        return _from_payload(cls, Gx)
    return _from_layered(cls, Gx, layer, weight)


def _from_payload(cls: type[SignedGraph], Gx: Any) -> SignedGraph:
    meta = json.loads(Gx.graph[_GRAPH_KEY])
    n = Gx.number_of_nodes()
    if set(Gx.nodes) != set(range(n)):
        raise GraphError("A netstruct networkx graph must keep its integer node ids 0..n-1.")
    cols = {c: [Gx.nodes[i].get(c, d) for i in range(n)] for c, d in NODE_COLUMNS.items()}
    weights = {b["name"]: np.zeros(b["shape"], dtype=np.float32) for b in meta["blocks"]}
    masks = {b["name"]: np.zeros(b["shape"], dtype=bool) for b in meta["blocks"]}
    for _, _, d in Gx.edges(data=True):
        if d.get("kind", "weight") == "coupling":
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
            kind=b.get("kind", "weight"),
            layout=b.get("layout") or {},
            kernel=None if b.get("kernel") is None else np.asarray(b["kernel"], dtype=np.float32),
            state={k: np.asarray(v) for k, v in (b.get("state") or {}).items()},
        )
        for b in meta["blocks"]
    ]
    blocks = _apply_node_biases(Gx, blocks, n)
    return cls(cols, blocks, spec=meta["spec"], provenance=meta["provenance"])


def _apply_node_biases(Gx: Any, blocks: list[Any], n: int) -> list[Any]:
    """Honour a node ``bias`` edited in networkx (the node's one biased block takes it)."""
    total = np.zeros(n)
    feeders: list[list[int]] = [[] for _ in range(n)]
    for i, b in enumerate(blocks):
        if b.bias is not None:
            np.add.at(total, b.targets, b.bias.astype(np.float64))
            for t in b.targets.tolist():
                feeders[t].append(i)
    new_bias: dict[int, np.ndarray | None] = {i: None for i in range(len(blocks))}
    for v in range(n):
        want = Gx.nodes[v].get("bias")
        if not isinstance(want, (int, float, np.number)) or abs(
            float(want) - total[v]
        ) <= 1e-6 * max(1.0, abs(total[v])):
            continue
        if len(feeders[v]) != 1:
            raise GraphError(
                f"Node {v} has an edited 'bias' ({want}) but {len(feeders[v])} biased blocks feed it, so "
                "netstruct cannot tell which bias to change; edit the blocks' biases instead."
            )
        i = feeders[v][0]
        nb = new_bias[i]
        if nb is None:
            nb = new_bias[i] = np.array(blocks[i].bias, dtype=np.float64)
        row = int(np.flatnonzero(blocks[i].targets == v)[0])
        nb[row] += float(want) - total[v]
    return [b if new_bias[i] is None else b.replace(bias=new_bias[i]) for i, b in enumerate(blocks)]


def _from_layered(cls: type[SignedGraph], Gx: Any, layer: str, weight: str) -> SignedGraph:
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
    return cls(cols, blocks, provenance={"model_class": "networkx." + type(Gx).__name__})

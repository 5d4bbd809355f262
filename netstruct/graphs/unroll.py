"""Time-unrolled graphs of recurrent networks: node = unit at time t, a DAG."""

from __future__ import annotations

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..utils.validation import check_choice, check_graph, check_scalar
from .block import make_block
from .signed import SignedGraph

__all__ = ["unroll", "unit_blocks"]


def _aggregate(weight: np.ndarray, mask: np.ndarray, row_units: np.ndarray, how: str):
    """Collapse gate rows onto units: returns (units, W_unit, mask_unit)."""
    units, inv = np.unique(row_units, return_inverse=True)
    n_u, n_in = units.size, weight.shape[1]
    W = np.zeros((n_u, n_in), dtype=np.float64)
    M = np.zeros((n_u, n_in), dtype=bool)
    np.logical_or.at(M, inv, mask)
    if how == "sum":
        np.add.at(W, inv, weight)
    elif how == "l2":
        np.add.at(W, inv, weight.astype(np.float64) ** 2)
        W = np.sqrt(W)
    else:  # signed value of the largest magnitude
        best = np.full((n_u, n_in), -1.0)
        for r in range(weight.shape[0]):
            a = np.abs(weight[r])
            better = a > best[inv[r]]
            best[inv[r], better] = a[better]
            W[inv[r], better] = weight[r, better]
    W[~M] = 0.0
    W = W.astype(np.float32)
    W.setflags(write=False)
    M.setflags(write=False)
    return units, W, M


def unit_blocks(
    G: SignedGraph, aggregate: str = "max"
) -> list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Blocks with gate rows collapsed onto their units.

    Returns a list of ``(name, delay, sources, target_units, W, mask)``, one per block, with
    ``W`` of shape (n_units, n_sources). ``aggregate`` is ``"max"`` (signed weight of the
    largest magnitude over the gates), ``"l2"`` (L2 norm over gates, unsigned) or ``"sum"``.
    """
    check_graph(G, "unit_blocks")
    check_choice(aggregate, "aggregate", "unit_blocks", ["max", "l2", "sum"])
    unit = G.node_column("unit")
    out = []
    for b in G.blocks:
        units, W, M = _aggregate(b.weight, b.mask, unit[b.targets], aggregate)
        out.append((b.name, b.delay, b.sources, units, W, M))
    return out


def unroll(G: SignedGraph, steps: int, *, aggregate: str = "max") -> SignedGraph:
    """Unroll a recurrent graph over ``steps`` time steps into a DAG of units.

    Each input feature and each unit of a layer up to the last recurrent one gets one node
    per step ``t``; layers after it (e.g. a classifier head reading the last step) appear
    once, fed by step ``steps - 1``. Feed-forward blocks connect nodes of the same step;
    recurrent blocks connect step ``t - 1`` to ``t`` (``t + 1`` to ``t`` in the backward
    direction of bidirectional layers). Gate rows are collapsed onto their unit (see
    :func:`unit_blocks`). Every edge goes forward in (time, layer), so the result is a DAG
    whose reachability order is the poset of the lattice analyses.

    Parameters
    ----------
    G : SignedGraph
        Typically from :func:`netstruct.from_torch` on an RNN/LSTM/GRU model. A graph with
        no recurrent block unrolls to ``steps`` independent copies of its temporal part.
    steps : int
        Number of time steps (>= 1).
    aggregate : {"max", "l2", "sum"}, default="max"
        How gate rows are collapsed onto units.

    Returns
    -------
    SignedGraph
        Analysis-only (no architecture spec). Node attributes ``time`` (step, or -1 for the
        nodes after the recurrent part) and ``origin`` (node id in ``G``).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> G = ns.from_torch(torch.nn.RNN(2, 3))
    >>> U = ns.unroll(G, 4)
    >>> U.n_nodes, int((U.nodes()["time"] == 0).sum())
    (20, 5)
    """
    check_graph(G, "unroll")
    steps = int(check_scalar(steps, "steps", "unroll", kind=int, min_value=1))
    ub = unit_blocks(G, aggregate)
    kind = G.node_column("kind")
    group = G.node_column("group")
    is_unit = G.node_column("unit") == np.arange(G.n_nodes)
    rec_targets = [t for (_, d, _, t, _, _) in ub if d == 1]
    last_rec_group = max((int(group[t].max()) for t in rec_targets if t.size), default=None)
    if last_rec_group is None:
        temporal = is_unit.copy()
    else:
        temporal = is_unit & ((group <= last_rec_group) | (kind == "input"))
    static = is_unit & ~temporal
    t_ids = np.flatnonzero(temporal)
    s_ids = np.flatnonzero(static)
    n_t = t_ids.size
    pos = np.full(G.n_nodes, -1, dtype=INDEX_DTYPE)
    pos[t_ids] = np.arange(n_t)
    pos[s_ids] = steps * n_t + np.arange(s_ids.size)

    def node_id(orig: np.ndarray, t: int) -> np.ndarray:
        return np.where(temporal[orig], t * n_t + pos[orig], pos[orig])

    origin = np.concatenate([np.tile(t_ids, steps), s_ids])
    time = np.concatenate([np.repeat(np.arange(steps), n_t), np.full(s_ids.size, -1)])
    names = G.node_column("name")
    node_names = [
        f"{names[o]}@{t}" if t >= 0 else str(names[o])
        for o, t in zip(origin.tolist(), time.tolist())
    ]
    nodes = {
        "name": node_names,
        "kind": kind[origin],
        "group": group[origin],
        "index": G.node_column("index")[origin],
        "direction": G.node_column("direction")[origin],
        "module": G.node_column("module")[origin],
        "activation": G.node_column("activation")[origin],
    }
    direction = G.node_column("direction")
    blocks = []
    for name, delay, src, tgt, W, M in ub:
        tgt_temporal = temporal[tgt].all() if tgt.size else False
        if not tgt_temporal:
            blocks.append(
                make_block(
                    name=name,
                    weight=W,
                    mask=M,
                    sources=node_id(src, steps - 1),
                    targets=node_id(tgt, 0),
                )
            )
            continue
        for t in range(steps):
            if delay == 0:
                s_t = t
            else:
                backward = bool(direction[tgt].max()) if tgt.size else False
                s_t = t + 1 if backward else t - 1
                if not 0 <= s_t < steps:
                    continue
            blocks.append(
                make_block(
                    name=f"{name}@{t}",
                    weight=W,
                    mask=M,
                    sources=node_id(src, s_t),
                    targets=node_id(tgt, t),
                )
            )
    prov = dict(G.provenance)
    prov["unrolled"] = {"steps": steps, "aggregate": aggregate}
    return SignedGraph(nodes, blocks, provenance=prov, node_attrs={"time": time, "origin": origin})

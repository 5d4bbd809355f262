"""Physically remove units that pruning left without effect (used by ``to_torch(shrink=True)``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError
from ..graphs.block import Block
from ..graphs.signed import NODE_COLUMNS, SignedGraph
from ..utils.validation import check_graph
from .handlers import handler_for_name

__all__ = ["shrink", "removable_units"]


def _const_value(activation: str, bias: float) -> float | None:
    """``activation(bias)``: the value of a unit without inputs (None when it mixes units)."""
    from .elementwise import activation_parts

    parts = activation_parts(activation)
    if any(not h.elementwise for h, _ in parts):
        return None
    val = np.array([float(bias)], dtype=np.float32)
    for handler, config in parts:
        val = handler.forward(config, val).astype(np.float32)
    return float(val[0])


_PER_UNIT_NORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d")


class _State:
    """Mutable working copy of the graph's connectivity during shrinking.

    Units are removed by coupling group (:func:`netstruct.graphs.coupling.coupled_units`): a
    channel with its norm node, the channels a residual sum ties across a stage, a depthwise
    channel pair, an attention head's query, key, value and context dimensions, a recurrent
    unit's gate rows. A group goes when no other group reads any of its members.
    """

    def __init__(self, G: SignedGraph) -> None:
        from ..graphs.coupling import coupled_units

        self.G = G
        self.n = G.n_nodes
        self.unit = G.node_column("unit")
        self.kind = G.node_column("kind")
        self.group = G.node_column("group")
        self.activation = G.node_column("activation")
        self.cgroup = coupled_units(G)
        self.biases = {
            i: (None if b.bias is None else b.bias.astype(np.float64))
            for i, b in enumerate(G.blocks)
        }
        spec = G.spec or {}
        handler = {p: handler_for_name(m["handler"]) for p, m in spec.get("modules", {}).items()}
        module_of = G.node_column("module")
        self.recurrent = np.array(
            [
                handler.get(m) is not None and handler[m].name in ("RNN", "LSTM", "GRU")
                for m in module_of
            ],
            dtype=bool,
        )
        allowed = np.array(
            [handler.get(m) is not None and handler[m].shrinkable for m in module_of], dtype=bool
        )
        internal = set(spec.get("internal", ()))
        blocked = np.zeros(self.n, dtype=bool)
        for b in G.blocks:
            if b.name in internal and b.kind != "operator":  # a composite layer's own sums
                blocked[b.sources] = blocked[b.targets] = True
            elif b.kind in ("skip", "identity"):
                allowed[b.targets] = True  # sum and copy nodes go with their operands
            elif b.kind == "norm":
                h = handler.get(b.module)
                if h is None or h.name not in _PER_UNIT_NORMS:  # statistics over the features
                    blocked[b.sources] = blocked[b.targets] = True
            elif b.kernel is not None and int(b.layout.get("groups", 1)) != 1:
                depthwise = b.kernel.shape[1] == 1 and b.shape[0] == b.shape[1]
                if not depthwise or self.cgroup[b.sources].tolist() != self.cgroup[
                    b.targets
                ].tolist():
                    blocked[b.sources] = blocked[b.targets] = True
        ok = np.isin(self.kind, ("hidden", "gate")) & allowed & ~blocked
        # a group may go only when every member may
        bad = np.bincount(self.cgroup[~ok], minlength=self.n) > 0
        self.candidate = ~bad[self.cgroup]
        self.single = np.bincount(self.cgroup, minlength=self.n)[self.cgroup] == 1
        self.module_of = module_of
        self.plain_block = np.array([b.kind == "weight" and b.kernel is None for b in G.blocks])
        self.removed = np.zeros(self.n, dtype=bool)
        self.folded: list[int] = []

    def removed_nodes(self) -> np.ndarray:
        return self.removed

    def live_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        a = self.G.edge_arrays()
        gone = self.removed
        live = ~gone[a["source"]] & ~gone[a["target"]]
        return (
            a["source"][live],
            a["target"][live],
            a["layer"][live],
            a["row"][live],
            a["col"][live],
        )

    def step(self) -> bool:
        src, tgt, layer, row, col = self.live_edges()
        cg = self.cgroup
        other = cg[src] != cg[tgt]
        read = np.bincount(cg[src[other]], minlength=self.n) > 0
        fed = np.bincount(tgt[other], minlength=self.n) > 0
        open_ = self.candidate & ~self.removed
        dead = open_ & ~read[cg]
        noin = open_ & self.single & ~fed & ~self.recurrent & ~dead
        fold = np.zeros(self.n, dtype=bool)
        for u in np.flatnonzero(noin):
            if self._foldable(int(u), src, layer):
                fold[u] = True
        new = self._equalize(dead | fold)
        if not new.any():
            return False
        for u in np.flatnonzero(new & fold):
            self._fold(int(u), src, layer, row, col)
        self.removed |= new
        return True

    def _bias_of(self, u: int) -> float:
        total = 0.0
        for i, b in enumerate(self.G.blocks):
            hit = np.flatnonzero(b.targets == u)
            if hit.size and self.biases[i] is not None:
                total += float(self.biases[i][hit[0]])
        return total

    def _foldable(self, u: int, src: np.ndarray, layer: np.ndarray) -> bool:
        if _const_value(self.activation[u], self._bias_of(u)) is None:
            return False
        consumers = np.unique(layer[src == u])
        # a constant folds into plain weight blocks only (not into norms, skips or conv kernels)
        return all(
            self.plain_block[int(li)] and self.biases[int(li)] is not None for li in consumers
        )

    def _fold(
        self, u: int, src: np.ndarray, layer: np.ndarray, row: np.ndarray, col: np.ndarray
    ) -> None:
        c = _const_value(self.activation[u], self._bias_of(u))
        sel = src == u
        for li, r, cc in zip(layer[sel], row[sel], col[sel]):
            w = float(self.G.blocks[int(li)].weight[r, cc])
            self.biases[int(li)][r] += w * c
        self.folded.append(u)

    def _equalize(self, proposed: np.ndarray) -> np.ndarray:
        """Recurrent modules need equal sizes in every layer and direction: trim the proposal."""
        new = proposed & ~self.removed
        is_unit = self.recurrent & self.candidate & (self.unit == np.arange(self.n))
        for m in np.unique(self.module_of[is_unit]):
            units = is_unit & (self.module_of == m)
            groups = np.unique(self.group[units])
            counts = [int(new[units & (self.group == g)].sum()) for g in groups]
            k = min(counts) if counts else 0
            for g in groups:
                idx = np.flatnonzero(new & units & (self.group == g))
                new[np.isin(self.cgroup, self.cgroup[idx[k:]])] = False
        return new


def removable_units(G: SignedGraph) -> np.ndarray:
    """Ids of the units :func:`shrink` would remove (without building the new graph)."""
    check_graph(G, "removable_units")
    st = _State(G)
    while st.step():
        pass
    return np.flatnonzero(st.removed)


def shrink(G: SignedGraph) -> SignedGraph:
    """Remove hidden units that pruning left without effect; layers get physically smaller.

    A hidden unit is removed when no other unit reads it (no outgoing edge, its own gate rows
    aside), or, for feed-forward units, when it has no incoming edge: it then outputs the
    constant ``activation(bias)``, which is folded into the biases of the units it feeds
    (any element-wise activation, computed by its handler; folds go into plain weight blocks
    only, never into a norm, a residual sum or a convolution, whose borders would differ).
    Units go by coupling group (:func:`netstruct.graphs.coupling.coupled_units`): a channel
    with its batch-norm node, the channels a residual sum ties across a stage (every operand and
    the sum), a depthwise channel pair (``groups`` shrinks with it), a whole attention head
    (``num_heads`` shrinks; see :mod:`netstruct.convert.attention`). A group goes when no other
    group reads any of its members. Units whose statistics a LayerNorm, GroupNorm or RMSNorm
    reads, grouped (not depthwise) convolutions and a composite layer's own sums keep their
    width: removing them would change the outputs. Convolution kernels and flattened inputs
    are sliced with their channels, norm parameters and running statistics with their units.
    Removing a unit removes its gate rows and every row and column coupled to it. Repeats
    until nothing changes. Input and output units are never removed. ``nn.RNN``/``LSTM``/``GRU``
    layers share one hidden size, so each of their layers and directions loses the same
    number of units (the smallest removable count). Outputs of the rebuilt module equal those
    of the masked one.

    Returns
    -------
    SignedGraph
        With fewer nodes; ``provenance["shrink"]`` lists removed and folded unit names.

    Examples
    --------
    >>> import numpy as np, torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    >>> e = G.edges()
    >>> H = ns.shrink(G.remove_edges(((e.source == 4) | (e.target == 4)).to_numpy()))
    >>> [b.shape for b in H.blocks]
    [(3, 3), (2, 3)]
    """
    check_graph(G, "shrink")
    if G.spec is None:
        raise GraphError(
            "shrink needs a graph with an architecture spec (one exported by netstruct.from_torch)."
        )
    st = _State(G)
    while st.step():
        pass
    if not st.removed.any():
        if not st.folded:
            return G
    gone = st.removed
    keep = ~gone
    new_id = np.cumsum(keep, dtype=INDEX_DTYPE) - 1
    blocks: list[Block] = []
    for i, b in enumerate(G.blocks):
        rows = keep[b.targets]
        cols = keep[b.sources]
        bias = st.biases[i]
        cut = b.take(rows, cols)
        blocks.append(
            cut.replace(
                sources=new_id[b.sources[cols]],
                targets=new_id[b.targets[rows]],
                bias=None if bias is None else bias[rows],
            )
        )
    nodes = {c: G.node_column(c)[keep] for c in NODE_COLUMNS}
    nodes["unit"] = new_id[nodes["unit"]]
    df = pd.DataFrame(
        {"g": nodes["group"], "k": nodes["kind"], "t": nodes["gate"], "d": nodes["direction"]}
    )
    nodes["index"] = df.groupby(["g", "k", "t", "d"], sort=False).cumcount().to_numpy()
    a = G.edge_arrays()
    keep_edge = keep[a["source"]] & keep[a["target"]]
    names = G.node_column("name")
    prov = dict(G.provenance)
    prov["shrink"] = {
        "removed_units": names[np.flatnonzero(st.removed & (st.unit == np.arange(G.n_nodes)))].tolist(),
        "folded_units": names[np.array(st.folded, dtype=INDEX_DTYPE)].tolist(),
    }
    return SignedGraph(
        nodes,
        blocks,
        spec=G.spec,
        provenance=prov,
        node_attrs={k: G.node_column(k)[keep] for k in G.node_attr_names},
        edge_attrs={k: a[k][keep_edge] for k in G.edge_attr_names},
    )

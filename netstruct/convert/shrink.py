"""Physically remove units that pruning left without effect (used by ``to_torch(shrink=True)``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError, param_error
from ..graphs._derived import structural
from ..graphs.block import Block, elementwise_operator
from ..graphs.coupling import HEAD_GATE
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


_STATE_KEY = "shrink_state"


def _groupwise_statistics(b: Block, handler: Any, spec: dict[str, Any]) -> bool:
    """Whether a norm block's units may go by statistics group (whole groups keep the others').

    The handler says how the norm's statistics split its width
    (:meth:`~netstruct.convert.layers.NormHandler.statistic_groups`: one group per unit for a
    batch norm, ``num_groups`` for a ``GroupNorm``, None for a LayerNorm). Groups of several
    units must also be tied in the graph (the block's layout ``stat_groups``, which
    :func:`~netstruct.graphs.coupling.coupled_units` reads): a graph saved before that key
    existed keeps its GroupNorm channels.
    """
    if b.layout.get("shared"):  # a per-head norm: each group's statistics are its own
        return True
    ask = getattr(handler, "statistic_groups", None)
    if ask is None:
        return False
    n = b.shape[1]
    k = ask(spec.get("modules", {}).get(b.module, {}).get("config", {}), n)
    if k is None:
        return False
    return int(k) == n or (int(k) >= 2 and b.layout.get("stat_groups") == int(k))


def _scales_outside_heads(G: SignedGraph, cgroup: np.ndarray, gate: np.ndarray) -> set[str]:
    """Names of ``scale`` operator blocks whose factor varies within a head (``shrinks ==
    "heads"``) but whose units are not coupled to an attention head: removing part of their
    width would not fit the factor's shape."""
    headed = np.zeros(G.n_nodes, dtype=bool)
    labelled = np.array([bool(HEAD_GATE.match(str(g))) for g in gate.tolist()], dtype=bool)
    headed[cgroup[labelled]] = True
    return {
        b.name
        for b in G.blocks
        if elementwise_operator(b) == "scale"
        and b.layout.get("shrinks") == "heads"
        and not headed[cgroup[b.targets]].all()
    }


class _State:
    """Mutable working copy of the graph's connectivity during shrinking.

    Units are removed by coupling group (:func:`netstruct.graphs.coupling.coupled_units`): a
    channel with its norm node, the channels a residual sum ties across a stage, a depthwise
    channel pair, an attention head's query, key, value and context dimensions, a recurrent
    unit's gate rows. A group goes when no other group reads any of its members.
    """

    def __init__(self, G: SignedGraph) -> None:
        from ..graphs.coupling import coupled_units
        from .layers import _stat_key, stat_norm_blocks

        self.G = G
        self.n = G.n_nodes
        self.unit = G.node_column("unit")
        self.kind = G.node_column("kind")
        self.group = G.node_column("group")
        self.activation = G.node_column("activation")
        self.cgroup = coupled_units(G)
        self.biases: dict[int, np.ndarray | None] = {
            i: (None if b.bias is None else b.bias.astype(np.float64))
            for i, b in enumerate(G.blocks)
        }
        spec = G._spec or {}  # read only
        handler = {p: handler_for_name(m["handler"]) for p, m in spec.get("modules", {}).items()}
        module_of = G.node_column("module")
        mods, inv = np.unique(module_of.astype(str), return_inverse=True)
        hs = [handler.get(str(m)) for m in mods]
        self.recurrent = np.array(
            [h is not None and h.name in ("RNN", "LSTM", "GRU") for h in hs], dtype=bool
        )[inv]
        allowed = np.array([h is not None and h.shrinkable for h in hs], dtype=bool)[inv]
        internal = set(spec.get("internal", ()))
        blocked = np.zeros(self.n, dtype=bool)
        # norm width: units a LayerNorm/RMSNorm's statistics read (``stat_read``; ``excluded``
        # once a plan took them out of those statistics) and a composite layer's own sums
        # along them, removable only as a whole normalised width (see :attr:`norm_width`)
        maskable = set(stat_norm_blocks(G))
        stat_read = np.zeros(self.n, dtype=bool)
        excluded = np.zeros(self.n, dtype=bool)
        inner_sum = np.zeros(self.n, dtype=bool)
        gate = G.node_column("gate")
        unheaded = _scales_outside_heads(G, self.cgroup, gate)
        for i, b in enumerate(G.blocks):
            if i in maskable:
                stat_read[b.sources] = True
                keep = b.state.get(_stat_key(b))
                if keep is not None:
                    excluded[b.sources[~np.asarray(keep, dtype=bool)]] = True
            elif b.kind == "skip" and b.name in internal:
                inner_sum[b.sources] = inner_sum[b.targets] = True
            elif elementwise_operator(b) is not None:
                # x * y (a gated MLP, an SE gate): product units go with their factors; x * t
                # by a tensor without units (rotary cos/sin) only where t is broadcast
                # (``shrinks``: "units" everywhere, "heads" along the heads axis only)
                how = b.layout.get(
                    "shrinks", "units" if elementwise_operator(b) == "product" else "none"
                )
                if how == "units" or (how == "heads" and b.name not in unheaded):
                    allowed[b.targets] = True
                else:
                    blocked[b.sources] = blocked[b.targets] = True
            elif b.kind == "operator":
                # token mixing whose query/key/value units carry no head labels: the head of a
                # dimension is unknown, and removing part of a head changes its scores
                if not all(HEAD_GATE.match(str(g)) for g in set(gate[b.sources].tolist())):
                    blocked[b.sources] = blocked[b.targets] = True
                else:  # context units go with their head (whatever op or module made them)
                    allowed[b.targets] = True
            elif b.name in internal:  # a composite layer's own sums
                blocked[b.sources] = blocked[b.targets] = True
            elif b.kind in ("skip", "identity"):
                allowed[b.targets] = True  # sum and copy nodes go with their operands
            elif b.kind == "norm":
                if not _groupwise_statistics(b, handler.get(b.module), spec):
                    blocked[b.sources] = blocked[b.targets] = True  # statistics over the width
            elif b.kernel is not None and int(b.layout.get("groups", 1)) != 1:
                depthwise = b.kernel.shape[1] == 1 and b.shape[0] == b.shape[1]
                if (
                    not depthwise
                    or self.cgroup[b.sources].tolist() != self.cgroup[b.targets].tolist()
                ):
                    blocked[b.sources] = blocked[b.targets] = True
        cg = self.cgroup
        hidden = np.isin(self.kind, ("hidden", "gate"))

        def any_of(mask: np.ndarray) -> np.ndarray:  # per node: some member of its group is
            return (np.bincount(cg[mask], minlength=self.n) > 0)[cg]

        soft = stat_read | inner_sum
        ok = hidden & allowed & ~blocked & ~soft
        # a group may go only when every member may
        self.candidate = ~any_of(~ok)
        # norm-width groups: read by a LayerNorm/RMSNorm's statistics; every member removable
        # but for those statistics, a composite layer's sums along them and the model's
        # outputs of that width (a BertModel's last hidden state loses those features)
        nw_ok = (hidden | (self.kind == "output")) & (allowed | soft) & ~blocked
        self.norm_width = any_of(stat_read) & ~any_of(~nw_ok)
        # taken out of every statistics they are in (the masked graph of a norm-width plan):
        # removable like any other group
        self.candidate |= self.norm_width & ~any_of(stat_read & ~excluded)
        self.single = np.bincount(self.cgroup, minlength=self.n)[self.cgroup] == 1
        self.module_of = module_of
        self.plain_block = np.array([b.kind == "weight" and b.kernel is None for b in G.blocks])
        self.removed = np.zeros(self.n, dtype=bool)
        self.folded: list[int] = []
        # blocks whose sources and targets share coupling groups (norms, skips, gate rows)
        self.tied = []
        mark = np.zeros(self.n, dtype=bool)
        for b in G.blocks:
            mark[self.cgroup[b.sources]] = True
            self.tied.append(bool(mark[self.cgroup[b.targets]].any()))
            mark[self.cgroup[b.sources]] = False
        self._reads: dict[int, list[tuple[int, int]]] | None = None
        self._bias_rows: dict[int, list[tuple[int, int]]] | None = None

    #: what :meth:`__init__` reads off the graph and no step changes (shared, read-only)
    _STATIC = (
        "n",
        "unit",
        "kind",
        "group",
        "activation",
        "cgroup",
        "recurrent",
        "candidate",
        "norm_width",
        "single",
        "module_of",
        "plain_block",
        "tied",
    )

    @classmethod
    def of(cls, G: SignedGraph) -> _State:
        """A fresh working state of ``G`` (nothing removed), its analysis of the graph made
        once per graph (graphs are immutable; :func:`netstruct.structured_prune` and then
        :func:`shrink` of the same graph analyse it once)."""
        store = structural(G)
        static = store.get(_STATE_KEY)
        if static is None:  # only the structure: the store may be shared (graphs._derived)
            base = cls(G)
            static = {name: getattr(base, name) for name in cls._STATIC}
            for v in static.values():
                if isinstance(v, np.ndarray):
                    v.setflags(write=False)
            store[_STATE_KEY] = static
        st = object.__new__(cls)
        st.G = G
        st.__dict__.update(static)
        st.biases = {
            i: (None if b.bias is None else b.bias.astype(np.float64))
            for i, b in enumerate(G.blocks)
        }
        st.removed = np.zeros(st.n, dtype=bool)
        st.folded = []
        st._reads = st._bias_rows = None
        return st

    @property
    def reads(self) -> dict[int, list[tuple[int, int]]]:
        """node -> ``(block, column)`` of every block it feeds (built on first fold)."""
        if self._reads is None:
            self._reads = {}
            for i, b in enumerate(self.G.blocks):
                for j, u in enumerate(b.sources.tolist()):
                    self._reads.setdefault(u, []).append((i, j))
        return self._reads

    @property
    def bias_rows(self) -> dict[int, list[tuple[int, int]]]:
        """node -> ``(block, row)`` of every bias entry it owns."""
        if self._bias_rows is None:
            self._bias_rows = {}
            for i, b in enumerate(self.G.blocks):
                if b.bias is not None:
                    for r, u in enumerate(b.targets.tolist()):
                        self._bias_rows.setdefault(u, []).append((i, r))
        return self._bias_rows

    def removed_nodes(self) -> np.ndarray:
        return self.removed

    def _live(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block ``i``'s live entries between kept units of different groups, and its kept rows/cols."""
        b = self.G.blocks[i]
        rows = ~self.removed[b.targets]
        cols = ~self.removed[b.sources]
        m = b.mask
        if self.tied[i]:
            m = m & (self.cgroup[b.targets][:, None] != self.cgroup[b.sources][None, :])
        return m, rows, cols

    def step(self) -> bool:
        read = np.zeros(self.n, dtype=bool)  # a node some other group reads
        fed = np.zeros(self.n, dtype=bool)  # a node some other group feeds
        for i, b in enumerate(self.G.blocks):
            m, rows, cols = self._live(i)
            col_any = (m if rows.all() else m[rows]).any(0) & cols
            row_any = (m if cols.all() else m[:, cols]).any(1) & rows
            read[b.sources[col_any]] = True
            fed[b.targets[row_any]] = True
        cg = self.cgroup
        read_group = np.bincount(cg[read], minlength=self.n) > 0
        open_ = self.candidate & ~self.removed
        dead = open_ & ~read_group[cg]
        noin = open_ & self.single & ~fed & ~self.recurrent & ~dead
        fold = np.zeros(self.n, dtype=bool)
        for u in np.flatnonzero(noin):
            if self._foldable(int(u)):
                fold[u] = True
        new = self._equalize(dead | fold)
        if not new.any():
            return False
        for u in np.flatnonzero(new & fold):
            self._fold(int(u))
        self.removed |= new
        return True

    def _bias_of(self, u: int) -> float:
        return float(sum(self._bias(i)[r] for i, r in self.bias_rows.get(u, ())))

    def _bias(self, i: int) -> np.ndarray:
        """Block ``i``'s bias being edited (blocks without one have no bias rows to read)."""
        b = self.biases[i]
        assert b is not None, f"block {i} has no bias"
        return b

    def _consumers(self, u: int) -> list[tuple[int, int, np.ndarray]]:
        """``(block, column, live rows)`` of every block reading ``u``."""
        out = []
        for i, j in self.reads.get(u, ()):
            b = self.G.blocks[i]
            rows = b.mask[:, j] & ~self.removed[b.targets]
            if rows.any():
                out.append((i, j, rows))
        return out

    def _foldable(self, u: int) -> bool:
        if _const_value(self.activation[u], self._bias_of(u)) is None:
            return False
        # a constant folds into plain weight blocks only (not into norms, skips or conv kernels)
        return all(
            self.plain_block[i] and self.biases[i] is not None for i, _, _ in self._consumers(u)
        )

    def _fold(self, u: int) -> None:
        c = _const_value(self.activation[u], self._bias_of(u))
        for i, j, rows in self._consumers(u):
            w = self.G.blocks[i].weight[:, j].astype(np.float64)
            self._bias(i)[rows] += w[rows] * c
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


def _drop_full_stat_masks(state: dict[str, Any]) -> dict[str, Any]:
    """A shrunk norm keeps only the entries its statistics read: its ``stat_mask`` goes."""
    from .layers import STAT_MASK

    return {
        k: v
        for k, v in state.items()
        if not (k.endswith(STAT_MASK) and np.asarray(v, dtype=bool).all())
    }


def _positions_in_layer(nodes: dict[str, np.ndarray]) -> np.ndarray:
    """``index`` column: position of each node among the nodes of its layer, kind, gate, direction."""
    code = np.zeros(len(nodes["group"]), dtype=np.int64)
    for c in ("group", "kind", "gate", "direction"):
        col = nodes[c]
        if col.dtype.kind in "iub" and col.size:  # integers: their own codes, no hashing
            low = int(col.min())
            f, n_codes = col.astype(np.int64) - low, int(col.max()) - low + 1
        else:
            f, uniq = pd.factorize(col, sort=False)
            n_codes = len(uniq)
        code = code * (n_codes + 1) + f
    order = np.argsort(code, kind="stable")
    sc = code[order]
    start = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    run = np.repeat(start, np.diff(np.r_[start, sc.size]))
    out = np.empty(sc.size, dtype=INDEX_DTYPE)
    out[order] = np.arange(sc.size) - run
    return out


def removable_units(G: SignedGraph) -> np.ndarray:
    """Ids of the units :func:`shrink` would remove (without building the new graph)."""
    check_graph(G, "removable_units")
    st = _State.of(G)
    while st.step():
        pass
    return np.flatnonzero(st.removed)


def _initial_units(G: SignedGraph, st: _State, units: Any) -> np.ndarray:
    """Boolean node mask of the coupling groups ``units`` names (inputs: see :func:`shrink`)."""
    if hasattr(units, "removed_unit_names"):  # a PruningPlan (asked, not imported: no cycle)
        names = units.removed_unit_names(G, "shrink")
        ids = G._node_ids(names)
        if (ids < 0).any():
            missing = [n for n, i in zip(names, ids) if i < 0][:5]
            raise GraphError(f"The plan removes units {missing} that this graph does not have.")
        picked = np.zeros(G.n_nodes, dtype=bool)
        picked[ids] = True
    else:
        arr = np.asarray(units)
        if arr.dtype == bool and arr.shape == (G.n_nodes,):
            picked = arr.copy()
        elif arr.ndim == 1 and (arr.size == 0 or arr.dtype.kind in "iu"):
            if arr.size and (arr.min() < 0 or arr.max() >= G.n_nodes):
                raise param_error(
                    "units", "shrink", f"node ids in [0, {G.n_nodes})", arr.tolist()[:5]
                )
            picked = np.zeros(G.n_nodes, dtype=bool)
            picked[arr.astype(np.int64)] = True
        else:
            raise param_error(
                "units",
                "shrink",
                f"a PruningPlan, a boolean mask of shape ({G.n_nodes},) or node ids",
                type(units).__name__,
            )
    picked[st.unit[picked]] = True  # a gate row stands for its unit
    groups = np.isin(st.cgroup, st.cgroup[picked])
    bad = groups & ~(st.candidate | st.norm_width)
    if bad.any():
        names = G.node_column("name")[np.flatnonzero(bad)[:5]].tolist()
        raise GraphError(
            f"shrink cannot remove units {names}: they are inputs, outputs, read by the "
            "statistics of a GroupNorm with one group (or a LayerNorm's, on a width fed by an "
            "input, or a norm in a graph saved without statistics groups), inside a grouped "
            "convolution or a composite layer's own sum (see netstruct.structured_groups, "
            "norm_width=True included, for the removable groups)."
        )
    return groups


def shrink(G: SignedGraph, *, units: Any = None) -> SignedGraph:
    """Remove hidden units that pruning left without effect; layers get physically smaller.

    A hidden unit is removed when no other unit reads it (no outgoing edge, its own gate rows
    aside), or, for feed-forward units, when it has no incoming edge: it then outputs the
    constant ``activation(bias)``, which is folded into the biases of the units it feeds
    (any element-wise activation, computed by its handler; folds go into plain weight blocks
    only, never into a norm, a residual sum or a convolution, whose borders would differ).
    Units go by coupling group (:func:`netstruct.graphs.coupling.coupled_units`): a channel
    with its batch-norm node, the channels a residual sum ties across a stage (every operand and
    the sum), a depthwise channel pair (``groups`` shrinks with it), a whole attention head
    (``num_heads`` shrinks; see :mod:`netstruct.convert.attention`), the channels of one
    ``GroupNorm`` group (``num_groups`` shrinks; the other groups' statistics are untouched).
    A group goes when no other group reads any of its members. Units whose statistics a
    LayerNorm or RMSNorm (or a one-group GroupNorm) reads, grouped (not depthwise)
    convolutions and a composite layer's own sums keep their width: removing them would
    change the outputs. The one exception is a **norm width**
    (LayerNorm/RMSNorm): its dimensions go when ``units`` names them, or when a plan's masked
    graph already took them out of the norms' statistics (``stat_mask``); the shrunk norms
    then normalise over the kept dimensions, as the masked ones do (see
    :func:`netstruct.structured_groups` with ``norm_width=True``). Convolution kernels and flattened inputs
    are sliced with their channels, norm parameters and running statistics with their units.
    Removing a unit removes its gate rows and every row and column coupled to it. Repeats
    until nothing changes. Input and output units are never removed. ``nn.RNN``/``LSTM``/``GRU``
    layers share one hidden size, so each of their layers and directions loses the same
    number of units (the smallest removable count). Outputs of the rebuilt module equal those
    of the masked one.

    Parameters
    ----------
    G : SignedGraph
        A graph exported with :func:`netstruct.from_torch` (masked or not).
    units : PruningPlan, boolean mask of shape (n_nodes,) or node ids, optional
        Remove these units' coupling groups first, as if their edges had been pruned (a plan's
        removed units, e.g. from :func:`netstruct.structured_prune`), without building the
        masked graph: ``shrink(G, units=plan)`` equals ``shrink(plan.apply(G))`` for a plan
        that only removes units, and is faster.

    Returns
    -------
    SignedGraph
        With fewer nodes; ``provenance["shrink"]`` lists removed and folded unit names.

    Raises
    ------
    GraphError
        ``units`` names a unit whose group cannot be removed (an input, an output, a unit a
        LayerNorm's statistics read, ...).

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
    if G._spec is None:
        raise GraphError(
            "shrink needs a graph with an architecture spec (one exported by netstruct.from_torch)."
        )
    st = _State.of(G)
    if units is not None:
        st.removed |= _initial_units(G, st, units)
    while st.step():
        pass
    if not st.removed.any():
        if not st.folded:
            return G
    gone = st.removed
    keep = ~gone
    new_id = np.cumsum(keep, dtype=INDEX_DTYPE) - 1
    blocks: list[Block] = []
    from ..graphs._kernels import take

    for i, b in enumerate(G.blocks):
        rows = keep[b.targets]
        cols = keep[b.sources]
        bias = st.biases[i]
        edited = bias is not None and not np.array_equal(bias, np.asarray(b.bias))  # by folds
        if rows.all() and cols.all() and not edited:
            blocks.append(b._with_ids(new_id[b.sources], new_id[b.targets]))  # values as they were
            continue
        cut = take(b, rows, cols)
        cut["state"] = _drop_full_stat_masks(cut["state"])
        cut.update(sources=new_id[b.sources[cols]], targets=new_id[b.targets[rows]])
        # slices of validated arrays; only a bias that folds changed holds new values
        blocks.append(b._sliced(cut, bias[rows] if edited and bias is not None else None))
    nodes = {c: G.node_column(c)[keep] for c in NODE_COLUMNS}
    nodes["unit"] = new_id[nodes["unit"]]
    nodes["index"] = _positions_in_layer(nodes)
    edge_attrs = {}
    if G.edge_attr_names:
        a = G.edge_arrays()
        keep_edge = keep[a["source"]] & keep[a["target"]]
        edge_attrs = {k: a[k][keep_edge] for k in G.edge_attr_names}
    names = G.node_column("name")
    prov = dict(G._provenance)  # read only: the constructor copies it
    prov["shrink"] = {
        "removed_units": names[
            np.flatnonzero(st.removed & (st.unit == np.arange(G.n_nodes)))
        ].tolist(),
        "folded_units": names[np.array(st.folded, dtype=INDEX_DTYPE)].tolist(),
    }
    from ._resize import resize_ops
    from .to_torch import canonical_spec_of, remember_structure_key, structure_key, wiring_key

    # shape arguments that follow the units (a view into heads, a split of q/k/v) get the
    # kept sizes; the spec is shared when no operation records units
    spec = resize_ops(G._spec, keep, new_id)
    # slicing a graph that matches its architecture keeps it matching: to_torch need not
    # re-export it to check (a graph altered by hand is still checked)
    spec_bytes = canonical_spec_of(G, spec)  # G's own when the spec is shared
    if G._provenance.get("structure") == structure_key(G):
        prov["structure"] = wiring_key(spec, int(keep.sum()), blocks, spec_bytes)
    else:
        prov.pop("structure", None)
    H = SignedGraph._derived(  # columns, blocks and ids are valid by construction
        nodes,
        blocks,
        spec=spec,
        provenance=prov,
        node_attrs={k: G.node_column(k)[keep] for k in G.node_attr_names},
        edge_attrs=edge_attrs,
    )
    return remember_structure_key(H, prov.get("structure"), spec_bytes)  # from H's own parts

"""Structured pruning by coupling group: channels, residual stages, heads, recurrent units.

A **structured group** is a set of units that can only be removed together
(:func:`netstruct.graphs.coupling.coupled_units`: a conv channel with its batch-norm node and
every consumer's input column, the channels a residual sum ties across a stage, a depthwise
channel pair, the query/key/value/context dimensions of an attention head, a recurrent unit
with its gate rows, an embedding dimension) and that :func:`netstruct.shrink` can remove
physically: groups read by a LayerNorm/GroupNorm/RMSNorm's statistics, grouped convolutions,
a composite layer's own sums, inputs and outputs are not structured groups. Groups of one layer
form a **family** (the layer of the group's first unit); families bound what may be removed
(at least one group, or ``round_to``, stays per family).

:func:`structured_prune` ranks the groups (:func:`group_importance`) and returns a
:class:`~netstruct.pruning.PruningPlan` removing the weakest by name, either a fraction of the
groups or down to a parameter or MAC budget (:mod:`netstruct.pruning.counts`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import GraphError, param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph
from .counts import _coefficients, _kept, _positions, _totals
from .plan import PruningPlan

__all__ = ["structured_groups", "group_importance", "structured_prune"]

_HEAD = re.compile(r"^[a-z]+\d+$")


# ---------------------------------------------------------------------------- groups
def _group_arrays(G: SignedGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cgroup`` per node, the ids of the removable groups and each one's family."""
    from ..convert.shrink import _State

    st = _State(G)
    cg = st.cgroup
    gids = np.unique(cg[st.candidate])
    family = G.node_column("group")[gids]  # a group's id is its smallest node: its first unit
    return cg, gids, family


def _kinds(G: SignedGraph, cg: np.ndarray, gids: np.ndarray) -> np.ndarray:
    n = G.n_nodes
    flag = {k: np.zeros(n, dtype=bool) for k in ("skip", "dw", "conv", "emb")}
    for b in G.blocks:
        if b.kind == "skip":
            flag["skip"][b.targets] = True
        elif b.kernel is not None and b.layout.get("type") == "conv":
            flag["dw" if int(b.layout.get("groups", 1)) != 1 else "conv"][b.targets] = True
        elif b.layout.get("type") == "transpose":
            flag["emb"][b.targets] = True
    gate = G.node_column("gate")
    head = np.array([bool(_HEAD.match(str(g))) for g in gate], dtype=bool)
    rec = G.node_column("unit") != np.arange(n)

    def any_in(mask: np.ndarray) -> np.ndarray:
        return (np.bincount(cg[mask], minlength=n) > 0)[gids]

    kinds = np.full(gids.size, "unit", dtype=object)
    for name, mask in (
        ("embedding", flag["emb"]),
        ("channel", flag["conv"]),
        ("depthwise", flag["dw"]),
        ("residual", flag["skip"]),
        ("recurrent", rec),
        ("head", head),
    ):
        kinds[any_in(mask)] = name
    return kinds


def _incidence(G: SignedGraph, cg: np.ndarray, gids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n_groups, n_blocks)`` counts of each group's rows and columns in every block."""
    pos = np.full(G.n_nodes, -1, dtype=np.int64)
    pos[gids] = np.arange(gids.size)
    R = np.zeros((gids.size, len(G.blocks)))
    C = np.zeros_like(R)
    for i, b in enumerate(G.blocks):
        for ids, M in ((b.targets, R), (b.sources, C)):
            g = pos[cg[ids]]
            g = g[g >= 0]
            if g.size:
                M[:, i] = np.bincount(g, minlength=gids.size)
    return R, C


def _counts_after(coef, pos, seq, r0, c0, R, C, removed: np.ndarray) -> tuple[float, float]:
    z = removed.astype(np.float64)
    p, m = _totals(coef, pos, seq, r0 - z @ R, c0 - z @ C)
    return float(p.sum()), float(np.nansum(m))


def structured_groups(
    G: SignedGraph, *, input_shape: Any = None, macs: bool = True
) -> pd.DataFrame:
    """The removable coupling groups of ``G``, with what removing each one saves.

    Parameters
    ----------
    G : SignedGraph
        A graph exported with :func:`netstruct.from_torch`.
    input_shape : sequence of int, optional
        Input batch shape the MACs are counted for (default: the export's example input).
    macs : bool, default=True
        Count the MACs each group saves (runs the module once).

    Returns
    -------
    DataFrame
        One row per group: ``group`` (its smallest node id), ``kind`` (``channel``,
        ``residual``, ``depthwise``, ``head``, ``recurrent``, ``embedding`` or ``unit``),
        ``family`` (the layer of its first unit), ``size`` (nodes), ``members`` (node names),
        ``modules``, ``params`` and ``macs`` (removed with the group alone).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> m = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
    ...                         torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    >>> t = ns.structured_groups(ns.from_torch(m.eval(), torch.zeros(1, 1, 6, 6)))
    >>> t[["kind", "size", "params", "macs"]].values.tolist()[0]
    ['channel', 2, 44, 176]
    >>> t["members"][0]
    ['0[0]', '1.norm[0]']
    """
    check_graph(G, "structured_groups")
    if not isinstance(macs, bool):
        raise param_error("macs", "structured_groups", "a bool", macs)
    cg, gids, family = _group_arrays(G)
    coef = _coefficients(G)
    r0, c0 = _kept(G)
    if macs:
        pos, seq = _positions(G, input_shape, "structured_groups")
    else:
        pos, seq = np.zeros(len(G.blocks)), np.ones(len(G.blocks))
    R, C = _incidence(G, cg, gids)
    p_all, m_all = _totals(coef, pos, seq, r0, c0)
    # saving of one group alone: totals minus totals with its rows and columns gone
    p_less, m_less = _totals(coef[None], pos[None], seq[None], r0[None] - R, c0[None] - C)
    names = G.node_column("name")
    mods = G.node_column("module")
    order = np.argsort(cg, kind="stable")
    starts = np.searchsorted(cg[order], gids)
    ends = np.searchsorted(cg[order], gids, side="right")
    members = [names[order[a:b]].tolist() for a, b in zip(starts, ends)]
    modules = [sorted({str(m) for m in mods[order[a:b]]}) for a, b in zip(starts, ends)]
    return pd.DataFrame(
        {
            "group": gids,
            "kind": _kinds(G, cg, gids),
            "family": family,
            "size": ends - starts,
            "members": members,
            "modules": modules,
            "params": np.round(p_all.sum() - p_less.sum(1)).astype(np.int64),
            "macs": np.round(np.nansum(m_all) - np.nansum(m_less, axis=1)).astype(np.int64)
            if macs
            else np.zeros(gids.size, dtype=np.int64),
        }
    )


# ---------------------------------------------------------------------------- importance
def _entry_sums(G: SignedGraph, values: dict[int, np.ndarray]) -> np.ndarray:
    """Per node: ``values`` (block index -> array in the parameter's torch layout) summed over
    the entries of the rows into it and the columns out of it."""
    e = np.zeros(G.n_nodes, dtype=np.float64)
    for i, v in values.items():
        b = G.blocks[i]
        v = np.asarray(v, dtype=np.float64)
        if b.kind == "norm":
            np.add.at(e, b.targets, v)
            continue
        if b.kernel is not None:
            if b.layout.get("transposed"):
                v = v.swapaxes(0, 1)
            k = v.reshape(v.shape[0], -1)
            if int(b.layout.get("groups", 1)) != 1:
                rows = k.sum(1)
                np.add.at(e, b.targets, rows)
                if b.shape[0] == b.shape[1]:  # depthwise: a row reads its own channel
                    np.add.at(e, b.sources, rows)
                continue
            if b.layout.get("type") == "expand":
                cols = np.bincount(
                    np.asarray(b.layout["columns"]), weights=k.sum(0), minlength=b.shape[1]
                )
            else:
                cols = k.reshape(b.shape[0], b.shape[1], -1).sum((0, 2))
            np.add.at(e, b.targets, k.sum(1))
            np.add.at(e, b.sources, cols)
            continue
        if b.layout.get("type") == "transpose":
            v = v.T
        np.add.at(e, b.targets, v.sum(1))
        np.add.at(e, b.sources, v.sum(0))
    return e


def _weighted_blocks(G: SignedGraph) -> list[int]:
    return [
        i
        for i, b in enumerate(G.blocks)
        if b.kind not in ("skip", "identity", "operator") and b.has_parameter
    ]


def _magnitude_energy(G: SignedGraph) -> np.ndarray:
    """Sum of squared weights (kernel taps included) on the edges into and out of every node."""
    return _entry_sums(
        G, {i: np.square(G.blocks[i].parameter().astype(np.float64)) for i in _weighted_blocks(G)}
    )


def _taylor_scores(G: SignedGraph, data: Any, loss: Any, func: str) -> np.ndarray:
    """Per node: the sum of ``w * dL/dw`` over its parameters (and biases) on ``data``."""
    import torch

    from ..convert.to_torch import to_torch

    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise param_error("data", func, "a pair (inputs, targets) of tensors for by='taylor'", data)
    x, y = data
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise param_error("data", func, "a pair (inputs, targets) of tensors", type(x).__name__)
    if loss is None:
        loss = (
            torch.nn.functional.cross_entropy
            if not torch.is_floating_point(y)
            else torch.nn.functional.mse_loss
        )
    if not callable(loss):
        raise param_error("loss", func, "a callable loss(outputs, targets) or None", loss)
    model = to_torch(G)
    model.zero_grad()
    with torch.enable_grad():
        value = loss(model(x), y)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise param_error("loss", func, "a callable returning a scalar tensor", value)
        value.backward()
    params = dict(model.named_parameters())
    wg: dict[int, np.ndarray] = {}
    bias = np.zeros(G.n_nodes)
    for i in _weighted_blocks(G):
        b = G.blocks[i]
        if "@" in b.module:
            continue
        for name, to in ((b.param, "w"), (b.bias_param, "b")):
            p = params.get(f"{b.module}.{name}" if b.module else name) if name else None
            if p is None or p.grad is None:
                continue
            v = (p.detach() * p.grad).double().numpy()
            if to == "w":
                wg[i] = v
            else:
                np.add.at(bias, b.targets, v)
    out = _entry_sums(G, wg) + bias
    if not np.isfinite(out).all():
        raise param_error("data", func, "inputs giving a finite loss and gradients", "non-finite")
    return out


def _node_scores(G: SignedGraph, by: Any, func: str, data: Any, loss: Any) -> np.ndarray:
    """Per-node values to sum over groups (edge values go to both ends)."""
    if isinstance(by, str) and by == "magnitude":
        return _magnitude_energy(G)
    if isinstance(by, str) and by == "taylor":
        return _taylor_scores(G, data, loss, func)
    vals: Any = by
    if callable(by) and not isinstance(by, (np.ndarray, pd.Series)):
        vals = by(G)
    elif isinstance(by, str):
        nodes = G.nodes()
        if by in nodes.columns:
            vals = nodes[by]
        else:
            edges = G.edges()
            if by not in edges.columns:
                raise param_error(
                    "by",
                    func,
                    "'magnitude', 'taylor', a node or edge column name, an array or a callable",
                    by,
                )
            vals = edges[by]
    arr = np.asarray(vals.to_numpy() if isinstance(vals, pd.Series) else vals, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] not in (G.n_nodes, G.n_edges) or not np.isfinite(arr).all():
        raise param_error(
            "by",
            func,
            f"finite values per node ({G.n_nodes}) or per edge ({G.n_edges})",
            f"shape {arr.shape}",
        )
    if arr.shape[0] == G.n_nodes:
        return arr
    a = G.edge_arrays()
    e = np.zeros(G.n_nodes)
    np.add.at(e, a["source"], arr)
    np.add.at(e, a["target"], arr)
    return e


def group_importance(
    G: SignedGraph,
    *,
    by: str | Callable[..., Any] | Any = "magnitude",
    data: Any = None,
    loss: Any = None,
) -> pd.Series:
    """Importance of every structured group (higher = keep).

    Parameters
    ----------
    G : SignedGraph
    by : str, array or callable, default="magnitude"
        ``"magnitude"``: the L2 norm of every weight into and out of the group's units (kernel
        taps, gate rows and norm scales included; Torch-Pruning's group magnitude).
        ``"taylor"``: ``|sum of w * dL/dw|`` over the group's weights and biases on ``data``
        (first-order Taylor estimate of the loss change when the group goes; Molchanov et
        al., 2019). A node
        column or attribute name (e.g. lattice or causal scores attached to the graph): the sum
        over the group's nodes. An edge column or attribute name: the sum over the edges into
        and out of the group's nodes. An array of shape ``(n_nodes,)`` or ``(n_edges,)``, or a
        callable ``f(G)`` returning one, is summed the same way.
    data : (inputs, targets) tensors, optional
        Calibration batch for ``by="taylor"``.
    loss : callable, optional
        ``loss(outputs, targets)`` for ``by="taylor"`` (default: cross-entropy for integer
        targets, mean squared error for float targets).

    Returns
    -------
    Series
        Indexed by group id (as in :func:`structured_groups`), named ``"importance"``.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    >>> s = ns.group_importance(G)
    >>> s.index.tolist(), bool((s > 0).all())
    ([3, 4, 5, 6], True)
    >>> ns.group_importance(G, by="bias").round(3).tolist()  # a node column
    [-0.552, -0.382, -0.238, 0.021]
    """
    check_graph(G, "group_importance")
    cg, gids, _ = _group_arrays(G)
    node = _node_scores(G, by, "group_importance", data, loss)
    total = np.bincount(cg, weights=node, minlength=G.n_nodes)[gids]
    if isinstance(by, str) and by == "magnitude":
        total = np.sqrt(total)
    elif isinstance(by, str) and by == "taylor":
        total = np.abs(total)
    return pd.Series(total, index=pd.Index(gids, name="group"), name="importance")


# ---------------------------------------------------------------------------- pruning
def _check_fraction(x: Any, name: str, func: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise param_error(name, func, "a float in [0, 1)", x)
    x = float(x)
    if not 0.0 <= x < 1.0:
        raise param_error(name, func, "a float in [0, 1)", x)
    return x


def _family_caps(family: np.ndarray, round_to: int) -> dict[int, tuple[int, int]]:
    """``family -> (n_groups, most that may go)``: one group (or ``round_to``) always stays."""
    out = {}
    for f in np.unique(family):
        n = int((family == f).sum())
        keep_min = round_to if n >= round_to else n
        out[int(f)] = (n, max(n - max(keep_min, 1), 0))
    return out


def _round_removed(n: int, k: int, cap: int, round_to: int) -> int:
    """Fewest removals >= 0 near ``k`` leaving a multiple of ``round_to`` (never over ``cap``)."""
    k = min(k, cap)
    if round_to == 1 or n < round_to:
        return k
    kept = -(-(n - k) // round_to) * round_to  # round the kept count up to a multiple
    return max(min(n - kept, cap), 0)


def _tied_families(G: SignedGraph, gids: np.ndarray, family: np.ndarray) -> list[list[int]]:
    """Families that must lose as many groups (the layers and directions of one RNN module)."""
    spec = G.spec or {}
    mods = G.node_column("module")[gids]
    out = []
    for path, m in spec.get("modules", {}).items():
        if m.get("handler") in ("RNN", "LSTM", "GRU"):
            fams = sorted({int(f) for f in family[mods == path]})
            if len(fams) > 1:
                out.append(fams)
    return out


def _select(order: np.ndarray, family: np.ndarray, k: int, caps, round_to: int, tied) -> np.ndarray:
    """Remove the first ``k`` groups of ``order``, adjusted to the family rules."""
    removed = np.zeros(family.size, dtype=bool)
    first = order[:k]
    want = {f: int((family[first] == f).sum()) for f in caps}
    for fams in tied:
        low = min(want[f] for f in fams)
        for f in fams:
            want[f] = low
    for f, (n, cap) in caps.items():
        take = _round_removed(n, want[f], cap, round_to)
        if take:
            in_f = order[family[order] == f]  # weakest first
            removed[in_f[:take]] = True
    return removed


def _refine(removed, order, family, caps, round_to, tied, target, count) -> np.ndarray:
    """Trade whole ``round_to`` steps between families while that nears the target.

    The greedy global order fixes a selection whose count can miss the target by a whole
    family step when ``round_to`` is coarse. Line searches over one family's count, then over
    pairs of families (at most 24 families), close the gap; every family still loses its
    weakest groups first.
    """
    fams = [f for f in caps if not any(f in fs[1:] for fs in tied)]  # one per tied set
    tied_of = {fs[0]: fs for fs in tied}
    ranked = {f: order[family[order] == f] for f in caps}
    taken = {f: int(removed[ranked[f]].sum()) for f in caps}

    def values(f):
        n, cap = caps[f]
        step = round_to if n >= round_to else 1
        return range(0, cap + 1, step) if step > 1 else range(cap + 1)

    def err(t):
        sel = np.zeros(family.size, dtype=bool)
        for f in caps:
            sel[ranked[f][: t[f]]] = True
        return abs(count(sel) - target), sel

    def with_(t, f, v):
        t = dict(t)
        for g in tied_of.get(f, [f]):
            t[g] = v
        return t

    best, sel = err(taken)
    pairs = [(f, g) for i, f in enumerate(fams) for g in fams[i + 1 :]] if len(fams) <= 24 else []
    sizes = {f: len(values(f)) for f in fams}
    if sum(sizes[f] * sizes[g] for f, g in pairs) > 50_000:  # fine-grained: lines suffice
        pairs = []
    for _ in range(3):
        if best <= 0.002 * max(target, 1.0):
            break
        improved = False
        for f in fams:
            for v in values(f):
                e, s_ = err(with_(taken, f, v))
                if e < best:
                    best, sel, taken, improved = e, s_, with_(taken, f, v), True
        for f, g in pairs if best > 0.01 * max(target, 1.0) else []:
            for v in values(f):
                t0 = with_(taken, f, v)
                for w in values(g):
                    e, s_ = err(with_(t0, g, w))
                    if e < best:
                        best, sel, taken, improved = e, s_, with_(t0, g, w), True
        if not improved:
            break
    return sel


def structured_prune(
    G: SignedGraph,
    *,
    amount: float | None = None,
    target_params: int | None = None,
    target_macs: int | None = None,
    by: str | Callable[..., Any] | Any = "magnitude",
    scope: str = "layer",
    round_to: int = 1,
    input_shape: Any = None,
    data: Any = None,
    loss: Any = None,
) -> PruningPlan:
    """Plan the removal of whole structured groups: a fraction of them, or down to a budget.

    Parameters
    ----------
    G : SignedGraph
        A graph exported with :func:`netstruct.from_torch`.
    amount : float in [0, 1), optional
        Fraction of the groups to remove (of every family with ``scope="layer"``, of all
        groups ranked together with ``scope="global"``).
    target_params, target_macs : int, optional
        Remove the weakest groups (ranked globally) until the re-imported module has this many
        parameters (or MACs for ``input_shape``); met within 1 % where the group sizes and
        ``round_to`` allow, else as closely as they do (``plan.steps[0].meta`` records it).
    by : str, array or callable, default="magnitude"
        Group importance (see :func:`group_importance`); the weakest go first.
    scope : {"layer", "global"}, default="layer"
        How ``amount`` spreads: the same fraction per family, or by importance normalised by
        each family's mean.
    round_to : int, default=1
        Every family keeps a multiple of ``round_to`` groups (channels, heads, units): shapes
        for hardware that prefers multiples of 8 or 16.
    input_shape : sequence of int, optional
        Input batch shape for ``target_macs`` (default: the export's example input).
    data, loss : optional
        Calibration batch and loss for ``by="taylor"`` (see :func:`group_importance`).

    Returns
    -------
    PruningPlan
        One step removing the chosen groups' units by name; ``plan.apply(G)`` masks them and
        ``plan.apply(G, shrink=True)`` / ``netstruct.to_torch(..., shrink=True)`` removes
        them physically. The step's ``meta`` holds the groups, and the predicted ``params``
        and ``macs`` after removal.

    Raises
    ------
    InvalidParameterError
        Not exactly one of ``amount``, ``target_params``, ``target_macs``; values out of
        range; an unknown ``scope``.
    GraphError
        The graph has no structured group.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> m = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    >>> G = ns.from_torch(m, torch.zeros(1, 4))
    >>> plan = ns.structured_prune(G, amount=0.5)
    >>> small = ns.to_torch(plan.apply(G), shrink=True)
    >>> small[0].out_features
    8
    >>> plan = ns.structured_prune(G, target_params=86, round_to=4)  # 12 of 16 units stay
    >>> ns.graph_params(plan.apply(G, shrink=True)), plan.steps[0].meta["params"]
    (86, 86)
    """
    func = "structured_prune"
    check_graph(G, func)
    given = [x is not None for x in (amount, target_params, target_macs)]
    if sum(given) != 1:
        raise param_error(
            "amount",
            func,
            "given alone, or replaced by exactly one of target_params, target_macs",
            {"amount": amount, "target_params": target_params, "target_macs": target_macs},
        )
    if scope not in ("layer", "global"):
        raise param_error("scope", func, "'layer' or 'global'", scope)
    if isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer)) or round_to < 1:
        raise param_error("round_to", func, "an int >= 1", round_to)
    for name, v in (("target_params", target_params), ("target_macs", target_macs)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise param_error(name, func, "an int >= 0", v)
    if amount is not None:
        amount = _check_fraction(amount, "amount", func)
    cg, gids, family = _group_arrays(G)
    if gids.size == 0:
        raise GraphError(f"{func}: the graph has no removable structured group.")
    score = group_importance(G, by=by, data=data, loss=loss).to_numpy()
    caps = _family_caps(family, int(round_to))
    tied = _tied_families(G, gids, family)
    fam_mean = {f: float(np.mean(np.abs(score[family == f]))) or 1.0 for f in caps}
    norm = score / np.array([fam_mean[int(f)] for f in family])
    coef = _coefficients(G)
    r0, c0 = _kept(G)
    R, C = _incidence(G, cg, gids)
    need_macs = target_macs is not None
    if need_macs:
        pos, seq = _positions(G, input_shape, func)
    else:
        pos, seq = np.zeros(len(G.blocks)), np.ones(len(G.blocks))
    order = np.lexsort((gids, norm))  # weakest first, ties by id
    if amount is not None and scope == "layer":
        removed = np.zeros(gids.size, dtype=bool)
        want = {f: int(np.floor(amount * n + 1e-9)) for f, (n, _) in caps.items()}
        for fams in tied:
            low = min(want[f] for f in fams)
            for f in fams:
                want[f] = low
        for f, (n, cap) in caps.items():
            take = _round_removed(n, want[f], cap, int(round_to))
            in_f = order[family[order] == f]
            removed[in_f[:take]] = True
    elif amount is not None:
        removed = _select(
            order, family, int(np.floor(amount * gids.size + 1e-9)), caps, round_to, tied
        )
    else:
        target = float(target_params if target_params is not None else target_macs)
        col = 0 if target_params is not None else 1

        def measure(k: int) -> tuple[np.ndarray, float]:
            sel = _select(order, family, k, caps, round_to, tied)
            return sel, _counts_after(coef, pos, seq, r0, c0, R, C, sel)[col]

        lo, hi = 0, gids.size  # smallest k whose count is <= target (counts fall with k)
        while lo < hi:
            mid = (lo + hi) // 2
            if measure(mid)[1] <= target:
                hi = mid
            else:
                lo = mid + 1
        cands = [measure(k) for k in {max(lo - 1, 0), lo, min(lo + 1, gids.size)}]
        removed = min(cands, key=lambda t: (abs(t[1] - target), -t[0].sum()))[0]
        removed = _refine(
            removed,
            order,
            family,
            caps,
            int(round_to),
            tied,
            target,
            lambda sel: _counts_after(coef, pos, seq, r0, c0, R, C, sel)[col],
        )
    params, macs = _counts_after(coef, pos, seq, r0, c0, R, C, removed)
    node_mask = np.isin(cg, gids[removed])
    meta = {
        "method": "structured",
        "by": by if isinstance(by, str) else "custom",
        "scope": scope,
        "round_to": int(round_to),
        "amount": amount,
        "target_params": target_params,
        "target_macs": target_macs,
        "groups": gids[removed].tolist(),
        "params": int(round(params)),
        "macs": int(round(macs)) if need_macs else None,
    }
    what = (
        f"amount={amount}"
        if amount is not None
        else (
            f"target_params={target_params}"
            if target_params is not None
            else f"target_macs={target_macs}"
        )
    )
    return PruningPlan.for_graph(G).remove_units(
        G, node_mask, reason=f"structured_prune({what}, by={meta['by']!r})", meta=meta
    )

"""Structured pruning by coupling group: channels, residual stages, heads, recurrent units.

A **structured group** is a set of units that can only be removed together
(:func:`netstruct.graphs.coupling.coupled_units`: a conv channel with its batch-norm node and
every consumer's input column, the channels a residual sum ties across a stage, a depthwise
channel pair, the query/key/value/context dimensions of an attention head, a recurrent unit
with its gate rows, an embedding dimension, the channels of one GroupNorm group) and that
:func:`netstruct.shrink` can remove physically: groups read by a LayerNorm/RMSNorm's (or a
one-group GroupNorm's) statistics, grouped convolutions,
a composite layer's own sums, inputs and outputs are not structured groups, except that
``norm_width=True`` offers the dimensions of a width LayerNorms/RMSNorms normalise (kind
``norm-width``: removing one takes it out of every such norm's statistics). Groups of one layer
form a **family** (the layer of the group's first unit); families bound what may be removed
(at least one group, or ``round_to``, stays per family).

:func:`structured_prune` ranks the groups (:func:`group_importance`) and returns a
:class:`~netstruct.pruning.PruningPlan` removing the weakest by name, either a fraction of the
groups or down to a parameter or MAC budget (:mod:`netstruct.pruning.counts`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import GraphError, param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph
from ._budget import (
    _check_fraction,
    _family_caps,
    _refine,
    _round_removed,
    _select,
    _tied_families,
)
from ._groups import _counting_arrays, _counts_after, _group_arrays, _kinds
from .counts import _positions, _totals
from .importance import group_importance, group_scores
from .plan import PruningPlan

__all__ = ["structured_groups", "group_importance", "structured_prune"]


def structured_groups(
    G: SignedGraph, *, input_shape: Any = None, macs: bool = True, norm_width: bool = False
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
    norm_width : bool, default=False
        Also offer the dimensions of every width a ``LayerNorm``/``RMSNorm`` normalises (a
        transformer's residual stream: BERT's ``hidden_size``, GPT-2's ``n_embd``, a
        ``TransformerEncoder``'s ``d_model``), kind ``norm-width``: one dimension with every
        embedding column, norm entry, residual sum, projection row and input column on it
        (the model's outputs of that width included). Removing one takes it out of every
        norm's statistics: the norms then normalise over the kept dimensions (see
        docs/concepts/layers.md, "Norm width"), unlike every other kind, which leaves the
        rest of the model's computation unchanged.

    Returns
    -------
    DataFrame
        One row per group: ``group`` (its smallest node id), ``kind`` (``channel``,
        ``residual``, ``depthwise``, ``head``, ``recurrent``, ``embedding``, ``unit`` or,
        with ``norm_width=True``, ``norm-width``),
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
    if not isinstance(norm_width, bool):
        raise param_error("norm_width", "structured_groups", "a bool", norm_width)
    cg, gids, family = _group_arrays(G, norm_width)
    coef, r0, c0, R, C = _counting_arrays(G, norm_width)
    if macs:
        pos, seq = _positions(G, input_shape, "structured_groups")
    else:
        pos, seq = np.zeros(len(G.blocks)), np.ones(len(G.blocks))
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
    norm_width: bool = False,
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
    norm_width : bool, default=False
        Also prune the widths LayerNorms/RMSNorms normalise (``norm-width`` groups of
        :func:`structured_groups`; they form one family per width, so ``amount`` removes that
        fraction of the hidden size and ``round_to`` keeps a multiple of it). The masked model
        (``plan.apply(G)``) then normalises over the kept dimensions, as the shrunk one does.

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
    if not isinstance(norm_width, bool):
        raise param_error("norm_width", func, "a bool", norm_width)
    cg, gids, family = _group_arrays(G, norm_width)
    if gids.size == 0:
        raise GraphError(f"{func}: the graph has no removable structured group.")
    score = group_scores(G, by, data, loss, norm_width, func)
    caps = _family_caps(family, int(round_to))
    tied = _tied_families(G, gids, family)
    fam_mean = {f: float(np.mean(np.abs(score[family == f]))) or 1.0 for f in caps}
    norm = score / np.array([fam_mean[int(f)] for f in family])
    coef, r0, c0, R, C = _counting_arrays(G, norm_width)
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
        target = float(target_params if target_params is not None else target_macs or 0)
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
        "norm_width": norm_width,
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

"""Baselines for lattice pruning at matched sparsity: magnitude and random pruning.

:func:`unit_prune` is the control of the structured (``variant="units"``) rule: it removes
the same number of hidden units, chosen at random or by the smallest incoming weight norm.

Both act on the same prunable blocks as :func:`~netstruct.lattice.lattice_prune` (every
block whose targets are not readout units) and measure sparsity the same way, so a lattice
run's ``global_sparsity`` (or its per-block ``sparsity``) can be passed on directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..exceptions import GraphError, param_error
from ..utils.deprecation import renamed_parameters
from ..utils.random import check_random_state
from ..utils.validation import check_choice, check_graph, check_scalar
from .adjacency import unit_adjacency, unit_map
from .result import PruneResult, _apply, _closest_prefix, _entry_counts, _prunable

__all__ = ["magnitude_prune", "random_prune", "unit_prune"]


@renamed_parameters("lattice.magnitude_prune", sparsity="amount")
def magnitude_prune(
    G: Any, *, amount: float, level: str = "entry", aggregate: str = "max"
) -> PruneResult:
    """Global magnitude pruning of the prunable (non-readout) blocks at a given sparsity.

    Parameters
    ----------
    G : SignedGraph
    amount : float in [0, 1)
        Fraction of prunable entries to remove (use a lattice run's ``global_sparsity`` to
        match it; formerly ``sparsity``, still accepted with a FutureWarning).
    level : {"entry", "unit"}, default="entry"
        Rank individual weights by |w|, or unit-level connections by their aggregated strength
        (removing all gate entries of a connection together).
    aggregate : {"max", "l2"}, default="max"

    Returns
    -------
    PruneResult

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> b = ns.make_block(name="hh", weight=np.arange(1.0, 5.0).reshape(2, 2), sources=[0, 1], targets=[0, 1], delay=1)
    >>> res = ns.lattice.magnitude_prune(ns.SignedGraph({"name": ["h0", "h1"]}, [b]), amount=0.5)
    >>> res.masks["hh"].tolist()
    [[False, False], [True, True]]
    """
    func = "magnitude_prune"
    check_graph(G, func)
    s = float(check_scalar(amount, "amount", func, min_value=0.0, max_value=1.0, include_max=False))
    check_choice(level, "level", func, ["entry", "unit"])
    prunable = _prunable(G)
    if not prunable:
        raise GraphError(f"{func}: the graph has no prunable (non-readout) block.")
    if level == "entry":
        vals = {i: np.where(G.blocks[i].mask, np.abs(G.blocks[i].weight), -1.0) for i in prunable}
        sizes = {i: G.blocks[i].weight.size for i in prunable}
    else:
        vals = {}
        sizes = {}
        for i in prunable:
            A = unit_adjacency(G, i, aggregate=aggregate)[0]
            um = unit_map(G, i)
            counts = np.outer(np.bincount(um.row_to_post), np.bincount(um.col_to_pre))
            vals[i], sizes[i] = A, counts
    flat = np.concatenate([v.ravel() for v in vals.values()])
    wts = np.concatenate(
        [
            np.broadcast_to(sizes[i], vals[i].shape).ravel()
            if level == "unit"
            else np.ones(vals[i].size)
            for i in prunable
        ]
    )
    order = np.argsort(flat, kind="stable")
    cum = np.cumsum(wts[order])
    n_remove = int(np.searchsorted(cum, s * cum[-1], side="right"))
    drop = np.zeros(flat.size, dtype=bool)
    drop[order[:n_remove]] = True
    keep_unit, entry_keep, pos = {}, {}, 0
    for i in prunable:
        k = ~drop[pos : pos + vals[i].size].reshape(vals[i].shape)
        pos += vals[i].size
        if level == "unit":
            keep_unit[i] = k
        else:
            entry_keep[i] = k
    if level == "entry":
        updates, masks, sp_ = {}, {}, {}
        for i, k in entry_keep.items():
            m = k & G.blocks[i].mask
            updates[i] = {"mask": m}
            masks[G.blocks[i].name] = m
            sp_[G.blocks[i].name] = float(1.0 - m.mean())
        tot = sum(m.size for m in masks.values())
        gs = sum(int((~m).sum()) for m in masks.values()) / max(tot, 1)
        return PruneResult(G.replace_blocks(updates), masks, sp_, gs, dict(amount=s, level=level))
    return _apply(G, keep_unit, dict(amount=s, level=level, aggregate=aggregate), {})


@renamed_parameters("lattice.random_prune", sparsity="amount")
def random_prune(
    G: Any,
    *,
    amount: float | Mapping[str, float],
    level: str = "entry",
    seed: Any = 0,
) -> PruneResult:
    """Random pruning of the prunable blocks, density-matched per block (the chance baseline).

    Parameters
    ----------
    G : SignedGraph
    amount : float in [0, 1) or mapping of block name to float
        Target sparsity of every prunable block, or of each block by name (pass a lattice
        run's ``sparsity`` dict to match it block by block; missing blocks are left alone).
        Entries already absent count towards the target. Formerly ``sparsity`` (deprecated).
    level : {"entry", "unit"}, default="entry"
        Remove individual weights uniformly at random, or whole unit-level connections (all
        gate entries of a connection together; the count is then matched to within one
        connection).
    seed : int, numpy Generator or None, default=0
        Seeds the choice.

    Returns
    -------
    PruneResult

    Raises
    ------
    InvalidParameterError
        For a sparsity outside [0, 1), an unknown block name or a bad ``level`` / ``seed``.
    GraphError
        When the graph has no prunable block.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> b = ns.make_block(name="hh", weight=np.ones((4, 5)), sources=range(5), targets=range(5, 9))
    >>> G = ns.SignedGraph({"name": [f"n{i}" for i in range(9)]}, [b])
    >>> res = ns.lattice.random_prune(G, amount=0.25, seed=0)
    >>> res.sparsity, int(res.masks["hh"].sum())
    ({'hh': 0.25}, 15)
    """
    func = "random_prune"
    check_graph(G, func)
    check_choice(level, "level", func, ["entry", "unit"])
    rng = check_random_state(seed, func=func)
    prunable = _prunable(G)
    if not prunable:
        raise GraphError(f"{func}: the graph has no prunable (non-readout) block.")
    names = {G.blocks[i].name: i for i in prunable}
    if isinstance(amount, Mapping):
        unknown = [k for k in amount if k not in names]
        if unknown:
            raise param_error(
                "amount", func, f"a mapping over the prunable blocks {sorted(names)}", unknown
            )
        targets = {
            names[k]: float(
                check_scalar(v, "amount", func, min_value=0.0, max_value=1.0, include_max=False)
            )
            for k, v in amount.items()
        }
    else:
        s = float(
            check_scalar(amount, "amount", func, min_value=0.0, max_value=1.0, include_max=False)
        )
        targets = {i: s for i in prunable}
    keep_unit: dict[int, np.ndarray] = {}
    entry: dict[int, np.ndarray] = {}
    for i in prunable:
        b = G.blocks[i]
        if i not in targets:
            keep_unit[i] = unit_adjacency(G, i)[0] > -1.0  # all True: the block's mask stays
            continue
        need = int(round(targets[i] * b.mask.size)) - int((~b.mask).sum())
        if level == "entry":
            present = np.flatnonzero(b.mask.ravel())
            drop = rng.permutation(present)[: max(need, 0)]
            m = b.mask.copy().ravel()
            m[drop] = False
            entry[i] = m.reshape(b.mask.shape)
        else:
            counts = _entry_counts(G, i).ravel()
            order = rng.permutation(np.flatnonzero(counts > 0))
            k = _closest_prefix(counts[order], max(need, 0))
            keep = np.ones(counts.size, dtype=bool)
            keep[order[:k]] = False
            keep_unit[i] = keep.reshape(_entry_counts(G, i).shape)
    res = _apply(G, keep_unit, dict(amount=amount, level=level), {})
    if not entry:
        return res
    updates = {i: {"mask": m} for i, m in entry.items()}
    masks = dict(res.masks)
    sp_ = dict(res.sparsity)
    for i, m in entry.items():
        masks[G.blocks[i].name] = m
        sp_[G.blocks[i].name] = float(1.0 - m.mean())
    tot = sum(m.size for m in masks.values())
    gs = sum(int((~m).sum()) for m in masks.values()) / max(tot, 1)
    return PruneResult(res.graph.replace_blocks(updates), masks, sp_, gs, res.config)


def unit_prune(G: Any, *, n_units: int, by: str = "random", seed: Any = 0) -> PruneResult:
    """Remove ``n_units`` hidden units whole: the control of ``lattice_prune(variant="units")``.

    Parameters
    ----------
    G : SignedGraph
    n_units : int
        Hidden units to remove (pass ``len(res.config["removed_units"])`` of a units-variant
        run to match it; with equally connected units, as in an LSTM, the sparsity then matches
        exactly).
    by : {"random", "magnitude"}, default="random"
        Uniformly at random, or the units with the smallest L2 norm of their incoming weights
        in the prunable blocks (all gate rows together; ties by node order).
    seed : int, numpy Generator or None, default=0
        Seeds the random choice.

    Returns
    -------
    PruneResult
        As the units variant: rows, columns and readout columns of removed units are masked;
        node attribute ``lattice_removed``; ``config["removed_units"]`` names them.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> nodes = {"name": ["x", "h0", "h1", "y"], "kind": ["input", "hidden", "hidden", "output"]}
    >>> blocks = [ns.make_block(name="ih", weight=np.array([[0.1], [2.0]]), sources=[0], targets=[1, 2]),
    ...           ns.make_block(name="head", weight=np.ones((1, 2)), sources=[1, 2], targets=[3])]
    >>> res = ns.lattice.unit_prune(ns.SignedGraph(nodes, blocks), n_units=1, by="magnitude")
    >>> res.config["removed_units"], res.masks["head"].tolist()
    (['h0'], [[False, True]])
    """
    from .prune import _remove_units

    func = "unit_prune"
    check_graph(G, func)
    check_choice(by, "by", func, ["random", "magnitude"])
    unit = G.node_column("unit")
    ids = np.flatnonzero((G.node_column("kind") == "hidden") & (unit == np.arange(G.n_nodes)))
    k = int(check_scalar(n_units, "n_units", func, kind=int, min_value=0, max_value=ids.size))
    prunable = _prunable(G)
    if not prunable:
        raise GraphError(f"{func}: the graph has no prunable (non-readout) block.")
    if by == "random":
        chosen = check_random_state(seed, func=func).permutation(ids)[:k]
    else:
        norm = np.zeros(G.n_nodes)
        for i in prunable:
            b = G.blocks[i]
            um = unit_map(G, i)
            w2 = (np.where(b.mask, b.weight, 0.0) ** 2).sum(axis=1)
            np.add.at(norm, um.post_units[um.row_to_post], w2)
        chosen = ids[np.argsort(norm[ids], kind="stable")[:k]]
    removed_unit = np.zeros(G.n_nodes, dtype=bool)
    removed_unit[chosen] = True
    keep, extra = _remove_units(G, prunable, removed_unit)
    names = G.node_column("name")
    cfg = dict(n_units=k, by=by, removed_units=names[np.sort(chosen)].tolist())
    return _apply(G, keep, cfg, {"lattice_removed": removed_unit[unit]}, extra)

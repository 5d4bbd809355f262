"""Lattice-based pruning of recurrent graphs (spec §2.7–2.8) and a magnitude baseline.

The rule is a reconstruction (the paper's exact rule is unknown); every choice is a
parameter. Binary variant: threshold each block's unit-level adjacency, mark units that are
irreducible (from the block contexts or the unrolled window poset), central, or input/output,
and keep a strong edge iff one of its ends is critical. Continuous variant: persistence of
irreducibility over level cuts blended with weighted centrality gives a unit score S; the edge
score Ã_ij·sqrt(S_i S_j) is thresholded. Only non-readout blocks are prunable; masks are
unit-level and expand to every gate row of a unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..exceptions import GraphError, param_error
from ..utils.validation import check_choice, check_graph, check_scalar
from .adjacency import unit_adjacency, unit_map
from .context import FormalContext
from .irreducibles import join_irreducibles, meet_irreducibles
from .window import window_poset

__all__ = ["PruneResult", "lattice_prune", "magnitude_prune", "unit_centrality"]


@dataclass(frozen=True)
class PruneResult:
    """Outcome of a pruning run.

    Attributes
    ----------
    graph : SignedGraph
        The pruned graph (masks applied) with score columns attached as node attributes.
    masks : dict of str to ndarray of bool
        Entry-level keep masks of the prunable blocks (gate-expanded).
    sparsity : dict of str to float
        Realised sparsity (entries absent / entries) of each prunable block.
    global_sparsity : float
        Over all prunable blocks together.
    config : dict
        Every setting used (for provenance).
    """

    graph: Any
    masks: dict[str, NDArray[np.bool_]]
    sparsity: dict[str, float]
    global_sparsity: float
    config: dict[str, Any] = field(default_factory=dict)


def _prunable(G: Any) -> list[int]:
    """Blocks whose targets are not readout units."""
    kind = G.node_column("kind")
    unit = G.node_column("unit")
    return [i for i, b in enumerate(G.blocks) if not (kind[unit[b.targets]] == "output").all()]


def _unit_ids(G: Any) -> NDArray[np.int64]:
    unit = G.node_column("unit")
    return np.flatnonzero(unit == np.arange(G.n_nodes)).astype(np.int64)


def unit_centrality(
    G: Any, adjacency: dict[int, NDArray[np.float64]], kind: str = "degree"
) -> NDArray[np.float64]:
    """Centrality of every node on the folded unit graph, normalised to [0, 1].

    Parameters
    ----------
    G : SignedGraph
    adjacency : dict of block position to (post x pre) unit-level matrix
        Binary (degree) or weighted (strength) adjacency.
    kind : {"degree", "pagerank", "betweenness"}, default="degree"
        In+out degree or strength; PageRank and betweenness via networkx.

    Returns
    -------
    ndarray of float64, shape (n_nodes,)
        Gate nodes get the value of their unit.
    """
    n = G.n_nodes
    score = np.zeros(n, dtype=np.float64)
    if kind == "degree":
        for i, A in adjacency.items():
            um = unit_map(G, i)
            np.add.at(score, um.post_units, A.sum(axis=1))
            np.add.at(score, um.pre_units, A.sum(axis=0))
    else:
        import networkx as nx

        H = nx.DiGraph()
        H.add_nodes_from(_unit_ids(G).tolist())
        for i, A in adjacency.items():
            um = unit_map(G, i)
            for r, c in zip(*np.nonzero(A)):
                H.add_edge(int(um.pre_units[c]), int(um.post_units[r]), weight=float(A[r, c]))
        if kind == "pagerank":
            d = nx.pagerank(H, weight="weight")
        else:
            d = nx.betweenness_centrality(H)
        for k, v in d.items():
            score[k] = v
    score = score[G.node_column("unit")]
    top = score.max()
    return score / top if top > 0 else score


def _irreducible_units(G, binary, construction, irreducible, window, blocks_all):
    """Per-node (meet, join, cover size) flags from the chosen construction."""
    n = G.n_nodes
    meet = np.zeros(n, dtype=bool)
    join = np.zeros(n, dtype=bool)
    cover = -np.ones(n, dtype=np.int64)
    dead = np.zeros(n, dtype=bool)
    if construction == "block_context":
        for i, B in binary.items():
            um = unit_map(G, i)
            if not B.any():
                continue
            K = FormalContext(B.T)
            mi, ji = meet_irreducibles(K), join_irreducibles(K)
            meet[um.post_units[mi.mask]] = True
            join[um.pre_units[ji.mask]] = True
            sizes = mi.cover.sum(axis=1)
            np.maximum.at(cover, um.post_units[mi.mask], sizes[mi.mask])
    else:
        kinds = G.node_column("kind")
        spec = {}
        for i, B in blocks_all.items():
            um = unit_map(G, i)
            spec[G.blocks[i].name] = (B, um.pre_units, um.post_units, G.blocks[i].delay)
        W = window_poset(n, kinds, _unit_ids(G), spec, window=window)
        P = W.poset
        mi, ji = meet_irreducibles(P), join_irreducibles(P)
        interior = (W.t >= 2) & (W.t <= window - 1) if window >= 3 else np.ones(len(P), bool)
        real = ~W.virtual & interior
        meet[W.unit[real & mi.mask]] = True
        join[W.unit[real & ji.mask]] = True
        sizes = mi.cover.sum(axis=1)
        sel = real & mi.mask
        np.maximum.at(cover, W.unit[sel], sizes[sel])
        dead = W.dead
    which = {"meet": meet, "join": join, "either": meet | join}[irreducible]
    unit = G.node_column("unit")
    return which[unit], meet[unit], join[unit], cover[unit], dead[unit]


def _apply(
    G, keep_unit: dict[int, NDArray[np.bool_]], config: dict[str, Any], attrs: dict[str, Any]
) -> PruneResult:
    updates, masks, sparsity = {}, {}, {}
    zeros = total = 0
    for i, Ku in keep_unit.items():
        b = G.blocks[i]
        m = unit_map(G, i).expand(Ku) & b.mask
        updates[i] = {"mask": m}
        masks[b.name] = m
        sparsity[b.name] = float(1.0 - m.mean())
        zeros += int((~m).sum())
        total += m.size
    H = G.replace_blocks(updates).with_node_attrs(**attrs)
    return PruneResult(H, masks, sparsity, zeros / max(total, 1), config)


def lattice_prune(
    G: Any,
    *,
    variant: str = "binary",
    construction: str = "block_context",
    irreducible: str = "meet",
    quantile: float = 0.5,
    centrality: str = "degree",
    centrality_quantile: float = 0.5,
    window: int = 3,
    aggregate: str = "max",
    alpha: float = 0.5,
    grid: Any = None,
    target_sparsity: float | None = None,
    threshold: float = 0.5,
    protect_io: bool = True,
) -> PruneResult:
    """Prune a recurrent (RNN/LSTM/GRU) graph by lattice irreducibility and centrality.

    Parameters
    ----------
    G : SignedGraph
        Gate nodes must carry their owning unit in the ``unit`` column.
    variant : {"binary", "continuous"}, default="binary"
    construction : {"block_context", "unrolled_dm"}, default="block_context"
        Concept lattices of each block's context, or the Dedekind–MacNeille completion of the
        bounded, trimmed window poset (irreducibility aggregated over interior slices, "any").
    irreducible : {"meet", "join", "either"}, default="meet"
    quantile : float, default=0.5
        Binary variant: per-block quantile ``q`` of the strengths for ``B = A > tau``.
    centrality : {"degree", "pagerank", "betweenness"}, default="degree"
    centrality_quantile : float, default=0.5
        Binary variant: a unit is central iff its centrality >= this quantile.
    window : int, default=3
        Window length for ``construction="unrolled_dm"``.
    aggregate : {"max", "l2"}, default="max"
        Gate aggregation.
    alpha : float, default=0.5
        Continuous variant: S = alpha * persistence + (1 - alpha) * weighted centrality.
    grid : sequence of float, optional
        Continuous variant: level-cut thresholds on Ã (default: quantiles 0.05..0.95 of the
        non-zero entries of each block).
    target_sparsity : float in [0, 1), optional
        Binary: ``quantile`` is chosen by bisection to approach it. Continuous: the edge-score
        threshold is the matching quantile. Always check ``global_sparsity`` (jumps exist).
    threshold : float, default=0.5
        Continuous variant without ``target_sparsity``: absolute edge-score threshold (scores
        are products of factors in [0, 1], so 0.5 removes almost everything, as documented).
    protect_io : bool, default=True
        Input and output units are always critical: their edges are never removed by the
        rule (binary: strong edges; continuous: all present edges).

    Returns
    -------
    PruneResult
        ``graph`` has node attributes ``lattice_irreducible``, ``lattice_meet``,
        ``lattice_join``, ``lattice_cover_size`` (size of the unique upper-cover extent of a
        meet-irreducible unit, -1 otherwise), ``lattice_centrality``, ``lattice_critical``,
        ``lattice_dead`` and, for the continuous variant, ``lattice_persistence`` and
        ``lattice_score``.

    Raises
    ------
    InvalidParameterError
        On bad options. GraphError when the graph has no prunable block.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> rng = np.random.default_rng(0)
    >>> nodes = {"name": ["x0", "x1", "h0", "h1", "h2", "y"],
    ...          "kind": ["input"] * 2 + ["hidden"] * 3 + ["output"]}
    >>> blocks = [ns.make_block(name="ih", weight=rng.normal(size=(3, 2)), sources=[0, 1], targets=[2, 3, 4]),
    ...           ns.make_block(name="hh", weight=rng.normal(size=(3, 3)), sources=[2, 3, 4], targets=[2, 3, 4], delay=1),
    ...           ns.make_block(name="head", weight=rng.normal(size=(1, 3)), sources=[2, 3, 4], targets=[5])]
    >>> res = ns.lattice.lattice_prune(ns.SignedGraph(nodes, blocks))
    >>> sorted(res.sparsity), 0.0 <= res.global_sparsity <= 1.0
    (['hh', 'ih'], True)
    """
    func = "lattice_prune"
    check_graph(G, func)
    check_choice(variant, "variant", func, ["binary", "continuous"])
    check_choice(construction, "construction", func, ["block_context", "unrolled_dm"])
    check_choice(irreducible, "irreducible", func, ["meet", "join", "either"])
    check_choice(centrality, "centrality", func, ["degree", "pagerank", "betweenness"])
    check_choice(aggregate, "aggregate", func, ["max", "l2"])
    q = float(
        check_scalar(quantile, "quantile", func, min_value=0.0, max_value=1.0, include_max=False)
    )
    qc = float(
        check_scalar(centrality_quantile, "centrality_quantile", func, min_value=0.0, max_value=1.0)
    )
    T = int(check_scalar(window, "window", func, kind=int, min_value=1))
    a = float(check_scalar(alpha, "alpha", func, min_value=0.0, max_value=1.0))
    theta = float(check_scalar(threshold, "threshold", func))
    if target_sparsity is not None:
        target_sparsity = float(
            check_scalar(
                target_sparsity,
                "target_sparsity",
                func,
                min_value=0.0,
                max_value=1.0,
                include_max=False,
            )
        )
    if not isinstance(protect_io, bool):
        raise param_error("protect_io", func, "a bool", protect_io)
    prunable = _prunable(G)
    if not prunable:
        raise GraphError(f"{func}: the graph has no prunable (non-readout) block.")
    strengths = {i: unit_adjacency(G, i, aggregate=aggregate)[0] for i in range(len(G.blocks))}
    if not any(strengths[i].max() > 0 for i in prunable):
        raise GraphError(f"{func}: every prunable block is all zero; nothing to prune.")
    kind = G.node_column("kind")[G.node_column("unit")]
    io = ((kind == "input") | (kind == "output")) if protect_io else np.zeros(G.n_nodes, bool)
    config = dict(
        variant=variant,
        construction=construction,
        irreducible=irreducible,
        quantile=q,
        centrality=centrality,
        centrality_quantile=qc,
        window=T,
        aggregate=aggregate,
        alpha=a,
        grid=None if grid is None else list(map(float, grid)),
        target_sparsity=target_sparsity,
        threshold=theta,
        protect_io=protect_io,
    )

    def binarize_all(qq: float) -> dict[int, NDArray[np.bool_]]:
        return {i: A > np.quantile(A, qq) for i, A in strengths.items()}

    if variant == "binary":

        def run(qq: float) -> PruneResult:
            Bs = binarize_all(qq)
            irr, meet, join, cover, dead = _irreducible_units(
                G, {i: Bs[i] for i in prunable}, construction, irreducible, T, Bs
            )
            cen = unit_centrality(G, {i: Bs[i].astype(float) for i in Bs}, centrality)
            crit = irr | (cen >= np.quantile(cen[_unit_ids(G)], qc)) | io
            keep = {}
            for i in prunable:
                um = unit_map(G, i)
                keep[i] = Bs[i] & (crit[um.post_units][:, None] | crit[um.pre_units][None, :])
            attrs = dict(
                lattice_irreducible=irr,
                lattice_meet=meet,
                lattice_join=join,
                lattice_cover_size=cover,
                lattice_centrality=cen,
                lattice_critical=crit,
                lattice_dead=dead,
            )
            return _apply(G, keep, dict(config, quantile=qq), attrs)

        if target_sparsity is None:
            return run(q)
        lo, hi = 0.0, 1.0 - 1e-9
        best = run(q)
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            res = run(mid)
            if abs(res.global_sparsity - target_sparsity) < abs(
                best.global_sparsity - target_sparsity
            ):
                best = res
            if res.global_sparsity < target_sparsity:
                lo = mid
            else:
                hi = mid
        return best

    # continuous variant
    norm = {i: (A / A.max() if A.max() > 0 else A) for i, A in strengths.items()}
    hits = np.zeros(G.n_nodes)
    n_cuts = np.zeros(G.n_nodes)
    for i in prunable:
        nz = norm[i][norm[i] > 0]
        taus = (
            np.quantile(nz, np.linspace(0.05, 0.95, 10))
            if grid is None
            else np.asarray(grid, float)
        )
        for tau in np.unique(taus):
            cut = {i: norm[i] > tau}
            if not cut[i].any():
                continue
            irr, *_ = _irreducible_units(G, cut, "block_context", irreducible, T, cut)
            um = unit_map(G, i)
            members = np.isin(G.node_column("unit"), np.concatenate([um.pre_units, um.post_units]))
            hits += irr & members
            n_cuts += members
    pers = np.divide(hits, n_cuts, out=np.zeros_like(hits), where=n_cuts > 0)
    cen = unit_centrality(G, norm, centrality)
    S = a * pers + (1 - a) * cen
    scores = {}
    for i in prunable:
        um = unit_map(G, i)
        scores[i] = norm[i] * np.sqrt(np.outer(S[um.post_units], S[um.pre_units]))
    protected = {}
    for i in prunable:
        um = unit_map(G, i)
        protected[i] = (io[um.post_units][:, None] | io[um.pre_units][None, :]) & (norm[i] > 0)
    if target_sparsity is not None:
        # quantile over the unprotected entries, scaled so the global fraction hits the target
        free = np.concatenate([scores[i][~protected[i]].ravel() for i in prunable])
        n_all = sum(scores[i].size for i in prunable)
        if free.size:
            frac = min(1.0, target_sparsity * n_all / free.size)
            theta = float(np.quantile(free, frac)) if frac < 1.0 else np.inf
    keep = {}
    for i in prunable:
        keep[i] = ((scores[i] >= theta) | protected[i]) & (norm[i] > 0)
    attrs = dict(
        lattice_persistence=pers,
        lattice_score=S,
        lattice_centrality=cen,
        lattice_critical=io.copy(),
    )
    return _apply(G, keep, dict(config, theta=theta), attrs)


def magnitude_prune(
    G: Any, *, sparsity: float, level: str = "entry", aggregate: str = "max"
) -> PruneResult:
    """Global magnitude pruning of the prunable (non-readout) blocks at a given sparsity.

    Parameters
    ----------
    G : SignedGraph
    sparsity : float in [0, 1)
        Fraction of prunable entries to remove (use a lattice run's ``global_sparsity`` to
        match it).
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
    >>> res = ns.lattice.magnitude_prune(ns.SignedGraph({"name": ["h0", "h1"]}, [b]), sparsity=0.5)
    >>> res.masks["hh"].tolist()
    [[False, False], [True, True]]
    """
    func = "magnitude_prune"
    check_graph(G, func)
    s = float(
        check_scalar(sparsity, "sparsity", func, min_value=0.0, max_value=1.0, include_max=False)
    )
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
        return PruneResult(G.replace_blocks(updates), masks, sp_, gs, dict(sparsity=s, level=level))
    return _apply(G, keep_unit, dict(sparsity=s, level=level, aggregate=aggregate), {})

"""Lattice-based pruning of recurrent graphs (spec §2.7–2.8).

The rule is a reconstruction (the paper's exact rule is unknown); every choice is a
parameter. Binary variant: threshold each block's unit-level adjacency, mark units that are
irreducible (from the block contexts or the unrolled window poset), central, or input/output,
and keep a strong edge iff one of its ends is critical (both, with ``structured=True``).
Continuous variant: persistence of irreducibility over level cuts blended with weighted
centrality gives a unit score S; the edge score Ã_ij·sqrt(S_i S_j) is thresholded. Units
variant (structured, ours): a hidden unit survives only when it is irreducible in *every*
prunable block it belongs to; the others are removed whole, with no centrality or
input/output union and no edge thresholding (issue 15: the union rule reduces to per-block
thresholding on dense LSTMs). Only
non-readout blocks are prunable; masks are unit-level and expand to every gate row of a unit.
The baselines at matched sparsity live in :mod:`netstruct.lattice.baselines`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..exceptions import GraphError, NetstructWarning, param_error
from ..utils.deprecation import renamed_parameters
from ..utils.validation import check_choice, check_graph, check_scalar
from ._units import _drop_independent, _irreducible_units
from .adjacency import unit_adjacency, unit_map
from .centrality import CENTRALITIES, unit_centrality
from .result import PruneResult, _apply, _closest_prefix, _entry_counts, _prunable, _unit_ids

__all__ = ["lattice_prune", "block_irreducibility"]


@renamed_parameters("lattice_prune", target_sparsity="amount")
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
    amount: float | None = None,
    threshold: float = 0.5,
    protect_io: bool = True,
    structured: bool = False,
) -> PruneResult:
    """Prune a recurrent (RNN/LSTM/GRU) graph by lattice irreducibility and centrality.

    Parameters
    ----------
    G : SignedGraph
        Gate nodes must carry their owning unit in the ``unit`` column.
    variant : {"binary", "continuous", "units"}, default="binary"
        ``"units"``: structured unit selection. Each prunable block's unit-level adjacency is
        cut at its ``quantile``; a hidden unit is kept only when it is irreducible (per
        ``irreducible``: meet as a postsynaptic unit, join as a presynaptic one, either) in
        every block where it has that role, and removed whole otherwise (rows, columns and
        readout columns; ``to_torch(res.graph, shrink=True)`` builds the smaller module). No
        centrality, no input/output union, no edge thresholding; block contexts only.
    construction : {"block_context", "unrolled_dm"}, default="block_context"
        Concept lattices of each block's context, or the Dedekind–MacNeille completion of the
        bounded, trimmed window poset (irreducibility aggregated over interior slices, "any").
    irreducible : {"meet", "join", "either"}, default="meet"
    quantile : float, default=0.5
        Binary variant: per-block quantile ``q`` of the strengths for ``B = A > tau``.
    centrality : {"degree", "eigenvector", "pagerank", "betweenness"}, default="degree"
        On the folded unit graph (:func:`unit_centrality`), binary adjacency for the binary
        variant and weighted (Ã) for the continuous one.
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
    amount : float in [0, 1), optional
        Target sparsity (share of the prunable entries removed; formerly ``target_sparsity``,
        still accepted with a FutureWarning). Binary: ``quantile`` is chosen by bisection to approach it (jumps exist; check
        ``global_sparsity``). Continuous: the unprotected connections with the lowest edge
        scores are removed until the realised sparsity is within one unit-level connection
        (its gate entries) of the target; a :class:`~netstruct.exceptions.NetstructWarning`
        says so when the protected edges make the target unreachable.
    threshold : float, default=0.5
        Continuous variant without ``amount``: absolute edge-score threshold (scores
        are products of factors in [0, 1], so 0.5 removes almost everything, as documented).
    protect_io : bool, default=True
        Input and output units are always critical: their edges are never removed by the
        rule (binary: strong edges; continuous: all present edges). Input and output units
        themselves are never removed in any mode.
    structured : bool, default=False
        Structured (unit) pruning. Binary: a strong edge is kept only when *both* ends are
        critical, so non-critical hidden units are cut off. Both variants: every hidden unit
        that no input unit reaches any more through kept connections (its output no longer
        depends on the data) is removed whole, readout column included, so
        ``to_torch(res.graph, shrink=True)`` builds a physically smaller module. The removed
        units are listed in ``config["removed_units"]`` and flagged ``lattice_removed``.

    Returns
    -------
    PruneResult
        ``graph`` has node attributes ``lattice_irreducible``, ``lattice_meet``,
        ``lattice_join``, ``lattice_cover_size`` (size of the unique upper-cover extent of a
        meet-irreducible unit, -1 otherwise), ``lattice_centrality``, ``lattice_critical``,
        ``lattice_dead``, ``lattice_removed`` and, for the continuous variant, ``lattice_persistence`` and
        ``lattice_score``.

    Raises
    ------
    InvalidParameterError
        On bad options (the message names the parameter).
    GraphError
        When the graph has no prunable block or every prunable block is all zero.

    See Also
    --------
    magnitude_prune, random_prune : baselines at matched sparsity.

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
    check_choice(variant, "variant", func, ["binary", "continuous", "units"])
    check_choice(construction, "construction", func, ["block_context", "unrolled_dm"])
    check_choice(irreducible, "irreducible", func, ["meet", "join", "either"])
    check_choice(centrality, "centrality", func, CENTRALITIES)
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
    if amount is not None:
        amount = float(
            check_scalar(
                amount,
                "amount",
                func,
                min_value=0.0,
                max_value=1.0,
                include_max=False,
            )
        )
    for name, flag in (("protect_io", protect_io), ("structured", structured)):
        if not isinstance(flag, bool):
            raise param_error(name, func, "a bool", flag)
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
        amount=amount,
        threshold=theta,
        protect_io=protect_io,
        structured=structured,
    )
    ctx = dict(G=G, prunable=prunable, strengths=strengths, io=io, config=config)
    if variant == "units" and construction != "block_context":
        raise param_error(
            "construction", func, "'block_context' with variant='units'", construction
        )
    if variant in ("binary", "units"):
        if variant == "binary":
            opts = dict(construction=construction, irreducible=irreducible, T=T, qc=qc)

            def run(qq):
                return _binary(qq, centrality=centrality, **opts, **ctx)
        else:

            def run(qq):
                return _all_blocks(qq, irreducible=irreducible, **ctx)

        if amount is None:
            return run(q)
        lo, hi = 0.0, 1.0 - 1e-9
        best = run(q)
        for _ in range(12):
            mid = 0.5 * (lo + hi)
            res = run(mid)
            if abs(res.global_sparsity - amount) < abs(best.global_sparsity - amount):
                best = res
            if res.global_sparsity < amount:
                lo = mid
            else:
                hi = mid
        return best
    return _continuous(
        a, grid, amount, theta, irreducible=irreducible, T=T, centrality=centrality, **ctx
    )


def _finish(G, keep, config, attrs, structured) -> PruneResult:
    """Structured removal (optional), node attributes and the result."""
    extra: dict[int, NDArray[np.bool_]] = {}
    removed = np.zeros(G.n_nodes, dtype=bool)
    if structured:
        keep, extra, removed = _drop_independent(G, keep)
        hidden = G.node_column("kind") == "hidden"
        if hidden.any() and removed[hidden].all():
            warnings.warn(
                "lattice_prune: structured pruning removed every hidden unit (no input reaches "
                "any of them through kept connections); lower the sparsity.",
                NetstructWarning,
                stacklevel=4,
            )
    names = G.node_column("name")
    unit = G.node_column("unit")
    config = dict(config, removed_units=names[removed & (unit == np.arange(G.n_nodes))].tolist())
    return _apply(G, keep, config, dict(attrs, lattice_removed=removed), extra)


def _binary(
    qq, *, G, prunable, strengths, io, config, construction, irreducible, T, qc, centrality
):
    Bs = {i: A > np.quantile(A, qq) for i, A in strengths.items()}
    irr, meet, join, cover, dead = _irreducible_units(
        G, {i: Bs[i] for i in prunable}, construction, irreducible, T, Bs
    )
    cen = unit_centrality(G, {i: Bs[i].astype(float) for i in Bs}, centrality)
    crit = irr | (cen >= np.quantile(cen[_unit_ids(G)], qc)) | io
    keep = {}
    for i in prunable:
        um = unit_map(G, i)
        post, pre = crit[um.post_units][:, None], crit[um.pre_units][None, :]
        keep[i] = Bs[i] & ((post & pre) if config["structured"] else (post | pre))
    attrs = dict(
        lattice_irreducible=irr,
        lattice_meet=meet,
        lattice_join=join,
        lattice_cover_size=cover,
        lattice_centrality=cen,
        lattice_critical=crit,
        lattice_dead=dead,
    )
    return _finish(G, keep, dict(config, quantile=qq), attrs, config["structured"])


def block_irreducibility(
    G: Any, binary: dict[int, NDArray[np.bool_]], irreducible: str
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Per node: irreducible in every block it belongs to, and whether it belongs to any.

    A unit belongs to block ``i`` as a postsynaptic unit (meet-irreducibility of its attribute
    concept) and/or as a presynaptic unit (join-irreducibility of its object concept);
    ``irreducible`` says which roles count. Gate nodes take their unit's flags.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.lattice.prune import block_irreducibility
    >>> W = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])  # h2's inputs = h0's & h1's
    >>> b = ns.make_block(name="ih", weight=W, sources=[0, 1, 2], targets=[3, 4, 5])
    >>> G = ns.SignedGraph({"name": ["x0", "x1", "x2", "h0", "h1", "h2"], "kind": ["input"] * 3 + ["hidden"] * 3}, [b])
    >>> every, member = block_irreducibility(G, {0: W > 0}, "meet")
    >>> every[3:].tolist(), member[:3].tolist()
    ([True, True, False], [False, False, False])
    """
    from .context import FormalContext
    from .irreducibles import join_irreducibles, meet_irreducibles

    n = G.n_nodes
    every = np.ones(n, dtype=bool)
    member = np.zeros(n, dtype=bool)
    for i, B in binary.items():
        um = unit_map(G, i)
        if B.any():
            K = FormalContext(B.T)  # objects: presynaptic units; attributes: postsynaptic units
            mi, ji = meet_irreducibles(K).mask, join_irreducibles(K).mask
        else:
            mi = np.zeros(B.shape[0], bool)
            ji = np.zeros(B.shape[1], bool)
        ok = np.zeros(n, dtype=bool)
        inside = np.zeros(n, dtype=bool)
        if irreducible in ("meet", "either"):
            inside[um.post_units] = True
            ok[um.post_units[mi]] = True
        if irreducible in ("join", "either"):
            inside[um.pre_units] = True
            ok[um.pre_units[ji]] = True
        every &= ok | ~inside
        member |= inside
    unit = G.node_column("unit")
    return (every & member)[unit], member[unit]


def _remove_units(G: Any, prunable: list[int], removed: NDArray[np.bool_]):
    """Unit-level keep masks of the prunable blocks and readout masks without ``removed`` units."""
    unit = G.node_column("unit")
    keep = {}
    for i in prunable:
        um = unit_map(G, i)
        keep[i] = ~removed[um.post_units][:, None] & ~removed[um.pre_units][None, :]
    extra = {}
    for i, b in enumerate(G.blocks):
        cut = removed[unit[b.sources]]
        if i not in keep and cut.any():
            m = np.ones(b.mask.shape, dtype=bool)
            m[:, cut] = False
            extra[i] = m
    return keep, extra


def _all_blocks(qq, *, G, prunable, strengths, io, config, irreducible):
    """Units variant: keep a hidden unit iff it is irreducible in every block it belongs to."""
    Bs = {i: strengths[i] > np.quantile(strengths[i], qq) for i in prunable}
    every, member = block_irreducibility(G, Bs, irreducible)
    unit = G.node_column("unit")
    ids = unit == np.arange(G.n_nodes)
    hidden = G.node_column("kind") == "hidden"
    removed_unit = hidden & ids & member & ~every
    keep, extra = _remove_units(G, prunable, removed_unit)
    removed = removed_unit[unit]
    names = G.node_column("name")
    if hidden.any() and removed[hidden].all():
        warnings.warn(
            "lattice_prune: variant='units' removed every hidden unit (none is irreducible in "
            "every block it belongs to); lower the quantile or the target sparsity.",
            NetstructWarning,
            stacklevel=4,
        )
    attrs = dict(
        lattice_irreducible=every,
        lattice_critical=~removed,
        lattice_removed=removed,
    )
    cfg = dict(config, quantile=qq, removed_units=names[removed_unit].tolist())
    return _apply(G, keep, cfg, attrs, extra)


def _continuous(
    a, grid, target, theta, *, G, prunable, strengths, io, config, irreducible, T, centrality
):
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
    scores, protected = {}, {}
    for i in prunable:
        um = unit_map(G, i)
        scores[i] = norm[i] * np.sqrt(np.outer(S[um.post_units], S[um.pre_units]))
        protected[i] = (io[um.post_units][:, None] | io[um.pre_units][None, :]) & (norm[i] > 0)
    if target is None:
        keep = {i: ((scores[i] >= theta) | protected[i]) & (norm[i] > 0) for i in prunable}
    else:
        keep, theta = _to_target(G, prunable, norm, scores, protected, target)
    attrs = dict(
        lattice_persistence=pers,
        lattice_score=S,
        lattice_centrality=cen,
        lattice_critical=io.copy(),
    )
    return _finish(G, keep, dict(config, theta=theta), attrs, config["structured"])


def _to_target(G, prunable, norm, scores, protected, target):
    """Remove the lowest-scoring free connections until the sparsity is closest to ``target``."""
    counts = {i: _entry_counts(G, i) for i in prunable}
    total = sum(G.blocks[i].mask.size for i in prunable)
    live = {i: norm[i] > 0 for i in prunable}
    absent = total - sum(int(counts[i][live[i]].sum()) for i in prunable)
    free = {i: live[i] & ~protected[i] for i in prunable}
    s = np.concatenate([scores[i][free[i]] for i in prunable])
    c = np.concatenate([counts[i][free[i]] for i in prunable])
    need = int(round(target * total)) - absent
    order = np.argsort(s, kind="stable")
    if need > int(c.sum()):
        warnings.warn(
            f"lattice_prune: amount={target:g} is out of reach; protected input/output "
            f"edges cap the sparsity at {(absent + int(c.sum())) / total:.4f} "
            "(pass protect_io=False to allow more).",
            NetstructWarning,
            stacklevel=4,
        )
    k = _closest_prefix(c[order], max(need, 0))
    drop = np.zeros(s.size, dtype=bool)
    drop[order[:k]] = True
    keep, pos = {}, 0
    for i in prunable:
        K = live[i].copy()
        n_free = int(free[i].sum())
        K[free[i]] = ~drop[pos : pos + n_free]
        pos += n_free
        keep[i] = K
    theta = float(s[order[k - 1]]) if k > 0 else 0.0
    return keep, theta

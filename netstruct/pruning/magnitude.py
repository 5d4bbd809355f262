"""Magnitude and random pruning (global or per layer), mask plans, sparsity and parameter counts.

Every function builds a :class:`~netstruct.pruning.PruningPlan` through the selector layer, so
the result is a pruned :class:`~netstruct.SignedGraph` whose ``provenance["pruning"]`` says
what was removed and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..exceptions import GraphError, param_error
from ..graphs.signed import SignedGraph
from ..utils.deprecation import renamed_parameters
from ..utils.random import check_random_state
from ..utils.validation import check_choice, check_fraction, check_graph
from .plan import PruningPlan, _masked_edge_ids
from .selectors import smallest

__all__ = [
    "magnitude_plan",
    "magnitude_prune",
    "random_plan",
    "random_prune",
    "mask_plan",
    "block_masks",
    "sparsity",
    "effective_sparsity",
    "count_params",
]


def _block_ids(G: SignedGraph, blocks: Sequence[str | int] | None, func: str) -> list[int]:
    if blocks is None:
        return list(range(len(G.blocks)))
    if (
        isinstance(blocks, (str, int))
        or not isinstance(blocks, Iterable)
        or not all(isinstance(b, (str, int, np.integer)) for b in blocks)
    ):
        raise param_error("blocks", func, "a list of block names or positions", blocks)
    return sorted({G.block_index(b) for b in blocks})


def _capacity(G: SignedGraph, ids: list[int]) -> int:
    return int(sum(G.blocks[i].weight.size for i in ids))


@renamed_parameters("magnitude_plan", sparsity="amount")
def magnitude_plan(
    G: SignedGraph,
    amount: float,
    *,
    scope: str = "global",
    blocks: Sequence[str | int] | None = None,
    plan: PruningPlan | None = None,
) -> PruningPlan:
    """Plan removing the smallest-magnitude weights until ``amount`` of the blocks is gone.

    Parameters
    ----------
    G : SignedGraph
        May already be pruned; its missing edges count towards the amount.
    amount : float in [0, 1]
        Target sparsity: share of the chosen blocks' full weight matrices that is absent
        afterwards (per block for ``scope="layer"``). Already-sparser blocks are left alone.
        (Formerly ``sparsity``, still accepted with a FutureWarning.)
    scope : {"global", "layer"}
        Rank all chosen weights together or each block separately.
    blocks : list of block names or positions, optional
        Blocks to prune (default: all).
    plan : PruningPlan, optional
        Extend this plan (default: a new one).

    Returns
    -------
    PruningPlan

    Notes
    -----
    Ties in ``|weight|`` are broken by edge order, so the result is deterministic; exactly
    ``round(amount * size)`` entries are missing afterwards.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct.pruning import magnitude_plan, sparsity
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)))
    >>> H = magnitude_plan(G, 0.5, scope="layer").apply(G)
    >>> [int(b.n_edges) for b in H.blocks]
    [24, 9]
    """
    func = "magnitude_plan"
    check_graph(G, func)
    s = check_fraction(amount, "amount", func)
    check_choice(scope, "scope", func, ["global", "layer"])
    ids = _block_ids(G, blocks, func)
    plan = PruningPlan.for_graph(G) if plan is None else plan
    groups = [ids] if scope == "global" else [[i] for i in ids]
    sel = None
    for grp in groups:
        present = int(sum(G.blocks[i].n_edges for i in grp))
        k = int(round(s * _capacity(G, grp))) - (_capacity(G, grp) - present)
        if k <= 0:
            continue
        part = smallest("abs(weight)", k=k, within=f"layer in {grp}")
        sel = part if sel is None else sel | part
    if sel is None:
        return plan
    where = "globally" if scope == "global" else "per layer"
    return plan.remove_edges(
        G,
        sel,
        reason=f"magnitude: smallest |weight| to sparsity {s:g} {where}",
        meta={"method": "magnitude", "amount": s, "scope": scope},
    )


@renamed_parameters("magnitude_prune", sparsity="amount")
def magnitude_prune(
    G: SignedGraph,
    amount: float,
    *,
    scope: str = "global",
    blocks: Sequence[str | int] | None = None,
    shrink: bool = False,
) -> SignedGraph:
    """Magnitude pruning to a target sparsity ``amount``; see :func:`magnitude_plan`.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct.pruning import magnitude_prune, sparsity
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)))
    >>> round(sparsity(magnitude_prune(G, 0.8)), 3)
    0.803
    """
    return magnitude_plan(G, amount, scope=scope, blocks=blocks).apply(G, shrink=shrink)


@renamed_parameters("random_plan", sparsity="amount")
def random_plan(
    G: SignedGraph,
    amount: float,
    *,
    scope: str = "layer",
    blocks: Sequence[str | int] | None = None,
    seed: Any = 0,
    plan: PruningPlan | None = None,
) -> PruningPlan:
    """Plan removing uniformly random present edges until sparsity ``amount`` (a null baseline).

    ``scope="layer"`` gives every block the same sparsity (the usual layer-uniform random
    ticket); ``"global"`` draws over all chosen blocks at once.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct.pruning import random_plan
    >>> G = ns.from_torch(torch.nn.Linear(10, 10))
    >>> random_plan(G, 0.3, seed=0).apply(G).n_edges
    70
    """
    func = "random_plan"
    check_graph(G, func)
    s = check_fraction(amount, "amount", func)
    check_choice(scope, "scope", func, ["global", "layer"])
    rng = check_random_state(seed, func=func)
    ids = _block_ids(G, blocks, func)
    plan = PruningPlan.for_graph(G) if plan is None else plan
    layer = G.edge_arrays()["layer"]
    em = np.zeros(G.n_edges, dtype=bool)
    groups = [ids] if scope == "global" else [[i] for i in ids]
    for grp in groups:
        cand = np.flatnonzero(np.isin(layer, grp))
        k = int(round(s * _capacity(G, grp))) - (_capacity(G, grp) - cand.size)
        if k > 0:
            em[rng.choice(cand, size=k, replace=False)] = True
    return plan.remove_edges(
        G,
        em,
        reason=f"random: uniform edges to sparsity {s:g} ({scope})",
        meta={"method": "random", "amount": s, "scope": scope},
    )


@renamed_parameters("random_prune", sparsity="amount")
def random_prune(
    G: SignedGraph,
    amount: float,
    *,
    scope: str = "layer",
    blocks: Sequence[str | int] | None = None,
    seed: Any = 0,
    shrink: bool = False,
) -> SignedGraph:
    """Random pruning to a target sparsity ``amount``; see :func:`random_plan`."""
    return random_plan(G, amount, scope=scope, blocks=blocks, seed=seed).apply(G, shrink=shrink)


def mask_plan(
    G: SignedGraph,
    keep: Mapping[str, np.ndarray],
    *,
    reason: str = "mask",
    meta: dict[str, Any] | None = None,
    plan: PruningPlan | None = None,
) -> PruningPlan:
    """Plan removing the entries where a per-block keep mask is False (True = keep).

    Parameters
    ----------
    keep : mapping of block name to bool array of the block's shape
        Blocks not named are kept whole. A flat vector is refused (LEGCNet's ``prune_mask``
        means True = *prune*; pass ``result.plan`` to :func:`netstruct.prune` instead).

    Examples
    --------
    >>> import numpy as np, torch, netstruct as ns
    >>> from netstruct.pruning import mask_plan
    >>> G = ns.from_torch(torch.nn.Linear(2, 2))
    >>> mask_plan(G, {"weight": np.eye(2, dtype=bool)}).apply(G).n_edges
    2
    """
    func = "mask_plan"
    check_graph(G, func)
    _masked_edge_ids(G, keep, func)  # the messages name mask_plan
    plan = PruningPlan.for_graph(G) if plan is None else plan
    return plan.remove_masked(G, keep, reason=reason, meta=meta)


def block_masks(G: SignedGraph) -> dict[str, np.ndarray]:
    """Block name -> copy of its boolean edge mask."""
    check_graph(G, "block_masks")
    return {b.name: b.mask.copy() for b in G.blocks}


def sparsity(G: SignedGraph, *, blocks: Sequence[str | int] | None = None) -> float:
    """Share of missing entries over the blocks' full weight matrices (nominal sparsity).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> sparsity(ns.prune(ns.from_torch(torch.nn.Linear(4, 1)), edges="col == 0"))
    0.25
    """
    check_graph(G, "sparsity")
    ids = _block_ids(G, blocks, "sparsity")
    cap = _capacity(G, ids)
    return 0.0 if cap == 0 else 1.0 - sum(G.blocks[i].n_edges for i in ids) / cap


def effective_sparsity(G: SignedGraph) -> float:
    """Sparsity counting dead edges as missing: edges of units with no input or no output path.

    An edge into a unit that feeds nothing, or out of a unit that receives nothing (its output
    is a constant, folded into biases), cannot carry signal from inputs to outputs. This is the
    sparsity of :func:`netstruct.shrink`'s result measured against the original capacity.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)))
    >>> H = ns.prune(G, edges="layer == 1 and col == 0")
    >>> round(sparsity(H), 3), round(effective_sparsity(H), 3)
    (0.167, 0.5)
    """
    check_graph(G, "effective_sparsity")
    if G.spec is None:
        raise GraphError(
            "effective_sparsity needs a graph with an architecture spec (from netstruct.from_torch)."
        )
    from ..convert.shrink import shrink

    cap = _capacity(G, list(range(len(G.blocks))))
    return 0.0 if cap == 0 else 1.0 - shrink(G).n_edges / cap


def count_params(obj: Any) -> int:
    """Number of parameters of a torch module, or of the module a graph re-imports to.

    For a graph this is :func:`netstruct.graph_params`: the re-imported module's parameters,
    masked entries included as torch stores them, convolution kernels, norm scales and tied
    parameters counted as torch counts them.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> m = torch.nn.Sequential(torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    >>> count_params(m), count_params(ns.from_torch(m))
    (2114, 2114)
    >>> cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    >>> count_params(cnn), count_params(ns.from_torch(cnn, torch.zeros(1, 1, 5, 5)))
    (48, 48)
    """
    if isinstance(obj, SignedGraph):
        from .counts import graph_params

        return graph_params(obj)
    params = getattr(obj, "parameters", None)
    if params is None:
        raise param_error(
            "obj", "count_params", "a torch module or a SignedGraph", type(obj).__name__
        )
    return int(sum(p.numel() for p in params()))

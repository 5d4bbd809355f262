"""Pruning toolbox: graph queries, pruning plans, magnitude/random baselines, ODF2NNA, lottery masks.

Every method ends the same way: a :class:`PruningPlan` (what was removed and why, extended to
coupled rows and columns, saved as JSON and replayable), or a result holding one in ``.plan``,
applied by :func:`prune` (``netstruct.prune(G, plan_or_result, shrink=...)``) to a
:class:`~netstruct.SignedGraph`, which re-imports masked (``netstruct.to_torch``) or physically
smaller (``shrink=True``). Masks are dicts by block name with True = keep; selections
(queries, boolean arrays, Series aligned by index) name what to remove. The vocabulary:
``amount`` (how much to remove), ``blocks`` (which blocks), ``seed=0``.

torch is imported only by the functions that train (``odf2nna_sweep``, ``learn_mask``, ``imp``,
``train_ticket``).
"""

from .lottery import (
    EdgeMask,
    TicketResult,
    TrainedTicket,
    he_normal_,
    imp,
    learn_mask,
    topk_mask,
    train_ticket,
)
from .magnitude import (
    block_masks,
    count_params,
    effective_sparsity,
    magnitude_plan,
    magnitude_prune,
    mask_plan,
    random_plan,
    random_prune,
    sparsity,
)
from .odf2nna import (
    EpsChoice,
    LayerDecision,
    ODF2NNAResult,
    activation_stats,
    choose_eps,
    odf2nna,
    odf2nna_protocol,
    odf2nna_sweep,
    select_eps,
    useful_units,
)
from .plan import PlanStep, PruningPlan
from .query import prune, select_edges, select_nodes
from .regularizers import Regularizer, projected_step, regularizer
from .selectors import Selection, largest, quantile, smallest, where

__all__ = [
    "prune",
    "select_edges",
    "select_nodes",
    "Selection",
    "where",
    "largest",
    "smallest",
    "quantile",
    "PlanStep",
    "PruningPlan",
    "magnitude_plan",
    "magnitude_prune",
    "random_plan",
    "random_prune",
    "mask_plan",
    "block_masks",
    "sparsity",
    "effective_sparsity",
    "count_params",
    "odf2nna",
    "odf2nna_sweep",
    "odf2nna_protocol",
    "select_eps",
    "choose_eps",
    "EpsChoice",
    "ODF2NNAResult",
    "LayerDecision",
    "activation_stats",
    "useful_units",
    "Regularizer",
    "regularizer",
    "projected_step",
    "EdgeMask",
    "topk_mask",
    "TicketResult",
    "TrainedTicket",
    "learn_mask",
    "imp",
    "train_ticket",
    "he_normal_",
]

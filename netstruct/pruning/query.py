"""Edge and node selection by expressions over the graph's tables, and query pruning."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError, param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph
from .plan import PruningPlan, _warn_if_empty
from .selectors import Selection, evaluate_selector

__all__ = ["select_edges", "select_nodes", "prune", "Selector"]

#: A selection: a pandas query string, a callable ``table -> bool mask``, a boolean mask or a Selection.
Selector: TypeAlias = (
    str | Callable[[pd.DataFrame], Any] | np.ndarray | pd.Series | Selection | None
)


def select_edges(G: SignedGraph, query: Selector) -> np.ndarray:
    """Boolean mask over :meth:`SignedGraph.edges` for a query, callable, mask or Selection.

    Query strings use pandas syntax over every edge column (``weight``, ``sign``, ``layer``,
    ``block``, ``source``, ``target``, ``delay`` and attached attributes), e.g.
    ``"abs(weight) < 0.01 and layer == 0"``.

    Raises
    ------
    InvalidParameterError
        The query names a column that does not exist (the message lists the columns) or does
        not give one boolean per edge.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Linear(3, 2))
    >>> int(select_edges(G, "weight > 0").sum()) == int((G.edges().weight > 0).sum())
    True
    """
    check_graph(G, "select_edges")
    if query is None:
        return np.zeros(G.n_edges, dtype=bool)
    return evaluate_selector(G.edges(), query, "select_edges")


def select_nodes(G: SignedGraph, query: Selector) -> np.ndarray:
    """Boolean mask over :meth:`SignedGraph.nodes` for a query, callable, mask or Selection.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    >>> int(select_nodes(G, "kind == 'hidden'").sum())
    4
    """
    check_graph(G, "select_nodes")
    if query is None:
        return np.zeros(G.n_nodes, dtype=bool)
    return evaluate_selector(G.nodes(), query, "select_nodes")


def prune(
    G: SignedGraph,
    what: Any = None,
    nodes: Selector = None,
    *,
    edges: Selector = None,
    shrink: bool = False,
    reason: str | None = None,
) -> SignedGraph:
    """Apply any pruning decision to ``G``: a plan, a method's result, keep masks or a selection.

    One entry point for every method. ``what`` may be

    * a :class:`~netstruct.pruning.PruningPlan` (replayed; refused on a graph whose block
      names or shapes differ, the message names the block);
    * a result holding one in ``.plan`` (``lattice_prune``, ``legcnet_prune``, ``odf2nna``,
      ``imp``, ``learn_mask``, the lattice baselines, ``probes.prune_plan``);
    * a dict of per-block **keep** masks (block name -> bool array of the block's shape,
      True = keep), as ``block_masks`` and the results' masks;
    * otherwise an edge **selection** (what to remove), as ``edges=``.

    Selections say what goes, masks say what stays: a query string, a callable, a Selection,
    a boolean array over :meth:`SignedGraph.edges` in table order, or a boolean pandas Series
    (aligned by its index labels, so a Series from a sorted table selects the right rows; an
    index that does not match the table's is refused).

    Removing a node removes its unit with everything coupled to it: every edge into the unit
    and its LSTM/GRU gate rows, its recurrent column and the next layer's input column (see
    :class:`~netstruct.pruning.PruningPlan`). Input and output nodes may be selected (their
    edges go), but :func:`netstruct.shrink` never removes them. A selection that removes every
    unit of a hidden layer is refused; a query that matches nothing warns
    (:class:`~netstruct.exceptions.EmptySelectionWarning`).

    Parameters
    ----------
    G : SignedGraph
    what : PruningPlan, result with ``.plan``, dict of keep masks, or an edge selection
    nodes, edges : str, callable, boolean array, Series, Selection or None
        Units and edges to remove (see :func:`select_nodes` and :func:`select_edges`); not
        combined with a plan, result or mask dict.
    shrink : bool, default=False
        Remove the units left without effect, so ``netstruct.to_torch`` builds physically
        smaller layers (outputs equal the masked model's).
    reason : str, optional
        Recorded in ``provenance["pruning"]`` (default: the query text).

    Returns
    -------
    SignedGraph

    Raises
    ------
    InvalidParameterError
        Nothing to apply, a selection combined with a plan, a flat keep vector, or a bad query
        (unknown column: the message lists the columns).
    GraphError
        The selection empties a hidden layer, or the plan's architecture differs from ``G``'s
        (the message names the block and both shapes).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    >>> H = ns.prune(G, edges="abs(weight) < 0.2")
    >>> H.n_edges < G.n_edges
    True
    >>> [b.shape for b in ns.prune(G, nodes="name == '0[0]'", shrink=True).blocks]
    [(2, 4), (2, 2)]
    >>> plan = ns.pruning.magnitude_plan(G, 0.5)
    >>> ns.prune(G, plan).n_edges == ns.prune(G, plan.keep_masks(G)).n_edges == G.n_edges - 9
    True
    """
    func = "prune"
    check_graph(G, func)
    if not isinstance(shrink, bool):
        raise param_error("shrink", func, "a bool", shrink)
    plan = _as_plan(G, what, func)
    if plan is not None:
        if edges is not None or nodes is not None:
            raise InvalidParameterError(
                "prune: give either a plan (or a result or keep masks) or edges=/nodes= selections, "
                "not both; combine plans with '+' or extend one with remove_edges/remove_units."
            )
        return plan.apply(G, shrink=shrink)
    if what is not None:
        if edges is not None:
            raise InvalidParameterError(
                "prune got an edge selection both positionally and as edges=; pass it once."
            )
        edges = what
    if edges is None and nodes is None:
        raise InvalidParameterError(
            "prune needs something to apply: a PruningPlan, a pruning result, keep masks, or an "
            "'edges' or 'nodes' selection (or both)."
        )
    plan = PruningPlan.for_graph(G)
    if nodes is not None:
        nm = select_nodes(G, nodes)
        _warn_if_empty(nm, nodes, "nodes", func)
        plan = plan.remove_units(G, nm, reason=reason or f"nodes: {_text(nodes)}")
    if edges is not None:
        em = select_edges(G, edges)
        _warn_if_empty(em, edges, "edges", func)
        plan = plan.remove_edges(G, em, reason=reason or f"edges: {_text(edges)}")
    return plan.apply(G, shrink=shrink)


def _as_plan(G: SignedGraph, what: Any, func: str) -> PruningPlan | None:
    """The plan behind ``what`` (a plan, a result with .plan, keep masks), or None for selections."""
    if isinstance(what, PruningPlan):
        return what
    plan = getattr(what, "plan", None)
    if isinstance(plan, PruningPlan):
        return plan
    if isinstance(what, Mapping):
        return PruningPlan.for_graph(G).remove_masked(G, what, reason="keep masks")
    if (
        what is None
        or isinstance(what, (str, np.ndarray, pd.Series, list, tuple))
        or callable(what)
    ):
        return None
    raise InvalidParameterError(
        f"The 'what' parameter of {func} must be a PruningPlan, a pruning result with a .plan, a dict "
        "of block name -> keep mask, or an edge selection (query string, callable, Selection, boolean "
        f"array or Series). Got {type(what).__name__} instead."
    )


def _text(sel: Any) -> str:
    if isinstance(sel, str):
        return sel
    if isinstance(sel, Selection):
        return repr(sel)
    return "callable" if callable(sel) else "boolean mask"

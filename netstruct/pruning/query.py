"""Edge and node selection by expressions over the graph's tables, and query pruning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError, param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph
from .plan import PruningPlan
from .selectors import Selection, evaluate_selector

__all__ = ["select_edges", "select_nodes", "prune", "Selector"]

#: A selection: a pandas query string, a callable ``table -> bool mask``, a boolean mask or a Selection.
Selector = str | Callable[[pd.DataFrame], Any] | np.ndarray | pd.Series | Selection | None


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


def prune(G: SignedGraph, edges: Selector = None, nodes: Selector = None, *, shrink: bool = False,
          reason: str | None = None) -> SignedGraph:
    """Remove the selected edges and nodes (masked: zeros stay in place, or shrunk).

    Removing a node removes its unit with everything coupled to it: every edge into the unit
    and its LSTM/GRU gate rows, its recurrent column and the next layer's input column (see
    :class:`~netstruct.pruning.PruningPlan`). Input and output nodes may be selected (their
    edges go), but :func:`netstruct.shrink` never removes them. A selection that removes every
    unit of a hidden layer is refused.

    Parameters
    ----------
    G : SignedGraph
    edges, nodes : str, callable, boolean array, Selection or None
        See :func:`select_edges` and :func:`select_nodes`.
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
        Neither selection given, or a bad query (unknown column: the message lists the columns).
    GraphError
        The selection empties a hidden layer (the message names it).

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
    """
    check_graph(G, "prune")
    if edges is None and nodes is None:
        raise InvalidParameterError("prune needs an 'edges' or a 'nodes' selection (or both).")
    if not isinstance(shrink, bool):
        raise param_error("shrink", "prune", "a bool", shrink)
    plan = PruningPlan.for_graph(G)
    if nodes is not None:
        nm = select_nodes(G, nodes)
        plan = plan.remove_units(G, nm, reason=reason or f"nodes: {_text(nodes)}")
    if edges is not None:
        em = select_edges(G, edges)
        plan = plan.remove_edges(G, em, reason=reason or f"edges: {_text(edges)}")
    return plan.apply(G, shrink=shrink)


def _text(sel: Any) -> str:
    if isinstance(sel, str):
        return sel
    if isinstance(sel, Selection):
        return repr(sel)
    return "callable" if callable(sel) else "boolean mask"

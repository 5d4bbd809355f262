"""Edge and node selection by expressions over the graph's tables, and query pruning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph

__all__ = ["select_edges", "select_nodes", "prune", "Selector"]

#: A selection: a pandas query string, a callable ``table -> bool mask``, or a boolean mask.
Selector = Union[str, Callable[[pd.DataFrame], Any], np.ndarray, pd.Series, None]


def _select(table: pd.DataFrame, sel: Selector, what: str, func: str) -> np.ndarray:
    n = len(table)
    if sel is None:
        return np.zeros(n, dtype=bool)
    if isinstance(sel, str):
        try:
            out = table.eval(sel, engine="python") if n else np.zeros(0, dtype=bool)
        except Exception as exc:  # pandas raises many kinds for a bad expression
            raise InvalidParameterError(
                f"The {what!r} query of {func} could not be evaluated ({type(exc).__name__}: {exc}). "
                f"Use pandas query syntax over the columns {list(table.columns)}, e.g. \"abs(weight) < 0.01\"."
            ) from None
    elif callable(sel):
        out = sel(table)
    else:
        out = sel
    arr = np.asarray(out)
    if arr.dtype != np.bool_ or arr.shape != (n,):
        raise InvalidParameterError(
            f"The {what!r} selection of {func} must give one boolean per {what[:-1]} ({n}); got "
            f"dtype {arr.dtype} and shape {arr.shape}. Write a comparison such as \"weight < 0\"."
        )
    return arr


def select_edges(G: SignedGraph, query: Selector) -> np.ndarray:
    """Boolean mask over :meth:`SignedGraph.edges` for a query, callable or mask.

    Query strings use pandas syntax over every edge column (``weight``, ``sign``, ``layer``,
    ``block``, ``source``, ``target``, ``delay`` and attached attributes), e.g.
    ``"abs(weight) < 0.01 and layer == 0"``.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Linear(3, 2))
    >>> int(select_edges(G, "weight > 0").sum()) == int((G.edges().weight > 0).sum())
    True
    """
    check_graph(G, "select_edges")
    return _select(G.edges(), query, "edges", "select_edges")


def select_nodes(G: SignedGraph, query: Selector) -> np.ndarray:
    """Boolean mask over :meth:`SignedGraph.nodes` for a query, callable or mask."""
    check_graph(G, "select_nodes")
    return _select(G.nodes(), query, "nodes", "select_nodes")


def prune(G: SignedGraph, edges: Selector = None, nodes: Selector = None) -> SignedGraph:
    """Remove the selected edges and nodes (masked: zeros stay in place).

    Removing a node removes every edge into or out of it and, for an LSTM/GRU unit, into its
    gate rows. Input and output nodes may be selected (their edges go), but
    :func:`netstruct.shrink` never removes them. Re-import with
    ``netstruct.to_torch(H, shrink=True)`` for a physically smaller model.

    Parameters
    ----------
    G : SignedGraph
    edges, nodes : str, callable, boolean array or None
        See :func:`select_edges` and :func:`select_nodes`.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    >>> H = ns.prune(G, edges="abs(weight) < 0.2")
    >>> H.n_edges < G.n_edges
    True
    """
    check_graph(G, "prune")
    if edges is None and nodes is None:
        raise InvalidParameterError("prune needs an 'edges' or a 'nodes' selection (or both).")
    em = select_edges(G, edges) if edges is not None else np.zeros(G.n_edges, dtype=bool)
    if nodes is not None:
        nm = select_nodes(G, nodes)
        unit = G.node_column("unit")
        gone = nm[unit] | nm  # a unit takes its gate rows along
        a = G.edge_arrays()
        em = em | gone[a["source"]] | gone[a["target"]]
    return G.remove_edges(em)

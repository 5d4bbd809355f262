"""Pruning by graph queries: select edges and nodes, remove them, re-import the result."""

from .query import prune, select_edges, select_nodes

__all__ = ["prune", "select_edges", "select_nodes"]

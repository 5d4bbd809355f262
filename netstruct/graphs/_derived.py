"""Where a graph keeps what it derives from its structure alone.

Graphs are immutable, so analyses of their structure (coupling groups, the shrink state, the
structured groups and their incidence) are computed once per graph and kept in the dict
:func:`structural` returns. :func:`netstruct.from_torch` hands one such dict to every graph
it exports from the same kept trace on inputs of the same signature with the same wiring
(:mod:`netstruct.convert._kept`): those graphs differ only in their weights, so re-exporting a
model (after training, in a pruning sweep) does not analyse its structure again. Nothing that
depends on weights, masks or attributes goes in it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["structural", "share_structural"]

_KEY = "_netstruct_structural"


def structural(G: Any) -> dict[str, Any]:
    """The dict of ``G``'s structure-only analyses (made empty on first use).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Linear(2, 2))
    >>> structural(G) is structural(G)
    True
    """
    store = G.__dict__.get(_KEY)
    if store is None:
        store = G.__dict__[_KEY] = {}
    return store


def share_structural(G: Any, store: dict[str, Any]) -> None:
    """Make ``store`` ``G``'s structural dict (the caller vouches that the structures match)."""
    G.__dict__[_KEY] = store

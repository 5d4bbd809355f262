"""Units that must be removed together: coupling groups computed on the graph.

Removing a unit from a network is only possible together with every unit tied to it one-to-one:

* the gate rows of an LSTM/GRU unit (the ``unit`` column);
* a channel and its norm node (``kind="norm"`` blocks are diagonal);
* the operands of a residual sum and the sum node (``kind="skip"`` blocks): channels tied by a
  residual add across a stage;
* a value and its copy (``kind="identity"``);
* the query, key and value dimension ``j`` of an attention head and its context dimension
  (``kind="operator"``);
* the input and output channel of a depthwise convolution.

:func:`coupled_units` joins them with a union-find and returns, per node, the id of its group
(the smallest node id in it), the shape of Torch-Pruning's dependency groups but computed from
the blocks' kinds, so any handler's blocks take part without special cases.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._dtypes import INDEX_DTYPE
from .signed import SignedGraph

__all__ = ["coupled_units", "coupling_table"]


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


def _pairs(G: SignedGraph) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(a, b)`` id arrays whose entries are tied one-to-one."""
    out = []
    unit = G.node_column("unit")
    gates = np.flatnonzero(unit != np.arange(G.n_nodes))
    out.append((gates, unit[gates]))
    for b in G.blocks:
        if b.kind in ("norm", "skip", "identity"):
            r, c = np.nonzero(np.eye(*b.shape, dtype=bool))
            out.append((b.targets[r], b.sources[c]))
        elif b.kind == "operator":
            n_out, n_in = b.shape
            for k in range(n_in // max(n_out, 1)):
                out.append((b.targets, b.sources[k * n_out : (k + 1) * n_out]))
        elif b.kernel is not None and b.layout.get("type") == "conv":
            g = int(b.layout.get("groups", 1))
            if g > 1 and b.kernel.shape[1] == 1 and b.shape[0] == b.shape[1] == g:
                out.append((b.targets, b.sources))
    return out


def coupled_units(G: SignedGraph) -> np.ndarray:
    """Coupling group of every node: the smallest node id of the units tied to it.

    Parameters
    ----------
    G : SignedGraph

    Returns
    -------
    ndarray of int64, shape (n_nodes,)
        Nodes with equal values must be removed together; a node alone has its own id.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct.graphs.coupling import coupled_units
    >>> class Res(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a, self.b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    ...     def forward(self, x):
    ...         h = self.a(x)
    ...         return h + self.b(h)
    >>> G = ns.from_torch(Res(), torch.zeros(1, 2))
    >>> coupled_units(G).tolist()  # a's unit i, b's unit i and the sum node i go together
    [0, 1, 2, 3, 2, 3, 2, 3]
    """
    n = G.n_nodes
    parent = np.arange(n, dtype=INDEX_DTYPE)
    for a, b in _pairs(G):
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = _find(parent, x), _find(parent, y)
            if rx != ry:
                parent[max(rx, ry)] = min(rx, ry)
    return np.array([_find(parent, i) for i in range(n)], dtype=INDEX_DTYPE)


def coupling_table(G: SignedGraph) -> pd.DataFrame:
    """Groups with more than one node: ``group, size, modules, nodes`` (one row per group)."""
    groups = coupled_units(G)
    nodes = G.nodes()
    df = pd.DataFrame(
        {"group": groups, "node": np.arange(G.n_nodes), "module": nodes["module"].to_numpy()}
    )
    agg = df.groupby("group").agg(
        size=("node", "size"),
        modules=("module", lambda m: sorted(set(m))),
        nodes=("node", list),
    )
    return agg[agg["size"] > 1].reset_index()

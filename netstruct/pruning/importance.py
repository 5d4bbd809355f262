"""Importance of structured groups: magnitude, Taylor, or any node or edge attribute."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph
from ._groups import _group_arrays

__all__ = ["group_importance"]


def _entry_sums(G: SignedGraph, values: dict[int, np.ndarray]) -> np.ndarray:
    """Per node: ``values`` (block index -> array in the parameter's torch layout) summed over
    the entries of the rows into it and the columns out of it."""
    e = np.zeros(G.n_nodes, dtype=np.float64)
    for i, v in values.items():
        b = G.blocks[i]
        v = np.asarray(v, dtype=np.float64)
        if b.layout.get("shared"):  # one group's entries, repeated over its groups
            v = np.tile(v.reshape(-1), b.shape[0] // max(v.size, 1))
        if b.kind == "norm":
            np.add.at(e, b.targets, v)
            continue
        if b.layout.get("type") == "diag":  # a per-unit scale (ConvNeXt's layer scale)
            np.add.at(e, b.targets, v)
            np.add.at(e, b.sources, v)
            continue
        if b.kernel is not None:
            if b.layout.get("transposed"):
                v = v.swapaxes(0, 1)
            k = v.reshape(v.shape[0], -1)
            if int(b.layout.get("groups", 1)) != 1:
                rows = k.sum(1)
                np.add.at(e, b.targets, rows)
                if b.shape[0] == b.shape[1]:  # depthwise: a row reads its own channel
                    np.add.at(e, b.sources, rows)
                continue
            if b.layout.get("type") == "expand":
                cols = np.bincount(
                    np.asarray(b.layout["columns"]), weights=k.sum(0), minlength=b.shape[1]
                )
            else:
                cols = k.reshape(b.shape[0], b.shape[1], -1).sum((0, 2))
            np.add.at(e, b.targets, k.sum(1))
            np.add.at(e, b.sources, cols)
            continue
        if b.layout.get("type") == "transpose":
            v = v.T
        np.add.at(e, b.targets, v.sum(1))
        np.add.at(e, b.sources, v.sum(0))
    return e


def _weighted_blocks(G: SignedGraph) -> list[int]:
    return [
        i
        for i, b in enumerate(G.blocks)
        if b.kind not in ("skip", "identity", "operator") and b.has_parameter
    ]


def _magnitude_energy(G: SignedGraph) -> np.ndarray:
    """Sum of squared weights (kernel taps included) on the edges into and out of every node."""
    return _entry_sums(
        G, {i: np.square(G.blocks[i].parameter().astype(np.float64)) for i in _weighted_blocks(G)}
    )


def _taylor_scores(G: SignedGraph, data: Any, loss: Any, func: str) -> np.ndarray:
    """Per node: the sum of ``w * dL/dw`` over its parameters (and biases) on ``data``."""
    import torch

    from ..convert.to_torch import to_torch

    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise param_error("data", func, "a pair (inputs, targets) of tensors for by='taylor'", data)
    x, y = data
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise param_error("data", func, "a pair (inputs, targets) of tensors", type(x).__name__)
    if loss is None:
        loss = (
            torch.nn.functional.cross_entropy
            if not torch.is_floating_point(y)
            else torch.nn.functional.mse_loss
        )
    if not callable(loss):
        raise param_error("loss", func, "a callable loss(outputs, targets) or None", loss)
    model = to_torch(G)
    model.zero_grad()
    with torch.enable_grad():
        value = loss(model(x), y)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise param_error("loss", func, "a callable returning a scalar tensor", value)
        value.backward()
    params = dict(model.named_parameters())
    wg: dict[int, np.ndarray] = {}
    bias = np.zeros(G.n_nodes)
    start: dict[str, int] = {}  # rows already taken of a parameter split over blocks
    for i in _weighted_blocks(G):
        b = G.blocks[i]
        if "@" in b.module:
            continue
        for name, to in ((b.param, "w"), (b.bias_param, "b")):
            full = (f"{b.module}.{name}" if b.module else name) if name else ""
            rows = slice(None)
            if name and b.layout.get("part") is not None:  # cross-attention's Q/K/V rows
                k = start.get(full, 0)
                rows = slice(k, k + b.shape[0])
                start[full] = k + b.shape[0]
            p = params.get(full) if name else None
            if p is None or p.grad is None:
                continue
            v = (p.detach() * p.grad).double().numpy()[rows]
            if to == "w":
                wg[i] = v
            else:
                np.add.at(bias, b.targets, v)
    out = _entry_sums(G, wg) + bias
    if not np.isfinite(out).all():
        raise param_error("data", func, "inputs giving a finite loss and gradients", "non-finite")
    return out


def _node_scores(G: SignedGraph, by: Any, func: str, data: Any, loss: Any) -> np.ndarray:
    """Per-node values to sum over groups (edge values go to both ends)."""
    if isinstance(by, str) and by == "magnitude":
        return _magnitude_energy(G)
    if isinstance(by, str) and by == "taylor":
        return _taylor_scores(G, data, loss, func)
    vals: Any = by
    if callable(by) and not isinstance(by, (np.ndarray, pd.Series)):
        vals = by(G)
    elif isinstance(by, str):
        nodes = G.nodes()
        if by in nodes.columns:
            vals = nodes[by]
        else:
            edges = G.edges()
            if by not in edges.columns:
                raise param_error(
                    "by",
                    func,
                    "'magnitude', 'taylor', a node or edge column name, an array or a callable",
                    by,
                )
            vals = edges[by]
    arr = np.asarray(vals.to_numpy() if isinstance(vals, pd.Series) else vals, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] not in (G.n_nodes, G.n_edges) or not np.isfinite(arr).all():
        raise param_error(
            "by",
            func,
            f"finite values per node ({G.n_nodes}) or per edge ({G.n_edges})",
            f"shape {arr.shape}",
        )
    if arr.shape[0] == G.n_nodes:
        return arr
    a = G.edge_arrays()
    e = np.zeros(G.n_nodes)
    np.add.at(e, a["source"], arr)
    np.add.at(e, a["target"], arr)
    return e


def group_importance(
    G: SignedGraph,
    *,
    by: str | Callable[..., Any] | Any = "magnitude",
    data: Any = None,
    loss: Any = None,
    norm_width: bool = False,
) -> pd.Series:
    """Importance of every structured group (higher = keep).

    Parameters
    ----------
    G : SignedGraph
    by : str, array or callable, default="magnitude"
        ``"magnitude"``: the L2 norm of every weight into and out of the group's units (kernel
        taps, gate rows and norm scales included; Torch-Pruning's group magnitude).
        ``"taylor"``: ``|sum of w * dL/dw|`` over the group's weights and biases on ``data``
        (first-order Taylor estimate of the loss change when the group goes; Molchanov et
        al., 2019). A node
        column or attribute name (e.g. lattice or causal scores attached to the graph): the sum
        over the group's nodes. An edge column or attribute name: the sum over the edges into
        and out of the group's nodes. An array of shape ``(n_nodes,)`` or ``(n_edges,)``, or a
        callable ``f(G)`` returning one, is summed the same way.
    data : (inputs, targets) tensors, optional
        Calibration batch for ``by="taylor"``.
    loss : callable, optional
        ``loss(outputs, targets)`` for ``by="taylor"`` (default: cross-entropy for integer
        targets, mean squared error for float targets).
    norm_width : bool, default=False
        Also score the ``norm-width`` groups (see :func:`structured_groups`).

    Returns
    -------
    Series
        Indexed by group id (as in :func:`structured_groups`), named ``"importance"``.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    >>> s = ns.group_importance(G)
    >>> s.index.tolist(), bool((s > 0).all())
    ([3, 4, 5, 6], True)
    >>> ns.group_importance(G, by="bias").round(3).tolist()  # a node column
    [-0.552, -0.382, -0.238, 0.021]
    """
    check_graph(G, "group_importance")
    if not isinstance(norm_width, bool):
        raise param_error("norm_width", "group_importance", "a bool", norm_width)
    gids = _group_arrays(G, norm_width)[1]
    total = group_scores(G, by, data, loss, norm_width, "group_importance")
    return pd.Series(total, index=pd.Index(gids, name="group"), name="importance")


def group_scores(
    G: SignedGraph, by: Any, data: Any, loss: Any, norm_width: bool, func: str
) -> np.ndarray:
    """:func:`group_importance`'s values as an array, in group-id order (arguments checked
    but ``by``, which errors name as ``func``'s)."""
    cg, gids, _ = _group_arrays(G, norm_width)
    node = _node_scores(G, by, func, data, loss)
    total = np.bincount(cg, weights=node, minlength=G.n_nodes)[gids]
    if isinstance(by, str) and by == "magnitude":
        return np.sqrt(total)
    if isinstance(by, str) and by == "taylor":
        return np.abs(total)
    return total

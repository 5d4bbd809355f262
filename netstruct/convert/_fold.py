"""Fold eval-mode batch norms into the layer before them (``from_torch(..., fold_batchnorm=True)``).

This module only finds the places where folding is exact and rewrites the traced graph; what
a batch norm computes comes from its handler
(:meth:`~netstruct.convert.layers.NormHandler.eval_affine`) and how a layer absorbs a
per-channel affine map from the layer's handler (:meth:`ModuleHandler.absorb_affine`), so the
semantics of each layer kind stay in one handler.

A batch norm ``bn`` is folded into the module call ``layer`` that feeds it when

* ``bn`` is a ``BatchNorm1d/2d/3d`` with running statistics, called once, on ``layer``'s
  output only (no other arguments);
* ``layer`` is called once, its output is read by ``bn`` and nothing else, none of its
  parameters is shared with another module, and its handler can absorb the map (``nn.Linear`` on 2-D input,
  ``nn.ConvNd`` / ``nn.ConvTransposeNd`` on batched input, or a custom handler that implements
  ``absorb_affine``).

Then the call of ``bn`` is removed from the graph (its users read ``layer``'s output) and
``layer`` is exported as a copy holding ``weight * scale`` and ``bias * scale + shift`` (a
bias is added when the layer had none). The user's model is never modified. Batch norms in
training mode, or holding float16/bfloat16 values, are refused (``InvalidParameterError``).
"""

from __future__ import annotations

import warnings
from typing import Any

from ..exceptions import InvalidParameterError, UnfoldedBatchNormWarning
from .handlers import get_handler
from .layers import NormHandler

__all__ = ["fold_batchnorms"]


class _Overlay:
    """A module root whose ``get_submodule`` returns the folded copies of some layers."""

    def __init__(self, root: Any, replaced: dict[str, Any]) -> None:
        self._root = root
        self._replaced = replaced

    def get_submodule(self, path: str) -> Any:
        hit = self._replaced.get(path)
        return hit if hit is not None else self._root.get_submodule(path)

    def __getattr__(self, name: str) -> Any:  # parameters read directly (``get_attr``)
        return getattr(self._root, name)


def _copy_graph(graph: Any, real: dict[Any, Any] | None) -> tuple[Any, dict[Any, Any] | None]:
    """A copy of an fx graph (the caller's stays as it was) and ``real`` keyed by its nodes."""
    import torch

    new = torch.fx.Graph()
    val_map: dict[Any, Any] = {}
    out = new.graph_copy(graph, val_map)  # every node but the output, whose value it returns
    new.output(out)
    if real is not None:
        real = {val_map[n]: v for n, v in real.items() if n in val_map}
    return new, real


def _n_calls(graph: Any) -> dict[str, int]:
    calls: dict[str, int] = {}
    for n in graph.nodes:
        if n.op == "call_module":
            calls[str(n.target)] = calls.get(str(n.target), 0) + 1
    return calls


def _tied_ids(model: Any) -> set[int]:
    seen: set[int] = set()
    tied: set[int] = set()
    for _, p in model.named_parameters(remove_duplicate=False):
        (tied if id(p) in seen else seen).add(id(p))
    return tied


def _is_16_bit(norm: Any) -> bool:
    t = norm.running_mean if norm.running_mean is not None else norm.weight
    return t is not None and t.is_floating_point() and t.element_size() < 4


def _dtype_name(norm: Any) -> str:
    t = norm.running_mean if norm.running_mean is not None else norm.weight
    return str(t.dtype).replace("torch.", "")


def _ndim(real: dict[Any, Any] | None, node: Any) -> int | None:
    v: Any = None if real is None else real.get(node)
    return int(v.dim()) if hasattr(v, "dim") else None


def fold_batchnorms(traced: Any, real: dict[Any, Any] | None, model: Any) -> tuple[Any, Any, dict]:
    """Fold every foldable eval-mode batch norm of a traced model (see the module docstring).

    Parameters
    ----------
    traced : _Traced
        The trace of ``model`` (``graph``, ``root``, ``facts``); it is not modified.
    real : dict or None
        Every node's value on the example input (None without one).
    model : torch.nn.Module
        The user's model (unchanged).

    Returns
    -------
    traced : _Traced
        A new trace: the folded norms' calls removed, the layers they fed replaced by folded copies.
    real : dict or None
        The values keyed by the new trace's nodes (a layer's value is now its norm's).
    folded : dict
        ``{norm path: layer path}`` of the norms folded, in graph order.

    Raises
    ------
    InvalidParameterError
        A batch norm of the model is in training mode (it normalises with batch statistics, so
        there are no fixed statistics to fold), or holds float16/bfloat16 values.

    Warns
    -----
    UnfoldedBatchNormWarning
        Once, listing the batch norms left as norm nodes and why.
    """
    root = traced.root
    norms = []
    for n in traced.graph.nodes:
        if n.op == "call_module":
            mod = root.get_submodule(str(n.target))
            h = get_handler(mod)
            if isinstance(h, NormHandler) and h.batch:
                norms.append((n, mod, h))
    if not norms:
        return traced, real, {}
    training = sorted({str(n.target) for n, mod, _ in norms if mod.training})
    if training:
        more = f" (and {len(training) - 1} more)" if len(training) > 1 else ""
        raise InvalidParameterError(
            "The 'fold_batchnorm' parameter of from_torch folds eval-mode batch-norm statistics, "
            f"but batch norm {training[0]!r}{more} of {type(model).__name__} is in training mode "
            "(it normalises with the statistics of each batch). Call model.eval() before "
            "from_torch, or pass fold_batchnorm=False."
        )
    low = sorted({_dtype_name(mod) for _, mod, _ in norms if _is_16_bit(mod)})
    if low:
        raise InvalidParameterError(
            "The 'fold_batchnorm' parameter of from_torch needs a float32 or float64 model, but "
            f"the batch norms of {type(model).__name__} hold {', '.join(low)} values: folding "
            "changes the rounding by more than the 1e-5 the export checks. Fold the float32 "
            "model and cast the result: ns.to_torch(ns.from_torch(model.float(), x.float(), "
            "fold_batchnorm=True)).half()"
        )
    graph, real = _copy_graph(traced.graph, real)
    calls = _n_calls(graph)
    tied = _tied_ids(model)
    replaced: dict[str, Any] = {}
    folded: dict[str, str] = {}
    left: list[str] = []
    by_target = {str(n.target): (mod, h) for n, mod, h in norms}
    for bn in [n for n in graph.nodes if n.op == "call_module" and str(n.target) in by_target]:
        path = str(bn.target)
        mod, handler = by_target[path]
        why = _obstacle(bn, mod, handler, graph, root, replaced, calls, tied, real)
        if isinstance(why, str):
            left.append(f"{path!r}: {why}")
            continue
        layer, layer_path, folded_layer = why
        replaced[layer_path] = folded_layer
        folded[path] = layer_path
        if real is not None and bn in real:
            real[layer] = real.pop(bn)  # the layer's output is now the norm's
        bn.replace_all_uses_with(layer)
        graph.erase_node(bn)
    if left:
        warnings.warn(
            f"fold_batchnorm=True left {len(left)} batch norm(s) of {type(model).__name__} as norm "
            "nodes (exported with their statistics as state, as with fold_batchnorm=False):\n  "
            + "\n  ".join(left),
            UnfoldedBatchNormWarning,
            stacklevel=4,  # from_torch -> _fold_batchnorms -> here: the user's call
        )
    return type(traced)(graph, _Overlay(root, replaced), traced.facts), real, folded


def _obstacle(bn, mod, handler, graph, root, replaced, calls, tied, real) -> Any:
    """Why ``bn`` cannot be folded (a string), or ``(layer node, layer path, folded layer)``."""
    why = handler.fold_obstacle(mod)
    if why is not None:
        return why
    if calls.get(str(bn.target), 0) != 1:
        return f"the module is called {calls[str(bn.target)]} times"
    if len(bn.args) != 1 or bn.kwargs or not hasattr(bn.args[0], "op"):
        return "it is called with arguments other than one tensor"
    layer = bn.args[0]
    if layer.op != "call_module":
        return f"its input comes from {layer.op} {getattr(layer.target, '__name__', layer.target)!s}, not from a convolution or linear layer"
    layer_path = str(layer.target)
    lmod = replaced.get(layer_path) or root.get_submodule(layer_path)
    lhandler = get_handler(lmod)
    kind = type(lmod).__name__
    if calls.get(layer_path, 0) != 1:
        return f"the layer before it, {layer_path!r} ({kind}), is called {calls[layer_path]} times"
    others = [u.name for u in layer.users if u is not bn]
    if others:
        return f"the output of {layer_path!r} ({kind}) is also read by {', '.join(others)}"
    if any(id(p) in tied for p in lmod.parameters()):
        return (
            f"a parameter of {layer_path!r} ({kind}) is shared with another module (tied "
            "weights, or the module used twice)"
        )
    if lhandler is None:
        return f"the layer before it, {layer_path!r} ({kind}), cannot absorb it"
    scale, shift = handler.eval_affine(mod)
    if scale.numel() == 0:
        return "it has no channels"
    out = lhandler.absorb_affine(lmod, scale, shift, _ndim(real, layer))
    if out is None:
        return (
            f"the layer before it, {layer_path!r} ({kind}), cannot absorb it (its output channels "
            "are not the norm's channels, or its handler does not fold)"
        )
    return layer, layer_path, out

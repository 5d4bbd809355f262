"""Checked traces kept for re-export, with the shapes of every value on the example input.

Re-exporting the same model (after an epoch of training, in a pruning sweep, round after
round of iterative pruning) replays the trace of its last checked export instead of tracing
again (see ``from_torch._FX_TRACES``). When the new example input has the same shapes, dtypes
and strides, the export also starts from the kept *shapes* of every traced value (tensors on
the meta device, the sizes a forward computes) instead of running the trace on the example:
the exporter needs shapes only, and runs the trace on the real tensors when an operation
reads data (as it does for models exported on the meta device). A tape trace (a recorded run,
specialised to its input's shapes) is kept the same way and replayed only for inputs of its
signature. Graphs exported from the kept shapes with the same wiring share one dict of
structure-only analyses (coupling and structured groups, the shrink state; see
:mod:`netstruct.graphs._derived`): the exporter's node table and blocks are a function of
the trace, the shapes and the module tree, so they differ only in their weights. An
``nn.Sequential`` chain (read directly, never traced) keeps only that dict, for exports with
the same module tree, input signature and wiring.

What keeps this safe: shapes are kept only when every non-tensor value of the run is a size
(``x.size()``, ``x.shape[0] * 2``), never a number read from data (``x.item()``); a replayed
trace is only taken by an export with its round-trip check on, which then compares with the
model's own forward on the new example; and any failure of such an export drops the kept
entry and exports again from a fresh trace.
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Kept", "input_signature", "meta_shapes"]


class Kept(NamedTuple):
    """What a checked export leaves for the next export of the same model."""

    #: ``from_torch._fx_key`` of the model when it was traced
    key: tuple
    #: the trace (an fx graph; a tape's recording when ``facts`` is set); None for a chain
    #: read off an ``nn.Sequential``, which keeps only its structural analyses
    graph: Any
    #: a tape trace's facts (the input shapes it is specialised to), None for an fx trace
    facts: dict[str, Any] | None
    #: :func:`input_signature` of the example the shapes are of (None: no shapes kept)
    signature: tuple | None
    #: ``{node: value}`` with tensors on the meta device (:func:`meta_shapes`), or None
    shapes: dict[Any, Any] | None
    #: the wiring (``provenance["structure"]``) of the graph the kept export gave
    structure: str | None = None
    #: that graph's structure-only analyses (:mod:`netstruct.graphs._derived`), which every
    #: graph exported from the kept shapes with the same wiring shares
    derived: dict[str, Any] | None = None


#: tensor methods and attributes whose result depends on the tensor's shape or type only
_SHAPE_METHODS = frozenset({"size", "dim", "ndimension", "numel", "nelement", "type"})
_SHAPE_ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "device", "is_cuda", "layout"})
_PLAIN = (bool, int, float, complex, str, type(None))


def input_signature(example_input: Any) -> tuple | None:
    """Shape, stride, dtype, device and layout of each example tensor (None: not all tensors).

    Examples
    --------
    >>> import torch
    >>> input_signature(torch.zeros(2, 3))
    (((2, 3), (3, 1), torch.float32, device(type='cpu'), torch.strided, False),)
    >>> input_signature((torch.zeros(2), 3)) is None
    True
    """
    import torch

    items = example_input if isinstance(example_input, tuple) else (example_input,)
    out = []
    for v in items:
        if not isinstance(v, torch.Tensor) or v.is_nested or v.layout != torch.strided:
            return None
        out.append((tuple(v.shape), v.stride(), v.dtype, v.device, v.layout, v.requires_grad))
    return tuple(out)


def meta_shapes(graph: Any, values: dict[Any, Any]) -> dict[Any, Any] | None:
    """``values`` (every node's value of a run of ``graph``) with tensors on the meta device.

    None when some value is not a tensor or a size (a number read from data, an object the
    exporter might read): such a run is not kept.

    Examples
    --------
    >>> import torch
    >>> g = torch.fx.Graph()
    >>> x = g.placeholder("x")
    >>> n = g.call_method("size", (x, 0))
    >>> y = g.call_function(torch.mul, (x, n))
    >>> shapes = meta_shapes(g, {x: torch.ones(2), n: 2, y: torch.full((2,), 2.0)})
    >>> shapes[y].device.type, shapes[n]
    ('meta', 2)
    >>> i = g.call_method("item", (y,))
    >>> meta_shapes(g, {x: torch.ones(2), n: 2, y: torch.ones(2), i: 1.0}) is None
    True
    """
    tensor_valued: set[Any] = set()
    out: dict[Any, Any] = {}
    for node in graph.nodes:
        if node not in values:
            continue
        v = values[node]
        if v is not None and _tensors_only(v):
            out[node] = _to_meta(v)
            tensor_valued.add(node)
        elif _size_like(v) and _from_sizes(node, tensor_valued):
            out[node] = v
        else:
            return None
    return out


def _size_like(v: Any) -> bool:
    """Plain numbers, strings, dtypes, devices, ``torch.Size`` and tuples or lists of them."""
    import torch

    if isinstance(v, (*_PLAIN, torch.dtype, torch.device, torch.layout)):
        return True
    if isinstance(v, (tuple, list)):
        return all(_size_like(x) for x in v)
    return False


def _from_sizes(node: Any, tensor_valued: set[Any]) -> bool:
    """Whether ``node``'s (non-tensor) value depends on shapes only: a size query of a tensor,
    arithmetic or indexing on other such values, or a placeholder's or attribute's value."""
    if node.op in ("placeholder", "get_attr", "output"):
        return True
    if node.op == "call_method" and node.target in _SHAPE_METHODS:
        return True
    if node.op == "call_function" and node.target is len:  # a tensor's first size
        return True
    if (
        node.op == "call_function"
        and node.target is getattr
        and len(node.args) >= 2
        and node.args[1] in _SHAPE_ATTRIBUTES
    ):
        return True
    return not any(a in tensor_valued for a in node.all_input_nodes)


def _tensors_only(v: Any) -> bool:
    """A strided tensor, or a tuple, list or dict holding only those (and None)."""
    import torch

    if v is None:
        return True
    if isinstance(v, torch.Tensor):
        return not v.is_nested and v.layout == torch.strided
    if isinstance(v, (tuple, list)):
        return all(_tensors_only(x) for x in v)
    if isinstance(v, dict):
        return all(_tensors_only(x) for x in v.values())
    return False


def _to_meta(v: Any) -> Any:
    import torch

    if isinstance(v, torch.Tensor):
        return torch.empty_like(v, device="meta")
    if isinstance(v, (tuple, list)):
        items = [_to_meta(x) for x in v]
        return type(v)(*items) if hasattr(v, "_fields") else type(v)(items)
    if isinstance(v, dict):
        return {k: _to_meta(x) for k, x in v.items()}
    return v

"""The traced-operation vocabulary shared by export (JSON encoding) and re-import (replay).

A model is stored as a list of operations recorded by ``torch.fx``: module calls by path,
plus a small whitelist of functions and tensor methods (activations, indexing, flatten).
Arguments are encoded as JSON; references to earlier results are ``{"$node": i}``.
"""

from __future__ import annotations

import contextvars
import operator
from functools import cache
from typing import Any

from ..exceptions import FileFormatError, GraphError, UnsupportedModuleError

__all__ = [
    "function_table",
    "function_name",
    "encode_arg",
    "decode_arg",
    "activation_label",
    "ACTIVATIONS",
    "NEUTRAL",
    "MOVE_OPS",
    "META_OPS",
    "METHODS",
]

#: functional activations (F.*, torch.*, tensor methods) by base name; their meaning lives in
#: the element-wise handler of the module type they name (netstruct.convert.elementwise)
ACTIVATIONS = frozenset(
    {
        "relu",
        "relu6",
        "tanh",
        "sigmoid",
        "silu",
        "mish",
        "gelu",
        "leaky_relu",
        "elu",
        "celu",
        "selu",
        "softplus",
        "hardtanh",
        "hardsigmoid",
        "hardswish",
        "softsign",
        "tanhshrink",
        "softmax",
        "log_softmax",
    }
)
#: functions and methods that do not change values in eval mode
NEUTRAL = frozenset(
    {"dropout", "contiguous", "float", "double", "clone", "detach", "to", "type", "identity"}
)
#: functional pooling (they move values over spatial axes; followed on code tensors)
POOLS = tuple(
    f"{kind}{d}d"
    for kind in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool")
    for d in (1, 2, 3)
)
#: shape operations, followed exactly on code tensors when shapes are known
MOVE_OPS = frozenset(
    {
        "flatten",
        "view",
        "reshape",
        "squeeze",
        "unsqueeze",
        "permute",
        "transpose",
        "t",
        "getitem",
        "cat",
        "concat",
        "stack",
        "split",
        "chunk",
        "unbind",
        "expand",
        "expand_as",
        "narrow",
        "select",
        "mean",
        "amax",
    }
    | set(POOLS)
)
#: ops returning shape information, not units
META_OPS = frozenset({"size", "dim"})
#: tensor attributes a traced forward may read (``b, c, h, w = x.shape``): no units
TENSOR_ATTRIBUTES = frozenset({"shape", "ndim", "dtype", "device"})


def tensor_attribute(value: Any, name: str) -> Any:
    """``getattr(value, name)`` for the :data:`TENSOR_ATTRIBUTES` only (a stored spec names
    the attribute; nothing else is read)."""
    if name not in TENSOR_ATTRIBUTES:
        raise GraphError(
            f"The architecture spec reads attribute {name!r} of a tensor; only "
            f"{sorted(TENSOR_ATTRIBUTES)} are allowed. The spec is not one netstruct wrote."
        )
    return getattr(value, name)


#: tensor methods the exporter follows
METHODS = (
    ACTIVATIONS
    | NEUTRAL
    | MOVE_OPS
    | META_OPS
    | {"add", "add_", "mul", "matmul", "masked_fill", "div", "true_divide", "sub", "neg"}
) - {"getitem"}

_TORCH_FNS = (
    "relu",
    "tanh",
    "sigmoid",
    "softmax",
    "log_softmax",
    "flatten",
    "squeeze",
    "unsqueeze",
    "reshape",
    "cat",
    "concat",
    "stack",
    "split",
    "chunk",
    "unbind",
    "permute",
    "transpose",
    "narrow",
    "select",
    "mean",
    "amax",
    "add",
    "t",
    "matmul",
    "where",
    # on values without units only (masks, ids): the exporter refuses them on units
    "cumsum",
    "logical_not",
    "logical_and",
    "logical_or",
    "eq",
    "ne",
    "gt",
    "lt",
    "ge",
    "le",
    "masked_fill",
    "gather",
)
_F_FNS = (
    "relu",
    "relu6",
    "tanh",
    "sigmoid",
    "gelu",
    "leaky_relu",
    "elu",
    "celu",
    "selu",
    "silu",
    "mish",
    "softplus",
    "softmax",
    "log_softmax",
    "dropout",
    "hardtanh",
    "hardsigmoid",
    "hardswish",
    "softsign",
    "tanhshrink",
    *POOLS,
    "scaled_dot_product_attention",
    "pad",
)


@cache
def function_table() -> dict[str, Any]:
    """Canonical name -> callable, for the functions a traced model may call."""
    import torch
    import torch.nn.functional as F

    table: dict[str, Any] = {
        "getitem": operator.getitem,
        "add": operator.add,
        "iadd": operator.iadd,
    }
    # arithmetic on sizes (x.size(0) // heads, ...): followed on plain values, refused on units
    for name in ("floordiv", "mul", "sub", "truediv", "mod", "neg", "matmul"):
        table[name] = getattr(operator, name)
    for name in _TORCH_FNS:
        table[f"torch.{name}"] = getattr(torch, name)
    for name in _F_FNS:
        table[f"F.{name}"] = getattr(F, name)
    table["netstruct.guard"] = guard
    table["getattr"] = tensor_attribute
    return table


#: Off while ``to_torch`` re-exports a rebuilt module to check its wiring on placeholder inputs
#: (wiring does not depend on input values, so the recorded path is followed regardless).
GUARDS: contextvars.ContextVar[bool] = contextvars.ContextVar("netstruct_guards", default=True)


def guard(value: Any, expected: Any, where: str) -> None:
    """Check a Python value a tape-traced model branched on (see ``convert._tape``).

    Raises
    ------
    InvalidParameterError
        When this input gives another value than the example did, so the model would take
        another path than the recorded one.

    Examples
    --------
    >>> guard(True, True, "model.py, line 3")
    >>> guard(False, True, "model.py, line 3")
    Traceback (most recent call last):
    ...
    netstruct.exceptions.InvalidParameterError: The input of this rebuilt module makes the model's Python take another path than example_input did (a value it branches on is False, it was True, at model.py, line 3); export the model again with an input like this one.
    """
    if value != expected and GUARDS.get():
        from ..exceptions import InvalidParameterError

        raise InvalidParameterError(
            "The input of this rebuilt module makes the model's Python take another path than "
            f"example_input did (a value it branches on is {value!r}, it was {expected!r}, at "
            f"{where}); export the model again with an input like this one."
        )


@cache
def _reverse_table() -> dict[int, str]:
    table = {id(fn): name for name, fn in function_table().items()}
    table[id(getattr)] = "getattr"  # fx's node for ``x.shape`` (replayed by tensor_attribute)
    return table


def function_name(fn: Any) -> str | None:
    """Canonical name of a traced function, or None when it is not supported."""
    return _reverse_table().get(id(fn))


def base_name(name: str) -> str:
    """``"F.relu"`` -> ``"relu"``."""
    return name.rsplit(".", 1)[-1]


def activation_label(base: str, args: tuple, kwargs: dict) -> str:
    """Node label of a functional activation call such as ``F.leaky_relu(x, 0.2)``."""
    import inspect

    import torch.nn.functional as F

    from .elementwise import FUNCTIONAL, label_for

    type_name = FUNCTIONAL[base]
    if len(args) <= 1 and not kwargs:  # the input alone (torch.relu(h)): every default
        return label_for(type_name, {})
    fn = getattr(F, base)
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        bound = None
    config = {}
    if bound is not None:
        from .elementwise import ELEMENTWISE_ATTRS

        for k, v in list(bound.arguments.items())[1:]:
            if k in ELEMENTWISE_ATTRS[type_name]:
                config[k] = v
    return label_for(type_name, config)


def encode_arg(arg: Any, node_index: dict[Any, int], where: Any) -> Any:
    """Encode an fx argument as JSON (nodes become ``{"$node": i}``).

    ``where`` names the operation in an error: a string, or a function giving it (computed
    only when there is an error to report).
    """
    import torch

    if isinstance(arg, torch.fx.Node):
        return {"$node": node_index[arg]}
    if arg is None or isinstance(arg, (bool, int, float, str)):
        return arg
    if arg is Ellipsis:
        return {"$ellipsis": True}
    if isinstance(arg, slice):
        return {
            "$slice": [encode_arg(v, node_index, where) for v in (arg.start, arg.stop, arg.step)]
        }
    if isinstance(arg, torch.Size):
        return {"$size": list(arg)}
    if isinstance(arg, tuple):
        return {"$tuple": [encode_arg(a, node_index, where) for a in arg]}
    if isinstance(arg, list):
        return [encode_arg(a, node_index, where) for a in arg]
    if isinstance(arg, dict):
        return {"$dict": {str(k): encode_arg(v, node_index, where) for k, v in arg.items()}}
    if isinstance(arg, torch.dtype):
        return {"$dtype": str(arg).replace("torch.", "")}
    if isinstance(arg, torch.device):
        return {"$device": str(arg)}
    if isinstance(arg, torch.Tensor) and arg.layout == torch.strided and not arg.requires_grad:
        # a constant folded by the tape tracer (position ids, an attention mask)
        t = arg.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        return {
            "$tensor": {
                "dtype": str(arg.dtype).replace("torch.", ""),
                "shape": list(t.shape),
                "data": t.reshape(-1).tolist(),
            }
        }
    raise UnsupportedModuleError(
        f"{where() if callable(where) else where} passes an argument of type "
        f"{type(arg).__name__} ({arg!r}) that netstruct "
        "cannot store; wrap this part of the model in a module and register a handler with "
        "netstruct.register_module_handler."
    )


def decode_arg(arg: Any, env: list[Any]) -> Any:
    """Inverse of :func:`encode_arg` given the list of earlier results ``env``."""
    if isinstance(arg, list):
        return [decode_arg(a, env) for a in arg]
    if not isinstance(arg, dict):
        return arg
    if "$node" in arg:
        i = arg["$node"]
        if not isinstance(i, int) or not 0 <= i < len(env):
            raise FileFormatError(
                f"Architecture spec refers to operation {i!r}, which does not precede it."
            )
        return env[i]
    if "$ellipsis" in arg:
        return Ellipsis
    if "$slice" in arg:
        return slice(*(decode_arg(a, env) for a in arg["$slice"]))
    if "$tuple" in arg:
        return tuple(decode_arg(a, env) for a in arg["$tuple"])
    if "$size" in arg:
        import torch

        return torch.Size(arg["$size"])
    if "$dict" in arg:
        return {k: decode_arg(v, env) for k, v in arg["$dict"].items()}
    if "$dtype" in arg:
        import torch

        return getattr(torch, arg["$dtype"])
    if "$device" in arg:
        import torch

        return torch.device(arg["$device"])
    if "$tensor" in arg:
        import torch

        t = arg["$tensor"]
        dtype = getattr(torch, t["dtype"])
        work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        return torch.tensor(t["data"], dtype=work).reshape(t["shape"]).to(dtype)
    raise FileFormatError(f"Unknown encoded argument {arg!r} in architecture spec.")

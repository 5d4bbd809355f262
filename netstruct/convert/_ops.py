"""The traced-operation vocabulary shared by export (JSON encoding) and re-import (replay).

A model is stored as a list of operations recorded by ``torch.fx``: module calls by path,
plus a small whitelist of functions and tensor methods (activations, indexing, flatten).
Arguments are encoded as JSON; references to earlier results are ``{"$node": i}``.
"""

from __future__ import annotations

import operator
from functools import cache
from typing import Any

from ..exceptions import FileFormatError, UnsupportedModuleError

__all__ = ["function_table", "encode_arg", "decode_arg", "ACTIVATIONS", "NEUTRAL", "SHAPE_OPS", "META_OPS"]

#: function or method name -> activation label recorded on nodes
ACTIVATIONS = {
    "relu": "relu", "relu6": "relu6", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu",
    "leaky_relu": "leakyrelu", "elu": "elu", "silu": "silu", "softplus": "softplus",
    "softmax": "softmax", "log_softmax": "logsoftmax", "hardtanh": "hardtanh", "mish": "mish",
}
#: functions and methods that do not change values in eval mode
NEUTRAL = {"dropout", "contiguous", "float", "clone", "detach"}
#: reshaping ops (allowed on the raw input, or where shapes show the features are untouched)
SHAPE_OPS = {"flatten", "view", "reshape", "squeeze", "unsqueeze"}
#: ops returning shape information, not features
META_OPS = {"size", "dim"}


@cache
def function_table() -> dict[str, Any]:
    """Canonical name -> callable, for the functions a traced model may call."""
    import torch
    import torch.nn.functional as F

    table: dict[str, Any] = {"getitem": operator.getitem}
    for name in ("relu", "tanh", "sigmoid", "softmax", "log_softmax", "flatten", "squeeze", "unsqueeze", "reshape"):
        table[f"torch.{name}"] = getattr(torch, name)
    for name in (
        "relu", "relu6", "tanh", "sigmoid", "gelu", "leaky_relu", "elu", "silu", "softplus",
        "softmax", "log_softmax", "dropout", "hardtanh", "mish",
    ):
        table[f"F.{name}"] = getattr(F, name)
    return table


@cache
def _reverse_table() -> dict[int, str]:
    return {id(fn): name for name, fn in function_table().items()}


def function_name(fn: Any) -> str | None:
    """Canonical name of a traced function, or None when it is not supported."""
    return _reverse_table().get(id(fn))


def base_name(name: str) -> str:
    """``"F.relu"`` -> ``"relu"``."""
    return name.rsplit(".", 1)[-1]


def encode_arg(arg: Any, node_index: dict[Any, int], where: str) -> Any:
    """Encode an fx argument as JSON (nodes become ``{"$node": i}``)."""
    import torch

    if isinstance(arg, torch.fx.Node):
        return {"$node": node_index[arg]}
    if arg is None or isinstance(arg, (bool, int, float, str)):
        return arg
    if arg is Ellipsis:
        return {"$ellipsis": True}
    if isinstance(arg, slice):
        return {"$slice": [encode_arg(v, node_index, where) for v in (arg.start, arg.stop, arg.step)]}
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
    raise UnsupportedModuleError(
        f"{where} passes an argument of type {type(arg).__name__} ({arg!r}) that netstruct "
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
            raise FileFormatError(f"Architecture spec refers to operation {i!r}, which does not precede it.")
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
    raise FileFormatError(f"Unknown encoded argument {arg!r} in architecture spec.")

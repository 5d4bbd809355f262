"""Element-wise layers (activations, dropout, identity): their semantics in one place.

Every activation netstruct knows is an :class:`ElementwiseHandler`. The handler is the single
source of the layer's meaning for the whole package: export (the ``activation`` label written
on the nodes it transforms), re-import (the torch module), the forward map on numpy arrays, its
slope (derivative) and its value on a constant input (used by shrink to fold dead units into
biases). The numeric maps are computed by the torch module itself, so they cannot drift from
what the model does; there is no second activation table anywhere in netstruct.

Node labels
-----------
The ``activation`` column of the node table holds ``+``-joined labels, in the order they apply.
A label is the layer's lower-case name, followed by its non-default settings as JSON:
``"relu"``, ``"leakyrelu{\\"negative_slope\\": 0.2}"``, ``"relu+tanh"``. :func:`activation_map`
turns such a column value back into a callable; :func:`activation_slope` into its derivative.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

import numpy as np

from ..exceptions import GraphError
from .handlers import ModuleHandler, handler_for_name

__all__ = [
    "ElementwiseHandler",
    "ELEMENTWISE_ATTRS",
    "FUNCTIONAL",
    "activation_map",
    "activation_slope",
    "activation_parts",
    "label_for",
    "layer_type",
]

#: torch.nn type name -> the constructor settings that define its map
ELEMENTWISE_ATTRS: dict[str, tuple[str, ...]] = {
    "ReLU": (),
    "ReLU6": (),
    "Tanh": (),
    "Sigmoid": (),
    "SiLU": (),
    "Mish": (),
    "GELU": ("approximate",),
    "LeakyReLU": ("negative_slope",),
    "ELU": ("alpha",),
    "CELU": ("alpha",),
    "SELU": (),
    "Softplus": ("beta", "threshold"),
    "Hardtanh": ("min_val", "max_val"),
    "Hardsigmoid": (),
    "Hardswish": (),
    "Softsign": (),
    "Tanhshrink": (),
    "Identity": (),
    "Dropout": ("p",),
    "AlphaDropout": ("p",),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
    # netstruct's own: scalar arithmetic on units (``h * c + d``), see ``_scalar.py``
    "ScalarAffine": ("scale", "shift"),
    # netstruct's own: relu(x) ** 2 (transformers' ReLUSquaredActivation), see ``_scalar.py``
    "ReLUSquared": (),
}
#: Modules that do not change values in eval mode (no label is written for them).
NEUTRAL = frozenset({"Identity", "Dropout", "AlphaDropout"})
#: Maps that mix the features of a sample (normalise over the feature dimension).
ROWWISE = frozenset({"Softmax", "LogSoftmax"})

#: functional name (``torch.nn.functional`` / ``torch`` / tensor method) -> module type name
FUNCTIONAL: dict[str, str] = {
    "relu": "ReLU",
    "relu6": "ReLU6",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "silu": "SiLU",
    "mish": "Mish",
    "gelu": "GELU",
    "leaky_relu": "LeakyReLU",
    "elu": "ELU",
    "celu": "CELU",
    "selu": "SELU",
    "softplus": "Softplus",
    "hardtanh": "Hardtanh",
    "hardsigmoid": "Hardsigmoid",
    "hardswish": "Hardswish",
    "softsign": "Softsign",
    "tanhshrink": "Tanhshrink",
    "softmax": "Softmax",
    "log_softmax": "LogSoftmax",
    "dropout": "Dropout",
}


def layer_type(type_name: str) -> Any:
    """The module class of an element-wise layer: ``torch.nn.<name>`` or netstruct's own."""
    import torch

    if type_name in ("ScalarAffine", "ReLUSquared"):
        from . import _scalar

        return getattr(_scalar, type_name)
    return getattr(torch.nn, type_name, None)


@cache
def _defaults(type_name: str) -> dict[str, Any]:
    sig = inspect.signature(layer_type(type_name).__init__)
    return {
        k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty
    }


class ElementwiseHandler(ModuleHandler):
    """A parameterless layer that maps each sample's features without weights.

    Activations add no nodes: their label is recorded in the ``activation`` column of the
    nodes whose values they transform (a value that another layer has already read gets fresh
    nodes joined by identity edges, so every reader sees the value it really reads).

    Parameters
    ----------
    type_name : str
        The ``torch.nn`` class name (``"ReLU"``, ``"LeakyReLU"``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from netstruct.convert.handlers import handler_for_name
    >>> h = handler_for_name("LeakyReLU")
    >>> h.forward({"negative_slope": 0.2}, np.array([-1.0, 2.0])).tolist()
    [-0.2, 2.0]
    >>> h.slope({"negative_slope": 0.2}, np.array([-1.0, 2.0])).tolist()
    [0.2, 1.0]
    """

    #: element-wise maps apply on any axis layout (channels or last axis)
    feature_axis = None

    def __init__(self, type_name: str) -> None:
        self.name = type_name
        self.attrs = ELEMENTWISE_ATTRS[type_name]
        self.neutral = type_name in NEUTRAL
        self.elementwise = type_name not in ROWWISE

    # -- export / re-import ------------------------------------------------------------
    def export(self, module, path, inputs, builder):
        from .builder import PendingInput

        if isinstance(inputs, PendingInput) or self.neutral:
            return inputs
        return builder.apply_elementwise(inputs, self.label(self.config(module)), path)

    def config(self, module):
        return {a: getattr(module, a) for a in self.attrs}

    def build(self, config, params):
        return layer_type(self.name)(**config)

    # -- semantics -----------------------------------------------------------------------
    def label(self, config: Mapping[str, Any]) -> str:
        """The node label of this layer with ``config`` (non-default settings as JSON)."""
        defaults = _defaults(self.name)
        extra = {
            k: v
            for k, v in config.items()
            if k in self.attrs and k != "dim" and defaults.get(k) != v
        }
        return self.name.lower() + (json.dumps(extra, sort_keys=True) if extra else "")

    def _module(self, config: Mapping[str, Any]):
        cfg = dict(config)
        if self.name in ROWWISE:
            cfg["dim"] = -1  # semantics: features on the last axis
        return self.build(cfg, {}).eval()

    def forward_torch(self, config: Mapping[str, Any], z: Any) -> Any:
        """Apply the layer to a tensor whose last axis holds the features."""
        return self._module(config)(z)

    def forward(self, config: Mapping[str, Any], z: np.ndarray) -> np.ndarray:
        """Apply the layer to a float array (features on the last axis); float64 out."""
        import torch

        with torch.no_grad():
            out = self.forward_torch(config, torch.as_tensor(np.asarray(z, dtype=np.float64)))
        return out.numpy()

    def numpy_map(self, config: Mapping[str, Any]) -> tuple[Callable, Callable] | None:
        """Pure-numpy ``(forward(z), slope_from_output(a))`` for hot loops, or None.

        Available for Identity, ReLU, Tanh, Sigmoid (whose slope is a function of the
        output) and ScalarAffine (a constant slope); the tests check both against the torch
        module. Other layers return None and callers use :meth:`forward` / :meth:`slope`.
        """
        if self.name == "Identity":
            return (lambda z: z), (lambda a: np.ones_like(a))
        if self.name == "ReLU":
            return (lambda z: np.maximum(z, 0)), (lambda a: (a > 0).astype(a.dtype))
        if self.name == "Tanh":
            return np.tanh, (lambda a: 1 - a * a)
        if self.name == "Sigmoid":
            return (lambda z: 1.0 / (1.0 + np.exp(-z))), (lambda a: a * (1 - a))
        if self.name == "ScalarAffine":
            c = {**_defaults(self.name), **config}
            scale, shift = float(c["scale"]), float(c["shift"])
            return (lambda z: z * scale + shift), (lambda a: np.full_like(a, scale))
        return None

    def slope(self, config: Mapping[str, Any], z: np.ndarray) -> np.ndarray:
        """Derivative of the map at ``z`` (element-wise maps only); float64 out.

        Raises
        ------
        GraphError
            For maps that mix features (Softmax, LogSoftmax): they have no element-wise slope.
        """
        import torch

        if not self.elementwise:
            raise GraphError(
                f"{self.name} mixes the features of a sample, so it has no element-wise slope; "
                "analyses that need slopes (path influence) support element-wise activations only."
            )
        t = torch.as_tensor(np.asarray(z, dtype=np.float64)).clone().requires_grad_(True)
        (g,) = torch.autograd.grad(self.forward_torch(config, t).sum(), t)
        return g.numpy()


def label_for(type_name: str, config: Mapping[str, Any]) -> str:
    """Node label of ``torch.nn.<type_name>(**config)``; ``""`` for neutral layers."""
    handler = handler_for_name(type_name)
    if not isinstance(handler, ElementwiseHandler):
        raise GraphError(f"{type_name!r} is not an element-wise layer.")
    return "" if handler.neutral else handler.label(config)


@cache
def _by_label_name() -> dict[str, str]:
    return {t.lower(): t for t in ELEMENTWISE_ATTRS}


def activation_parts(label: str) -> list[tuple[ElementwiseHandler, dict[str, Any]]]:
    """Split an ``activation`` column value into (handler, config) pairs, in order.

    Raises
    ------
    GraphError
        A label that names no element-wise layer (the message lists the known ones).

    Examples
    --------
    >>> [(h.name, c) for h, c in activation_parts('relu+leakyrelu{"negative_slope": 0.2}')]
    [('ReLU', {}), ('LeakyReLU', {'negative_slope': 0.2})]
    """
    out = []
    for part in _split(str(label)):
        name, _, rest = part.partition("{")
        type_name = _by_label_name().get(name)
        if type_name is None:
            raise GraphError(
                f"Unknown activation label {part!r}; netstruct knows {sorted(_by_label_name())} "
                "(register custom activations as ElementwiseHandler subclasses)."
            )
        try:
            config = json.loads("{" + rest) if rest else {}
        except json.JSONDecodeError:
            raise GraphError(f"Activation label {part!r} has unreadable settings.") from None
        out.append((handler_for_name(type_name), config))
    return out  # type: ignore[return-value]


def _split(label: str) -> list[str]:
    """Split on ``+`` outside JSON braces."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in label:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "+" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p]


def activation_map(label: str) -> Callable[[np.ndarray], np.ndarray]:
    """The map a node applies to its pre-activation, from its ``activation`` label.

    Examples
    --------
    >>> import numpy as np
    >>> f = activation_map("relu+tanh")
    >>> np.round(f(np.array([-1.0, 1.0])), 4).tolist()
    [0.0, 0.7616]
    """
    parts = activation_parts(label)

    def apply(z: np.ndarray) -> np.ndarray:
        out = np.asarray(z, dtype=np.float64)
        for handler, config in parts:
            out = handler.forward(config, out)
        return out

    return apply


def activation_slope(label: str) -> Callable[[np.ndarray], np.ndarray]:
    """Derivative of :func:`activation_map` (chain rule over the label's parts).

    Examples
    --------
    >>> import numpy as np
    >>> activation_slope('leakyrelu{"negative_slope": 0.2}')(np.array([-3.0, 3.0])).tolist()
    [0.2, 1.0]
    """
    parts = activation_parts(label)

    def slope(z: np.ndarray) -> np.ndarray:
        out = np.asarray(z, dtype=np.float64)
        total = np.ones_like(out)
        for handler, config in parts:
            total = total * handler.slope(config, out)
            out = handler.forward(config, out)
        return total

    return slope

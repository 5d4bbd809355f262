"""Export/rebuild handlers for torch modules, and the public registry.

A handler knows one torch module type. On export it turns the module's parameters into
graph nodes and blocks through a :class:`~netstruct.convert.builder.GraphBuilder`; on
re-import it rebuilds the module from the blocks (sizes are read off the blocks, so the same
handler rebuilds a physically shrunk layer). Parameterless modules (activations, dropout,
flatten) are handled by :class:`~netstruct.convert.elementwise.ElementwiseHandler`; conv,
norm, pooling and embedding layers live in :mod:`netstruct.convert.layers`.

Custom layers plug in with :func:`register_module_handler`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..exceptions import GraphError, InvalidParameterError

__all__ = [
    "ModuleHandler",
    "LinearHandler",
    "RecurrentHandler",
    "absorb_output_affine",
    "register_module_handler",
    "get_handler",
    "handler_for_name",
]


class ModuleHandler:
    """Base class of export/rebuild handlers.

    Subclasses set :attr:`name` (a unique string written into the architecture spec) and
    implement :meth:`export`, :meth:`config` and :meth:`build`.

    Examples
    --------
    A linear layer with a fixed output scale, registered so netstruct can export it:

    >>> import torch, netstruct as ns
    >>> class Scaled(torch.nn.Module):
    ...     def __init__(self, n_in, n_out, scale=2.0):
    ...         super().__init__()
    ...         self.lin = torch.nn.Linear(n_in, n_out)
    ...         self.scale = scale
    ...     def forward(self, x):
    ...         return self.lin(x) * self.scale
    >>> class ScaledHandler(ns.ModuleHandler):
    ...     name = "doc.Scaled"
    ...     def export(self, module, path, inputs, builder):
    ...         src = builder.resolve_features(inputs, module.lin.in_features, path)
    ...         out = builder.add_units(module.lin.out_features, module=path)
    ...         builder.add_block(module=path, param="lin.weight", weight=module.lin.weight,
    ...                           sources=src, targets=out, bias=module.lin.bias, bias_param="lin.bias")
    ...         return out
    ...     def config(self, module):
    ...         return {"scale": module.scale}
    ...     def build(self, config, params):
    ...         w = params["lin.weight"]
    ...         m = Scaled(w.shape[1], w.shape[0], config["scale"])
    ...         ns.convert.handlers.load_params(m, params)
    ...         return m
    >>> ns.register_module_handler(Scaled, ScaledHandler())
    >>> G = ns.from_torch(torch.nn.Sequential(Scaled(3, 2), torch.nn.ReLU()))
    >>> G.n_edges
    6
    """

    #: Unique name used in architecture specs.
    name: str = ""
    #: Whether :func:`netstruct.shrink` may remove rows/columns of this module's blocks.
    shrinkable: bool = False
    #: Whether the module's output always has its first input's shape and dtype (export of a
    #: big model then reads it off without running the layer, even on the meta device)
    keeps_shape: bool = False

    def export(self, module: Any, path: str, inputs: Any, builder: Any) -> Any:
        """Add the module's nodes and blocks; return the value (feature ids) it outputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement export()")

    def config(self, module: Any) -> dict[str, Any]:
        """JSON-serialisable constructor settings that are not readable from the blocks."""
        return {}

    def build(self, config: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Any:
        """Rebuild the module from its config and parameters (``{param name: array}``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build()")

    def join_parts(self, name: str, parts: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Parameters held by several blocks (``layout["part"]``), as ``{name: array}``.

        ``parts`` are the blocks' arrays of parameter (or bias, or pruning mask) ``name`` in
        block order. The default stacks them along axis 0 (cross-attention's Q, K and V rows
        of one ``in_proj_weight``); a handler overrides this when parts that no longer stack
        (after :func:`netstruct.shrink`) make other parameters.

        Examples
        --------
        >>> import numpy as np, netstruct as ns
        >>> joined = ns.ModuleHandler().join_parts("w", [np.ones((1, 2)), np.zeros((2, 2))])
        >>> joined["w"].shape
        (3, 2)
        """
        if len(parts) == 1:
            return {name: parts[0]}
        if len({a.shape[1:] for a in parts}) != 1:
            shapes = ", ".join(str(a.shape) for a in parts)
            raise GraphError(
                f"Parameter {name!r} of a {self.name} layer is held by several blocks whose shapes "
                f"{shapes} do not stack into one tensor; shrink the inputs of its parts alike."
            )
        return {name: np.concatenate(parts, axis=0)}

    def absorb_affine(
        self, module: Any, scale: Any, shift: Any, out_ndim: int | None = None
    ) -> Any | None:
        """A copy of ``module`` whose output channel ``c`` is ``scale[c] * y[c] + shift[c]``.

        Used by ``from_torch(..., fold_batchnorm=True)`` to fold an eval-mode batch norm
        (whose semantics, ``scale`` and ``shift``, come from
        :meth:`~netstruct.convert.layers.NormHandler.eval_affine`) into the layer that feeds it.
        ``scale`` and ``shift`` are float64 tensors of shape ``(n_out,)``; ``out_ndim`` is the
        number of dimensions of the layer's output on the example input (None when unknown).
        Return None when the layer cannot absorb the map (the default: a handler that can, e.g.
        a linear or convolution layer, overrides this). ``module`` itself is left unchanged.
        """
        return None


def load_params(module: Any, params: Mapping[str, np.ndarray]) -> None:
    """Copy numpy arrays into a module's parameters by name (shapes must match)."""
    import torch

    own = own_tensors(module, "_parameters")
    slow = []
    for name, arr in params.items():
        if name not in own:
            raise GraphError(f"Rebuilt {type(module).__name__} has no parameter {name!r}.")
        p = own[name]
        if tuple(p.shape) != tuple(arr.shape):
            raise GraphError(
                f"Parameter {name!r} of the rebuilt {type(module).__name__} has shape "
                f"{tuple(p.shape)} but the graph holds {tuple(arr.shape)}; was the graph's "
                "block shape tampered with?"
            )
        if p.device.type == "cpu" and p.dtype in _numpy_dtypes():
            # straight into the parameter's memory: one copy, and no warnings context (whose
            # entry and exit cost more than the copy of a small layer's weights)
            np.copyto(p.detach().numpy(), arr, casting="unsafe")
        else:
            slow.append((p, arr))
    if slow:
        with torch.no_grad(), warnings.catch_warnings():
            # the graph's arrays are read-only; torch only reads them here (one copy, into p)
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            for p, arr in slow:
                p.copy_(torch.from_numpy(np.ascontiguousarray(arr)))


def own_tensors(module: Any, table: str) -> dict[str, Any]:
    """``dict(module.named_parameters())`` (``table="_parameters"``) or ``named_buffers``.

    A layer without submodules holds them all in its own table: read it directly (torch's
    named-member walk costs more than loading a small layer's values).
    """
    if not module._modules:
        return {k: v for k, v in getattr(module, table).items() if v is not None}
    if table == "_parameters":
        return dict(module.named_parameters())
    return dict(module.named_buffers())


@functools.cache
def _numpy_dtypes() -> frozenset:
    """Torch dtypes a CPU tensor shares with numpy (``tensor.numpy()`` works)."""
    import torch

    return frozenset({torch.float32, torch.float64, torch.float16, torch.int64, torch.int32})


class LinearHandler(ModuleHandler):
    """``nn.Linear``: one block ``weight`` (out x in) with its bias."""

    name = "Linear"
    shrinkable = True

    def export(self, module, path, inputs, builder):
        src = builder.resolve_features(inputs, module.in_features, path)
        out = builder.add_units(module.out_features, module=path)
        builder.add_block(
            module=path,
            param="weight",
            weight=module.weight,
            sources=src,
            targets=out,
            bias=module.bias,
            bias_param="bias" if module.bias is not None else None,
        )
        return out

    def config(self, module):
        return {"bias": module.bias is not None}

    def absorb_affine(self, module, scale, shift, out_ndim=None):
        if out_ndim not in (None, 2):  # (N, C, L) input: a batch norm's axis 1 is not the output
            return None
        return absorb_output_affine(module, scale, shift, out_axis=0)

    def build(self, config, params):
        import torch

        w = params["weight"]
        bias = bool(config.get("bias", True))
        b = params.get("bias")
        fits = set(params) == ({"weight", "bias"} if bias else {"weight"}) and w.ndim == 2
        if fits and (b is None or b.shape == (w.shape[0],)) and _direct_linear_matches_torch():
            return _direct_linear(w, b)
        with warnings.catch_warnings():  # a shrunk layer may have zero width: nothing to initialise
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            # skip_init: the weights are overwritten at once, so no random initialisation
            m = torch.nn.utils.skip_init(torch.nn.Linear, w.shape[1], w.shape[0], bias=bias)
        load_params(m, params)
        return m


def absorb_output_affine(module: Any, scale: Any, shift: Any, *, out_axis: int) -> Any:
    """A shallow copy of ``module``, ``weight`` and ``bias`` folded with a per-output affine map.

    ``weight' = weight * scale`` along ``out_axis`` (the weight's output-channel axis) and
    ``bias' = bias * scale + shift`` (``bias`` taken as 0 when the layer has none; the copy
    then gets one). Computed in float64 and rounded once to the parameter's dtype. The copy
    shares every other parameter, buffer and attribute with ``module``, which is unchanged.
    Returns None when ``scale`` does not have one value per output channel. Inputs already
    validated (float64 tensors of shape ``(n,)``).
    """
    import copy

    import torch

    w = module.weight
    if scale.numel() != w.shape[out_axis]:
        return None  # the norm's channels are not the layer's outputs
    shape = [1] * w.dim()
    shape[out_axis] = -1
    out = copy.copy(module)
    for slot in ("_parameters", "_buffers", "_modules"):  # own registries: the original is kept
        out.__dict__[slot] = dict(module.__dict__[slot])
    with torch.no_grad():
        s = scale.to(torch.float64)
        w_new = w.detach().to(torch.float64) * s.reshape(shape)
        old_b = module.bias
        b = old_b.detach().to(torch.float64) if old_b is not None else torch.zeros_like(s)
        b_new = b * s + shift.to(torch.float64)
        rg = w.requires_grad
        out.weight = torch.nn.Parameter(w_new.to(w.dtype), requires_grad=rg)
        out.bias = torch.nn.Parameter(b_new.to(w.dtype), requires_grad=rg)
    return out


def _direct_linear(weight: np.ndarray, bias: np.ndarray | None) -> Any:
    """An ``nn.Linear`` holding copies of ``weight`` and ``bias``, built without ``__init__``.

    ``skip_init`` builds the layer on the meta device (running its initialiser there) and
    allocates it again before the copy; this sets the two fields and two parameters that
    ``nn.Linear.__init__`` sets, from one copy of each array. :func:`_direct_linear_matches_torch`
    checks once per process that the result has exactly the attributes of a real
    ``nn.Linear``; otherwise the handler uses ``skip_init``.
    """
    import torch

    dtype = torch.get_default_dtype()
    m = torch.nn.Linear.__new__(torch.nn.Linear)
    torch.nn.Module.__init__(m)
    # straight into the instance and parameter dictionaries: nn.Module.__setattr__ and
    # register_parameter probe the name with hasattr, whose miss raises and formats an
    # AttributeError (about half the cost of building the layer)
    m.__dict__["in_features"] = int(weight.shape[1])
    m.__dict__["out_features"] = int(weight.shape[0])
    params = m._parameters
    params["weight"] = torch.nn.Parameter(torch.tensor(weight, dtype=dtype))
    params["bias"] = None if bias is None else torch.nn.Parameter(torch.tensor(bias, dtype=dtype))
    return m


_DIRECT_LINEAR_OK: list[bool] = []


def _direct_linear_matches_torch() -> bool:
    """Whether :func:`_direct_linear` gives what ``nn.Linear(...)`` gives in this torch (cached)."""
    if not _DIRECT_LINEAR_OK:
        import torch

        ok = True
        for has_bias in (True, False):
            real = torch.nn.Linear(3, 2, bias=has_bias)
            fast = _direct_linear(
                real.weight.detach().numpy(), real.bias.detach().numpy() if has_bias else None
            )
            ok &= vars(real).keys() == vars(fast).keys()
            ok &= {k: type(v) for k, v in vars(real).items() if not k.startswith("_")} == {
                k: type(v) for k, v in vars(fast).items() if not k.startswith("_")
            }
            ok &= real.state_dict().keys() == fast.state_dict().keys() and repr(real) == repr(fast)
            ok &= all(
                {k: type(v) for k, v in getattr(real, d).items()}
                == {k: type(v) for k, v in getattr(fast, d).items()}
                for d in ("_parameters", "_buffers", "_modules")
            )
        _DIRECT_LINEAR_OK.append(bool(ok))
    return _DIRECT_LINEAR_OK[0]


_GATES = {"RNN": "", "LSTM": "ifgo", "GRU": "rzn"}


class RecurrentHandler(ModuleHandler):
    """``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` (any depth, bidirectional, batch_first).

    Per layer ``k`` and direction ``d`` the graph gets ``H`` unit nodes and, for LSTM/GRU,
    ``G*H`` gate nodes in torch row order (gate-major); block ``weight_ih_l{k}[_reverse]``
    (delay 0) feeds the gate rows from the layer's input, ``weight_hh_l{k}[_reverse]``
    (delay 1) from the layer's own units. Plain RNN rows are the units themselves.
    """

    shrinkable = True
    #: outputs are (batch, time, features) sequences (used when shapes are unknown)
    output_ndim = 3

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = kind

    def export(self, module, path, inputs, builder):
        if getattr(module, "proj_size", 0):
            from ..exceptions import UnsupportedModuleError

            raise UnsupportedModuleError(
                f"Module {path!r} ({type(module).__name__}) uses proj_size={module.proj_size}, which "
                "netstruct does not export yet; register a handler with "
                "netstruct.register_module_handler to support it."
            )
        gates = _GATES[self.kind]
        H = module.hidden_size
        dirs = 2 if module.bidirectional else 1
        layer_in = builder.resolve_features(inputs, module.input_size, path)
        per_state = []
        for k in range(module.num_layers):
            outs = []
            for d in range(dirs):
                sfx = "_reverse" if d else ""
                units = builder.add_units(
                    H, module=path, direction=d, label=f"l{k}{'r' if d else ''}.h"
                )
                if gates:
                    rows = builder.add_gates(
                        units, gates, module=path, direction=d, label=f"l{k}{'r' if d else ''}"
                    )
                else:
                    rows = units
                for param, src, delay in (("ih", layer_in, 0), ("hh", units, 1)):
                    bias = getattr(module, f"bias_{param}_l{k}{sfx}", None) if module.bias else None
                    builder.add_block(
                        module=path,
                        param=f"weight_{param}_l{k}{sfx}",
                        weight=getattr(module, f"weight_{param}_l{k}{sfx}"),
                        sources=src,
                        targets=rows,
                        bias=bias,
                        bias_param=f"bias_{param}_l{k}{sfx}" if bias is not None else None,
                        delay=delay,
                    )
                builder.annotate(units, "tanh" if self.kind != "RNN" else module.nonlinearity)
                outs.append(units)
                per_state.append(units)
            layer_in = np.concatenate(outs)
        from .builder import StackedStates

        h_n = StackedStates(per_state)
        state = (h_n, StackedStates(list(per_state))) if self.kind == "LSTM" else h_n
        return (layer_in, state)

    def config(self, module):
        cfg = {
            "num_layers": module.num_layers,
            "bias": bool(module.bias),
            "batch_first": bool(module.batch_first),
            "dropout": float(module.dropout),
            "bidirectional": bool(module.bidirectional),
        }
        if self.kind == "RNN":
            cfg["nonlinearity"] = module.nonlinearity
        return cfg

    def build(self, config, params):
        import torch

        cls = getattr(torch.nn, self.kind)
        ih = params["weight_ih_l0"]
        hh = params["weight_hh_l0"]
        H = hh.shape[1]
        kwargs = dict(config)
        with warnings.catch_warnings():  # a shrunk layer may have zero width: nothing to initialise
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            # built on the meta device and materialised empty: no random initialisation
            m = cls(ih.shape[1], H, device="meta", **kwargs).to_empty(device="cpu")
        load_params(m, params)
        m.flatten_parameters()
        return m


_BY_TYPE: dict[type, ModuleHandler] = {}
_BY_NAME: dict[str, ModuleHandler] = {}
#: handlers of third-party classes, by ``"<module>.<qualname>"`` (their library is never imported)
_BY_QUALNAME: dict[str, ModuleHandler] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    import torch

    _builtins_loaded = True
    from . import layers
    from .elementwise import ELEMENTWISE_ATTRS, ElementwiseHandler, layer_type

    linear = LinearHandler()
    _register(torch.nn.Linear, linear)
    # torch's own subclass used by nn.MultiheadAttention.out_proj: same forward as Linear
    _BY_TYPE[torch.nn.modules.linear.NonDynamicallyQuantizableLinear] = linear
    for kind in _GATES:
        _register(getattr(torch.nn, kind), RecurrentHandler(kind))
    for tname in ELEMENTWISE_ATTRS:
        cls = layer_type(tname)
        if cls is not None:
            _register(cls, ElementwiseHandler(tname))
    from . import attention

    for module_type, handler in (*layers.builtin_handlers(), *attention.builtin_handlers()):
        _register(module_type, handler)
    # directly read parameters: rebuilt by name only (no module type maps to it)
    _BY_NAME[layers.ParametersHandler.name] = layers.ParametersHandler()
    from . import hf

    for qualname, handler in hf.builtin_handlers():
        _BY_QUALNAME[qualname] = handler
        _BY_NAME[handler.name] = handler


def _register(module_type: type, handler: ModuleHandler) -> None:
    _BY_TYPE[module_type] = handler
    _BY_NAME[handler.name] = handler


def register_module_handler(
    module_type: type, handler: ModuleHandler, *, overwrite: bool = False
) -> None:
    """Register ``handler`` for modules of ``module_type`` (exact type match).

    Parameters
    ----------
    module_type : type
        A subclass of ``torch.nn.Module``.
    handler : ModuleHandler
        Its ``name`` must be unique; it is written into architecture specs and saved files,
        so register the handler before loading a graph that uses it.
    overwrite : bool, default=False
        Replace an existing handler for the same type or name.

    See Also
    --------
    ModuleHandler : the handler protocol, with a complete example.
    """
    _load_builtins()
    import torch

    if not isinstance(module_type, type) or not issubclass(module_type, torch.nn.Module):
        raise InvalidParameterError(
            f"The 'module_type' parameter of register_module_handler must be a torch.nn.Module "
            f"subclass. Got {module_type!r} instead."
        )
    if not isinstance(handler, ModuleHandler) or not handler.name:
        raise InvalidParameterError(
            "The 'handler' parameter of register_module_handler must be a ModuleHandler instance "
            f"with a non-empty 'name'. Got {handler!r} instead."
        )
    clash = _BY_NAME.get(handler.name)
    if not overwrite and (module_type in _BY_TYPE or (clash is not None and clash is not handler)):
        raise InvalidParameterError(
            f"A handler for {module_type.__name__} or named {handler.name!r} is already registered; "
            "pass overwrite=True to replace it."
        )
    _register(module_type, handler)


def get_handler(module: Any) -> ModuleHandler | None:
    """The handler for a module instance, or None."""
    _load_builtins()
    t = type(module)
    hit = _BY_TYPE.get(t)
    if hit is None and _BY_QUALNAME:
        hit = _BY_QUALNAME.get(_qualname(t))
    if hit is None and t.__module__.startswith("transformers."):
        hit = _discovered(t)
    return hit


#: transformers classes looked at by :func:`netstruct.convert.hf.discover` (None: no handler)
_DISCOVERED: dict[type, ModuleHandler | None] = {}


def _discovered(t: type) -> ModuleHandler | None:
    """A transformers copy of a handled layer, recognised by its code (cached per class)."""
    if t not in _DISCOVERED:
        from .hf import discover

        h = discover(t)
        _DISCOVERED[t] = h
        if h is not None:
            _BY_NAME.setdefault(h.name, h)
    return _DISCOVERED[t]


def _qualname(module_type: type) -> str:
    return f"{module_type.__module__}.{module_type.__qualname__}"


def handler_for_name(name: str) -> ModuleHandler:
    """The handler registered under ``name`` (used when rebuilding from a spec)."""
    _load_builtins()
    if name not in _BY_NAME and name.startswith("transformers."):
        from .hf import discover_name

        found = discover_name(name)
        if found is not None:
            _BY_NAME[name] = found
    if name not in _BY_NAME:
        raise GraphError(
            f"The graph's architecture uses a module handler named {name!r}, which is not "
            "registered in this session; call netstruct.register_module_handler for that layer "
            "type before re-importing."
        )
    return _BY_NAME[name]


def registry_size() -> tuple[int, int]:
    """How many module types (by type, by qualified name) have handlers: changes on register."""
    _load_builtins()
    return len(_BY_TYPE), len(_BY_QUALNAME)


def is_registered_type(module_type: type) -> bool:
    """True when ``module_type`` has a handler."""
    _load_builtins()
    if module_type in _BY_TYPE or _qualname(module_type) in _BY_QUALNAME:
        return True
    return module_type.__module__.startswith("transformers.") and (
        _discovered(module_type) is not None
    )


HandlerFactory = Callable[[], ModuleHandler]

"""Export a torch model to a :class:`~netstruct.SignedGraph`.

The model is traced with ``torch.fx`` (``nn.Sequential`` stacks and modules written the usual
way, e.g. an LSTM followed by a Linear head on the last time step). Each traced module call
goes to its registered handler; the feature dimension is followed through activations,
dropout, flatten and time-step selection. The traced operations are stored as a JSON spec so
:func:`netstruct.to_torch` can rebuild an equivalent module.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..exceptions import GraphError, InvalidParameterError, UnsupportedModuleError
from ..graphs.signed import SignedGraph
from . import _ops
from .builder import GraphBuilder, PendingInput, StackedStates
from .handlers import get_handler, is_registered_type

__all__ = ["from_torch"]

SPEC_FORMAT = "netstruct-arch"
SPEC_VERSION = 1


@dataclass(frozen=True)
class _Feat:
    """Feature ids carried by a traced value, and its number of dims when known."""

    ids: np.ndarray
    ndim: int | None = None


class _Opaque:
    """A traced value netstruct does not follow (sizes, initial states, ...)."""


def _tracer_cls():
    import torch

    class _Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return is_registered_type(type(m)) or super().is_leaf_module(m, qualname)

    return _Tracer


def _trace(model):
    import torch

    spec = getattr(model, "netstruct_spec", None)
    if isinstance(spec, dict) and "ops" in spec:  # a module rebuilt by to_torch: replay its record
        return _Traced(_graph_from_spec(spec), model)
    kind = _container_kind(model)
    if kind in ("Leaf", "Sequential"):  # a chain of known layers: no tracing needed
        graph = torch.fx.Graph()
        x = graph.placeholder("input")
        paths = [""] if kind == "Leaf" else _sequential_leaves(model, "")
        for p in paths:
            x = graph.call_module(p, (x,))
        graph.output(x)
        return _Traced(graph, model)
    tracer = _tracer_cls()()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types (TraceError, TypeError, proxy errors...)
        raise UnsupportedModuleError(
            f"{type(model).__name__} could not be traced with torch.fx ({type(exc).__name__}: {exc}). "
            "netstruct follows models without data-dependent control flow; wrap the untraceable "
            "part in a module and register a handler with netstruct.register_module_handler."
        ) from None
    gm = torch.fx.GraphModule(model, graph)
    return _Traced(gm.graph, gm)


def _graph_from_spec(spec: dict[str, Any]):
    import torch

    graph = torch.fx.Graph()
    env: list[Any] = []
    table = _ops.function_table()
    for rec in spec["ops"]:
        args = tuple(_ops.decode_arg(rec.get("args", []), env))
        kwargs = {k: _ops.decode_arg(v, env) for k, v in rec.get("kwargs", {}).items()}
        op = rec["op"]
        if op == "placeholder":
            node = graph.placeholder(rec["target"])
        elif op == "call_module":
            node = graph.call_module(rec["target"], args, kwargs)
        elif op == "call_function":
            node = graph.call_function(table[rec["target"]], args, kwargs)
        elif op == "call_method":
            node = graph.call_method(rec["target"], args, kwargs)
        else:
            node = graph.output(args[0])
        env.append(node)
    return graph


@dataclass
class _Traced:
    graph: Any
    root: Any  # has get_submodule(path); a GraphModule when traced


def _shape_prop(traced: _Traced, example_input) -> None:
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    gm = traced.root
    if not isinstance(gm, torch.fx.GraphModule):
        gm = torch.fx.GraphModule(gm, traced.graph)

    args = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        ShapeProp(gm).propagate(*args)
    except Exception as exc:  # the user's input does not fit their model
        raise InvalidParameterError(
            f"The 'example_input' parameter of from_torch could not be run through the model "
            f"({type(exc).__name__}: {exc}). Pass a tensor shaped like one batch of real input."
        ) from None


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _index_keeps_features(index: Any, ndim: int | None) -> bool:
    """True when ``x[index]`` leaves the last (feature) dimension untouched."""
    items = index if isinstance(index, tuple) else (index,)
    full = slice(None)
    if Ellipsis in items:
        after = items[items.index(Ellipsis) + 1 :]
        return all(a == full for a in after)
    consumed = sum(1 for a in items if a is not None)
    if items and items[-1] == full:
        return True
    return ndim is not None and consumed < ndim


def _index_ndim(index: Any, ndim: int | None) -> int | None:
    if ndim is None:
        return None
    items = index if isinstance(index, tuple) else (index,)
    if Ellipsis in items:
        return None
    return ndim - sum(1 for a in items if isinstance(a, int)) + sum(1 for a in items if a is None)


def _where(node) -> str:
    return f"traced operation {node.name!r} ({node.op} {getattr(node.target, '__name__', node.target)!s})"


class _Exporter:
    def __init__(self, model, traced: _Traced, shapes_known: bool) -> None:
        self.model = model
        self.gm = traced.root
        self.graph = traced.graph
        self.shapes_known = shapes_known
        self.builder = GraphBuilder()
        self.modules: dict[str, dict[str, Any]] = {}
        self.ops: list[dict[str, Any]] = []
        self.env: dict[Any, Any] = {}
        self.index: dict[Any, int] = {}

    # -- value helpers -------------------------------------------------------------
    def _feat_in(self, v: Any) -> Any:
        return v.ids if isinstance(v, _Feat) else v

    def _wrap_out(self, out: Any, ndim: int | None) -> Any:
        if isinstance(out, np.ndarray):
            return _Feat(out, ndim)
        if isinstance(out, tuple):
            return tuple(self._wrap_out(o, ndim) for o in out)
        return out

    # -- per-op handlers -----------------------------------------------------------
    def call_module(self, node) -> Any:
        path = str(node.target)
        mod = self.gm.get_submodule(path)
        handler = get_handler(mod)
        if handler is None:
            raise UnsupportedModuleError(
                f"Module {path!r} of type {type(mod).__module__}.{type(mod).__name__} has no netstruct "
                "export handler. Register one with netstruct.register_module_handler(<type>, "
                "<ModuleHandler>) (see netstruct.ModuleHandler for an example)."
            )
        if path in self.modules:
            raise UnsupportedModuleError(
                f"Module {path!r} is called more than once in forward(); netstruct exports each "
                "module's parameters once, so shared (tied) modules are not supported."
            )
        self.modules[path] = {"handler": handler.name, "config": handler.config(mod)}
        inp = self.env[node.args[0]] if node.args else PendingInput()
        ndim = inp.ndim if isinstance(inp, _Feat) else None
        if handler.name in ("RNN", "LSTM", "GRU"):
            ndim = 3 if ndim is None else ndim
        try:
            out = handler.export(mod, path, self._feat_in(inp), self.builder)
        except (GraphError, UnsupportedModuleError):
            raise
        shape = _shape(node)
        return self._wrap_out(out, len(shape) if shape else ndim)

    def _function(self, node, name: str) -> Any:
        base = _ops.base_name(name)
        args = node.args
        first = self.env.get(args[0]) if args and hasattr(args[0], "op") else None
        if name == "getitem":
            return self._getitem(node, first, args[1])
        if base in _ops.META_OPS:
            return _Opaque()
        if isinstance(first, PendingInput):
            return first
        if not isinstance(first, _Feat):
            if isinstance(first, _Opaque) or first is None:
                return _Opaque()
            raise GraphError(f"{_where(node)} is applied to a value netstruct cannot follow.")
        if base in _ops.ACTIVATIONS:
            self.builder.annotate(first.ids, _ops.ACTIVATIONS[base])
            return first
        if base in _ops.NEUTRAL:
            return first
        if base in _ops.SHAPE_OPS:
            return self._reshape(node, first)
        raise UnsupportedModuleError(f"{_where(node)} is not supported by netstruct's exporter.")

    def _getitem(self, node, value: Any, index: Any) -> Any:
        if isinstance(value, tuple):
            if not isinstance(index, int):
                raise UnsupportedModuleError(f"{_where(node)} indexes a tuple with {index!r}.")
            return value[index]
        if isinstance(value, StackedStates):
            if isinstance(index, int):
                return _Feat(value.states[index], 2)
            raise UnsupportedModuleError(
                f"{_where(node)} selects final states with {index!r}; use an integer such as h_n[-1]."
            )
        if isinstance(value, PendingInput):
            return value
        if isinstance(value, _Feat):
            if any(hasattr(a, "op") for a in (index if isinstance(index, tuple) else (index,))):
                raise UnsupportedModuleError(f"{_where(node)} indexes with a traced value.")
            shape_in = _shape(node.args[0])
            ndim = len(shape_in) if shape_in else value.ndim
            if not _index_keeps_features(index, ndim):
                hint = "" if self.shapes_known else " Pass example_input to from_torch so shapes are known."
                raise UnsupportedModuleError(
                    f"{_where(node)} may index the feature dimension ({index!r}); netstruct only follows "
                    f"selections of batch or time steps.{hint}"
                )
            return _Feat(value.ids, _index_ndim(index, ndim))
        return _Opaque()

    def _reshape(self, node, value: _Feat) -> _Feat:
        shape_in, shape_out = _shape(node.args[0]), _shape(node)
        n = value.ids.size
        if shape_in is not None and shape_out is not None:
            if shape_in[-1] == n and shape_out[-1] == n:
                return _Feat(value.ids, len(shape_out))
        elif node.target in ("flatten", self._fn("torch.flatten")):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0 if node.op == "call_method" else 1)
            if value.ndim is not None and start == value.ndim - 1:
                return value
        raise UnsupportedModuleError(
            f"{_where(node)} reshapes hidden features; netstruct follows reshapes only of the raw "
            "input, or where example_input shows that the feature dimension is kept."
        )

    @staticmethod
    def _fn(name: str) -> Any:
        return _ops.function_table()[name]

    # -- driver --------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        n_placeholders = 0
        for i, node in enumerate(self.graph.nodes):
            self.index[node] = i
            where = _where(node)
            rec: dict[str, Any] = {"op": node.op}
            if node.op == "placeholder":
                value: Any = PendingInput() if n_placeholders == 0 else _Opaque()
                n_placeholders += 1
                rec["target"] = str(node.target)
            elif node.op == "call_module":
                value = self.call_module(node)
                rec["target"] = str(node.target)
            elif node.op == "call_function":
                name = _ops.function_name(node.target)
                if name is None:
                    raise UnsupportedModuleError(
                        f"{where} calls a function netstruct does not follow; supported are "
                        f"{sorted(_ops.function_table())}. Wrap it in a module and register a handler."
                    )
                value = self._function(node, name)
                rec["target"] = name
            elif node.op == "call_method":
                base = str(node.target)
                if base not in _ops.ACTIVATIONS and base not in _ops.NEUTRAL | _ops.SHAPE_OPS | _ops.META_OPS:
                    raise UnsupportedModuleError(f"{where} calls tensor method {base!r}, which netstruct does not follow.")
                value = self._function(node, base)
                rec["target"] = base
            elif node.op == "get_attr":
                raise UnsupportedModuleError(
                    f"{where} reads parameter {node.target!r} directly; netstruct exports parameters "
                    "through modules. Move it into a module and register a handler."
                )
            elif node.op == "output":
                value = self.env[node.args[0]] if hasattr(node.args[0], "op") else _Opaque()
                for v in value if isinstance(value, tuple) else (value,):
                    if isinstance(v, _Feat):
                        self.builder.mark_outputs(v.ids)
                rec["target"] = "output"
            else:  # pragma: no cover - fx has no other op kinds
                raise UnsupportedModuleError(f"{where}: unknown fx op {node.op!r}.")
            rec["args"] = _ops.encode_arg(tuple(node.args), self.index, where)["$tuple"]
            rec["kwargs"] = {k: _ops.encode_arg(v, self.index, where) for k, v in node.kwargs.items()}
            self.env[node] = value
            self.ops.append(rec)
        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "container": _container_kind(self.model),
            "modules": self.modules,
            "ops": self.ops,
        }


def _sequential_leaves(seq, prefix: str) -> list[str]:
    import torch

    out = []
    for name, child in seq.named_children():
        path = f"{prefix}{name}"
        if isinstance(child, torch.nn.Sequential):
            out += _sequential_leaves(child, f"{path}.")
        else:
            out.append(path)
    return out


def _container_kind(model) -> str:
    import torch

    def flat_seq(m) -> bool:
        return isinstance(m, torch.nn.Sequential) and all(
            flat_seq(c) if isinstance(c, torch.nn.Sequential) else get_handler(c) is not None for c in m.children()
        )

    if flat_seq(model):
        return "Sequential"
    if get_handler(model) is not None:
        return "Leaf"
    return "Traced"


def from_torch(model: Any, example_input: Any = None, *, check: bool = True) -> SignedGraph:
    """Export a torch model to a :class:`~netstruct.SignedGraph`.

    Parameters
    ----------
    model : torch.nn.Module
        An ``nn.Sequential`` (nested stacks allowed) of ``nn.Linear``, recurrent layers
        (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``), activations, dropout, identity and flatten, or a
        module whose ``forward`` chains such layers (traced with ``torch.fx``), or any layer
        type with a registered handler.
    example_input : Tensor or tuple of Tensors, optional
        One batch of input. When given, shapes are propagated (so reshapes of hidden features
        can be followed) and, with ``check=True``, the re-imported module is run on it and its
        output compared with the model's.
    check : bool, default=True
        With ``example_input``, verify that ``to_torch(G)`` reproduces the model's output.

    Returns
    -------
    SignedGraph
        Nodes for inputs, units (and gate rows), outputs; one block per weight parameter,
        named like the model's ``state_dict`` keys.

    Raises
    ------
    UnsupportedModuleError
        A module or traced operation netstruct cannot follow; the message names its path and
        type and how to register a handler.
    GraphError
        Non-finite weights, or layer sizes that do not chain.
    InvalidParameterError
        ``model`` is not a module, has no parameters, or ``example_input`` does not fit it.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> G = ns.from_torch(model)
    >>> G.nodes()["kind"].value_counts().to_dict()
    {'input': 4, 'hidden': 3, 'output': 2}
    >>> [b.name for b in G.blocks]
    ['0.weight', '2.weight']
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(
            f"The 'model' parameter of from_torch must be a torch.nn.Module. Got {type(model).__name__} instead."
        )
    if not any(True for _ in model.parameters()):
        raise InvalidParameterError(
            f"The 'model' parameter of from_torch must have parameters; {type(model).__name__} has none "
            "(an empty model has no graph)."
        )
    traced = _trace(model)
    if example_input is not None:
        was_training = model.training
        model.eval()
        try:
            _shape_prop(traced, example_input)
        finally:
            model.train(was_training)
    exporter = _Exporter(model, traced, shapes_known=example_input is not None)
    spec = exporter.run()
    b = exporter.builder
    if not b.blocks:
        raise InvalidParameterError(
            f"The 'model' parameter of from_torch has no exportable weights: {type(model).__name__}'s "
            "forward uses none of its weighted layers."
        )
    params = dict(model.named_parameters())
    used = {f"{blk.module}.{p}" if blk.module else p for blk in b.blocks for p in (blk.param, blk.bias_param) if p}
    provenance = {
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": list(params),
        "unexported_parameters": sorted(set(params) - used),
        "netstruct_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "dtype": str(next(iter(params.values())).dtype).replace("torch.", ""),
    }
    if example_input is not None and hasattr(example_input, "shape"):
        spec["input_shape"] = list(example_input.shape)
    G = SignedGraph(b.columns, b.blocks, spec=spec, provenance=provenance)
    if example_input is not None and check:
        _check_roundtrip(model, G, example_input)
    return G


def _check_roundtrip(model, G: SignedGraph, example_input) -> None:
    import torch

    from .to_torch import to_torch

    rebuilt = to_torch(G)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            a, b = model(*args), rebuilt(*args)
    finally:
        model.train(was_training)
    ta = [t for t in (a if isinstance(a, tuple) else (a,)) if isinstance(t, torch.Tensor)]
    tb = [t for t in (b if isinstance(b, tuple) else (b,)) if isinstance(t, torch.Tensor)]
    ok = len(ta) == len(tb) and all(
        x.shape == y.shape and torch.allclose(x.float(), y.float(), atol=1e-5, rtol=1e-4) for x, y in zip(ta, tb)
    )
    if not ok:
        raise GraphError(
            f"The exported graph of {type(model).__name__} does not reproduce the model's output on "
            "example_input; its forward() does something netstruct does not record. Register a "
            "handler for the custom part, or pass check=False to keep the graph anyway."
        )

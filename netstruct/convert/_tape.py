"""A tape tracer: record one run of a model as a ``torch.fx.Graph`` (used when fx cannot trace).

``torch.fx`` traces symbolically and fails on forwards that branch on tensor values or sizes
(Hugging Face models do both). With an example input netstruct instead *runs* the model once
under a :class:`torch.overrides.TorchFunctionMode`, with forward hooks on every module, and
writes down what happened:

* a call of a module that has an export handler becomes a ``call_module`` node (what happens
  inside it is the handler's business and is not recorded);
* every torch function and tensor method that reads a recorded value becomes a
  ``call_function`` / ``call_method`` node (operator dunders such as ``Tensor.__add__`` become
  ``operator.add``);
* a model parameter read directly (ViT's ``cls_token``) becomes a ``get_attr`` node;
* everything that does not depend on the model input or its parameters (attention-mask
  construction, position ids, ``arange``, buffers) is **folded**: it is not recorded, and a
  recorded operation that reads it receives the tensor as a constant.

Like ``torch.jit.trace``, the tape is specialised to the example input: sizes read with
``x.size()`` are plain numbers, Python branches take the example's path and folded constants
have the example's shapes. The rebuilt module therefore accepts inputs of the example's
shapes only (it refuses others with a clear message). Each node keeps the module path and
the source line (the innermost frame outside torch and netstruct) for error messages.
"""

from __future__ import annotations

import linecache
import operator
import os
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["tape_trace", "flat_tensors"]

#: Tensor dunders recorded as the ``operator`` function with the same meaning
_DUNDERS: dict[str, tuple[Callable[..., Any], bool]] = {
    "__getitem__": (operator.getitem, False),
    "__add__": (operator.add, False),
    "__radd__": (operator.add, True),
    "__iadd__": (operator.iadd, False),
    "__sub__": (operator.sub, False),
    "__rsub__": (operator.sub, True),
    "__mul__": (operator.mul, False),
    "__rmul__": (operator.mul, True),
    "__truediv__": (operator.truediv, False),
    "__rtruediv__": (operator.truediv, True),
    "__rdiv__": (operator.truediv, True),
    "__floordiv__": (operator.floordiv, False),
    "__matmul__": (operator.matmul, False),
    "__rmatmul__": (operator.matmul, True),
    "__neg__": (operator.neg, False),
    "__pow__": (operator.pow, False),
    "__mod__": (operator.mod, False),
}


#: functions whose result depends on their inputs' shapes only (folded: the tape is specialised)
_SHAPE_ONLY = frozenset(
    {
        "zeros_like",
        "ones_like",
        "empty_like",
        "full_like",
        "new_zeros",
        "new_ones",
        "new_empty",
        "new_full",
    }
)
#: Tensor methods that turn a value into Python (the model may branch on the result)
_TO_PYTHON = frozenset({"__bool__", "item", "tolist", "__int__", "__float__", "__index__"})


def flat_tensors(obj: Any) -> list[Any]:
    """The tensors of a model output in order (tensor, tuple/list, dict or ``ModelOutput``)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):  # ModelOutput is an OrderedDict of its non-None fields
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in flat_tensors(o)]
    return []


def _output_names(obj: Any) -> list[str]:
    """Field names of the tensors :func:`flat_tensors` returns (``"0"``, ``"1"``, ... for tuples)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [""]
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (tuple, list)):
        items = [(str(k), v) for k, v in enumerate(obj)]
    else:
        return []
    out = []
    for k, v in items:
        out += [f"{k}.{n}" if n else str(k) for n in _output_names(v)]
    return out


class _Recorder:
    def __init__(self, model: Any, is_leaf: Any) -> None:
        import torch

        self.torch = torch
        self.graph = torch.fx.Graph()
        self.model = model
        self.is_leaf = is_leaf
        self.bound: dict[int, tuple[Any, Any]] = {}  # id(tensor) -> (tensor, node)
        self.params = {id(p): name for name, p in model.named_parameters()}
        #: paths of the modules that hold a parameter (their own or a submodule's, tied too)
        self.with_params: set[str] = set()
        for name, _ in model.named_parameters(remove_duplicate=False):
            parts = name.split(".")[:-1]
            self.with_params.update(".".join(parts[:k]) for k in range(len(parts) + 1))
        self.param_nodes: dict[str, Any] = {}
        self.paths = {id(m): path for path, m in model.named_modules()}
        self.stack: list[str] = []
        self.leaf_depth = 0
        self.pending: list[Any] = []
        self.torch_dir = os.path.dirname(torch.__file__)
        self.here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        #: node -> the value it had in the recorded run (``from_torch`` needs no second run)
        self.values: dict[Any, Any] = {}
        #: code file name -> whether it is library code (torch, netstruct, frozen modules)
        self._library: dict[str, bool] = {}

    # -- values --------------------------------------------------------------------------
    def node_of(self, t: Any) -> Any:
        hit = self.bound.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        name = self.params.get(id(t))
        if name is None:
            return None
        if name not in self.param_nodes:
            node = self.graph.get_attr(name)
            self._annotate(node)
            self.param_nodes[name] = node
            self.values[node] = t
        return self.param_nodes[name]

    def lift(self, obj: Any) -> tuple[Any, bool]:
        """``obj`` with recorded tensors replaced by their nodes; whether any was recorded."""
        torch = self.torch
        if isinstance(obj, torch.Tensor):
            node = self.node_of(obj)
            if node is None:  # a constant: snapshot it (the model may change it in place later)
                return obj.detach().clone(), False
            return node, True
        if isinstance(obj, (tuple, list)):
            parts = [self.lift(o) for o in obj]
            vals = [p[0] for p in parts]
            return (tuple(vals) if isinstance(obj, tuple) else vals), any(p[1] for p in parts)
        if isinstance(obj, dict):
            lifted = {k: self.lift(v) for k, v in obj.items()}
            return {k: p[0] for k, p in lifted.items()}, any(p[1] for p in lifted.values())
        return obj, False

    def bind(self, out: Any, node: Any) -> None:
        """Map the tensors of ``out`` (a tensor or nested tuple/list) to ``node`` and getitems."""
        torch = self.torch
        self.values[node] = out
        if isinstance(out, torch.Tensor):
            self.bound[id(out)] = (out, node)
        elif isinstance(out, (tuple, list)):
            for k, o in enumerate(out):
                if flat_tensors(o):
                    item = self.graph.call_function(operator.getitem, (node, k))
                    item.meta.update(node.meta)
                    item.stack_trace = node.stack_trace
                    self.bind(o, item)

    # -- provenance ----------------------------------------------------------------------
    def _annotate(self, node: Any, path: str | None = None) -> None:
        where = self.stack[-1] if path is None and self.stack else (path or "")
        node.meta["nn_module_stack"] = {where: (where, "")}
        node.stack_trace = self._source()

    def _is_library(self, filename: str) -> bool:
        hit = self._library.get(filename)
        if hit is None:
            f = os.path.abspath(filename)
            hit = f.startswith((self.torch_dir, self.here)) or "<frozen" in f
            self._library[filename] = hit
        return hit

    def _source(self) -> str:
        """The innermost frame outside torch and netstruct, as a traceback line."""
        frame: types.FrameType | None = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if not self._is_library(code.co_filename):
                line = linecache.getline(code.co_filename, frame.f_lineno).strip()
                return f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n    {line}'
            frame = frame.f_back
        return ""

    # -- recording -------------------------------------------------------------------------
    def record_guard(self, func: Any, args: tuple, out: Any) -> None:
        """A recorded tensor turned into a Python value (``if mask.all():``): keep a guard."""
        name = getattr(func, "__name__", "")
        if self.leaf_depth or name not in _TO_PYTHON or not args:
            return
        node = self.node_of(args[0]) if isinstance(args[0], self.torch.Tensor) else None
        if node is None:
            return
        from . import _ops

        value = self.graph.call_method(name, (node,))
        self._annotate(value)
        where = self._source().split("\n")[0].replace('File "', "").replace('", line', ", line")
        g = self.graph.call_function(_ops.guard, (value, out, where))
        self._annotate(g)
        self.values[value] = out
        self.values[g] = None

    def record_function(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        name = getattr(func, "__name__", "")
        if name == "__setitem__" and not self.leaf_depth:
            self.record_setitem(args)
            return
        if not flat_tensors(out):
            self.record_guard(func, args, out)
            return
        if self.leaf_depth or name in _SHAPE_ONLY:
            return  # inside a handled module (its handler's business), or a function of shapes
        self._record_call(func, args, kwargs, out)

    def record_setitem(self, args: tuple) -> None:
        """``x[i] = v`` writing into a recorded value (kept: the exporter reports it)."""
        largs, tracked = self.lift(args)
        if tracked:
            node = self.graph.call_function(operator.setitem, tuple(largs))
            self._annotate(node)
            self.values[node] = None

    def _record_call(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        largs, t1 = self.lift(args)
        lkwargs, t2 = self.lift(kwargs)
        if not (t1 or t2):
            return  # does not depend on the input or the parameters: folded
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__objclass__", None) or getattr(
            getattr(func, "__self__", None), "__objclass__", None
        )
        is_method = owner is self.torch.Tensor or (
            getattr(self.torch.Tensor, name, None) is func and name
        )
        g = self.graph
        if name in _DUNDERS and is_method:
            fn, reflected = _DUNDERS[name]
            fargs = (largs[1], largs[0], *largs[2:]) if reflected else largs
            node = g.call_function(fn, tuple(fargs), lkwargs)
        elif name == "__get__":  # a property such as x.T
            attr = getattr(getattr(func, "__self__", None), "__name__", name)
            node = g.call_function(getattr, (largs[0], attr))
        elif is_method:
            node = g.call_method(name, tuple(largs), lkwargs)
        else:
            node = g.call_function(func, tuple(largs), lkwargs)
        self._annotate(node)
        self.bind(out, node)

    def pre_hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        path = self.paths.get(id(module), "")
        self.stack.append(path)
        if self.leaf_depth == 0 and self.is_leaf(module):
            args, kwargs = _positional(module, args, kwargs)
            largs, t1 = self.lift(args)
            lkwargs, t2 = self.lift(kwargs)
            has_params = path in self.with_params
            node = None
            if t1 or t2 or has_params:
                node = self.graph.call_module(path, tuple(largs), lkwargs)
                self._annotate(node, path)
            self.pending.append(node)
            self.leaf_depth += 1
        elif self.leaf_depth:
            self.leaf_depth += 1

    def hook(self, module: Any, args: tuple, kwargs: dict, out: Any) -> None:
        self.stack.pop()
        if self.leaf_depth:
            self.leaf_depth -= 1
            if self.leaf_depth == 0:
                node = self.pending.pop()
                if node is not None:
                    self.bind(out, node)


def _positional(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Pass a module's tensor arguments by position (``attn(query=q, ...)`` -> ``attn(q, ...)``)."""
    if not kwargs:
        return args, kwargs
    forward = module.forward
    func = getattr(forward, "__func__", None)
    lead = (module,) if func is not None and getattr(forward, "__self__", None) is module else ()
    try:
        bound = _signature(func if lead else forward).bind(*lead, *args, **kwargs)
    except (TypeError, ValueError):
        return args, kwargs
    return tuple(bound.args[len(lead) :]), dict(bound.kwargs)


_SIGNATURES: dict[Any, Any] = {}


def _signature(func: Any) -> Any:
    """``inspect.signature`` of a forward function (cached per plain function: one per class)."""
    import inspect

    if not inspect.isfunction(func):
        return inspect.signature(func)
    sig = _SIGNATURES.get(func)
    if sig is None:
        sig = _SIGNATURES[func] = inspect.signature(func)
    return sig


def _drop_dead_code(graph: Any) -> None:
    """Remove recorded functions whose results reach neither the output nor a module call.

    Python that only inspected values (``if h.sum() > 0``) leaves such nodes; module calls
    and parameters stay, so the rebuilt module keeps every submodule the run used.
    """
    keep: set[Any] = set()
    from . import _ops

    todo = [
        n
        for n in graph.nodes
        if n.op in ("output", "call_module", "get_attr", "placeholder")
        or n.target in (_ops.guard, operator.setitem)
    ]
    while todo:
        n = todo.pop()
        if n in keep:
            continue
        keep.add(n)
        todo.extend(n.all_input_nodes)
    for n in reversed(list(graph.nodes)):
        if n not in keep:
            graph.erase_node(n)


def argument_names(model: Any, n: int) -> list[str]:
    """Names of the first ``n`` positional arguments of ``model.forward`` (``input_<k>`` when
    they cannot be read); one input is ``input``."""
    import inspect

    if n == 1:
        return ["input"]
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in params if p.kind in kinds][:n]
    if len(names) < n or len(set(names)) < n or not all(m.isidentifier() for m in names):
        return [f"input_{k}" for k in range(n)]
    return names


def tape_trace(
    model: Any, example_input: Any, is_leaf: Any, keep: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """Run ``model`` once on ``example_input`` and return ``(fx graph, facts)``.

    ``facts`` holds ``input_shapes`` (the shapes the tape is specialised to) and
    ``outputs`` (the names of the output tensors, in the order the graph returns them).
    With a dict ``keep``, the run's results are kept there, so no one runs the model again:
    ``keep["values"]`` maps every node of the graph to the value it had in the run, and
    ``keep["output"]`` is what the model returned.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    rec = _Recorder(model, is_leaf)
    inputs = list(example_input) if isinstance(example_input, tuple) else [example_input]
    names = argument_names(model, len(inputs))
    for k, x in enumerate(inputs):
        node = rec.graph.placeholder(names[k])
        rec.values[node] = x
        if isinstance(x, torch.Tensor):
            rec.bound[id(x)] = (x, node)

    class _Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if not rec.leaf_depth:  # inside a handled module nothing is recorded
                rec.record_function(func, args, kwargs, out)
            return out

    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
        handles.append(m.register_forward_hook(rec.hook, with_kwargs=True, always_call=True))
    try:
        with torch.no_grad(), _Mode():
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
    tensors = flat_tensors(out)
    nodes = [rec.node_of(t) for t in tensors]
    if any(n is None for n in nodes):
        from ..exceptions import UnsupportedModuleError

        raise UnsupportedModuleError(
            f"{type(model).__name__} returns a tensor that does not depend on its input or "
            "parameters; netstruct exports outputs computed from the input"
        )
    rec.graph.output(nodes[0] if isinstance(out, torch.Tensor) else tuple(nodes))
    _drop_dead_code(rec.graph)
    if keep is not None:
        keep["values"] = {n: rec.values[n] for n in rec.graph.nodes if n in rec.values}
        keep["output"] = out
    facts = {
        "input_shapes": [list(x.shape) if hasattr(x, "shape") else None for x in inputs],
        "input_dtypes": [
            str(x.dtype).replace("torch.", "") if hasattr(x, "dtype") else None for x in inputs
        ],
        "outputs": _output_names(out),
    }
    return rec.graph, facts

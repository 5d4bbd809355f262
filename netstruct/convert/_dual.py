"""The dual tracer: one run of a model that is both its ``torch.fx`` trace and its example run.

A first export with an example input used to pay twice for the same walk over the model:
``torch.fx`` traced the forward symbolically (proxies, no data), then the exporter ran the
traced operations on the example to learn every value's shape. For a small model each walk
costs more than the model's own forward (about 1 ms and 0.5 ms against 0.25 ms for a
residual CNN), mostly in torch.fx's bookkeeping: it patches ``torch.nn.Module.__call__``
and ``__getattr__``, which invalidates the attribute caches of every module class in the
process, and lowers each argument through pytree.

Here the forward runs once on *dual values*: each is an fx graph node together with the
real value it has on the example. The rules are torch.fx's own, so the graph is the one
``torch.fx.Tracer.trace`` records (the tests compare the two node by node):

* a call of a leaf module (the tracer's :func:`is_leaf` rule) becomes a ``call_module``
  node, and the module runs on the real values;
* torch functions and tensor methods reach :meth:`Dual.__torch_function__` and become
  ``call_function`` / ``call_method`` nodes, operators the ``operator`` functions fx uses,
  attribute reads ``getattr`` nodes (made when used, as fx does);
* a parameter read in a traced-through forward becomes a ``get_attr`` node, one per name;
* placeholders follow the forward's signature, defaults included;
* every node made inside a module call carries fx's ``nn_module_stack``.

Where torch.fx's trace fails (a Python branch on a traced value, ``len`` of one, iteration
other than unpacking) the run raises :class:`FxFails` at the same point, and the caller
records a tape without trying fx. Whatever else fx would do that this module does not
mirror raises :class:`DualUnsupported`, and the caller traces with torch.fx: tensors that
are neither parameters nor buffers of the model, functions registered with
``torch.fx.wrap``, module classes with their own ``__call__`` or ``__getattr__``, a forward
with ``**kwargs`` that runs to its end (fx passes a placeholder for them, the run an empty
dict), hooks, and models in training mode (the exporter therefore switches a training-mode
model to eval mode for the run: the mode its round-trip check runs the model in). Autograd is off for the values only: the forward's Python sees the
caller's grad mode, as under torch.fx. Only module classes found in the
model are patched, and only for the length of the run (under the exporter's
``FX_TRACE_LOCK``), and module calls of other threads pass through untouched (under
torch.fx they would reach the tracer); torch.fx's private tracing flag is set as torch.fx sets it, so torch's
own modules take the branches they take under torch.fx.
"""

from __future__ import annotations

import collections
import dis
import inspect
import operator
import sys
import threading
from collections.abc import Callable
from typing import Any

from .handlers import is_registered_type

__all__ = ["DualUnsupported", "FxFails", "Dual", "DualRun", "dual_trace", "is_leaf"]


class DualUnsupported(Exception):
    """The forward does something the dual tracer does not mirror (torch.fx traces it)."""


class FxFails(DualUnsupported):
    """The forward does what torch.fx's trace fails on: a Python branch on a traced value,
    ``len`` of one, or iteration other than unpacking (the caller records a tape instead)."""


#: the tracer of the run in progress (one at a time: exports hold ``FX_TRACE_LOCK``)
_ACTIVE: _DualTracer | None = None


def is_leaf(module: Any, through: tuple[type, ...]) -> bool:
    """Whether a trace records ``module`` as one ``call_module`` node (else it traces through).

    netstruct's rule for both tracers: a layer with a registered export handler, or any
    ``torch.nn`` module (torch.fx's default) other than ``nn.Sequential`` and the
    composites of ``through`` (see :func:`netstruct.convert.attention.traced_through`).

    Examples
    --------
    >>> import torch
    >>> is_leaf(torch.nn.Linear(2, 2), ()), is_leaf(torch.nn.Sequential(), ())
    (True, False)
    """
    import torch

    if isinstance(module, through):
        return False
    if is_registered_type(type(module)):
        return True
    name = type(module).__module__
    return name.startswith(("torch.nn", "torch.ao.nn")) and not isinstance(
        module, torch.nn.Sequential
    )


def _tracer() -> _DualTracer:
    if _ACTIVE is None:  # a dual value outlived its run
        raise DualUnsupported("no dual run in progress")
    return _ACTIVE


class Dual:
    """An fx node and its real value on the example (what torch.fx's ``Proxy`` is, plus data)."""

    __slots__ = ("_node", "_value")

    def __init__(self, node: Any, value: Any) -> None:
        self._node, self._value = node, value

    @property
    def node(self) -> Any:
        return self._node

    @property
    def value(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return f"Dual({self.node.name})"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: D105
        import torch

        tr = _tracer()
        kwargs = kwargs or {}
        if isinstance(func, (torch._C.ScriptMethod, torch._ops.HigherOrderOperator)):
            raise DualUnsupported(f"{func} is traced by torch.fx's special rules")
        if _is_method(func):
            return tr.record("call_method", func.__name__, args, kwargs)
        name = tr.graph._target_to_str(func.__name__)  # the name torch.fx gives it
        return tr.record("call_function", func, args, kwargs, name=name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # protocol probes (copy, numpy): fx's answer is not ours
            raise DualUnsupported(f"attribute {attr!r} of a traced value")
        return _Attribute(self, attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Dual:
        return _tracer().record("call_method", "__call__", (self, *args), kwargs)

    def __iter__(self) -> Any:
        frame = sys._getframe(1)  # fx unpacks ``a, b = x`` and refuses any other iteration
        insts = list(dis.get_instructions(frame.f_code))
        at = [i for i in insts if i.offset == frame.f_lasti]
        if at and at[0].opname == "UNPACK_SEQUENCE":
            return (operator.getitem(self, i) for i in range(at[0].argval))
        raise FxFails("iteration over a traced value")

    def __bool__(self) -> bool:
        raise FxFails("a Python branch on a traced value")

    def __len__(self) -> int:
        raise FxFails("len() of a traced value")

    def __abs__(self) -> Dual:
        return _tracer().record("call_function", operator.abs, (self,), {})

    def keys(self) -> Dual:
        return _tracer().record("call_method", "keys", (self,), {})


#: ``torch.overrides.is_tensor_method_or_property`` by function (it sets warning filters
#: on every call, which costs more than recording the node)
_METHODS: dict[Any, bool] = {}


def _is_method(func: Any) -> bool:
    hit = _METHODS.get(func)
    if hit is None:
        import torch

        hit = _METHODS[func] = bool(torch.overrides.is_tensor_method_or_property(func))
    return hit


class _Attribute(Dual):
    """``value.attr``: a ``call_method`` node when called, else a ``getattr`` node made when
    first used (torch.fx's ``Attribute``)."""

    __slots__ = ("_root", "_attr")

    def __init__(self, root: Dual, attr: str) -> None:
        super().__init__(None, None)
        self._root, self._attr = root, attr

    def _made(self) -> None:
        if self._node is None:
            made = _tracer().record("call_function", getattr, (self._root, self._attr), {})
            self._node, self._value = made.node, made.value

    @property
    def node(self) -> Any:
        self._made()
        return self._node

    @property
    def value(self) -> Any:
        self._made()
        return self._value

    def __call__(self, *args: Any, **kwargs: Any) -> Dual:
        return _tracer().record("call_method", self._attr, (self._root, *args), kwargs)


def _install_operators() -> None:
    """The operator dunders torch.fx's ``Proxy`` records, from the same tables."""
    from torch.fx.graph import magic_methods, reflectable_magic_methods

    def forward(method: str) -> Callable[..., Any]:
        def impl(*args: Any, **kwargs: Any) -> Dual:
            return _tracer().record("call_function", getattr(operator, method), args, kwargs)

        impl.__name__ = method
        return impl

    def reflected(method: str) -> Callable[..., Any]:
        def impl(self: Dual, rhs: Any) -> Dual:
            return _tracer().record("call_function", getattr(operator, method), (rhs, self), {})

        impl.__name__ = f"__r{method.strip('_')}__"
        return impl

    for method in magic_methods:
        setattr(Dual, f"__{method.strip('_')}__", forward(method))
    for method in reflectable_magic_methods:
        setattr(Dual, f"__r{method.strip('_')}__", reflected(method))


_install_operators()


class DualRun:
    """A dual run's result: the fx ``graph``, each node's real ``values`` and the ``output``
    the forward returned (real values)."""

    __slots__ = ("graph", "values", "output")

    def __init__(self, graph: Any, values: dict[Any, Any], output: Any) -> None:
        self.graph, self.values, self.output = graph, values, output


_PLAIN_TYPES = (int, float, bool, str, complex, type(None), type(Ellipsis))


class _DualTracer:
    def __init__(
        self, root: Any, paths: dict[Any, str], through: tuple[type, ...], tracer_cls: Any
    ) -> None:
        import torch

        self.root = root
        self.through = through
        self.graph = torch.fx.Graph(tracer_cls=tracer_cls)
        self.values: dict[Any, Any] = {}
        self.paths = paths
        self.module_stack: collections.OrderedDict[str, tuple[str, Any]] = collections.OrderedDict()
        self.num_calls: dict[str, int] = {}
        self.params: dict[str, Dual] = {}  # one get_attr node per parameter read (fx's cache)
        self.inside = 0  # > 0 while a leaf module runs on real values: nothing is recorded
        self.thread = threading.get_ident()  # other threads' module calls pass through
        self._atoms = (torch.dtype, torch.device, torch.memory_format, torch.layout)
        self._grad = (torch.is_grad_enabled, torch._C._set_grad_enabled)

    def set_grad(self, mode: bool) -> bool:
        """Set autograd's mode; return the one it had."""
        is_enabled, set_enabled = self._grad
        before = is_enabled()
        set_enabled(mode)
        return before

    # -- nodes
    def node(self, kind: str, target: Any, args: Any, kwargs: Any, name=None, type_expr=None):
        n = self.graph.create_node(kind, target, args, kwargs, name, type_expr)
        if self.module_stack:
            n.meta["nn_module_stack"] = self.module_stack.copy()
        return n

    def record(self, kind: str, target: Any, args: tuple, kwargs: dict, name=None) -> Dual:
        (node_args, value_args), (node_kwargs, value_kwargs) = self.lower(args), self.lower(kwargs)
        grad = self.set_grad(False)  # values without autograd; the forward sees the caller's mode
        try:
            if kind == "call_function":
                value = target(*value_args, **value_kwargs)
            else:  # call_method
                value = getattr(value_args[0], target)(*value_args[1:], **value_kwargs)
        finally:
            self.set_grad(grad)
        n = self.node(kind, target, node_args, node_kwargs, name)
        self.values[n] = value
        return Dual(n, value)

    def lower(self, a: Any) -> tuple[Any, Any]:
        """``(fx argument, real value)`` of an argument (torch.fx's ``create_arg`` rules)."""
        import torch

        if isinstance(a, Dual):
            return a.node, a.value
        t = type(a)
        if t is tuple or t is list:
            pairs = [self.lower(x) for x in a]
            return t(p[0] for p in pairs), t(p[1] for p in pairs)
        if t is dict:
            out: tuple[dict, dict] = ({}, {})
            for k, v in a.items():
                if isinstance(k, Dual):
                    raise DualUnsupported("a traced value as a dict key")
                out[0][k], out[1][k] = self.lower(v)
            return out
        if t is slice:
            (n0, v0), (n1, v1), (n2, v2) = (self.lower(x) for x in (a.start, a.stop, a.step))
            return slice(n0, n1, n2), slice(v0, v1, v2)
        if t in _PLAIN_TYPES or isinstance(a, self._atoms):
            return a, a
        if isinstance(a, torch.Tensor):
            return self.tensor_attribute(a), a
        raise DualUnsupported(f"an argument of type {t.__name__}")

    def tensor_attribute(self, tensor: Any) -> Any:
        """A ``get_attr`` node for a parameter or buffer of the model (fx makes one per use)."""
        import torch

        named = (
            self.root.named_parameters()
            if isinstance(tensor, torch.nn.Parameter)
            else self.root.named_buffers()
        )
        for name, t in named:
            if t is tensor:
                n = self.node("get_attr", name, (), {})
                self.values[n] = tensor
                return n
        raise DualUnsupported("a tensor that is not a parameter or buffer of the model")

    # -- modules
    def call_module(self, module: Any, args: tuple, kwargs: dict, call: Callable) -> Any:
        path = self.paths.get(module)
        if path is None:
            raise DualUnsupported("a module that is not a submodule of the model")
        calls = self.num_calls.get(path, 0)
        key = f"{path}@{calls}" if calls else path
        self.module_stack[key] = (path, type(module))
        self.num_calls[path] = calls + 1
        try:
            if not is_leaf(module, self.through):
                return call(module, *args, **kwargs)  # traced through: its forward sees duals
            (node_args, value_args), (node_kwargs, value_kwargs) = (
                self.lower(args),
                self.lower(kwargs),
            )
            self.inside += 1
            grad = self.set_grad(False)
            try:
                value = call(module, *value_args, **value_kwargs)
            finally:
                self.inside -= 1
                self.set_grad(grad)
            n = self.node("call_module", path, node_args, node_kwargs)
            self.values[n] = value
            return Dual(n, value)
        finally:
            self.module_stack.popitem(last=True)

    def parameter(self, value: Any) -> Any:
        for name, p in self.root.named_parameters():
            if p is value:
                hit = self.params.get(name)
                if hit is None:
                    n = self.node("get_attr", name, (), {})
                    self.values[n] = value
                    hit = self.params[name] = Dual(n, value)
                return hit
        return value

    # -- the run
    def placeholders(self, fn: Any, inputs: tuple) -> list[Dual]:
        code = fn.__code__
        if code.co_kwonlyargcount or code.co_flags & inspect.CO_VARARGS:
            raise DualUnsupported("a forward with keyword-only parameters or *args")
        names = code.co_varnames[1 : code.co_argcount]
        defaults = fn.__defaults__ or ()
        if len(inputs) > len(names):
            raise DualUnsupported("more example inputs than the forward has parameters")
        first_default = len(names) - len(defaults)
        annotations = fn.__annotations__
        out = []
        for i, name in enumerate(names):
            default: tuple[Any, ...] = (defaults[i - first_default],) if i >= first_default else ()
            if i >= len(inputs) and not default:
                raise DualUnsupported(f"no example input for {name!r}")
            node_default, _ = self.lower(default)
            n = self.node("placeholder", name, node_default, {}, type_expr=annotations.get(name))
            value = inputs[i] if i < len(inputs) else default[0]
            self.values[n] = value
            out.append(Dual(n, value))
        return out

    def run(self, inputs: tuple) -> DualRun:
        fn = type(self.root).forward  # called as fx calls it; read through any decorator
        inner = inspect.unwrap(fn)
        if not (inspect.isfunction(fn) and inspect.isfunction(inner)):
            raise DualUnsupported("a forward that is not a Python function")
        args = self.placeholders(inner, inputs)
        output = fn(self.root, *args)
        if inner.__code__.co_flags & inspect.CO_VARKEYWORDS:
            # fx passes a placeholder for ``**kwargs``, this run an empty dict: the same
            # path where fx fails (hence FxFails above), not necessarily the same graph
            raise DualUnsupported("a forward with **kwargs")
        node_out, value_out = self.lower(output)
        ann = inspect.get_annotations(inner)
        self.node("output", "output", (node_out,), {}, type_expr=ann.get("return", None))
        return DualRun(self.graph, self.values, value_out)


def _module_call(mod: Any, *args: Any, **kwargs: Any) -> Any:
    """``nn.Module.__call__`` of the module classes during a run: leaves are recorded."""
    tr = _ACTIVE
    if tr is None or tr.inside or tr.thread != threading.get_ident():
        return _ORIGINAL["__call__"](mod, *args, **kwargs)
    return tr.call_module(mod, args, kwargs, _ORIGINAL["__call__"])


def _module_getattr(mod: Any, attr: str) -> Any:
    """``nn.Module.__getattr__`` of traced-through classes: parameters become nodes."""
    import torch

    value = _ORIGINAL["__getattr__"](mod, attr)
    tr = _ACTIVE
    if tr is None or tr.inside or not isinstance(value, torch.nn.Parameter):
        return value
    if tr.thread != threading.get_ident():  # another thread's module: not this run's
        return value
    return tr.parameter(value)


#: ``torch.nn.Module``'s own ``__call__`` and ``__getattr__`` (filled on the first run)
_ORIGINAL: dict[str, Any] = {}
_REPLACEMENT = {"__call__": _module_call, "__getattr__": _module_getattr}


def _plan(model: Any, inputs: tuple, through: tuple[type, ...]) -> tuple[dict, list]:
    """``({module: path}, [(class, attribute)] to patch)`` for a run on ``model``, after
    one walk over its modules; raise :class:`DualUnsupported` where the run would not be
    torch.fx's trace (see the module docstring)."""
    import torch
    from torch.fx import _symbolic_trace as st

    if not _ORIGINAL:
        _ORIGINAL.update(__call__=torch.nn.Module.__call__, __getattr__=torch.nn.Module.__getattr__)
    mm = torch.nn.modules.module
    if mm._global_forward_hooks or mm._global_forward_pre_hooks:
        raise DualUnsupported("global forward hooks")
    if getattr(st, "_wrapped_methods_to_patch", None):
        raise DualUnsupported("tensor methods registered with torch.fx.wrap")
    if not hasattr(st, "_is_fx_tracing_flag"):
        raise DualUnsupported("this torch.fx has no tracing flag to set")
    if not all(isinstance(x, torch.Tensor) for x in inputs):
        raise DualUnsupported("example inputs that are not tensors")
    wrapped = {key[0] for key in getattr(st, "_wrapped_fns_to_patch", {})}  # globals' ids
    paths: dict[Any, str] = {}
    patches: dict[tuple[type, str], None] = {}
    for name, m in model.named_modules():
        paths[m] = name
        if m.training or m._forward_hooks or m._forward_pre_hooks:
            raise DualUnsupported("a module in training mode or with forward hooks")
        cls = type(m)
        if (cls, "__call__") in patches:
            continue
        for attr, original in _ORIGINAL.items():
            if getattr(cls, attr) is not original:
                raise DualUnsupported(f"{cls.__name__} defines its own {attr}")
        patches[(cls, "__call__")] = None
        if not is_leaf(m, through):  # traced through: fx proxies its parameters
            patches[(cls, "__getattr__")] = None
            if id(getattr(cls.forward, "__globals__", None)) in wrapped:
                raise DualUnsupported(f"{cls.__name__}.forward calls a function of torch.fx.wrap")
    return paths, list(patches)


def dual_trace(
    model: Any, example_input: Any, through: tuple[type, ...], tracer_cls: Any
) -> DualRun:
    """Trace ``model`` as torch.fx would and run it on ``example_input`` in the same pass.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode throughout, without forward hooks.
    example_input : Tensor or tuple of Tensors
        The inputs of the forward, in order (parameters after them take their defaults).
    through : tuple of type
        Composites traced through (see :func:`is_leaf`).
    tracer_cls : type
        The fx tracer class recorded on the graph (as ``Graph(tracer_cls=...)``).

    Returns
    -------
    DualRun
        The graph, every node's value and the forward's output.

    Raises
    ------
    DualUnsupported
        Where torch.fx's trace would differ, or the run fails (the caller traces with fx).

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.body = m
    ...     def forward(self, x):
    ...         return torch.relu(self.body(x)).flatten(1)
    >>> run = dual_trace(Net().eval(), torch.ones(1, 3), (), None)
    >>> [n.op for n in run.graph.nodes]
    ['placeholder', 'call_module', 'call_function', 'call_method', 'output']
    >>> tuple(run.output.shape)
    (1, 2)
    """
    global _ACTIVE
    from torch.fx import _symbolic_trace as st

    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if _ACTIVE is not None:
        raise DualUnsupported("a dual run is in progress")
    paths, patches = _plan(model, inputs, through)
    tracer = _DualTracer(model, paths, through, tracer_cls)
    saved = [(cls, name, cls.__dict__.get(name)) for cls, name in patches]
    flag = st._is_fx_tracing_flag
    try:
        for cls, name in patches:
            setattr(cls, name, _REPLACEMENT[name])
        st._is_fx_tracing_flag = True
        _ACTIVE = tracer
        return tracer.run(inputs)
    except DualUnsupported:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own error: fx decides what to report
        raise DualUnsupported(f"{type(exc).__name__}: {exc}") from exc
    finally:
        _ACTIVE = None
        st._is_fx_tracing_flag = flag
        for cls, name, old in saved:
            if old is None:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, old)

"""When a dual run's output *is* the model's output: a proof read off the forward's bytecode.

The round-trip check of :func:`netstruct.from_torch` compares the rebuilt module with the
model's own forward, because a trace sees stand-ins (fx proxies, dual values), not tensors,
and Python that asks what its values are (``isinstance``, ``type``, ``hasattr``,
``torch.is_tensor``, torch.fx's tracing flag) takes another branch there than in a real run.
The dual tracer (:mod:`netstruct.convert._dual`) computes every value on the real example,
so its output is the model's output exactly when no such question is asked. This module
decides that conservatively, from the code alone: :func:`faithful_run` is True only when

* every module the run traced through (the root, containers) has a plain Python
  ``forward`` (no decorator, generator, ``try``/``with`` block, import or ``super()``),
  torch's own ``nn.Sequential.forward`` included;
* that code reads only globals and closure values that are torch (or ``math``/``operator``)
  modules, torch functions, plain constants, or harmless builtins (``range``, ``zip``,
  ``min``, ...), never ``isinstance``, ``type``, ``hasattr``, ``getattr``, ``callable``,
  ``id``, ``str``;
* it reads attributes of ``self`` that are submodules, parameters, buffers, plain data, or
  methods whose code passes the same test; ``self`` is never passed on or stored;
* identity is tested against constants only (``x is None``): ``y is x`` of two values
  differs where a real run returns the same tensor (``x.relu_()``, ``x.float()`` of a float);
* every other attribute it reads is a tensor method or attribute, a torch function, or a
  submodule, parameter, buffer or plain setting of one of the model's modules, and none is a
  flag (``is_fx_tracing``, ``is_scripting``, ``is_compiling``, ``is_tensor``, ``_C``, ...)
  or a dunder;
* every leaf module (run on real tensors) is torch's own, whose forwards never read
  torch.fx's tracing flag, and every parameter of the forward got an example input (a
  default would reach the forward as a dual value, where ``x is None`` is False).

Anything else answers False, and the check runs the model as before; the answer only
spares the check one forward of the model, it never changes a graph.
"""

from __future__ import annotations

import builtins
import dis
import functools
import inspect
import types
from typing import Any

__all__ = ["faithful_run"]

#: attribute names that ask how the code runs, not what a value is
_FLAGS = frozenset(
    {
        "is_fx_tracing",
        "is_fx_symbolic_tracing",
        "_is_fx_tracing_flag",
        "is_scripting",
        "is_tracing",
        "is_compiling",
        "is_dynamo_compiling",
        "is_exporting",
        "_get_tracing_state",
        "is_tensor",
        "is_storage",
        "is_tensor_like",
        "has_torch_function",
        "has_torch_function_unary",
        "has_torch_function_variadic",
        "handle_torch_function",
        "typename",
        "_C",
        "fx",
        "jit",
        "compiler",
        "_dynamo",
        "overrides",
        "_jit_internal",
        "export",
    }
)
#: torch submodules whose members ask how the code runs
_FLAG_MODULES = ("torch.fx", "torch.jit", "torch.compiler", "torch._dynamo", "torch.overrides")
#: builtins that see a value only through its own operators (or not at all)
_SAFE_BUILTINS = frozenset(
    {
        "range",
        "zip",
        "enumerate",
        "reversed",
        "tuple",
        "list",
        "dict",
        "slice",
        "min",
        "max",
        "sum",
        "abs",
        "round",
        "divmod",
        "pow",
        "all",
        "any",
        "int",
        "float",
        "bool",
        "print",
        "len",
        "ValueError",
        "RuntimeError",
        "TypeError",
        "NotImplementedError",
        "AssertionError",
        "None",
        "True",
        "False",
    }
)
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
#: loads of a local or cell (LOAD_CLOSURE only builds a nested function's cells: read too)
_SELF_LOADS = ("LOAD_FAST", "LOAD_DEREF", "STORE_FAST_LOAD_FAST")
_PLAIN = (int, float, bool, str, complex, type(None), type(Ellipsis))


class _Code:
    """What one code object (with its nested comprehensions and lambdas) reads."""

    __slots__ = ("ok", "globals", "free", "self_attrs", "attrs")

    def __init__(
        self,
        ok: bool,
        globals_: frozenset,
        free: frozenset,
        self_attrs: frozenset,
        attrs: frozenset,
    ) -> None:
        self.ok, self.globals, self.free = ok, globals_, free
        self.self_attrs, self.attrs = self_attrs, attrs


def _loads(ins: dis.Instruction, name: str | None) -> bool:
    """Whether ``ins`` loads the local (or cell) ``name``, alone or fused with others (3.13)."""
    if name is None or not ins.opname.startswith(_SELF_LOADS):
        return False
    arg = ins.argval
    return arg == name or (isinstance(arg, tuple) and name in arg)


@functools.lru_cache(maxsize=1024)
def _read_code(code: types.CodeType, self_name: str | None) -> _Code:
    """The static facts of ``code`` (``self_name``: its ``self`` argument, None for none)."""
    names: set[str] = set()
    free: set[str] = set()
    self_attrs: set[str] = set()
    attrs: set[str] = set()
    bad = _Code(False, frozenset(), frozenset(), frozenset(), frozenset())
    if code.co_flags & (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
        return bad
    if getattr(code, "co_exceptiontable", b""):  # try/except/with: a dual's error may be caught
        return bad
    insts = list(dis.get_instructions(code))
    for k, ins in enumerate(insts):
        op = ins.opname
        if "IMPORT" in op or "SUPER" in op or op in ("STORE_GLOBAL", "DELETE_GLOBAL"):
            return bad
        if op == "IS_OP" and not (k and insts[k - 1].opname == "LOAD_CONST"):
            return bad  # ``a is b`` of two values: an in-place op or a no-op ``.to`` gives the
            # same tensor twice in a real run, two dual values here (``is None`` is the same)
        if op in ("LOAD_GLOBAL", "LOAD_NAME"):
            names.add(str(ins.argval))
        elif _loads(ins, self_name):
            nxt = insts[k + 1] if k + 1 < len(insts) else None
            if ins.argval != self_name or nxt is None:  # a fused load of several locals
                return bad
            if nxt.opname in _ATTR_OPS:
                self_attrs.add(str(nxt.argval))
            elif nxt.opname != "STORE_ATTR":
                return bad  # self passed on, stored or compared: its uses are not ours to see
        elif op in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
            free.add(str(ins.argval))  # a closure's value or a cell of the function's own
        elif op in _ATTR_OPS:
            prev = insts[k - 1] if k else None
            is_self = prev is not None and prev.argval == self_name and _loads(prev, self_name)
            name = str(ins.argval)
            if name.startswith("__") or name in _FLAGS:
                return bad
            if not is_self:
                attrs.add(name)
    for const in code.co_consts:  # comprehensions, lambdas, inner functions
        if isinstance(const, types.CodeType):
            inner = _read_code(const, self_name if self_name in const.co_freevars else None)
            if not inner.ok:
                return bad
            names |= inner.globals
            free |= inner.free
            self_attrs |= inner.self_attrs
            attrs |= inner.attrs
    return _Code(True, frozenset(names), frozenset(free), frozenset(self_attrs), frozenset(attrs))


@functools.cache
def _torch_names() -> frozenset:
    """Attribute names of tensors, ``torch`` and ``torch.nn.functional`` (no flags, dunders)."""
    import torch

    names = set(dir(torch.Tensor)) | set(dir(torch)) | set(dir(torch.nn.functional))
    names |= {"functional", "nn", "shape", "T", "mT", "H", "mH", "real", "imag"}
    return frozenset(n for n in names if not n.startswith("__") and n not in _FLAGS)


def _plain_value(v: Any, depth: int = 0) -> bool:
    import torch

    if isinstance(v, _PLAIN) or isinstance(v, (torch.dtype, torch.device)):
        return True
    if isinstance(v, (tuple, list, frozenset)) and depth < 3 and len(v) <= 64:
        return all(_plain_value(x, depth + 1) for x in v)
    return False


def _safe_global(fn: Any, name: str) -> bool:
    g = fn.__globals__
    if name not in g:
        return name in _SAFE_BUILTINS and hasattr(builtins, name)
    return _safe_value(g[name])


def _safe_value(v: Any) -> bool:
    """A global's or closure's value the code may read: torch, a torch function, a constant."""
    if isinstance(v, types.ModuleType):
        mod = v.__name__
        if mod in ("math", "operator"):
            return True
        return (mod == "torch" or mod.startswith("torch.")) and not mod.startswith(_FLAG_MODULES)
    if _plain_value(v):
        return True
    owner = getattr(v, "__module__", None) or ""
    if callable(v) and (owner == "torch" or owner.startswith(("torch.", "torch._C"))):
        return getattr(v, "__name__", "") not in _FLAGS and not owner.startswith(_FLAG_MODULES)
    return False


class _Model:
    """Names the model's modules give their submodules, tensors, settings and methods (read
    when a forward reads an attribute that is no tensor's or torch's)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @functools.cached_property
    def _names(self) -> tuple[frozenset, frozenset]:
        data: set[str] = set()
        methods: set[str] = set()
        for m in self.model.modules():
            d = m.__dict__
            data.update(d["_modules"], d["_parameters"], d["_buffers"])
            data.update(k for k, v in d.items() if not k.startswith("_") and _plain_value(v))
            methods.update(
                k
                for k, v in vars(type(m)).items()
                if isinstance(v, (types.FunctionType, property)) and not k.startswith("__")
            )
        return frozenset(data), frozenset(methods)

    @property
    def data(self) -> frozenset:
        return self._names[0]

    @property
    def methods(self) -> frozenset:
        return self._names[1]


def _function_ok(fn: Any, module: Any, model: _Model, seen: set) -> bool:
    """Whether running ``fn(module, ...)`` on dual values computes what it computes on tensors."""
    if not isinstance(fn, types.FunctionType):
        return False
    code = fn.__code__
    if (code, id(module)) in seen:
        return True
    seen.add((code, id(module)))
    self_name = code.co_varnames[0] if code.co_argcount else None
    facts = _read_code(code, self_name)
    if not facts.ok or not all(_safe_global(fn, n) for n in facts.globals):
        return False
    cells = dict(zip(code.co_freevars, fn.__closure__ or ()))
    for name in facts.free & cells.keys():  # the others are the function's own cells
        try:
            value = cells[name].cell_contents
        except ValueError:  # an empty cell
            return False
        if not _safe_value(value):
            return False
    for name in facts.attrs - _torch_names():
        if name in model.methods or name not in model.data:
            return False  # a Python method of some module called on something not ``self``
    return all(_self_attr_ok(module, n, model, seen) for n in facts.self_attrs)


def _self_attr_ok(module: Any, name: str, model: _Model, seen: set) -> bool:
    d = module.__dict__
    if name in d["_modules"] or name in d["_parameters"] or name in d["_buffers"]:
        return True
    if name in d:
        return _plain_value(d[name])
    attr = inspect.getattr_static(type(module), name, None)
    if isinstance(attr, types.FunctionType):
        return _function_ok(attr, module, model, seen)
    return attr is not None and _plain_value(attr)


def faithful_run(model: Any, inputs: tuple, is_leaf: Any) -> bool:
    """Whether a dual run of ``model`` on ``inputs`` computed what ``model(*inputs)`` returns.

    ``is_leaf(module)``: the dual tracer's rule (a leaf runs on the real tensors). True only
    when the forward's code provably treats dual values as it treats tensors (see the module
    docstring); False whenever that is not certain.

    Examples
    --------
    >>> import torch
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a, self.b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    ...     def forward(self, x):
    ...         return torch.relu(self.a(x)) + self.b(x)
    >>> class Asks(Net):
    ...     def forward(self, x):
    ...         return self.a(x) if isinstance(x, torch.Tensor) else self.b(x)
    >>> leaf = lambda m: type(m) is torch.nn.Linear
    >>> faithful_run(Net(), (torch.ones(1, 3),), leaf), faithful_run(Asks(), (torch.ones(1, 3),), leaf)
    (True, False)
    """
    import torch

    forward = type(model).forward
    if inspect.unwrap(forward) is not forward or not isinstance(forward, types.FunctionType):
        return False
    code = forward.__code__
    if len(inputs) != code.co_argcount - 1:  # a default would reach the forward as a dual
        return False
    names = _Model(model)
    seen: set = set()
    sequential = torch.nn.Sequential.forward
    for m in model.modules():
        cls = type(m)
        if m is not model and is_leaf(m):
            if not cls.__module__.startswith(("torch.nn.", "torch.ao.nn.")):
                return False  # a registered layer's own forward may read torch.fx's flag
            continue
        if isinstance(m, (torch.nn.ModuleList, torch.nn.ModuleDict)) and m is not model:
            continue  # containers without a forward: only their members run
        fwd = cls.forward
        if fwd is sequential:
            continue  # torch's: calls each member in turn
        if not _function_ok(fwd, m, names, seen):
            return False
    return True

"""Export a torch model to a :class:`~netstruct.SignedGraph`.

The model is traced with ``torch.fx`` (``nn.Sequential`` stacks are read directly). Every
traced module call goes to its registered handler; element-wise activations, residual sums
and shape operations are followed on the node ids (see :mod:`netstruct.convert._values`).
The traced operations are stored as a JSON architecture spec, so :func:`netstruct.to_torch`
rebuilds an equivalent module with the same ``state_dict`` keys.

Why ``torch.fx``: it gives a graph of module calls and torch functions at the level a layer
handler speaks (``nn.Conv2d``, ``F.relu``, ``x.flatten(1)``), which keeps the architecture spec
readable and re-importable, and it records each operation's source line. With
``example_input`` the traced operations are also run once, so shapes and the sizes a
``forward`` computes are known and shape operations are followed exactly. Models with at
least :data:`META_RUN_PARAMS` parameters run on the meta device (shapes without arithmetic;
the real tensors only when a shape operation reads a tensor's data), smaller ones on the
real tensors, whose last value then also serves the round-trip check of a plain
``nn.Sequential``. Every operation netstruct cannot follow is collected and reported in one
error, each with its module path, operation and source line (fetched by a second trace only
when there is an error to report).

Models ``torch.fx`` cannot trace (forwards that branch on values or sizes, e.g. Hugging Face
models) are recorded instead by running them once on ``example_input`` (the tape tracer of
:mod:`netstruct.convert._tape`); the result is the same kind of fx graph, specialised to the
example's shapes (see ``docs/concepts/layers.md``, "Tracing"). That one run gives the values the
exporter needs and the reference output of the round-trip check: the model is not run again.
A trace by torch.fx (or the dual tracer) is checked against the model's own forward, since
Python that branches on ``isinstance(x, torch.Tensor)`` or ``hasattr`` takes another path on
proxies than on tensors; where the check fails, the tape records the model instead.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import platform
import threading
import weakref
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .._version import __version__
from ..exceptions import GraphError, InvalidParameterError, UnsupportedModuleError
from ..graphs._derived import share_structural, structural
from ..graphs._generated import attention_pattern, diagonal_block, identity_block
from ..graphs.signed import SignedGraph, _copy_json
from . import _ops
from ._dual import DualUnsupported, FxFails, dual_trace, is_leaf
from ._faithful import faithful_run
from ._kept import Kept, input_signature, meta_shapes
from ._paths import submodule
from ._resize import units_record
from ._tape import argument_names, flat_tensors
from ._values import Broken, ExtraInput, Feat, Opaque, decode, encode, interleaved_repeats
from .builder import (
    GraphBuilder,
    PendingInput,
    StackedStates,
    to_numpy,
)
from .elementwise import label_for
from .handlers import get_handler

__all__ = ["from_torch"]

SPEC_FORMAT = "netstruct-arch"
SPEC_VERSION = 2


@functools.cache
def _tracer_cls():
    """The fx tracer whose leaves are the layers netstruct has handlers for (one class: the
    registry is read at each ``is_leaf_module`` call)."""
    import torch

    from .attention import traced_through

    through = traced_through()

    class _Tracer(torch.fx.Tracer):
        def __init__(self) -> None:
            # no autowrapped ``math`` module: fx would patch and restore its ~60 functions on
            # every trace (a fifth of a small model's trace time), and a ``math`` call on a
            # traced size has no graph meaning here anyway; fx then fails on it, and with an
            # example input the model is recorded by one run (its sizes are concrete there)
            no_modules: tuple[Any, ...] = ()
            super().__init__(autowrap_modules=no_modules)

        def is_leaf_module(self, m, qualname):
            return is_leaf(m, through)  # the dual tracer's rule too

    return _Tracer


class _Traced:
    def __init__(
        self,
        graph: Any,
        root: Any,
        facts: dict[str, Any] | None = None,
        kept: dict[str, Any] | None = None,
    ) -> None:
        self.graph = graph
        self.root = root  # has get_submodule(path)
        #: set for a tape trace: the input shapes it is specialised to and the output names
        self.facts = facts
        #: a tape trace's run: every node's value (``"values"``) and the model's ``"output"``
        self.kept = kept
        #: ``() -> {node name: stack trace}`` when the graph's nodes lack their source lines
        self.sources: Any = None
        #: :func:`_fx_key` of a fresh fx trace (what a later export may reuse it under)
        self.key: tuple | None = None
        #: the graph is an earlier export's fx trace of this model (see :data:`_FX_TRACES`)
        self.reused = False
        #: a reused trace's kept values on an example of the same signature (meta tensors)
        self.shapes: dict[Any, Any] | None = None
        #: the :class:`_RealValues` of its export (what a checked export keeps shapes from)
        self.run: Any = None
        #: the :class:`~netstruct.convert._kept.Kept` entry whose shapes it replays
        self.kept_entry: Kept | None = None
        #: a chain of known layers read off an ``nn.Sequential`` (or one layer): no trace
        self.chain = False
        #: a dual run whose output is provably the model's own (see ``_faithful``)
        self.faithful = False


def _trace(model, example_input: Any = None, reuse: bool = False) -> _Traced:
    """The operations of ``model``'s forward: read off a chain, traced by fx, or taped.

    ``reuse``: the trace an earlier export of this very model checked (same
    :func:`_fx_key`; a tape's only for an example of its shapes) is returned instead of
    tracing again, marked ``reused``, with the shapes of its run when the example input has
    the same signature (the caller must then check the export against the model's own
    forward; see :data:`_FX_TRACES` and :mod:`netstruct.convert._kept`).
    """
    import torch

    spec = getattr(model, "netstruct_spec", None)
    if isinstance(spec, dict) and "ops" in spec:  # a module rebuilt by to_torch: replay its record
        return _Traced(_graph_from_spec(spec), model, spec.get("specialised"))
    if "forward" in vars(model):  # fx would trace type(model).forward, not the one a run calls
        if example_input is None:
            raise UnsupportedModuleError(
                f"The model's forward is set on the instance ({type(model).__name__}.forward = ...); "
                "torch.fx traces the class's forward instead. Pass example_input to from_torch "
                "(netstruct then records one run of the model), or define forward in a subclass."
            )
        return _tape(model, example_input)
    kind = _container_kind(model)
    if kind in ("Leaf", "Sequential"):  # a chain of known layers: no tracing needed
        graph = torch.fx.Graph()
        x = graph.placeholder("input")
        paths = [""] if kind == "Leaf" else _sequential_leaves(model, "")
        n_in = getattr(get_handler(model), "n_inputs", 1) if kind == "Leaf" else 1
        if kind == "Leaf" and isinstance(example_input, tuple):  # masks after the inputs
            n_in = max(n_in, len(example_input))
        if n_in > 1:  # a layer of several inputs (attention's query, key, value)
            names = argument_names(model, n_in)  # later inputs' nodes: input.<name>[i]
            later = (graph.placeholder(names[k]) for k in range(1, n_in))
            x = graph.call_module("", (x, *later))
            paths = []
        for p in paths:
            x = graph.call_module(p, (x,))
        graph.output(x)
        traced = _Traced(graph, model)
        traced.chain = True
        return traced
    key = _fx_key(model) if example_input is not None else None
    hit = _FX_TRACES.get(model) if reuse and key is not None else None
    if hit is not None and hit.key == key and hit.graph is not None:
        signature = input_signature(example_input)
        if hit.facts is None or hit.signature == signature:  # a tape only for its own shapes
            return _replayed(model, hit, signature)
    if key is not None and _FX_FAILED.get(model) == key:  # fx failed on this very model
        return _tape(model, example_input, key)
    if key is not None and _DUAL_FAILED.get(model) != key:
        dual = _dual(model, example_input, key)
        if dual is not None:
            return dual
    tracer = _tracer_cls()()
    tracer.record_stack_traces = False  # source lines only for an error (see _fx_sources)
    try:
        with FX_TRACE_LOCK:
            graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types (TraceError, TypeError, proxy errors...)
        if example_input is not None:  # data-dependent Python: record one run instead
            _FX_FAILED[model] = key
            return _tape(model, example_input, key)
        raise UnsupportedModuleError(
            f"{type(model).__name__} could not be traced with torch.fx ({type(exc).__name__}: {exc}). "
            "Pass example_input to from_torch: netstruct then records one run of the model (a "
            "trace specialised to that input's shapes), or wrap the untraceable part in a module "
            "and register a handler with netstruct.register_module_handler."
        ) from None
    if example_input is None:
        _warn_unchecked(model)
    # the graph's module and attribute paths are the model's own (the tracer stores constants
    # it meets on the model): no GraphModule, whose construction compiles Python code
    traced = _Traced(graph, model)
    traced.sources = functools.partial(_fx_sources, model)
    traced.key = key
    return traced


#: names whose use in a traced forward asks what a value is: torch.fx answers for its proxy
_ASKS_TYPE = frozenset(
    {
        "isinstance",
        "hasattr",
        "type",
        "callable",
        "__class__",
        "is_fx_tracing",
        "is_fx_tracing_symbolic_tracing",
        "is_tracing",
        "is_scripting",
        "is_compiling",
    }
)


def _asking_forwards(model: Any) -> list[str]:
    """``Class.forward (name)`` for each traced-through module whose forward code (its own
    lines and the functions defined in it) uses a name of :data:`_ASKS_TYPE`.

    A heuristic for :func:`_warn_unchecked` (helpers the forward calls are not read).

    Examples
    --------
    >>> import torch
    >>> class Asks(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x if isinstance(x, torch.Tensor) else -x
    >>> _asking_forwards(Asks())
    ['Asks.forward (isinstance)']
    >>> _asking_forwards(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    []
    """
    from .attention import traced_through

    through = traced_through()
    found, seen = [], set()
    for module in model.modules():
        forward = getattr(type(module), "forward", None)
        code = getattr(forward, "__code__", None)
        if code is None or code in seen or is_leaf(module, through):
            continue
        seen.add(code)
        names: set[str] = set()
        stack = [code]
        while stack:
            c = stack.pop()
            names.update(c.co_names)
            stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
        asked = sorted(names & _ASKS_TYPE)
        if asked:
            found.append(f"{type(module).__qualname__}.forward ({', '.join(asked)})")
    return found


def _warn_unchecked(model: Any) -> None:
    """Warn when an fx trace without an example input may hold a branch a run does not take."""
    asking = _asking_forwards(model)
    if not asking:
        return
    import warnings

    from ..exceptions import UncheckedExportWarning

    warnings.warn(
        f"from_torch traced {type(model).__name__} without example_input, so the graph is not "
        f"checked against a run, and {'; '.join(asking)} asks what its values are, which a "
        "torch.fx trace answers for a proxy, not a tensor: the graph may compute another branch "
        "than the model. Pass example_input (one batch) to check the export against the "
        "model's own forward.",
        UncheckedExportWarning,
        stacklevel=5,  # from_torch's caller
    )


def _dual(model: Any, example_input: Any, key: tuple) -> _Traced | None:
    """The fx trace of ``model`` and its run on ``example_input`` in one pass (see
    :mod:`netstruct.convert._dual`); the tape where torch.fx's trace would fail; None,
    remembered for this :func:`_fx_key`, where the dual tracer does not mirror torch.fx
    (the caller then traces with fx)."""
    from .attention import traced_through

    if sum(p.numel() for p in model.parameters()) >= META_RUN_PARAMS:
        return None  # shapes come from a meta run there, not from the real arithmetic
    # a model in training mode is traced, and run, in eval mode, as the tape records it and
    # the round-trip check runs it (a run in training mode would also update its batch
    # norms' running statistics)
    training = any(m.training for m in model.modules())
    try:
        with eval_mode(model) if training else contextlib.nullcontext():
            try:
                with FX_TRACE_LOCK:
                    run = dual_trace(model, example_input, traced_through(), _tracer_cls())
            except FxFails:  # where fx's trace fails too: record one run instead (in the
                _FX_FAILED[model] = key  # same eval mode: one switch of the model's modes)
                return _tape(model, example_input, key)
    except DualUnsupported:
        _DUAL_FAILED[model] = key
        return None
    traced = _Traced(run.graph, model, kept={"values": run.values, "output": run.output})
    traced.sources = functools.partial(_fx_sources, model)
    traced.key = key
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    traced.faithful = faithful_run(model, inputs, lambda m: is_leaf(m, traced_through()))
    return traced


def _replayed(model: Any, kept: Kept, signature: tuple | None) -> _Traced:
    """The trace a checked export of ``model`` kept, with its shapes when the example input
    has the same ``signature`` (see :mod:`netstruct.convert._kept`)."""
    traced = _Traced(kept.graph, model, kept.facts)
    if kept.facts is None:
        traced.sources = functools.partial(_fx_sources, model)
    traced.reused = True
    if kept.shapes is not None and kept.signature == signature:
        traced.shapes = kept.shapes
        traced.kept_entry = kept
    return traced


def _keep(model: Any, traced: _Traced, example_input: Any, G: SignedGraph) -> None:
    """Keep the trace of ``G``, a checked export of ``model``, and the shapes of its run when
    they are of the same graph (no batch norm folded into a new one) and sizes only."""
    run = traced.run
    shapes = signature = None
    if run is not None and run.traced is traced and run.values is not None:
        signature = input_signature(example_input)
        shapes = meta_shapes(traced.graph, run.values) if signature is not None else None
    if traced.facts is not None and shapes is None:
        return  # a tape without its shapes: replaying it saves little, and needs them
    assert traced.key is not None
    structure = derived = None
    if shapes is not None:
        structure, derived = str(G.provenance.get("structure")), structural(G)
    _FX_TRACES[model] = Kept(
        traced.key, traced.graph, traced.facts, signature, shapes, structure, derived
    )


def _keep_chain(model: Any, example_input: Any, G: SignedGraph) -> None:
    """For a chain (nothing to replay): share the structural analyses of the last checked
    export of ``model`` when its module tree, input signature and wiring were the same,
    else keep ``G``'s for the next export (see :mod:`netstruct.convert._kept`)."""
    signature = input_signature(example_input)
    if signature is None:
        return
    key, structure = _fx_key(model), str(G.provenance.get("structure"))
    hit = _FX_TRACES.get(model)
    if (
        hit is not None
        and hit.graph is None
        and (hit.key, hit.signature, hit.structure) == (key, signature, structure)
        and hit.derived is not None
    ):
        share_structural(G, hit.derived)
        return
    _FX_TRACES[model] = Kept(key, None, None, signature, None, structure, structural(G))


def _adopt(G: SignedGraph, kept: Kept) -> None:
    """Give ``G``, exported from ``kept``'s shapes, the structural analyses of the kept
    export's graph when it is wired the same (see :mod:`netstruct.convert._kept`)."""
    if kept.derived is not None and kept.structure == str(G.provenance.get("structure")):
        share_structural(G, kept.derived)


def _fetch_attr(model: Any, target: str) -> Any:
    obj = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _persistent_buffer(model: Any, target: str) -> bool:
    owner_path, _, name = target.rpartition(".")
    owner = model.get_submodule(owner_path) if owner_path else model
    return name in owner._buffers and name not in owner._non_persistent_buffers_set


def _fx_sources(model) -> dict[str, str]:
    """``{node name: stack trace}`` of a second fx trace, recording source lines this time.

    Tracing is deterministic, so node names match the first trace's; recording stack traces
    costs about as much as the rest of the trace, and only an error message needs them.
    """
    tracer = _tracer_cls()()
    tracer.record_stack_traces = True
    try:
        with FX_TRACE_LOCK:
            graph = tracer.trace(model)
    except Exception:  # noqa: BLE001 - it traced a moment ago; lines are a courtesy
        return {}
    return {n.name: n.stack_trace for n in graph.nodes if n.stack_trace}


#: held by each export (re-entrant): torch.fx patches ``torch.nn.Module.__call__`` for the whole
#: process while it traces, so a trace must not overlap another export's module runs. Torch code
#: of the user's own running in another thread during a trace is still exposed to the patch
#: (torch.fx's limitation); netstruct's parallel work (Dask tasks of ``probes.train_runs``,
#: sweeps) exports plain ``nn.Sequential`` chains, which need no trace.
FX_TRACE_LOCK = threading.RLock()

#: models torch.fx failed to trace, with :func:`_fx_key` at the time (a second export of the
#: same, unchanged model goes straight to the tape instead of failing again)
_FX_FAILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: models the dual tracer does not follow, with :func:`_fx_key` at the time (traced by fx)
_DUAL_FAILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: traces (fx, or a tape's recording) of models whose export passed its round-trip check, as
#: :class:`~netstruct.convert._kept.Kept` (with :func:`_fx_key` at the time and the shapes
#: of the run on the example; for an ``nn.Sequential`` chain, which has no trace to
#: replay, only the structural analyses its graphs share). Re-exporting the same model (after each epoch of training,
#: say) replays its trace instead of tracing again, and starts from the kept shapes when the
#: example input has the same signature instead of running the trace: a trace costs about as
#: much as the rest of a small model's export, and torch.fx's patching of
#: ``torch.nn.Module`` slows Python after it.
#: A reused trace is only taken with ``check=True``, and its export is then checked against
#: the model's own forward (not a replay of the trace); any failure of that export drops
#: the entry and exports again from a fresh trace. So a change the key does not see (a
#: global the forward reads, a list attribute changed in place) costs a second export, and
#: a graph that does not reproduce the model is never returned.
_FX_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forget_traces(model: Any) -> None:
    """Drop what exports of ``model`` kept for the next one (its trace, shapes, analyses).

    The next export then traces ``model`` as if for the first time (torch.fx, and the tape
    when fx fails). Benchmarks of a first export call this; so may a user who changed what
    a forward reads in a way an export cannot see and wants to skip the failed replay.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> class Res(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.a = torch.nn.Linear(2, 2)
    ...     def forward(self, x):
    ...         return x + self.a(x)
    >>> m = Res()
    >>> G = ns.from_torch(m, torch.zeros(1, 2))
    >>> m in _FX_TRACES
    True
    >>> forget_traces(m)
    >>> m in _FX_TRACES
    False
    """
    _FX_TRACES.pop(model, None)
    _FX_FAILED.pop(model, None)
    _DUAL_FAILED.pop(model, None)


_SCALARS = (bool, int, float, complex, str, bytes, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
#: what a module's ``__dict__`` holds most: torch's own parameter, module and hook tables
_TABLES = frozenset({dict, set, collections.OrderedDict})


def _plain_attributes(m: Any) -> tuple:
    """A module's scalar attributes (and tuples or lists of scalars), which fx bakes into a
    trace as constants, with the identity of a ``forward`` set on the instance."""
    out: list[tuple[Any, ...]] = []
    for k, v in m.__dict__.items():
        t = type(v)
        if t in _SCALAR_TYPES:  # exact types first: the common case, no isinstance walk
            out.append((k, v))
        elif t in _TABLES:
            continue
        elif isinstance(v, _SCALARS):  # a subclass (numpy's float64, an IntEnum)
            out.append((k, v))
        elif isinstance(v, (tuple, list)) and all(isinstance(x, _SCALARS) for x in v):
            out.append((k, type(v), tuple(v)))
        elif k == "forward":
            out.append((k, id(v)))
    return tuple(out)


def _fx_key(model) -> tuple:
    """What an fx trace depends on besides the code: the module tree, its modes and scalar
    attributes, the handlers."""
    from .handlers import registry_size

    return (
        registry_size(),
        tuple((name, type(m), _plain_attributes(m)) for name, m in model.named_modules()),
    )


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run the block with ``model`` in eval mode, then give every submodule its own mode back.

    A model already in eval mode throughout is left alone (no ``train()`` calls, which are a
    recursive walk and may run a model's own overrides). Otherwise ``model.train(mode)``
    restores the root's mode (with any override of ``train``) and submodules whose mode
    differed from the root's (a batch norm kept frozen in a training model, a dropout left on
    in an eval model) get theirs back exactly; before, they all took the root's.

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout()).eval()
    >>> _ = m[1].train()
    >>> with eval_mode(m):
    ...     m[1].training
    False
    >>> m.training, m[1].training
    (False, True)
    """
    modes = [(m, m.training) for m in model.modules()]
    if not any(t for _, t in modes):
        yield
        return
    model.eval()
    try:
        yield
    finally:
        root = bool(modes[0][1])
        model.train(root)
        for m, t in modes:
            if m.training != t:
                m.training = t


def _tape(model, example_input: Any, key: tuple | None = None) -> _Traced:
    """Record one eval-mode run of ``model`` (see :mod:`netstruct.convert._tape`).

    ``key``: the model's :func:`_fx_key`, under which a checked export keeps the recording.
    """
    from ._tape import tape_trace

    kept: dict[str, Any] = {}
    with eval_mode(model):
        try:
            graph, facts = tape_trace(
                model, example_input, lambda m: get_handler(m) is not None, keep=kept
            )
        except UnsupportedModuleError:
            raise
        except Exception as exc:  # the user's input does not fit their model
            raise InvalidParameterError(
                f"The 'example_input' parameter of from_torch could not be run through the "
                f"model ({type(exc).__name__}: {exc}). Pass a tensor shaped like one batch of "
                "real input."
            ) from None
    traced = _Traced(graph, model, facts, kept)
    traced.key = key
    return traced


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
            if args:  # its default (fx placeholders keep it as their only argument)
                node = graph.placeholder(rec["target"], default_value=args[0])
            else:
                node = graph.placeholder(rec["target"])
        elif op == "call_module":
            node = graph.call_module(rec["target"], args, kwargs)
        elif op == "call_function":
            node = graph.call_function(table[rec["target"]], args, kwargs)
        elif op == "call_method":
            node = graph.call_method(rec["target"], args, kwargs)
        elif op == "get_attr":
            node = graph.get_attr(rec["target"])
        else:
            node = graph.output(args[0])
        if "path" in rec:
            node.meta["ns_path"] = rec["path"]
        env.append(node)
    return graph


#: models with at least this many parameters read their shapes off a run on the meta device
#: (no arithmetic: a BERT-base-sized model's real run costs as much as its whole export)
META_RUN_PARAMS = 1_000_000


def _run_example(traced: _Traced, example_input, meta: bool = False) -> dict[Any, Any] | None:
    """Run the traced operations once on ``example_input``; return every node's real value.

    With ``meta=True`` the run is on the meta device (shapes and dtypes, no data): the
    exporter needs shapes only, except for tensors it passes to a shape operation, for which
    it asks for the real run (:class:`_RealValues`). Returns None when some operation has no
    meta kernel or reads data (the caller then runs on the real tensors).
    """
    import torch
    from torch.fx.node import map_arg

    root = traced.root
    values: dict[Any, Any] = {}
    args = list(example_input) if isinstance(example_input, tuple) else [example_input]
    to_meta: dict[int, Any] = {}

    def on_meta(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            hit = to_meta.get(id(v))
            if hit is None:
                hit = to_meta[id(v)] = torch.empty_like(v, device="meta")
            return hit
        if isinstance(v, (tuple, list)):
            return type(v)(on_meta(x) for x in v)
        if isinstance(v, dict):
            return {k: on_meta(x) for k, x in v.items()}
        return v

    def fetch(path: str) -> Any:
        obj = root
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    def call(mod: Any, a: Any, kw: Any) -> Any:
        if not meta:
            return mod(*a, **kw)
        if getattr(get_handler(mod), "keeps_shape", False) and a and _is_tensor(a[0]):
            return torch.empty_like(a[0])  # on meta already: the output's shape, no run
        state = {
            name: on_meta(t)
            for name, t in (
                *mod.named_parameters(remove_duplicate=False),
                *mod.named_buffers(remove_duplicate=False),
            )
        }
        return torch.func.functional_call(mod, state, tuple(a), kw)

    try:
        with torch.no_grad():
            for n in traced.graph.nodes:
                a = map_arg(n.args, values.__getitem__)
                kw = map_arg(n.kwargs, values.__getitem__)
                if n.op == "placeholder":
                    v = args.pop(0) if args else (n.args[0] if n.args else None)
                    values[n] = on_meta(v) if meta else v
                elif n.op == "call_module":
                    values[n] = call(submodule(root, str(n.target)), a, kw)
                elif n.op == "call_function":
                    values[n] = n.target(*a, **kw)
                elif n.op == "call_method":
                    values[n] = getattr(a[0], n.target)(*a[1:], **kw)
                elif n.op == "get_attr":
                    v = fetch(str(n.target))
                    values[n] = on_meta(v) if meta else v
    except Exception as exc:  # the user's input does not fit their model
        if meta:
            return None
        raise InvalidParameterError(
            f"The 'example_input' parameter of from_torch could not be run through the model "
            f"({type(exc).__name__}: {exc}). Pass a tensor shaped like one batch of real input."
        ) from None
    return values


def _is_tensor(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and hasattr(v, "is_meta")


def _has_meta(v: Any) -> bool:
    if isinstance(v, (tuple, list)):
        return any(_has_meta(x) for x in v)
    if isinstance(v, dict):
        return any(_has_meta(x) for x in v.values())
    return bool(getattr(v, "is_meta", False))


class _RealValues:
    """Every node's value on the example input, from a meta run until data is needed."""

    def __init__(self, model: Any, traced: _Traced, example_input: Any) -> None:
        self.model, self.traced, self.example_input = model, traced, example_input
        self.values: dict[Any, Any] | None = None
        self.is_real = False
        kept = traced.kept
        if kept is not None:  # a tape trace ran the model already
            self.values, self.is_real = kept["values"], True
            return
        if traced.shapes is not None:  # a replayed trace's shapes on an example like this one
            self.values = dict(traced.shapes)
            return
        n_params = sum(p.numel() for p in model.parameters())
        if n_params >= META_RUN_PARAMS:
            self.values = self._run(meta=True)
        if self.values is None:
            self.values, self.is_real = self._run(meta=False), True

    def _run(self, meta: bool) -> dict[Any, Any] | None:
        with eval_mode(self.model):
            return _run_example(self.traced, self.example_input, meta=meta)

    def real(self) -> dict[Any, Any]:
        """The values of a run on the real tensors (made now when the first run was on meta)."""
        if not self.is_real:
            self.values, self.is_real = self._run(meta=False), True
        assert self.values is not None  # a real run returns values or raises
        return self.values

    def reference_output(self) -> Any:
        """What ``model(example_input)`` returns, when a run already gave it exactly; else None.

        A tape trace ran the model itself, on real tensors. A plain ``nn.Sequential`` chain of
        leaves (stock ``forward``, no hooks on the containers) computes exactly the real run's
        last value. A trace by torch.fx or the dual tracer in general does not: its forward saw
        proxies, not tensors, and Python that asks ``isinstance(x, torch.Tensor)``,
        ``hasattr(x, ...)`` or ``torch.fx`` whether it is tracing takes another branch there
        than in a real run; only the model's own forward is a reference for it. A dual run
        whose forwards provably ask no such question (:func:`~._faithful.faithful_run`, read
        off their bytecode) computed the model's output on the real tensors: that is kept.
        """
        import torch
        from torch.fx.node import map_arg

        if self.traced.kept is not None and (self.traced.facts is not None or self.traced.faithful):
            return self.traced.kept["output"]
        if not self.is_real or not self.traced.chain:
            return None
        if torch.nn.modules.module._global_forward_hooks or (
            torch.nn.modules.module._global_forward_pre_hooks
        ):
            return None
        if not _plain_sequential(self.model):
            return None
        out = [n for n in self.traced.graph.nodes if n.op == "output"]
        if not out:
            return None
        values = self.real()
        try:
            return map_arg(out[0].args[0], values.__getitem__)
        except KeyError:  # a value the run did not keep: run the model instead
            return None


def _plain_sequential(model: Any) -> bool:
    """An ``nn.Sequential`` whose containers all use the stock forward and have no hooks."""
    import torch

    def plain(m: Any) -> bool:
        return (
            type(m).forward is torch.nn.Sequential.forward
            and not m._forward_hooks
            and not m._forward_pre_hooks
            and all(plain(c) for c in m._modules.values() if isinstance(c, torch.nn.Sequential))
        )

    return isinstance(model, torch.nn.Sequential) and plain(model)


def _source_line(node) -> str:
    """``file:line`` of the user's code that created ``node`` (empty when unknown)."""
    import torch

    trace = getattr(node, "stack_trace", None) or ""
    torch_dir = os.path.dirname(torch.__file__)
    here = os.path.dirname(os.path.dirname(__file__))
    for line in trace.splitlines():
        line = line.strip()
        if line.startswith('File "'):
            path = line[6 : line.index('"', 6)]
            if not path.startswith((torch_dir, here)):
                rest = line[line.index('"', 6) + 1 :].strip(", ")
                return f"{path}, {rest}"
    return ""


def _where(node) -> str:
    target = getattr(node.target, "__name__", node.target)
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    module = ""
    if stack:
        module = f" in module {list(stack.values())[-1][0]!r}"
    src = _source_line(node)
    return f"operation {node.op} {target!s}{module}" + (f" at {src}" if src else "")


class _Scores:
    """Attention scores ``q @ k^T`` (and what softmax, masks and scales make of them).

    They carry no units; a later ``scores @ v`` is the token-mixing operator over q, k and v.
    """

    def __init__(self, q: Feat, k: Feat) -> None:
        self.q, self.k = q, k


#: operations that keep attention scores scores (scaling, masking, softmax, dropout, casts,
#: Gemma-2's soft-capping ``tanh(scores / c) * c``, a monotone map of each score)
_SCORE_OPS = frozenset(
    {
        "mul",
        "truediv",
        "div",
        "tanh",
        "add",
        "sub",
        "softmax",
        "dropout",
        "type",
        "to",
        "float",
        "contiguous",
        "where",
        "masked_fill",
        "clone",
        "detach",
    }
)


class _ParamRef:
    """A directly read parameter whose export waits for its first use (a scale or a value)."""

    def __init__(self, node: Any) -> None:
        self.node = node


def _one_kv_head(q: Feat, k: Feat) -> Feat:
    """Multi-query attention's key or value (one head, ``(B, 1, T, head_dim)``: a value whose
    only feature axis is the query's head-dim axis) as a ``(1, head_dim)`` head-split value."""
    if (
        q.axes is not None
        and len(q.axes) == 2
        and k.axes is None
        and k.ndim == q.ndim
        and k.pos_axis == q.axes[1]
        and k.ids.size == q.ids.shape[1]
    ):
        return Feat(k.ids.reshape(1, -1), k.ndim, q.axes[0], q.axes)
    return k


def _kv_heads(q: Feat, k: Feat, v: Feat) -> tuple[int, Feat, Feat] | None:
    """Query heads per key/value head (1: multi-head attention) and the key and value with
    each of their heads once; None when query, key and value do not line up.

    Grouped-query attention reads key/value head ``h // rep`` for query head ``h`` (torch's
    ``repeat_interleave`` order): either passed with ``heads / rep`` heads
    (``scaled_dot_product_attention(..., enable_gqa=True)``) or repeated to the query's heads
    first (transformers' ``repeat_kv``), which this undoes.
    """
    k, v = _one_kv_head(q, k), _one_kv_head(q, v)
    if k.ids.shape != v.ids.shape or (q.axes, q.ndim) != (v.axes, v.ndim):
        return None
    rep = 1
    if q.ids.shape == k.ids.shape:
        r = interleaved_repeats(k.ids) if np.unique(k.ids).size < k.ids.size else 1
        if r is None or r != (interleaved_repeats(v.ids) or 1):
            return None
        if r > 1:
            k = Feat(k.ids[::r], k.ndim, k.axis, k.axes)
            v = Feat(v.ids[::r], v.ndim, v.axis, v.axes)
        rep = r
    elif q.axes is None or q.ids.ndim != 2 or q.ids.shape[1] != k.ids.shape[1]:
        return None
    heads, kv_heads = q.ids.shape[0], k.ids.shape[0]
    if kv_heads == 0 or heads % kv_heads:
        return None
    return heads // kv_heads if rep == 1 else rep, k, v


def _shape_of(v: Any) -> tuple[int, ...] | None:
    return tuple(v.shape) if hasattr(v, "shape") and hasattr(v, "dtype") else None


class _Exporter:
    def __init__(self, model, traced: _Traced, real: _RealValues | None, reduction: str) -> None:
        self.model = model
        self.gm = traced.root
        self.graph = traced.graph
        #: how many one-unit values (``x[..., k]``) were taken out (their uses are checked)
        self.unit_slices = 0
        self._real = real
        self.real = real.values if real is not None else None
        self._sources = traced.sources
        self.builder = GraphBuilder(reduction=reduction)
        self.modules: dict[str, dict[str, Any]] = {}
        self.calls: dict[str, int] = {}
        self.ops: list[dict[str, Any]] = []
        self.env: dict[Any, Any] = {}
        self.index: dict[Any, int] = {}
        self.errors: list[str] = []
        self.input_axis: int | None = None
        #: feature axis of each later model input a layer has read (``ExtraInput.index``)
        self.extra_axis: dict[int, int] = {}
        #: directly read parameters exported as per-unit scales (``p * x``)
        self.scaled: set[Any] = set()
        self.guard_only: set[Any] = set()
        self._rng: np.random.Generator | None = None

    @property
    def rng(self) -> np.random.Generator:
        """The code tensors' generator (fixed seed), made at the first code-tensor run: a
        generator costs ~20 us, and a CNN's head needs none (:meth:`_move_channels`)."""
        if self._rng is None:
            self._rng = np.random.default_rng(12345)
        return self._rng

    # -- values --------------------------------------------------------------------------
    def _value(self, arg: Any) -> Any:
        if isinstance(arg, (tuple, list)):
            return tuple(self._value(a) for a in arg)
        v = self.env.get(arg) if hasattr(arg, "op") else None
        if isinstance(v, _ParamRef):  # used as a value: an embedding of its rows
            if arg in self.scaled:
                raise UnsupportedModuleError(
                    f"it uses parameter {str(arg.target)!r} both as a per-unit scale and as a value"
                )
            v = self.env[arg] = self._parameter(arg)
        if (
            isinstance(v, PendingInput)
            and self.builder.input_ids is not None
            and self.input_axis is not None
        ):
            # the raw input, once a layer has fixed its features, is those input nodes
            return Feat(self.builder.input_ids, self._ndim(arg), self.input_axis)
        if isinstance(v, ExtraInput) and v.index in self.builder.extra_inputs:
            axis = self.extra_axis.get(v.index, -1)
            return Feat(self.builder.extra_inputs[v.index], self._ndim(arg), axis)  # read as units
        return v

    def _peek(self, arg: Any) -> Any:
        """Like :meth:`_value`, without exporting a directly read parameter."""
        if isinstance(arg, (tuple, list)):
            return tuple(self._peek(a) for a in arg)
        return self.env.get(arg) if hasattr(arg, "op") else None

    def _ndim(self, node) -> int | None:
        if self.real is None or node not in self.real:
            return None
        s = _shape_of(self.real[node])
        return len(s) if s is not None else None

    def _wrap_out(self, node, out: Any, axis: int, ndim_hint: int | None = None) -> Any:
        if isinstance(out, np.ndarray):
            nd = self._ndim(node)
            return Feat(out, nd if nd is not None else ndim_hint, axis)
        if isinstance(out, tuple):
            real = self.real.get(node) if self.real else None
            parts = []
            for k, o in enumerate(out):
                nd = (
                    len(real[k].shape)
                    if isinstance(real, tuple) and hasattr(real[k], "shape")
                    else ndim_hint
                )
                parts.append(Feat(o, nd, -1) if isinstance(o, np.ndarray) else o)
            return tuple(parts)
        return out

    # -- module calls ----------------------------------------------------------------------
    def call_module(self, node) -> Any:
        path = str(node.target)
        mod = submodule(self.gm, path)
        handler = get_handler(mod)
        if handler is None:
            raise UnsupportedModuleError(
                f"module {path!r} of type {type(mod).__module__}.{type(mod).__name__} has no netstruct "
                "export handler; register one with netstruct.register_module_handler(<type>, "
                "<ModuleHandler>) (see netstruct.ModuleHandler for an example)"
            )
        n_call = self.calls.get(path, 0)
        self.calls[path] = n_call + 1
        if n_call == 0:
            self.modules[path] = {"handler": handler.name, "config": handler.config(mod)}
        inp = self._value(node.args[0]) if node.args else PendingInput()
        if isinstance(inp, Broken):
            return Broken()
        n_inputs = getattr(handler, "n_inputs", 1)
        if n_inputs > 1:  # e.g. attention(query, key, value)
            vals = [self._value(a) for a in node.args[:n_inputs]]
            if any(isinstance(v, Broken) for v in vals):
                return Broken()
            ids = tuple(v.ids if isinstance(v, Feat) else v for v in vals)
            call_path = path if n_call == 0 else f"{path}@{n_call + 1}"
            out = handler.export(mod, call_path, ids, self.builder)
            if isinstance(inp, PendingInput) and self.input_axis is None and self.real is not None:
                self.input_axis = -1  # features last (query, key, value)
            return self._wrap_out(node, out, -1, getattr(handler, "output_ndim", None))
        per_group = getattr(handler, "export_per_group", None)
        if isinstance(inp, Feat) and inp.axes is not None and per_group is not None:
            grouped = self._per_group(node, inp, handler, mod, n_call)
            if grouped is not None:
                return grouped
        for v in (inp, *(self._value(a) for a in node.args[1 : getattr(handler, "n_inputs", 1)])):
            if (
                isinstance(v, Feat)
                and v.axes is not None
                and not getattr(handler, "moves_features", False)
            ):
                raise UnsupportedModuleError(
                    f"module {path!r} reads a value whose units span several axes {v.axes} "
                    "(e.g. attention heads); merge them back (reshape) before the layer"
                )
        if getattr(handler, "moves_features", False):
            if isinstance(inp, PendingInput):  # reshaping the raw input: the first layer decides
                return inp
            return self._move(node, self._as_feat(inp), mod)
        if isinstance(inp, Feat):
            self._check_axis(node, inp, handler, path)
        call_path = path if n_call == 0 else f"{path}@{n_call + 1}"
        # a second call of the same module gets its own blocks under "<path>@<k>"; to_torch
        # checks that they still equal the first call's (the parameters are shared)
        out = handler.export(
            mod, call_path, inp.ids if isinstance(inp, Feat) else inp, self.builder
        )
        if isinstance(inp, PendingInput) and self.input_axis is None and self.real is not None:
            self.input_axis = 1 if getattr(handler, "feature_axis", -1) == 1 else -1
        if isinstance(inp, ExtraInput):  # a later input's feature axis, as for the first
            self.extra_axis.setdefault(
                inp.index, 1 if getattr(handler, "feature_axis", -1) == 1 else -1
            )
        want = getattr(handler, "feature_axis", -1)
        out_axis = (
            inp.axis if (want is None and isinstance(inp, Feat)) else (1 if want == 1 else -1)
        )
        return self._wrap_out(node, out, out_axis, getattr(handler, "output_ndim", None))

    def _per_group(self, node, inp: Feat, handler, mod, n_call: int) -> Feat | None:
        """A norm over the last axis of a head-split value (one norm per head), or None."""
        if inp.ndim is None or inp.axes is None or inp.axes[-1] != inp.ndim - 1:
            return None
        path = str(node.target)
        call_path = path if n_call == 0 else f"{path}@{n_call + 1}"
        out = handler.export_per_group(mod, call_path, np.asarray(inp.ids), self.builder)
        return None if out is None else Feat(out, inp.ndim, inp.axis, inp.axes)

    def _check_axis(self, node, inp: Feat, handler, path: str) -> None:
        want = getattr(handler, "feature_axis", -1)
        have = inp.pos_axis
        if want is None or have is None or inp.ndim is None:
            return
        ok = (have == inp.ndim - 1) if want == -1 else (have == want)
        if not ok:
            raise UnsupportedModuleError(
                f"module {path!r} ({handler.name}) reads features on axis {want} but its input "
                f"carries them on axis {have} (of {inp.ndim})"
            )

    @staticmethod
    def _as_feat(v: Any) -> Feat:
        if isinstance(v, Feat):
            return v
        raise UnsupportedModuleError("a shape operation on a value netstruct cannot follow")

    # -- shape operations -------------------------------------------------------------------
    def _move(
        self, node, feat: Feat, fn: Any, args: tuple | None = None, kwargs: dict | None = None
    ) -> Any:
        """Follow a shape operation by running it on code tensors of its feature operands."""
        if self.real is None or self._real is None:
            return self._move_without_shapes(node, feat)
        fast = self._move_channels(node, feat, fn, args, kwargs) if MOVE_BY_SHAPES else None
        if fast is not None:
            return fast
        lookups: dict[float, int] = {}
        run = self._real

        def sub(a: Any) -> Any:
            if hasattr(a, "op"):
                v = self.env.get(a)
                values = self.real if self.real is not None else run.real()
                if isinstance(v, Feat):
                    shape = _shape_of(values[a])
                    assert shape is not None  # a feature value is a tensor
                    t, lk = encode(v, shape, self.rng)
                    lookups.update(lk)
                    return t
                value = values.get(a)
                if _has_meta(value):  # the operation reads this tensor's data: run for real
                    self.real = run.real()
                    value = self.real.get(a)
                return value
            if isinstance(a, (list, tuple)):
                return type(a)(sub(x) for x in a)
            if isinstance(a, dict):
                return {k: sub(x) for k, x in a.items()}
            return a

        import torch

        with torch.no_grad():
            if args is None:  # a module that moves features (Flatten, pooling)
                res = fn(sub(node.args[0]))
            else:
                res = fn(*sub(args), **sub(kwargs or {}))
        return self._decode(node, res, lookups, self._kept_axes(node, args))

    def _kept_axes(self, node, args: tuple | None) -> tuple[int, ...] | None:
        """The feature axes a slice or concatenation keeps in place: those of its operands
        (``decode`` then keeps them even where they are 1 wide or empty)."""
        if args is None or node.op not in ("call_function", "call_method"):
            return None
        name = node.target if node.op == "call_method" else _ops.function_name(node.target)
        if name is None or _ops.base_name(name) not in _KEEPS_AXES:
            return None
        feats = [
            v
            for v in (self.env.get(a) for a in _flatten_values(list(args)) if hasattr(a, "op"))
            if isinstance(v, Feat)
        ]
        axes: set[tuple[tuple[int, ...], int | None]] = set()
        for f in feats:
            if f.axes is not None:
                axes.add((f.axes, f.ndim))
            elif f.pos_axis is not None:
                axes.add(((f.pos_axis,), f.ndim))
        if len(axes) != 1:
            return None
        ((kept, ndim),) = axes
        nd = self._ndim(node)
        return kept if nd is None or nd == ndim else None

    def _move_channels(
        self, node, feat: Feat, fn: Any, args: tuple | None, kwargs: dict | None
    ) -> Feat | None:
        """What the code-tensor run of :meth:`_move` gives, read off the shapes, for the two
        moves of a CNN's head: a pooling that keeps each channel whole (its handler's
        ``keeps_channels``) and a flatten of a channel map from the channel axis on. None for
        anything else (the run then decides). ``tests/unit/test_move_by_shapes.py`` checks
        that both routes give the same graph.
        """
        if feat.axes is not None or feat.pos_axis != 1 or not node.args:
            return None
        ids = feat.ids
        if ids.size < 2 or bool((ids == ids[0]).all()):  # one node: the run picks its axis
            return None
        src = node.args[0]
        values = self.real
        assert values is not None  # the caller checked
        in_shape = _shape_of(values.get(src)) if hasattr(src, "op") else None
        out_shape = _shape_of(values.get(node))
        if in_shape is None or out_shape is None or len(in_shape) < 3 or in_shape[1] != ids.size:
            return None
        if args is None:  # a module
            keeps = getattr(get_handler(fn), "keeps_channels", None)
            if keeps is not None and keeps(fn):
                kept = len(out_shape) == len(in_shape) and out_shape[:2] == in_shape[:2]
                return Feat(ids, len(out_shape), 1) if kept else None
            span = _flatten_span(fn, (), {})
        else:
            span = _flatten_span(node, args[1:], kwargs or {})
        ndim = len(in_shape)
        if span is None or span[0] % ndim != 1 or span[1] % ndim != ndim - 1:
            return None
        per_channel = int(np.prod(in_shape[2:]))
        if tuple(out_shape) != (in_shape[0], ids.size * per_channel):
            return None
        return Feat(np.repeat(ids, per_channel), 2, 1)

    def _decode(
        self, node, res: Any, lookups: dict[float, int], keep: tuple[int, ...] | None = None
    ) -> Any:
        if isinstance(res, (tuple, list)):
            return tuple(self._decode(node, r, lookups, keep) for r in res)
        if not hasattr(res, "dtype"):
            return Opaque()
        feat = decode(res, lookups, keep)
        if feat is None and res.numel() and (one := _one_unit(res, lookups)) is not None:
            self.unit_slices += 1
            return UnitSlice(one)  # x[..., k]: an error only where it is read as values
        if feat is None and res.numel() == 0:
            raise UnsupportedModuleError(
                "it takes an empty slice of a value with units (no unit is left to follow)"
            )
        if feat is None:
            raise UnsupportedModuleError(
                "it mixes the values of several units (e.g. a mean over the feature axis, or a "
                "zero-padded average), which is not a pure shape operation"
            )
        return feat

    def _move_without_shapes(self, node, feat: Feat) -> Feat:
        if feat.axis == 1:  # channels of a map: a flatten repeats them per position
            raise UnsupportedModuleError(
                "it reshapes channels of a feature map; pass example_input to from_torch so shapes are known"
            )
        if node.op == "call_module":
            mod = submodule(self.gm, str(node.target))
            if (
                type(mod).__name__ == "Flatten"
                and feat.ndim is not None
                and mod.start_dim % feat.ndim == feat.ndim - 1
            ):
                return feat
            if type(mod).__name__ == "Flatten" and mod.start_dim == 1 and feat.ndim in (None, 2):
                return feat
        target = node.target if node.op == "call_method" else _ops.function_name(node.target)
        if target in ("flatten", "torch.flatten"):
            start = (
                node.args[1]
                if len(node.args) > 1
                else node.kwargs.get("start_dim", 0 if node.op == "call_method" else 1)
            )
            if feat.ndim is not None and start % feat.ndim == feat.ndim - 1:
                return feat
        if target == "getitem":
            index = node.args[1]
            if _index_keeps_features(index, feat.ndim):
                return Feat(feat.ids, _index_ndim(index, feat.ndim), -1)
        raise UnsupportedModuleError(
            "it may move the feature dimension; pass example_input to from_torch so shapes are known"
        )

    # -- functions and methods -------------------------------------------------------------
    def _function(self, node, name: str) -> Any:
        base = _ops.base_name(name)
        args = node.args
        if base == "mul" and len(args) == 2 and not node.kwargs:
            refs = [
                a
                for a in args
                if isinstance(self.env.get(a) if hasattr(a, "op") else None, _ParamRef)
            ]
            if len(refs) == 1:
                other = args[1] if refs[0] is args[0] else args[0]
                feat = self._value(other)
                if isinstance(feat, Feat):
                    return self._scale_by_parameter(refs[0], feat)
        vals = [self._value(a) for a in args] + [self._value(v) for v in node.kwargs.values()]
        flat = _flatten_values(vals)
        if any(isinstance(v, Broken) for v in flat):
            return Broken()
        feats = [v for v in flat if isinstance(v, Feat)]
        first = vals[0] if vals else None
        scores = [v for v in flat if isinstance(v, _Scores)]
        if scores or base == "matmul":
            return self._matmul_attention(node, base, vals, feats, scores)
        if name == "getitem" and isinstance(first, (tuple, StackedStates)):
            return self._getitem_container(node, first, args[1])
        if base in _ops.META_OPS:
            return Opaque()
        if name == "getattr":  # ``x.shape``, ``x.ndim``: shape information, no units
            attr = args[1] if len(args) == 2 else None
            if attr not in _ops.TENSOR_ATTRIBUTES:
                raise UnsupportedModuleError(
                    f"netstruct follows reads of {sorted(_ops.TENSOR_ATTRIBUTES)} of a tensor, "
                    f"not of {attr!r}; call the tensor method instead (x.t() for x.T)"
                )
            return Opaque()
        affine = _scalar_affine(base, vals, args, node.kwargs)
        if affine is not None:
            return self._scalar_affine(node, *affine)
        if isinstance(first, PendingInput) and not feats:
            if base in _ops.ACTIVATIONS or base in _ops.NEUTRAL or base in _ops.MOVE_OPS:
                return first
            if base == "pad":  # the first layer decides the feature axis (the roundtrip checks)
                return first
        if not feats:
            return Opaque()
        if base == "scaled_dot_product_attention":
            return self._attention(node, vals[:3])
        if base in _ops.ACTIVATIONS:
            if len(feats) != 1 or not isinstance(first, Feat):
                raise UnsupportedModuleError("an activation of several values")
            return self._labelled(node, first, _ops.activation_label(base, args, node.kwargs))
        if base in _ops.NEUTRAL:
            return first
        if base == "pad":
            return self._pad(node, first)
        if base in ("add", "iadd", "add_") and len(feats) == 2 and len(args) == 2:
            return self._residual(node, feats)
        if base in ("mul", "imul", "mul_") and len(args) == 2 and not node.kwargs:
            return self._product(node, vals)
        if base in ("cat", "concat"):
            dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
            merged = self._cat_positions(node, vals, dim) if isinstance(dim, int) else None
            if merged is not None:
                return merged
        if base in _ops.MOVE_OPS:
            fn = node.target if node.op == "call_function" else _method_caller(base)
            return self._move(node, feats[0], fn, args, node.kwargs)
        raise UnsupportedModuleError("netstruct's exporter does not follow this operation on units")

    def _scalar_affine(self, node, value: Any, scale: float, shift: float) -> Any:
        """``value * scale + shift``: a ``ScalarAffine`` label on the units (see ``_scalar``)."""
        if isinstance(value, PendingInput):  # before the first layer: replayed, not labelled
            return value
        return self._labelled(
            node, value, label_for("ScalarAffine", {"scale": scale, "shift": shift})
        )

    def _labelled(self, node, feat: Feat, label: str) -> Feat:
        """``feat``'s units with the element-wise map ``label`` applied (activation label)."""
        path = _op_path(node)
        if feat.axes is not None:
            out = self.builder.apply_elementwise(feat.ids.reshape(-1), label, path)
            return Feat(out.reshape(feat.ids.shape), feat.ndim, feat.axis, feat.axes)
        return Feat(self.builder.apply_elementwise(feat.ids, label, path), feat.ndim, feat.axis)

    def _matmul_attention(
        self, node, base: str, vals: list[Any], feats: list[Feat], scores: list[_Scores]
    ) -> Any:
        """Attention written with ``matmul`` (eager attention): ``softmax(q k^T s) v``."""
        if base == "matmul" and len(vals) == 2 and not scores:
            q, kt = vals
            if not (isinstance(q, Feat) and isinstance(kt, Feat)):
                raise UnsupportedModuleError("a matmul of a value with units and a constant")
            if q.axes is None or kt.axes is None or q.ids.shape != kt.ids.shape:
                raise UnsupportedModuleError(
                    "a matmul of two values with units that is not attention's q @ k^T "
                    "(query and key split into heads)"
                )
            return _Scores(q, kt)
        if base == "matmul" and len(vals) == 2 and isinstance(vals[0], _Scores):
            if not isinstance(vals[1], Feat):
                raise UnsupportedModuleError("attention scores applied to a value without units")
            return self._attention(node, [vals[0].q, vals[0].k, vals[1]])
        if base in _SCORE_OPS and len(scores) == 1 and not feats:
            return scores[0]
        raise UnsupportedModuleError(
            "an operation on attention scores netstruct does not follow (it follows scaling, "
            "masks, softmax, dropout and the product with the values)"
        )

    def _attention(self, node, qkv: list[Any]) -> Feat:
        """``softmax(q k^T / sqrt(d)) v``: context units fed by operator edges from q, k, v."""
        if len(qkv) < 3 or not all(isinstance(v, Feat) for v in qkv):
            raise UnsupportedModuleError("attention whose query, key or value carries no units")
        q, k, v = qkv
        heads = _kv_heads(q, k, v)
        if heads is None:
            raise UnsupportedModuleError(
                "attention whose query, key and value units do not line up"
            )
        rep, k, v = heads
        n = q.ids.size
        path = _op_path(node)
        bias = self._score_bias(node, q)
        labelled = self._label_heads(q, k, v)
        ctx = self.builder.add_units(n, module=path, label="context")
        W = attention_pattern(q.ids.shape, rep)
        sources = [q.ids.reshape(-1), k.ids.reshape(-1), v.ids.reshape(-1)]
        if bias is not None:  # a per-head score bias: head h's context reads bias unit h
            H = bias.size
            W = np.concatenate([W, np.kron(np.eye(H), np.ones((n // H, 1)))], axis=1)
            sources.append(bias)
            if labelled and not any(self.builder.columns["gate"][i] for i in bias.tolist()):
                for h, i in enumerate(bias.tolist()):
                    self.builder.columns["gate"][i] = f"b{h}"
        self.builder._append(
            name=f"{path}.attention",
            weight=W,
            mask=W.astype(bool),
            sources=np.concatenate(sources),
            targets=ctx,
            module=path,
            param="",
            kind="operator",
            layout={} if rep == 1 else {"kv_repeats": rep, "head_dim": int(q.ids.shape[1])},
        )
        return Feat(ctx.reshape(q.ids.shape), v.ndim, v.axis, v.axes)

    def _label_heads(self, q: Feat, k: Feat, v: Feat) -> bool:
        """Gate labels ``q<h>``, ``k<h>``, ``v<h>`` on the units of each head (coupling ties them).

        Only when the values are split into heads (features over ``(heads, head_dim)`` axes,
        more than one head) and no unit carries a label yet; unlabelled attention units stay
        out of shrinking (:func:`netstruct.shrink` blocks them).
        """
        if q.axes is None or len(q.axes) != 2 or q.ids.shape[0] < 2 or k.ids.shape[0] < 1:
            return False
        gate = self.builder.columns["gate"]
        parts = [(p, np.asarray(f.ids)) for p, f in zip("qkv", (q, k, v))]
        every = np.concatenate([ids.reshape(-1) for _, ids in parts])
        if np.unique(every).size != every.size or any(gate[i] for i in every.tolist()):
            return False
        for p, ids in parts:
            for h in range(ids.shape[0]):
                for i in ids[h].tolist():
                    gate[i] = f"{p}{h}"
        return True

    def _score_bias(self, node, q: Feat) -> np.ndarray | None:
        """Units of an ``attn_mask`` added to the scores (Swin's relative position bias).

        They must be one unit per head, along the heads axis of the query; None without one.
        """
        mask = node.args[3] if len(node.args) > 3 else node.kwargs.get("attn_mask")
        value = self._value(mask) if hasattr(mask, "op") else None
        if not isinstance(value, Feat):
            return None
        ids = np.asarray(value.ids).reshape(-1)
        heads = q.axes[0] if q.axes is not None and len(q.axes) == 2 else None
        if (
            heads is None
            or value.axes is not None
            or value.pos_axis != heads
            or ids.size != q.ids.shape[0]
            or np.unique(ids).size != ids.size
        ):
            raise UnsupportedModuleError(
                "attention whose attn_mask carries units that are not one per head (a bias "
                "added to the scores must vary along the heads axis only)"
            )
        return ids

    def _parameter_owner(self, node) -> tuple[str, str, Any]:
        """``(owner path, name in owner, parameter)``; the owner becomes a ``Parameters`` entry."""
        name = str(node.target)
        owner, _, pname = name.rpartition(".")
        entry = self.modules.get(owner)
        if entry is not None and entry["handler"] != "Parameters":
            raise UnsupportedModuleError(
                f"it reads parameter {name!r} directly, outside the layer that owns it"
            )
        p = self.model.get_parameter(name)
        if entry is None:
            entry = self.modules[owner] = {"handler": "Parameters", "config": {"shapes": {}}}
        entry["config"]["shapes"][pname] = list(p.shape)
        return owner, pname, p

    def _parameter(self, node) -> Feat:
        """A parameter read directly: an embedding of its rows (see ``ParametersHandler``)."""
        from .layers import export_parameter

        owner, pname, p = self._parameter_owner(node)
        ids = export_parameter(self.builder, owner, pname, p)
        return Feat(ids, p.dim() if p.dim() else None, -1)

    def _scale_by_parameter(self, ref, feat: Feat) -> Feat:
        """``p * x`` with a parameter vector along x's feature axis (ConvNeXt's layer scale).

        A diagonal weight block named like the parameter: fresh units, unit ``i`` fed by unit
        ``i`` of ``x`` with weight ``p[i]`` (``block.parameter()`` gives ``p`` back).
        """
        p = self.model.get_parameter(str(ref.target))
        nd = feat.ndim
        n = feat.ids.size
        shape = list(p.shape)
        ok = (
            nd is not None
            and feat.axes is None
            and p.numel() == n
            and len(shape) <= nd
            and np.unique(feat.ids).size == n
        )
        if ok and nd is not None:  # broadcast puts p's one non-trivial axis on the feature axis
            lead = [1] * (nd - len(shape)) + shape
            ok = lead[feat.axis % nd] == n
        if not ok:
            raise UnsupportedModuleError(
                f"it multiplies by parameter {str(ref.target)!r} of shape {tuple(shape)}, which is "
                "not one factor per unit along the feature axis"
            )
        if ref in self.scaled:
            raise UnsupportedModuleError(
                f"it uses parameter {str(ref.target)!r} as a per-unit scale twice; netstruct "
                "exports one block per parameter"
            )
        owner, pname, p = self._parameter_owner(ref)
        self.scaled.add(ref)
        out = self.builder.add_units(n, module=owner, label=pname)
        d = to_numpy(p).reshape(-1).astype(np.float64)
        self.builder._append(
            diagonal_block,
            name=f"{owner}.{pname}" if owner else pname,
            diagonal=d,
            sources=np.asarray(feat.ids),
            targets=out,
            module=owner,
            param=pname,
            kind="weight",
            layout={"type": "diag"},
        )
        return Feat(out, nd, feat.axis)

    def _pad(self, node, feat: Any) -> Feat:
        """``F.pad`` with a constant over non-feature axes: the same units (padding carries none)."""
        pad = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        if not isinstance(feat, Feat) or feat.ndim is None or feat.axes is not None:
            raise UnsupportedModuleError("padding of a value whose feature axis is not known")
        if mode != "constant" or not isinstance(pad, (tuple, list)):
            raise UnsupportedModuleError(f"padding with mode {mode!r} (only constant padding)")
        padded = {feat.ndim - 1 - k // 2 for k, v in enumerate(pad) if v}
        if feat.pos_axis in padded:
            raise UnsupportedModuleError(
                "padding along the feature axis adds units netstruct has not"
            )
        return feat

    def _cat_positions(self, node, vals: list[Any], dim: int) -> Feat | None:
        """``torch.cat`` of different units along a non-feature axis (tokens, positions).

        Each position then holds one operand's value: fresh nodes fed by one ``skip`` block
        per operand (structure inside the operation; re-import refuses edits to them).
        Returns None when the operation is an ordinary shape move.
        """
        parts = vals[0] if vals and isinstance(vals[0], tuple) else None
        if parts is None or len(parts) < 2 or not all(isinstance(v, Feat) for v in parts):
            return None
        first = parts[0]
        if all(np.array_equal(v.ids, first.ids) for v in parts[1:]):
            return None  # the same units: followed exactly as a move
        nd = first.ndim
        if (
            nd is None
            or any(v.axes is not None for v in parts)
            or any(
                (v.pos_axis, v.ndim, v.ids.size) != (first.pos_axis, nd, first.ids.size)
                for v in parts
            )
            or dim % nd == first.pos_axis
        ):
            return None
        path = _op_path(node)
        out = self.builder.add_units(first.ids.size, module=path, label="cat")
        for v in parts:
            self.builder._structural("skip", np.asarray(v.ids), path, "part", out, internal=True)
        return Feat(out, nd, first.axis)

    def _residual(self, node, feats: list[Feat]) -> Feat:
        a, b = feats
        if a.axes != b.axes or (a.axes is not None and a.ids.shape != b.ids.shape):
            raise UnsupportedModuleError(
                "a sum of values whose units span different axes (heads split differently)"
            )
        if (
            a.ids.size == b.ids.size
            and _features_last(a)
            and _features_last(b)
            and a.ndim != b.ndim
        ):
            # (T, D) position vectors + (B, T, D) token vectors: broadcast over the leading
            # axes, unit by unit
            ndim = self._ndim(node) or max(a.ndim or 0, b.ndim or 0) or None
            a, b = Feat(a.ids, ndim, -1), Feat(b.ids, ndim, -1)
        if a.ids.size != b.ids.size or (a.pos_axis, a.ndim) != (b.pos_axis, b.ndim):
            raise UnsupportedModuleError(
                "a sum of values whose units do not line up (broadcasting)"
            )
        _refuse_repeated(feats, "a sum of values that repeat units (add before flattening)")
        out = self.builder.add_sum([a.ids.reshape(-1), b.ids.reshape(-1)], _op_path(node))
        return Feat(out.reshape(a.ids.shape), a.ndim, a.axis, a.axes)

    def _product(self, node, vals: list[Any]) -> Feat:
        """``x * y``: an element-wise operator block (``layout["operator"]``).

        Two values with the same units (a gated MLP's ``act(gate(x)) * up(x)``, a
        squeeze-excitation gate ``x * s``): fresh ``product`` units, unit ``i`` fed by unit
        ``i`` of each factor. A value times a tensor without units (rotary embeddings'
        ``q * cos``, a mask): fresh ``scale`` units fed by one edge each; the block's layout
        says what shrinking may remove (``"shrinks"``, see :meth:`_scale_shrinks`). Coupling ties each product unit to its factors.
        """
        feats = [v for v in vals if isinstance(v, Feat)]
        a = feats[0]
        nd = self._ndim(node)
        if a.ndim is not None and nd is not None and nd != a.ndim:
            raise UnsupportedModuleError(
                "a product that broadcasts a value with units to more dimensions"
            )
        _refuse_repeated(
            feats, "a product of values that repeat units (multiply before flattening)"
        )
        out_shape = _shape_of(self.real.get(node)) if self.real is not None else None
        if out_shape is not None and a.ndim == len(out_shape):
            axes = a.axes if a.axes is not None else (a.axis % a.ndim,)
            along = tuple(out_shape[k] for k in axes)
            if along != a.ids.shape:
                raise UnsupportedModuleError(
                    f"a product that broadcasts a value with units {a.ids.shape} to "
                    f"{along} positions along its unit axes"
                )
        path = _op_path(node)
        if len(feats) == 2:
            b = feats[1]
            if a.ids.shape != b.ids.shape or (a.pos_axis, a.ndim, a.axes) != (
                b.pos_axis,
                b.ndim,
                b.axes,
            ):
                raise UnsupportedModuleError(
                    "a product of values whose units do not line up (broadcasting)"
                )
            same = np.array_equal(a.ids, b.ids)
            if not same and np.intersect1d(a.ids, b.ids).size:  # x * rotate(x)
                raise UnsupportedModuleError(
                    "a product of values that share some units at different positions (e.g. "
                    "x * rotate(x)); multiply by a copy made by a layer instead"
                )
            sources = [a.ids.reshape(-1)] if same else [a.ids.reshape(-1), b.ids.reshape(-1)]
            layout: dict[str, Any] = {"operator": "product"}
        else:
            sources = [a.ids.reshape(-1)]
            layout = {"operator": "scale", "shrinks": self._scale_shrinks(node, a)}
        out = self.builder.add_units(a.ids.size, module=path, label=layout["operator"])
        self.builder._append(
            identity_block,
            name=f"{path}.{layout['operator']}",
            sources=np.concatenate(sources),
            targets=out,
            module=path,
            kind="operator",
            copies=len(sources),
            layout=layout,
        )
        return Feat(out.reshape(a.ids.shape), a.ndim, a.axis, a.axes)

    def _scale_shrinks(self, node, feat: Feat) -> str:
        """What removing units of ``feat`` leaves of ``x * t`` (``t`` without units).

        ``"units"``: ``t`` is broadcast along every feature axis of ``feat``, so any of its
        units may go; ``"heads"``: it is broadcast along the heads axis of a value split into
        ``(heads, head_dim)`` (rotary ``cos``/``sin``), so whole heads may go; ``"none"``
        otherwise (or when ``t``'s shape is unknown).
        """
        axes = list(feat.axes) if feat.axes is not None else [feat.axis]
        shape = None
        for a in node.args:
            if hasattr(a, "op"):  # a traced value: its real tensor, when the run kept it
                if not isinstance(self.env.get(a), Feat) and self.real:
                    shape = _shape_of(self.real.get(a))
            elif _shape_of(a) is not None:  # a constant tensor the trace recorded
                shape = _shape_of(a)
        if shape is None or feat.ndim is None or len(shape) > feat.ndim:
            return "none"
        lead = (1,) * (feat.ndim - len(shape)) + tuple(shape)
        varies = [k for k, ax in enumerate(axes) if lead[ax % feat.ndim] != 1]
        if not varies:
            return "units"
        return "heads" if len(axes) == 2 and varies == [1] else "none"

    def _getitem_container(self, node, value: Any, index: Any) -> Any:
        if isinstance(value, tuple):
            if not isinstance(index, int):
                raise UnsupportedModuleError(f"it indexes a tuple with {index!r}")
            return value[index]
        if isinstance(index, int):
            return Feat(value.states[index], 2, -1)
        raise UnsupportedModuleError(
            f"it selects final states with {index!r}; use an integer such as h_n[-1]"
        )

    # -- driver ----------------------------------------------------------------------------
    def _record(self, node) -> dict[str, Any]:
        rec: dict[str, Any] = {"op": node.op}
        if node.op in ("placeholder", "call_module", "call_method", "get_attr"):
            rec["target"] = str(node.target)
        elif node.op == "call_function":
            rec["target"] = _ops.function_name(node.target)
        if node.op in ("call_function", "call_method"):
            rec["path"] = _op_path(node)
        if node.op == "output":
            rec["target"] = "output"
        return rec

    def _check_unit_slices(self, node) -> None:
        """One unit's values taken out as a tensor (``x[..., k]``) may be read for their shape
        only: by ``x.shape``/``x.size()``, or by a layer that reads no units of its input (a
        position table); any other use would lose the unit's edges, so it is refused."""
        if not self.unit_slices:  # none taken out so far (every model but a few)
            return
        args = [a for a in _flatten_values([*node.args, *node.kwargs.values()]) if hasattr(a, "op")]
        if not any(isinstance(self.env.get(a), UnitSlice) for a in args):
            return
        if node.op == "call_module":
            handler = get_handler(submodule(self.gm, str(node.target)))
            if handler is not None and not getattr(handler, "reads_units", True):
                return
        elif node.op == "call_method" and str(node.target) in _ops.META_OPS:
            return
        elif node.op == "call_function" and _ops.function_name(node.target) == "getattr":
            return
        raise UnsupportedModuleError(
            "it reads the values of one unit taken out as a tensor (x[..., k]), which carries "
            "no feature axis; keep the axis (x[..., k:k + 1]) or read only its shape"
        )

    def _step(self, i: int, node, n_placeholders: int) -> Any:
        if node in self.guard_only:  # only decides a branch: replayed, carries no units
            if node.op == "call_function" and _ops.function_name(node.target) is None:
                raise UnsupportedModuleError(
                    "the model branches on a value computed with a function netstruct cannot "
                    "store; wrap this part in a module and register a handler"
                )
            return Opaque()
        if node.op == "placeholder":
            if n_placeholders == 0:
                return PendingInput()
            return ExtraInput(n_placeholders, str(node.target))  # a mask, or a decoder's memory
        self._check_unit_slices(node)
        if node.op == "call_module":
            return self.call_module(node)
        if node.op in ("call_function", "call_method"):
            ins = _flatten_values(
                [self._peek(a) for a in node.args] + [self._peek(v) for v in node.kwargs.values()]
            )
            if any(isinstance(v, Broken) for v in ins):
                return Broken()  # already reported upstream
        if node.op == "call_function":
            name = _ops.function_name(node.target)
            if name is None:
                raise UnsupportedModuleError(
                    "netstruct does not follow this function; wrap it in a module and register a handler"
                )
            return self._function(node, name)
        if node.op == "call_method":
            base = str(node.target)
            if base not in _ops.METHODS and not any(
                isinstance(v, (Feat, _Scores, _ParamRef)) for v in ins
            ):
                return Opaque()  # computed from the input but carries no units (a mask)
            if base not in _ops.METHODS:
                raise UnsupportedModuleError(
                    f"netstruct does not follow the tensor method {base!r}"
                )
            return self._function(node, base)
        if node.op == "get_attr":
            if str(node.target) not in dict(self.model.named_parameters()):
                return Opaque()  # a constant tensor or buffer: carries no units
            return _ParamRef(node)
        if node.op == "output":
            out = node.args[0]
            value = self._value(out) if hasattr(out, "op") or isinstance(out, tuple) else Opaque()
            for v in _flatten_values([value]):
                if isinstance(v, Feat):
                    self.builder.mark_outputs(v.ids)
            return value
        raise UnsupportedModuleError(f"unknown fx op {node.op!r}")  # pragma: no cover

    def _where(self, node) -> str:
        """:func:`_where`, with the source lines fetched first when the trace skipped them."""
        sources, self._sources = self._sources, None
        if sources is not None:
            lines = sources()
            for n in self.graph.nodes:
                if n.name in lines and not n.stack_trace:
                    n.stack_trace = lines[n.name]
        return _where(node)

    def _keep_live(self, value: Any, until: int) -> None:
        """Tell the builder that ``value``'s units are read up to op position ``until``."""
        for ids in _unit_arrays(value):
            self.builder.keep_live(ids, until)

    def run(self) -> dict[str, Any]:
        self.guard_only = _guard_only(self.graph)
        n_placeholders = 0
        order = {node: i for i, node in enumerate(self.graph.nodes)}
        for i, node in enumerate(self.graph.nodes):
            self.index[node] = i
            self.builder.current_op = i
            rec = self._record(node)
            try:
                value = self._step(i, node, n_placeholders)
            except UnsupportedModuleError as exc:
                self.errors.append(f"{self._where(node)}: {str(exc).rstrip('.')}")
                value = Broken()
            if node.op == "placeholder":
                n_placeholders += 1
            where = functools.partial(self._where, node)  # for an error message only
            try:
                rec["args"] = _ops.encode_arg(tuple(node.args), self.index, where)["$tuple"]
                rec["kwargs"] = {
                    k: _ops.encode_arg(v, self.index, where) for k, v in node.kwargs.items()
                }
                if node.op == "get_attr" and isinstance(value, Opaque):
                    # a buffer or constant read by fx (a causal mask passed to a decoder): its
                    # value goes with the spec, the rebuilt module holds it (see rebuilt.py)
                    rec["value"] = _ops.encode_arg(
                        _fetch_attr(self.model, str(node.target)), self.index, where
                    )
                    if _persistent_buffer(self.model, str(node.target)):
                        rec["persistent"] = True  # in the model's state_dict: in the rebuilt's
            except UnsupportedModuleError as exc:
                self.errors.append(str(exc).rstrip("."))
            if "args" in rec and node.op in ("call_function", "call_method"):
                first = node.args[0] if node.args and hasattr(node.args[0], "op") else None
                units = units_record(rec, value, self.env.get(first))
                if units is not None:
                    rec["units"] = units
            if i in self.builder.op_blocks:
                rec["blocks"] = list(self.builder.op_blocks[i])
                if isinstance(value, Feat):
                    rec["axis"] = value.pos_axis if value.pos_axis is not None else -1
                    if value.axes is not None:  # units over (heads, head_dim): ids' axes
                        rec["axes"] = [int(a) for a in value.axes]
            self.env[node] = value
            if node.users:
                self._keep_live(value, max(order[u] for u in node.users))
            self.ops.append(rec)
        if self.errors:
            lines = "\n".join(f"  {k + 1}. {e}" for k, e in enumerate(self.errors))
            raise UnsupportedModuleError(
                f"{type(self.model).__name__} uses {len(self.errors)} operation(s) netstruct cannot "
                f"export:\n{lines}\nRegister a handler for custom layers with "
                "netstruct.register_module_handler (see netstruct.ModuleHandler)."
            )
        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "container": _container_kind(self.model),
            "modules": self.modules,
            "calls": {p: n for p, n in self.calls.items() if n > 1},
            "ops": self.ops,
        }


def _refuse_repeated(feats: list[Feat], message: str) -> None:
    """An element-wise sum or product needs every unit once per operand."""
    for f in feats:
        if np.unique(f.ids).size != f.ids.size:
            raise UnsupportedModuleError(message)


def _features_last(f: Feat) -> bool:
    """Whether ``f`` carries its units along its last axis only."""
    return f.axes is None and f.ndim is not None and f.pos_axis == f.ndim - 1


class UnitSlice(Opaque):
    """The values of one unit taken out as a tensor without a feature axis (``x[..., k]``)."""

    def __init__(self, unit: int) -> None:
        self.unit = unit


def _one_unit(res: Any, lookups: dict[float, int]) -> int | None:
    """The node id when every entry of the code tensor ``res`` is the code of one node."""
    a = res.detach().cpu().numpy().reshape(-1)
    first = float(a[0])
    if first in lookups and bool((a == first).all()):
        return lookups[first]
    return None


#: shape operations that keep every axis in place (slices, splits, concatenations): the
#: feature axes of their operands stay feature axes of the result, however wide
_KEEPS_AXES = frozenset(
    {"getitem", "narrow", "split", "chunk", "tensor_split", "cat", "concat", "concatenate"}
)


def _unit_arrays(value: Any) -> Iterator[np.ndarray]:
    """The node-id arrays a value carries (a Feat's, a recurrent layer's states, nested)."""
    if isinstance(value, Feat):
        yield value.ids
    elif isinstance(value, StackedStates):
        yield from value.states
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _unit_arrays(v)


def _guard_only(graph) -> set[Any]:
    """Nodes whose results only decide branches (they feed guards, never the network)."""
    from . import _ops

    guards = [n for n in graph.nodes if n.op == "call_function" and n.target is _ops.guard]
    if not guards:
        return set()
    live: set[Any] = set()
    todo = [n for n in graph.nodes if n.op in ("output", "call_module", "get_attr")]
    while todo:
        n = todo.pop()
        if n not in live:
            live.add(n)
            todo.extend(n.all_input_nodes)
    return {n for n in graph.nodes if n not in live and n.op in ("call_function", "call_method")}


#: follow the pooling and flatten of a CNN's head by shapes (False: always by the code-tensor
#: run, the reference the tests compare with)
MOVE_BY_SHAPES = True


def _flatten_span(op: Any, rest: tuple, kwargs: dict) -> tuple[int, int] | None:
    """``(start_dim, end_dim)`` of a flatten: an ``nn.Flatten`` module, or a traced node of
    ``torch.flatten`` / ``Tensor.flatten`` with its arguments after the tensor; else None."""
    import torch

    if isinstance(op, torch.nn.Flatten):
        return int(op.start_dim), int(op.end_dim)
    is_flatten = getattr(op, "op", None) == "call_method" and op.target == "flatten"
    is_flatten = is_flatten or (
        getattr(op, "op", None) == "call_function" and op.target is torch.flatten
    )
    if not is_flatten or not set(kwargs) <= {"start_dim", "end_dim"} or len(rest) > 2:
        return None
    start = rest[0] if rest else kwargs.get("start_dim", 0)
    end = rest[1] if len(rest) > 1 else kwargs.get("end_dim", -1)
    if not isinstance(start, int) or not isinstance(end, int):
        return None
    return start, end


def _method_caller(name: str) -> Any:
    """``f(t, *args) = t.<name>(*args)``: a tensor method as a function."""

    def call(t: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(t, name)(*args, **kwargs)

    return call


#: ``value <op> c`` with a Python number ``c``, by base name: ``c -> (scale, shift)``
_SCALAR_LEFT: dict[str, Any] = {
    "mul": lambda c: (c, 0.0),
    "truediv": lambda c: (1.0 / c, 0.0),
    "div": lambda c: (1.0 / c, 0.0),
    "true_divide": lambda c: (1.0 / c, 0.0),
    "add": lambda c: (1.0, c),
    "sub": lambda c: (1.0, -c),
}
#: ``c <op> value``; ``c / value`` is not affine and stays refused
_SCALAR_RIGHT: dict[str, Any] = {
    "mul": lambda c: (c, 0.0),
    "add": lambda c: (1.0, c),
    "sub": lambda c: (-1.0, c),
}


def _scalar_affine(
    base: str, vals: list[Any], args: tuple, kwargs: Any
) -> tuple[Any, float, float] | None:
    """``(value, scale, shift)`` when an operation is ``value * scale + shift`` with numbers.

    ``vals``: the exporter's values of the operands, ``args``: the operands as traced. ``value``
    carries units or is the input before the first layer; the other operand is a Python
    number in the trace (``bool`` excluded). None for anything else (``x / y``, ``c / x``,
    ``sub(..., alpha=)``, ``div(..., rounding_mode=)``, arithmetic on attention scores), which
    the exporter treats as before.
    """
    if kwargs:
        return None

    def carries(v: Any) -> bool:
        return isinstance(v, (Feat, PendingInput))

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if base == "neg":
        return (vals[0], -1.0, 0.0) if len(vals) == 1 and carries(vals[0]) else None
    if len(vals) != 2 or len(args) != 2:
        return None
    for value, c, table in ((vals[0], args[1], _SCALAR_LEFT), (vals[1], args[0], _SCALAR_RIGHT)):
        if base in table and carries(value) and number(c) and not (c == 0 and "div" in base):
            return (value, *table[base](float(c)))
    return None


def _op_path(node) -> str:
    if "ns_path" in node.meta:
        return node.meta["ns_path"]
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    prefix = list(stack.values())[-1][0] if stack else ""
    return f"{prefix}.{node.name}" if prefix else node.name


def _flatten_values(vals: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in vals:
        if isinstance(v, (tuple, list)):
            out.extend(_flatten_values(list(v)))
        else:
            out.append(v)
    return out


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


def _sequential_leaves(seq, prefix: str) -> list[str]:
    """Paths of a Sequential's leaves in call order (a module used twice appears twice)."""
    import torch

    out = []
    for name, child in seq._modules.items():
        if child is None:
            continue
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
            flat_seq(c) if isinstance(c, torch.nn.Sequential) else get_handler(c) is not None
            for c in m._modules.values()
            if c is not None
        )

    if flat_seq(model):
        return "Sequential"
    if get_handler(model) is not None:
        return "Leaf"
    return "Traced"


def _tied_parameters(model) -> dict[str, str]:
    """``{alias: first name}`` for parameters reachable under several names (tied weights)."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            tied[name] = first[id(p)]
        else:
            first[id(p)] = name
    return tied


def _fold_batchnorms(
    traced: _Traced, real: _RealValues | None, model: Any
) -> tuple[_Traced, dict[str, str]]:
    """Fold eval-mode batch norms into the layers before them; ``real`` follows the new graph.

    The folded graph's nodes are new: the values (made real first, so no later run of the
    old graph is needed) are re-keyed by them.
    """
    from ._fold import fold_batchnorms

    values = real.real() if real is not None else None
    new, values, folded = fold_batchnorms(traced, values, model)
    if new is not traced:
        new.sources, new.reused = traced.sources, traced.reused
    if real is not None:
        real.traced, real.values, real.is_real = new, values, True
    return new, folded


def from_torch(
    model: Any,
    example_input: Any = None,
    *,
    check: bool = True,
    reduction: str = "sum",
    fold_batchnorm: bool = False,
) -> SignedGraph:
    """Export a torch model to a :class:`~netstruct.SignedGraph`.

    Parameters
    ----------
    model : torch.nn.Module
        Any module built from layers netstruct has handlers for (``Linear``, recurrent,
        convolution, normalisation, pooling, embedding and element-wise layers), chained in an
        ``nn.Sequential`` or in a ``forward`` that ``torch.fx`` can trace (residual sums,
        concatenation, flatten/view/permute, functional activations). A ``forward`` that fx
        cannot trace (Hugging Face models) is recorded by running it once on
        ``example_input``; the rebuilt module then accepts inputs of that shape only.
    example_input : Tensor or tuple of Tensors, optional
        One batch of input. When given, the model is run once so shapes are known (needed for
        convolutions and shape operations), and, with ``check=True``, the re-imported module is
        run on it and its outputs (every tensor of a tuple or ``ModelOutput``) compared with
        the model's. Without it nothing is checked; a traced ``forward`` that asks what its
        values are (``isinstance``, ``hasattr``, ``type``) then warns
        (:class:`~netstruct.exceptions.UncheckedExportWarning`): torch.fx answers for its
        proxy, so the graph may hold a branch the model's run does not take.
    check : bool, default=True
        With ``example_input``, verify that ``to_torch(G)`` reproduces the model's output.
        A checked export keeps the model's fx trace, and a later checked export of the same,
        unchanged model replays it, checked against the model's own forward (see "Tracing"
        in ``docs/concepts/layers.md``).
    reduction : {"sum", "l1", "l2", "center", "max"}, default="sum"
        How a convolution's (or a flattened input's) taps between two units become the signed
        weight of their edge; the full kernel is kept for re-import (see ``docs/concepts``).
    fold_batchnorm : bool, default=False
        Fold each eval-mode ``BatchNorm1d/2d/3d`` that reads only the output of a conv or
        linear layer (read by nothing else) into that layer: its weight becomes
        ``w * gamma / sqrt(var + eps)`` per output channel and its bias
        ``(b - mean) * gamma / sqrt(var + eps) + beta``, so edges, analyses and pruning see the
        effective weights and the graph has no node or block for that norm.
        ``spec["folded_batchnorm"]`` records ``{norm path: layer path}``. The re-imported
        module has no such norm, and its folded layers have a bias: its ``state_dict`` keys
        differ from the model's. Norms that cannot be folded stay norm nodes, with one
        :class:`~netstruct.exceptions.UnfoldedBatchNormWarning` listing them and why.

    Returns
    -------
    SignedGraph
        Nodes for inputs, units (gate rows, channels), outputs; one block per weight parameter,
        named like the model's ``state_dict`` keys, plus ``skip`` blocks for residual sums.

    Raises
    ------
    UnsupportedModuleError
        Modules or operations netstruct cannot follow — all of them in one message, each with
        its module path, operation and source line.
    GraphError
        Non-finite weights, or layer sizes that do not chain.
    InvalidParameterError
        ``model`` is not a module, has no parameters, or ``example_input`` does not fit it;
        ``fold_batchnorm`` is not a bool, or is True while a batch norm is in training mode.

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

    A conv + batch norm folded into one layer (the re-imported module has no batch norm):

    >>> cnn = torch.nn.Sequential(
    ...     torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU()
    ... ).eval()
    >>> x = torch.randn(4, 1, 5, 5)
    >>> F = ns.from_torch(cnn, x, fold_batchnorm=True)
    >>> [b.name for b in F.blocks], F.spec["folded_batchnorm"]
    (['0.weight'], {'1': '0'})
    >>> bool(torch.allclose(ns.to_torch(F)(x), cnn(x), atol=1e-5))
    True
    """
    import torch

    from ..graphs._kernels import REDUCTIONS

    if not isinstance(model, torch.nn.Module):
        raise InvalidParameterError(
            f"The 'model' parameter of from_torch must be a torch.nn.Module. Got {type(model).__name__} instead."
        )
    if reduction not in REDUCTIONS:
        raise InvalidParameterError(
            f"The 'reduction' parameter of from_torch must be one of {list(REDUCTIONS)}. Got {reduction!r} instead."
        )
    if not isinstance(fold_batchnorm, bool):
        raise InvalidParameterError(
            f"The 'fold_batchnorm' parameter of from_torch must be a bool. Got {fold_batchnorm!r} instead."
        )
    params = dict(model.named_parameters())
    if not params:
        raise InvalidParameterError(
            f"The 'model' parameter of from_torch must have parameters; {type(model).__name__} has none "
            "(an empty model has no graph)."
        )
    # one export at a time: torch.fx patches torch.nn.Module.__call__ process-wide while it
    # traces, which breaks a module run (example, check) in a concurrent export
    with FX_TRACE_LOCK:
        options = _Options(check, reduction, fold_batchnorm)
        reuse = check and example_input is not None  # a reused trace is checked (_FX_TRACES)
        return _export(model, example_input, params, options, reuse)


class _Options(NamedTuple):
    """The export options of :func:`from_torch`."""

    check: bool
    reduction: str
    fold_batchnorm: bool


def _export(
    model: Any, example_input: Any, params: dict[str, Any], options: _Options, reuse: bool
) -> SignedGraph:
    """:func:`from_torch` after its argument checks (``reuse``: see :data:`_FX_TRACES`)."""
    traced = _trace(model, example_input, reuse=reuse)
    if traced.reused:
        try:
            G = _export_traced(model, traced, example_input, params, options)
        except Exception:  # noqa: BLE001 - whatever went wrong, a fresh trace decides
            _FX_TRACES.pop(model, None)
            return _export(model, example_input, params, options, False)
        if traced.kept_entry is not None:
            _adopt(G, traced.kept_entry)
        return G
    try:
        G = _export_traced(model, traced, example_input, params, options)
    except _NotReproduced:
        if traced.key is None or traced.facts is not None:
            raise  # a tape or a chain: nothing records the run more faithfully
        # the forward took another branch on proxies than on tensors (isinstance, hasattr):
        # the tape records the run itself, and this model's later exports start there
        _FX_FAILED[model] = traced.key
        traced = _tape(model, example_input, traced.key)
        G = _export_traced(model, traced, example_input, params, options)
    if options.check and example_input is not None:
        if traced.key is not None:
            _keep(model, traced, example_input, G)  # checked: a later export may replay it
        elif traced.chain:
            _keep_chain(model, example_input, G)
    return G


def _export_traced(
    model: Any, traced: _Traced, example_input: Any, params: dict[str, Any], options: _Options
) -> SignedGraph:
    """The graph of ``model`` from its trace (checked against the model when ``check``)."""
    import torch

    check, reduction, fold_batchnorm = options
    real = _RealValues(model, traced, example_input) if example_input is not None else None
    traced.run = real
    folded: dict[str, str] = {}
    if fold_batchnorm:  # the norm semantics live in its handler (see _fold)
        traced, folded = _fold_batchnorms(traced, real, model)
    exporter = _Exporter(model, traced, real, reduction)
    spec = exporter.run()
    if traced.facts is not None:  # a tape: specialised to the example's shapes
        spec["specialised"] = traced.facts
    b = exporter.builder
    if not b.blocks:
        raise InvalidParameterError(
            f"The 'model' parameter of from_torch has no exportable weights: {type(model).__name__}'s "
            "forward uses none of its weighted layers."
        )
    if b.internal:
        spec["internal"] = sorted(b.internal)
    tied = _tied_parameters(model)
    if tied:
        spec["tied"] = tied
    used = {
        f"{blk.module}.{p}" if blk.module else p
        for blk in b.blocks
        for p in (blk.param, blk.bias_param)
        if p
    }
    if folded:
        spec["folded_batchnorm"] = folded
        used |= {f"{bn}.{p}" for bn in folded for p in ("weight", "bias")}  # folded, not dropped
    dtype = str(next(iter(params.values())).dtype).replace("torch.", "")
    spec["dtype"] = dtype
    provenance = {
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "parameters": list(params),
        "unexported_parameters": sorted(set(params) - used - set(tied)),
        "netstruct_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "dtype": dtype,
        "training": bool(model.training),
        "reduction": reduction,
        "fold_batchnorm": fold_batchnorm,
    }
    if example_input is not None and hasattr(example_input, "shape"):
        spec["input_shape"] = list(example_input.shape)
        spec["input_dtype"] = str(example_input.dtype).replace("torch.", "")
    from .to_torch import canonical_spec, remember_structure_key, wiring_key

    spec_bytes = canonical_spec(spec)
    provenance["structure"] = wiring_key(spec, b.n_nodes, b.blocks, spec_bytes)
    # spec and provenance were built for this graph alone, so it takes them over; only
    # the handlers' configs (which may hold a module's own lists) are copied
    spec["modules"] = _copy_json(spec["modules"])
    G = SignedGraph._owning(b.node_table(), b.blocks, spec=spec, provenance=provenance)
    remember_structure_key(G, str(provenance["structure"]), spec_bytes)  # same spec and blocks
    if example_input is not None and check:
        _check_roundtrip(model, G, example_input, real.reference_output() if real else None)
    return G


class _NotReproduced(GraphError):
    """The round-trip check failed: the exported graph does not give the model's output."""


def _check_roundtrip(model, G: SignedGraph, example_input, reference: Any = None) -> None:
    """Run ``to_torch(G)`` on the example and compare with the model's output.

    ``reference``: the model's output on the example when a run already gave it exactly
    (see :meth:`_RealValues.reference_output`); otherwise the model is run here.
    """
    import torch

    from .to_torch import rebuild

    rebuilt = rebuild(G, copy_spec=False)  # thrown away below: it may share the graph's spec
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    with torch.no_grad():
        b = rebuilt(*args)
        if reference is None:
            with eval_mode(model):
                a = model(*args)
        else:
            a = reference
    ta, tb = flat_tensors(a), flat_tensors(b)
    ok = len(ta) == len(tb) and all(
        x.shape == y.shape and torch.allclose(x.double(), y.double(), atol=1e-5, rtol=1e-4)
        for x, y in zip(ta, tb)
    )
    if not ok:
        raise _NotReproduced(
            f"The exported graph of {type(model).__name__} does not reproduce the model's output on "
            "example_input; its forward() does something netstruct does not record. Register a "
            "handler for the custom part, or pass check=False to keep the graph anyway."
        )

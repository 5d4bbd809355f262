"""Accumulates nodes and blocks while a model is exported (used by handlers)."""

from __future__ import annotations

import bisect
import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError
from ..graphs._generated import diagonal_block, identity_block
from ..graphs._kernels import conv_block_arrays, expand_block_arrays
from ..graphs._names import NameRange, NodeNames
from ..graphs._schema import NODE_COLUMNS
from ..graphs.block import Block, make_block, seed_kernel_parameter
from ._values import ExtraInput

__all__ = ["GraphBuilder", "PendingInput", "StackedStates"]


@dataclass(frozen=True)
class PendingInput:
    """The model input before a weighted layer fixed its number of features."""


@dataclass
class StackedStates:
    """Final hidden states of a recurrent module, one id array per (layer, direction)."""

    states: list[np.ndarray]


#: True while :func:`spec_only_export` runs: tensors are lent to the graph, not copied
_LEND_TENSORS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "netstruct_lend_tensors", default=False
)


@contextlib.contextmanager
def spec_only_export() -> Iterator[None]:
    """Within this block, exports lend the graph read-only views of the model's tensors.

    For callers that keep only the architecture spec of the graph and drop it at once
    (:func:`netstruct.save_model`): a float32 CPU weight then costs no copy (a BERT-sized
    model's 400 MB); the values are still validated. A graph built here must not outlive the
    block: it would change with the model.
    """
    token = _LEND_TENSORS.set(True)
    try:
        yield
    finally:
        _LEND_TENSORS.reset(token)


def to_numpy(t: Any) -> np.ndarray:
    """A tensor's values as numpy (half and bfloat16 exactly, via float32)."""
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if t.is_floating_point() and t.element_size() < 4:
            t = t.float()
        out: np.ndarray = t.numpy()
        if _LEND_TENSORS.get():
            out = out.view()
            out.setflags(write=False)  # read-only: make_block shares it instead of copying
        return out
    return np.asarray(t)


_to_numpy = to_numpy


@dataclass
class GraphBuilder:
    """Collects the node table and blocks of a graph under construction.

    Handlers call :meth:`resolve_features`, :meth:`add_units`, :meth:`add_gates`,
    :meth:`add_block` and :meth:`annotate`.
    """

    #: the nodes added so far, one run per :meth:`_add` (read with :attr:`columns`)
    nodes: NodeRuns = field(default_factory=lambda: NodeRuns())
    blocks: list[Block] = field(default_factory=list)
    n_groups: int = 0
    input_ids: np.ndarray | None = None
    #: True at the node ids whose values some block has read (an activation then needs fresh
    #: nodes); grown as nodes are added, see :meth:`was_read`
    read: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: per node id, the last export-time op position that reads its value (an activation on
    #: a value read after it needs fresh nodes too: ``h + relu(h)``); see :meth:`keep_live`
    live: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: per export-time op position: names of the structural blocks (skip/identity) it owns
    op_blocks: dict[int, list[str]] = field(default_factory=dict)
    current_op: int = -1
    #: kernel reduction used for conv and flattened-input edges
    reduction: str = "sum"
    #: structural blocks inside a composite layer (re-import cannot realise edits to them)
    internal: set[str] = field(default_factory=set)
    #: input nodes of the model's later inputs (``ExtraInput``), by input position
    extra_inputs: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def n_nodes(self) -> int:
        return self.nodes.n

    @property
    def columns(self) -> Mapping[str, _ColumnView]:
        """The node columns so far, read (and ``kind``/``gate``/``activation`` written) by node id."""
        return {c: _ColumnView(self.nodes, c) for c in NODE_COLUMNS}

    def _add(
        self,
        names: list[str] | Sequence[NameRange],
        *,
        kind: str,
        group: int,
        module: str,
        direction: int = 0,
        gate: str | list[str] = "",
        unit: Any = None,
    ) -> np.ndarray:
        """Add nodes named ``names`` (a list of str, or runs of names); return their ids.

        Their ``index`` counts from 0 over the call; ``unit`` (default: the nodes themselves)
        and ``gate`` may give one value per node. Runs of names (:class:`NameRange`) make
        their strings only when the graph's names are read, and carry their own gate labels.
        """
        return self.nodes.add(
            names, kind=kind, group=group, module=module, direction=direction, gate=gate, unit=unit
        )

    def resolve_features(self, value: Any, n_features: int, path: str) -> np.ndarray:
        """Feature node ids of ``value``, creating the input nodes on first use.

        Raises
        ------
        GraphError
            When the value carries a different number of features than the layer expects.
        """
        if isinstance(value, PendingInput):
            if self.input_ids is not None:
                if self.input_ids.size != n_features:
                    raise GraphError(
                        f"Module {path!r} expects {n_features} input features but the model "
                        f"input was already read as {self.input_ids.size} features."
                    )
                return self.input_ids
            ids = self._add([NameRange("input", n_features)], kind="input", group=0, module="")
            self.input_ids = ids
            return ids
        if isinstance(value, ExtraInput):
            return self._extra_input(value, n_features, path)
        if isinstance(value, np.ndarray):
            if value.size != n_features:
                raise GraphError(
                    f"Module {path!r} expects {n_features} input features but receives a value "
                    f"with {value.size} features; netstruct follows the feature dimension only "
                    "through element-wise ops, flatten and time-step selection."
                )
            return value
        raise GraphError(
            f"Module {path!r} receives a value netstruct cannot follow ({type(value).__name__}); "
            "only chains of layers, activations and time-step selection are supported."
        )

    def _extra_input(self, value: ExtraInput, n_features: int, path: str) -> np.ndarray:
        """Input nodes ``input.<name>[i]`` of a later model input, made when a layer first reads it."""
        ids = self.extra_inputs.get(value.index)
        if ids is None:
            ids = self.extra_inputs[value.index] = self._add(
                [NameRange(f"input.{value.name}", n_features)], kind="input", group=0, module=""
            )
        elif ids.size != n_features:
            raise GraphError(
                f"Module {path!r} expects {n_features} input features but the model input "
                f"{value.name!r} was already read as {ids.size} features."
            )
        return ids

    def resolve_input(
        self, value: Any, n_features: int, path: str, *, kind: str = "input", label: str = "input"
    ) -> np.ndarray:
        """Like :meth:`resolve_features`, with a custom name for the input nodes (``token``)."""
        if isinstance(value, PendingInput) and self.input_ids is None:
            ids = self._add([NameRange(label, n_features)], kind=kind, group=0, module="")
            self.input_ids = ids
            return ids
        return self.resolve_features(value, n_features, path)

    def add_units(self, n: int, *, module: str, direction: int = 0, label: str = "") -> np.ndarray:
        """Add ``n`` unit nodes (kind ``hidden``) in a new group; return their ids."""
        self.n_groups += 1
        base = ".".join(x for x in (module, label.rstrip(".")) if x) or "unit"
        return self._add(
            [NameRange(base, n)],
            kind="hidden",
            group=self.n_groups,
            module=module,
            direction=direction,
        )

    def add_gates(
        self, units: np.ndarray, gates: str, *, module: str, direction: int = 0, label: str = ""
    ) -> np.ndarray:
        """Add gate nodes for ``units`` in torch row order (gate-major); return their ids."""
        group = self.nodes.value("group", int(units[0])) if units.size else self.n_groups
        prefix = ".".join(x for x in (module, label) if x) + "."
        n = int(units.size)
        return self._add(
            [NameRange(f"{prefix}{g}", n, gate=g) for g in gates],
            kind="gate",
            group=group,
            module=module,
            direction=direction,
            unit=np.tile(np.asarray(units, dtype=INDEX_DTYPE), len(gates)),
        )

    def add_block(
        self,
        *,
        module: str,
        param: str,
        weight: Any,
        sources: np.ndarray,
        targets: np.ndarray,
        bias: Any = None,
        bias_param: str | None = None,
        delay: int = 0,
    ) -> Block:
        """Add a weight block; ``weight`` is a tensor or array of shape (len(targets), len(sources))."""
        name = f"{module}.{param}" if module else param
        w = _to_numpy(weight)
        b = None if bias is None else _to_numpy(bias)
        src = np.asarray(sources, dtype=INDEX_DTYPE)
        extra: dict[str, Any] = {}
        increasing = src.size < 2 or bool((src[1:] > src[:-1]).all())  # no repeats (the usual)
        if not increasing and np.unique(src).size != src.size:  # a flattened map: several taps/unit
            uniq, first, inverse = np.unique(src, return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            columns = rank[inverse]
            extra = {
                "kernel": w,
                "layout": {
                    "type": "expand",
                    "columns": columns.tolist(),
                    "reduction": self.reduction,
                },
            }
            w = expand_block_arrays(w, columns, uniq.size, self.reduction)
            src = uniq[order]
        return self._append(
            name=name,
            weight=w,
            sources=src,
            targets=targets,
            bias=b,
            module=module,
            param=param,
            bias_param=bias_param,
            delay=delay,
            **extra,
        )

    def _append(self, _make: Callable[..., Block] = make_block, **fields: Any) -> Block:
        """Add the block ``_make(**fields)`` (:func:`make_block`, or a constructor of
        :mod:`netstruct.graphs._generated` for an identity or diagonal pattern)."""
        try:
            block = _make(**fields)
        except GraphError as exc:
            raise GraphError(f"While exporting module {fields.get('module')!r}: {exc}") from None
        if any(b.name == block.name for b in self.blocks):
            raise GraphError(f"Two blocks would be named {block.name!r}.")
        self.blocks.append(block)
        self._mark_read(block.sources)
        return block

    def _mark_read(self, ids: np.ndarray) -> None:
        if self.read.size < self.n_nodes:
            grown = np.zeros(max(self.n_nodes, 2 * self.read.size), dtype=bool)
            grown[: self.read.size] = self.read
            self.read = grown
        self.read[ids] = True

    def keep_live(self, ids: np.ndarray, until: int) -> None:
        """The values of nodes ``ids`` are read up to op position ``until`` (the exporter
        calls this for every value it keeps, with the position of its last user)."""
        ids = np.asarray(ids, dtype=INDEX_DTYPE).reshape(-1)
        if not ids.size:
            return
        if self.live.size < self.n_nodes:
            grown = np.zeros(max(self.n_nodes, 2 * self.live.size), dtype=np.int64)
            grown[: self.live.size] = self.live
            self.live = grown
        self.live[ids] = np.maximum(self.live[ids], until)

    def read_later(self, ids: np.ndarray) -> bool:
        """True when an op after the current one reads the value of a node of ``ids``."""
        ids = np.asarray(ids, dtype=INDEX_DTYPE).reshape(-1)
        ids = ids[ids < self.live.size]
        return bool(ids.size) and int(self.live[ids].max()) > self.current_op

    def was_read(self, ids: np.ndarray) -> bool:
        """True when some block has read the value of a node of ``ids``."""
        ids = np.asarray(ids, dtype=INDEX_DTYPE)
        ids = ids[ids < self.read.size]
        return bool(self.read[ids].any())

    def add_conv_block(
        self,
        *,
        module: str,
        param: str,
        kernel: Any,
        groups: int,
        sources: np.ndarray,
        targets: np.ndarray,
        bias: Any = None,
        bias_param: str | None = None,
    ) -> Block:
        """Add a convolution: a channel-level block whose edges reduce the kernel's taps."""
        k = _to_numpy(kernel)
        W, M = conv_block_arrays(k, groups, self.reduction)
        block = self._append(
            name=f"{module}.{param}" if module else param,
            weight=W,
            mask=M,
            sources=sources,
            targets=targets,
            bias=None if bias is None else _to_numpy(bias),
            module=module,
            param=param,
            bias_param=bias_param,
            kernel=k,
            layout={"type": "conv", "groups": int(groups), "reduction": self.reduction},
        )
        seed_kernel_parameter(block)
        return block

    def add_norm_block(
        self,
        *,
        module: str,
        sources: np.ndarray,
        scale: Any = None,
        shift: Any = None,
        state: dict[str, Any] | None = None,
        label: str = "norm",
        prefix: str = "",
        stat_groups: int | None = None,
        shared_width: int | None = None,
    ) -> np.ndarray:
        """Add fresh nodes fed one-to-one by ``sources`` through the norm's per-unit scale.

        ``scale`` (the norm's ``weight``) becomes the diagonal of a ``kind="norm"`` block and
        ``shift`` its bias; a norm without affine parameters gets unit scales and no
        parameter. ``prefix`` names a norm inside a composite layer (``"norm1."``: parameters
        ``norm1.weight``/``norm1.bias`` of the module). ``stat_groups`` (the handler's
        :meth:`~netstruct.convert.layers.NormHandler.statistic_groups`) is the number of equal,
        contiguous groups of units whose statistics are computed apart (a batch norm: one per
        unit; a ``GroupNorm``: ``num_groups``); it goes into the block's layout, where coupling
        and shrink read it. None: statistics over the whole width. ``shared_width``: a norm
        of that width applied to each contiguous group of that many ``sources`` (a per-head
        norm: Qwen3's ``q_norm`` over each head's dimensions); its scale and shift repeat per
        group and the layout says so (``group_width``, ``shared``: the block's parameter is
        one group's diagonal, see :meth:`netstruct.Block.parameter`). Returns the new node ids.
        """
        src = np.asarray(sources, dtype=INDEX_DTYPE)
        out = self.add_units(src.size, module=module, label=label)
        n = src.size
        reps = 1 if shared_width is None else n // int(shared_width)
        d = (
            np.ones(n)
            if scale is None
            else np.tile(_to_numpy(scale).astype(np.float64).reshape(-1), reps)
        )
        layout: dict[str, Any] = {"type": "diag"}
        if stat_groups is not None:
            layout["stat_groups"] = int(stat_groups)
        if shared_width is not None:
            layout.update(group_width=int(shared_width), shared=True)
        self._append(
            diagonal_block,
            name=".".join(
                x
                for x in (module, f"{prefix}weight" if scale is not None else f"{prefix}{label}")
                if x
            ),
            diagonal=d,
            sources=src,
            targets=out,
            bias=None if shift is None else np.tile(_to_numpy(shift).reshape(-1), reps),
            module=module,
            param=f"{prefix}weight" if scale is not None else "",
            bias_param=f"{prefix}bias" if shift is not None else None,
            kind="norm",
            layout=layout,
            state={k: _to_numpy(v) for k, v in (state or {}).items()},
        )
        return out

    def _structural(
        self,
        kind: str,
        sources: np.ndarray,
        path: str,
        label: str,
        targets: np.ndarray,
        internal: bool = False,
    ) -> Block:
        if internal:
            k = sum(1 for b in self.blocks if b.name.startswith(f"{path}.{label}"))
        else:
            names = self.op_blocks.setdefault(self.current_op, [])
            k = len(names)
        name = f"{path}.{label}{k}"
        block = self._append(
            identity_block,
            name=name,
            sources=sources,
            targets=targets,
            module=path,
            kind=kind,
        )
        if internal:
            self.internal.add(name)
        else:
            names.append(name)
        return block

    def add_sum(
        self, operands: list[np.ndarray], path: str, *, internal: bool = False
    ) -> np.ndarray:
        """Residual sum of same-width values: fresh nodes, one ``skip`` block per operand.

        ``internal=True`` for sums inside a composite layer's own forward (its handler owns
        them; re-import refuses edits to them).
        """
        n = operands[0].size
        out = self.add_units(n, module=path, label="sum")
        for ids in operands:
            self._structural(
                "skip", np.asarray(ids, dtype=INDEX_DTYPE), path, "skip", out, internal
            )
        return out

    def apply_elementwise(self, ids: np.ndarray, label: str, path: str) -> np.ndarray:
        """Record an activation on ``ids``; fresh nodes (identity edges) when already read."""
        ids = np.asarray(ids, dtype=INDEX_DTYPE)
        if not label:
            return ids
        if self.was_read(ids) or self.read_later(ids) or self.nodes.any_of_kind(ids, "input"):
            out = self.add_units(ids.size, module=path, label=label.split("{")[0])
            self._structural("identity", ids, path, "copy", out)
            ids = out
        self.annotate(ids, label)
        return ids

    def annotate(self, ids: np.ndarray, activation: str) -> None:
        """Record an activation applied to the values of nodes ``ids``."""
        self.nodes.annotate(ids, activation)

    def mark_outputs(self, ids: np.ndarray) -> None:
        """Mark the nodes whose values the model returns as kind ``output``."""
        kinds = self.columns["kind"]
        for i in np.asarray(ids).tolist():
            if kinds[i] == "hidden":
                kinds[i] = "output"

    def node_table(self) -> dict[str, Any]:
        """The node columns for :class:`~netstruct.SignedGraph` (names as runs, made when read)."""
        return self.nodes.table()


def _suffix(k: int, head_dim: int) -> str:
    return f"[{k // head_dim}.{k % head_dim}]" if head_dim else f"[{k}]"


@dataclass
class _Run:
    """Nodes added by one :meth:`GraphBuilder._add` call (values shared by all, or per node)."""

    start: int
    n: int
    names: list[str] | tuple[NameRange, ...]
    kind: str
    group: int
    module: str
    direction: int
    gate: str | list[str]
    unit: np.ndarray | None


@dataclass
class NodeRuns:
    """The node columns of a graph under construction, kept per run of nodes added together.

    Each run holds the values its nodes share (kind, group, module, direction, a gate label)
    and, where they differ per node, a list (names given one by one, gates, units); the later
    edits of ``kind``, ``gate`` and ``activation`` (outputs marked, heads labelled,
    activations recorded) are kept per node id. :meth:`table` gives the columns in a few numpy
    operations per run, the names as :class:`NodeNames` runs.
    """

    runs: list[_Run] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    n: int = 0
    edits: dict[str, dict[int, str]] = field(default_factory=lambda: {"kind": {}, "gate": {}})
    #: activations recorded, in order: (node ids, label); each joins a node's earlier ones
    #: with ``+``; a label set directly (``columns["activation"][i] = ...``) has ids None
    activations: list[tuple[np.ndarray, str, bool]] = field(default_factory=list)

    def add(
        self,
        names: list[str] | Sequence[NameRange],
        *,
        kind: str,
        group: int,
        module: str,
        direction: int,
        gate: str | list[str],
        unit: Any,
    ) -> np.ndarray:
        parts: list[str] | tuple[NameRange, ...]
        runs = [x for x in names if isinstance(x, NameRange)]
        if names and len(runs) == len(names):
            parts = tuple(runs)
            count = sum(p.count for p in runs)
            if any(p.gate for p in runs) and gate:
                raise GraphError("Nodes get their gate labels from their name runs or from gate=.")
        elif runs:
            raise GraphError("Give the nodes' names as runs (NameRange) or as str, not both.")
        else:
            parts = [str(x) for x in names]
            count = len(parts)
        if not isinstance(gate, str):
            gate = list(gate)
            if len(gate) != count:
                raise GraphError(f"{len(gate)} gate labels for {count} nodes.")
        if unit is not None:
            unit = np.array(unit, dtype=INDEX_DTYPE).reshape(-1)
            if unit.size != count:
                raise GraphError(f"{unit.size} unit ids for {count} nodes.")
        start = self.n
        self.runs.append(_Run(start, count, parts, kind, group, module, direction, gate, unit))
        self.starts.append(start)
        self.n = start + count
        return np.arange(start, start + count, dtype=INDEX_DTYPE)

    def _run_of(self, i: int) -> _Run:
        if not 0 <= i < self.n:
            raise IndexError(f"node id {i} out of range 0..{self.n - 1}")
        return self.runs[bisect.bisect_right(self.starts, i) - 1]

    def value(self, column: str, i: int) -> Any:
        """Column ``column`` of node ``i``."""
        edits = self.edits.get(column)
        if edits is not None and i in edits:
            return edits[i]
        r = self._run_of(i)
        k = i - r.start
        if column == "index":
            return k
        if column == "unit":
            return i if r.unit is None else int(r.unit[k])
        if column == "activation":
            return self._activation(i)
        if column not in ("name", "gate"):
            return getattr(r, column)
        if isinstance(r.names, list):  # names given one by one
            if column == "name":
                return r.names[k]
            return r.gate if isinstance(r.gate, str) else r.gate[k]
        if column == "gate" and not isinstance(r.gate, str):
            return r.gate[k]
        for p in r.names:  # the name run holding node i
            if k < p.count:
                if column == "name":
                    return p.base + _suffix(k, p.head_dim)
                if not p.gate:
                    return r.gate
                return f"{p.gate}{k // p.head_dim}" if p.head_dim else p.gate
            k -= p.count
        raise AssertionError("node outside its run")  # pragma: no cover

    @staticmethod
    def _gates(r: _Run) -> list[str] | np.ndarray | None:
        """Per-node gate labels of a run (None: its one label ``r.gate`` for every node)."""
        if isinstance(r.gate, list):
            return r.gate
        if isinstance(r.names, tuple) and any(p.gate for p in r.names):
            out = np.empty(r.n, dtype=object)
            start = 0
            for p in r.names:
                out[start : start + p.count] = p.gates() if p.gate else r.gate
                start += p.count
            return out
        return None

    def annotate(self, ids: np.ndarray, label: str) -> None:
        """Record activation ``label`` on nodes ``ids`` (after the ones they have)."""
        ids = np.array(ids, dtype=INDEX_DTYPE).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n):
            raise IndexError(f"node ids out of range 0..{self.n - 1}")
        self.activations.append((ids, str(label), True))

    def set_activation(self, i: int, label: str) -> None:
        """Set node ``i``'s activation label to ``label`` (replacing what it had)."""
        self._run_of(i)
        self.activations.append((np.array([i], dtype=INDEX_DTYPE), str(label), False))

    def _activation(self, i: int) -> str:
        """Node ``i``'s activation label: the log replayed for that node (the reference of
        :meth:`table`'s vectorised replay)."""
        out = ""
        for ids, label, join in self.activations:
            for _ in range(int(np.count_nonzero(ids == i))):
                out = f"{out}+{label}" if (join and out) else label
        return out

    def _activation_column(self) -> np.ndarray:
        col = np.full(self.n, "", dtype=object)
        for ids, label, join in self.activations:
            if not join:
                col[ids] = label
                continue
            if ids.size > 1 and not (ids[1:] > ids[:-1]).all() and np.unique(ids).size != ids.size:
                for i in ids.tolist():  # a node listed twice gets the label twice, in turn
                    col[i] = f"{col[i]}+{label}" if col[i] else label
                continue
            prev = col[ids]
            has = prev != ""
            col[ids[~has]] = label
            if has.any():
                col[ids[has]] = [f"{p}+{label}" for p in prev[has].tolist()]
        return col

    def any_of_kind(self, ids: np.ndarray, kind: str) -> bool:
        """True when some node of ``ids`` has kind ``kind`` (edits included)."""
        ids = np.asarray(ids, dtype=INDEX_DTYPE).reshape(-1)
        if not ids.size:
            return False
        edits = self.edits["kind"]
        if edits and any(edits.get(i, "") == kind for i in ids.tolist()):
            return True
        pos = np.searchsorted(np.asarray(self.starts), ids, side="right") - 1
        kinds = [r.kind for r in self.runs]
        for p in np.unique(pos).tolist():
            if kinds[p] == kind:
                hit = ids[pos == p]
                if not edits or any(i not in edits for i in hit.tolist()):
                    return True
        return False

    def table(self) -> dict[str, Any]:
        """Every node column: numpy arrays, the names as :class:`NodeNames`."""
        runs, n = self.runs, self.n
        counts = np.array([r.n for r in runs], dtype=np.int64)
        starts = np.array(self.starts, dtype=INDEX_DTYPE)

        def per_run(values: list, dtype: Any) -> np.ndarray:
            arr = np.empty(len(values), dtype=dtype)
            arr[:] = values
            return np.repeat(arr, counts)

        out: dict[str, Any] = {
            "kind": per_run([r.kind for r in runs], object),
            "group": per_run([r.group for r in runs], INDEX_DTYPE),
            "index": np.arange(n, dtype=INDEX_DTYPE) - np.repeat(starts, counts),
            "direction": per_run([r.direction for r in runs], np.int8),
            "module": per_run([r.module for r in runs], object),
            "activation": self._activation_column(),
        }
        unit = np.arange(n, dtype=INDEX_DTYPE)
        gate = per_run([r.gate if isinstance(r.gate, str) else "" for r in runs], object)
        parts: list[NameRange | list[str]] = []
        for r in runs:
            if r.unit is not None:
                unit[r.start : r.start + r.n] = r.unit
            g = self._gates(r)
            if g is not None:
                gate[r.start : r.start + r.n] = g
            if isinstance(r.names, tuple):
                parts.extend(r.names)
            else:
                parts.append(r.names)
        out["unit"] = unit
        out["gate"] = gate
        for column, edits in self.edits.items():
            if edits:
                col = out[column]
                col[np.fromiter(edits.keys(), dtype=INDEX_DTYPE, count=len(edits))] = list(
                    edits.values()
                )
        out["name"] = NodeNames(parts)
        return out


class _ColumnView:
    """One node column of a :class:`NodeRuns`, indexed by node id (``kind``, ``gate`` and
    ``activation`` writable: the edits are kept per node)."""

    __slots__ = ("_nodes", "_column")

    def __init__(self, nodes: NodeRuns, column: str):
        self._nodes = nodes
        self._column = column

    def __len__(self) -> int:
        return self._nodes.n

    def __getitem__(self, i: int) -> Any:
        return self._nodes.value(self._column, int(i))

    def __setitem__(self, i: int, value: str) -> None:
        if self._column == "activation":
            self._nodes.set_activation(int(i), value)
            return
        edits = self._nodes.edits.get(self._column)
        if edits is None:
            raise GraphError(f"Node column {self._column!r} is fixed when the nodes are added.")
        i = int(i)
        self._nodes._run_of(i)  # in range
        edits[i] = str(value)

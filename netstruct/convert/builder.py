"""Accumulates nodes and blocks while a model is exported (used by handlers)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError
from ..graphs._kernels import conv_block_arrays, expand_block_arrays
from ..graphs.block import Block, make_block
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


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=32)
def identity_arrays(n: int, copies: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float32 weight and bool mask of ``copies`` side-by-side ``n x n`` identities.

    Shared by every structural block of that size (skip, copy and attention-operator edges):
    blocks never write their arrays, so one copy per size serves them all.

    Examples
    --------
    >>> w, m = identity_arrays(2, 3)
    >>> w.shape, w.dtype, bool(m.sum() == 6), w.flags.writeable
    ((2, 6), dtype('float32'), True, False)
    >>> identity_arrays(2, 3)[0] is w
    True
    """
    eye = np.eye(n, dtype=np.float32)
    w = np.concatenate([eye] * copies, axis=1) if copies > 1 else eye
    return _frozen(w), _frozen(w.astype(bool))


def diagonal_weight(d: np.ndarray) -> np.ndarray:
    """A read-only float32 diagonal matrix with diagonal ``d`` (a norm block's weight).

    Examples
    --------
    >>> diagonal_weight(np.array([1.5, -2.0])).tolist()
    [[1.5, 0.0], [0.0, -2.0]]
    """
    w = np.zeros((d.size, d.size), dtype=np.float32)
    np.fill_diagonal(w, d)
    return _frozen(w)


@dataclass
class GraphBuilder:
    """Collects the node table and blocks of a graph under construction.

    Handlers call :meth:`resolve_features`, :meth:`add_units`, :meth:`add_gates`,
    :meth:`add_block` and :meth:`annotate`.
    """

    columns: dict[str, list[Any]] = field(
        default_factory=lambda: {
            c: []
            for c in (
                "name",
                "kind",
                "group",
                "index",
                "unit",
                "gate",
                "direction",
                "module",
                "activation",
            )
        }
    )
    blocks: list[Block] = field(default_factory=list)
    n_groups: int = 0
    input_ids: np.ndarray | None = None
    #: node ids whose values some block has read (an activation then needs fresh nodes)
    read: set[int] = field(default_factory=set)
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
        return len(self.columns["name"])

    def _add(self, names, *, kind, group, module, direction=0, gate="", unit=None) -> np.ndarray:
        start = self.n_nodes
        n = len(names)
        ids = np.arange(start, start + n, dtype=INDEX_DTYPE)
        c = self.columns
        c["name"].extend(names)
        c["kind"].extend([kind] * n)
        c["group"].extend([group] * n)
        c["index"].extend(range(n))
        c["unit"].extend(ids.tolist() if unit is None else list(unit))
        c["gate"].extend([gate] * n if isinstance(gate, str) else list(gate))
        c["direction"].extend([direction] * n)
        c["module"].extend([module] * n)
        c["activation"].extend([""] * n)
        return ids

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
            ids = self._add(
                [f"input[{i}]" for i in range(n_features)], kind="input", group=0, module=""
            )
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
            names = [f"input.{value.name}[{i}]" for i in range(n_features)]
            ids = self.extra_inputs[value.index] = self._add(
                names, kind="input", group=0, module=""
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
            ids = self._add(
                [f"{label}[{i}]" for i in range(n_features)], kind=kind, group=0, module=""
            )
            self.input_ids = ids
            return ids
        return self.resolve_features(value, n_features, path)

    def add_units(self, n: int, *, module: str, direction: int = 0, label: str = "") -> np.ndarray:
        """Add ``n`` unit nodes (kind ``hidden``) in a new group; return their ids."""
        self.n_groups += 1
        base = ".".join(x for x in (module, label.rstrip(".")) if x) or "unit"
        names = [f"{base}[{i}]" for i in range(n)]
        return self._add(
            names, kind="hidden", group=self.n_groups, module=module, direction=direction
        )

    def add_gates(
        self, units: np.ndarray, gates: str, *, module: str, direction: int = 0, label: str = ""
    ) -> np.ndarray:
        """Add gate nodes for ``units`` in torch row order (gate-major); return their ids."""
        group = self.columns["group"][int(units[0])] if units.size else self.n_groups
        prefix = ".".join(x for x in (module, label) if x) + "."
        names, gate_col, unit_col = [], [], []
        for g in gates:
            for i, u in enumerate(units):
                names.append(f"{prefix}{g}[{i}]")
                gate_col.append(g)
                unit_col.append(int(u))
        return self._add(
            names,
            kind="gate",
            group=group,
            module=module,
            direction=direction,
            gate=gate_col,
            unit=unit_col,
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
        if src.size and np.unique(src).size != src.size:  # a flattened map: several taps per unit
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

    def _append(self, **fields: Any) -> Block:
        try:
            block = make_block(**fields)
        except GraphError as exc:
            raise GraphError(f"While exporting module {fields.get('module')!r}: {exc}") from None
        if any(b.name == block.name for b in self.blocks):
            raise GraphError(f"Two blocks would be named {block.name!r}.")
        self.blocks.append(block)
        self.read.update(np.asarray(block.sources).tolist())
        return block

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
        return self._append(
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
    ) -> np.ndarray:
        """Add fresh nodes fed one-to-one by ``sources`` through the norm's per-unit scale.

        ``scale`` (the norm's ``weight``) becomes the diagonal of a ``kind="norm"`` block and
        ``shift`` its bias; a norm without affine parameters gets unit scales and no
        parameter. ``prefix`` names a norm inside a composite layer (``"norm1."``: parameters
        ``norm1.weight``/``norm1.bias`` of the module). ``stat_groups`` (the handler's
        :meth:`~netstruct.convert.layers.NormHandler.statistic_groups`) is the number of equal,
        contiguous groups of units whose statistics are computed apart (a batch norm: one per
        unit; a ``GroupNorm``: ``num_groups``); it goes into the block's layout, where coupling
        and shrink read it. None: statistics over the whole width. Returns the new node ids.
        """
        src = np.asarray(sources, dtype=INDEX_DTYPE)
        out = self.add_units(src.size, module=module, label=label)
        n = src.size
        d = np.ones(n) if scale is None else _to_numpy(scale).astype(np.float64).reshape(-1)
        self._append(
            name=".".join(
                x
                for x in (module, f"{prefix}weight" if scale is not None else f"{prefix}{label}")
                if x
            ),
            weight=diagonal_weight(d),
            mask=identity_arrays(n)[1],
            sources=src,
            targets=out,
            bias=None if shift is None else _to_numpy(shift),
            module=module,
            param=f"{prefix}weight" if scale is not None else "",
            bias_param=f"{prefix}bias" if shift is not None else None,
            kind="norm",
            layout={"type": "diag"}
            if stat_groups is None
            else {"type": "diag", "stat_groups": int(stat_groups)},
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
        n = sources.size
        if internal:
            k = sum(1 for b in self.blocks if b.name.startswith(f"{path}.{label}"))
        else:
            names = self.op_blocks.setdefault(self.current_op, [])
            k = len(names)
        name = f"{path}.{label}{k}"
        block = self._append(
            name=name,
            weight=identity_arrays(n)[0],
            mask=identity_arrays(n)[1],
            sources=sources,
            targets=targets,
            module=path,
            param="",
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
        kinds = self.columns["kind"]
        if self.read.intersection(ids.tolist()) or any(kinds[i] == "input" for i in ids.tolist()):
            out = self.add_units(ids.size, module=path, label=label.split("{")[0])
            self._structural("identity", ids, path, "copy", out)
            ids = out
        self.annotate(ids, label)
        return ids

    def annotate(self, ids: np.ndarray, activation: str) -> None:
        """Record an activation applied to the values of nodes ``ids``."""
        col = self.columns["activation"]
        for i in np.asarray(ids).tolist():
            col[i] = f"{col[i]}+{activation}" if col[i] else activation

    def mark_outputs(self, ids: np.ndarray) -> None:
        """Mark the nodes whose values the model returns as kind ``output``."""
        kinds = self.columns["kind"]
        for i in np.asarray(ids).tolist():
            if kinds[i] == "hidden":
                kinds[i] = "output"

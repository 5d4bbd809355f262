"""Accumulates nodes and blocks while a model is exported (used by handlers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError
from ..graphs.block import Block, make_block

__all__ = ["GraphBuilder", "PendingInput", "StackedStates"]


@dataclass(frozen=True)
class PendingInput:
    """The model input before a weighted layer fixed its number of features."""


@dataclass
class StackedStates:
    """Final hidden states of a recurrent module, one id array per (layer, direction)."""

    states: list[np.ndarray]


def _to_numpy(t: Any) -> np.ndarray:
    if hasattr(t, "detach"):
        return t.detach().cpu().numpy()
    return np.asarray(t)


@dataclass
class GraphBuilder:
    """Collects the node table and blocks of a graph under construction.

    Handlers call :meth:`resolve_features`, :meth:`add_units`, :meth:`add_gates`,
    :meth:`add_block` and :meth:`annotate`.
    """

    columns: dict[str, list[Any]] = field(
        default_factory=lambda: {
            c: [] for c in ("name", "kind", "group", "index", "unit", "gate", "direction", "module", "activation")
        }
    )
    blocks: list[Block] = field(default_factory=list)
    n_groups: int = 0
    input_ids: np.ndarray | None = None

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
            ids = self._add([f"input[{i}]" for i in range(n_features)], kind="input", group=0, module="")
            self.input_ids = ids
            return ids
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

    def add_units(self, n: int, *, module: str, direction: int = 0, label: str = "") -> np.ndarray:
        """Add ``n`` unit nodes (kind ``hidden``) in a new group; return their ids."""
        self.n_groups += 1
        base = ".".join(x for x in (module, label.rstrip(".")) if x) or "unit"
        names = [f"{base}[{i}]" for i in range(n)]
        return self._add(names, kind="hidden", group=self.n_groups, module=module, direction=direction)

    def add_gates(self, units: np.ndarray, gates: str, *, module: str, direction: int = 0, label: str = "") -> np.ndarray:
        """Add gate nodes for ``units`` in torch row order (gate-major); return their ids."""
        group = self.columns["group"][int(units[0])] if units.size else self.n_groups
        prefix = ".".join(x for x in (module, label) if x) + "."
        names, gate_col, unit_col = [], [], []
        for g in gates:
            for i, u in enumerate(units):
                names.append(f"{prefix}{g}[{i}]")
                gate_col.append(g)
                unit_col.append(int(u))
        return self._add(names, kind="gate", group=group, module=module, direction=direction, gate=gate_col, unit=unit_col)

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
        try:
            block = make_block(
                name=name, weight=w, sources=sources, targets=targets, bias=b,
                module=module, param=param, bias_param=bias_param, delay=delay,
            )
        except GraphError as exc:
            raise GraphError(f"While exporting module {module!r}: {exc}") from None
        self.blocks.append(block)
        return block

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

"""PruningPlan: what to remove and why, extended to coupled rows and columns, saved and replayed.

A plan is a list of steps. Each step removes explicit edges (identified by block name, row and
column) and/or units (identified by node name) for a recorded reason, and may fold a constant
for each removed unit into the biases downstream. Units are the coupled objects of the graph:
removing a unit removes

* every edge into the unit and into its gate rows (an LSTM unit's four rows of ``W_ih`` and
  ``W_hh``, a GRU unit's three),
* every edge out of it: its recurrent column of ``W_hh`` and the next layer's input column.

Plans refer to blocks and nodes by name, so a plan made on one graph replays on any graph of
the same architecture (same block names and shapes), e.g. a fresh initialisation of the model;
on any other graph it is refused with a message naming the differing block and shapes. Edge
ids are checked against the blocks when a plan is built or loaded (a negative id never wraps
around). Per-block keep masks (True = keep) convert both ways: :meth:`PruningPlan.remove_masked`
and :meth:`PruningPlan.keep_masks`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import (
    EmptySelectionWarning,
    FileFormatError,
    GraphError,
    InvalidParameterError,
    param_error,
)
from ..graphs.signed import NODE_COLUMNS, SignedGraph
from ..io._atomic import atomic_write, check_in_path, check_out_path
from ..utils.validation import check_graph
from .selectors import Selection, SelectorLike, checked_mask, evaluate_selector

__all__ = ["PlanStep", "PruningPlan", "check_layers_kept"]

_FORMAT = "netstruct-pruning-plan"


@dataclass(frozen=True)
class PlanStep:
    """One recorded pruning decision.

    Attributes
    ----------
    reason : str
        Why (the query, the method and its parameters).
    edges : dict of str to tuple of int
        Block name -> flat indices ``row * n_in + col`` of explicitly removed edges.
    units : tuple of str
        Names of removed units (their coupled rows and columns go with them).
    constants : dict of str to float
        Unit name -> constant output folded into the downstream biases before removal.
    meta : dict
        JSON-serialisable details (method, scores, thresholds).
    """

    reason: str
    edges: dict[str, tuple[int, ...]] = field(default_factory=dict)
    units: tuple[str, ...] = ()
    constants: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_edges(self) -> int:
        """Number of explicitly selected edges (coupled edges of removed units not counted)."""
        return int(sum(len(v) for v in self.edges.values()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "reason": self.reason,
            "edges": {k: list(v) for k, v in self.edges.items()},
            "units": list(self.units),
            "constants": dict(self.constants),
            "meta": self.meta,
        }


def _architecture(G: SignedGraph) -> dict[str, list[int]]:
    return {b.name: [int(s) for s in b.shape] for b in G.blocks}


def _layer_label(G: SignedGraph, group: int) -> str:
    nodes = np.flatnonzero(G.node_column("group") == group)
    mods = sorted({str(m) for m in G.node_column("module")[nodes]})
    return f"layer {group} (module {', '.join(repr(m) for m in mods)})"


def check_layers_kept(
    G: SignedGraph, removed_units: np.ndarray, edge_mask: np.ndarray, func: str
) -> None:
    """Refuse a removal that leaves a hidden layer with no working unit (inputs already validated).

    A hidden unit works when it keeps an incoming edge (into itself or one of its gate rows) and
    an outgoing edge to another unit.

    Raises
    ------
    GraphError
        Naming the layer that would be emptied.
    """
    a = G.edge_arrays()
    unit = G.node_column("unit")
    kind = G.node_column("kind")
    group = G.node_column("group")
    n = G.n_nodes
    gone = removed_units[unit]
    live = ~edge_mask & ~gone[a["source"]] & ~gone[a["target"]]
    src, tgt = a["source"][live], unit[a["target"][live]]
    other = tgt != src
    indeg = np.bincount(tgt, minlength=n)
    outdeg = np.bincount(src[other], minlength=n)
    is_unit = (kind == "hidden") & (unit == np.arange(n))
    works = is_unit & ~removed_units & (indeg > 0) & (outdeg > 0)
    # per hidden layer (one bincount each, not one pass over the nodes per layer): its unit
    # count, removed units and working units; an emptied layer is named before one whose
    # remaining units all lost their inputs or outputs, each in layer order
    layer, pos = np.unique(group[is_unit], return_inverse=True)
    size = np.bincount(pos, minlength=layer.size)
    removed = np.bincount(pos, weights=removed_units[is_unit], minlength=layer.size)
    working = np.bincount(pos, weights=works[is_unit], minlength=layer.size)
    bad = np.concatenate([np.flatnonzero(removed == size), np.flatnonzero(working == 0)])
    if bad.size:
        k = int(bad[0])
        how = (
            "removes every unit"
            if removed[k] == size[k]
            else "leaves no unit with both inputs and outputs"
        )
        raise GraphError(
            f"{func}: the selection {how} of {_layer_label(G, int(layer[k]))}, which has {int(size[k])} "
            "units; keep at least one unit per hidden layer (narrow the query)."
        )


class PruningPlan:
    """An ordered, replayable record of pruning steps (immutable; methods return new plans).

    Parameters
    ----------
    architecture : dict of str to [int, int]
        Block name -> weight shape of the graphs the plan applies to.
    steps : sequence of PlanStep

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct.pruning import PruningPlan, smallest
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    >>> plan = PruningPlan.for_graph(G).remove_units(G, "name == '0[1]'", reason="unit 1 is dull")
    >>> plan = plan.remove_edges(G, smallest("abs(weight)", k=2), reason="two smallest weights")
    >>> H = plan.apply(G, shrink=True)
    >>> [b.shape for b in H.blocks]
    [(2, 4), (2, 2)]
    >>> plan.summary()[["reason", "n_units"]].values.tolist()
    [['unit 1 is dull', 1], ['two smallest weights', 0]]
    """

    def __init__(
        self, architecture: dict[str, list[int]], steps: tuple[PlanStep, ...] | list[PlanStep] = ()
    ) -> None:
        if not isinstance(architecture, dict):
            raise param_error(
                "architecture",
                "PruningPlan",
                "a dict of block name -> weight shape (use PruningPlan.for_graph(G))",
                type(architecture).__name__,
            )
        self.architecture = {str(k): [int(x) for x in v] for k, v in architecture.items()}
        self.steps = tuple(steps)
        _check_steps(self.architecture, self.steps)

    # ------------------------------------------------------------------ building
    @classmethod
    def for_graph(cls, G: SignedGraph) -> PruningPlan:
        """An empty plan for graphs with ``G``'s architecture."""
        check_graph(G, "PruningPlan.for_graph")
        return cls(_architecture(G))

    def _check_graph(self, G: SignedGraph, func: str) -> None:
        check_graph(G, func)
        arch = _architecture(G)
        if arch != self.architecture:
            diff = sorted(
                k
                for k in set(arch) | set(self.architecture)
                if arch.get(k) != self.architecture.get(k)
            )
            raise GraphError(
                f"{func}: the graph's architecture differs from the plan's at block(s) {diff} "
                f"(graph {[arch.get(k) for k in diff]}, plan {[self.architecture.get(k) for k in diff]}); "
                "a plan replays only on graphs with the same block names and shapes."
            )

    def _with(self, step: PlanStep) -> PruningPlan:
        _check_steps(self.architecture, (step,))  # the earlier steps are already checked
        new = object.__new__(PruningPlan)
        new.architecture, new.steps = self.architecture, self.steps + (step,)
        return new

    def remove_edges(
        self,
        G: SignedGraph,
        selection: SelectorLike,
        *,
        reason: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> PruningPlan:
        """Add a step removing the edges of ``G`` that ``selection`` picks from :meth:`SignedGraph.edges`.

        Parameters
        ----------
        G : SignedGraph
        selection : str, callable, boolean mask or Selection
        reason : str, optional
            Recorded with the step (default: the query's text).
        meta : dict, optional
            JSON-serialisable details stored with the step.
        """
        self._check_graph(G, "PruningPlan.remove_edges")
        em = evaluate_selector(G.edges(), selection, "PruningPlan.remove_edges")
        _warn_if_empty(em, selection, "edges", "PruningPlan.remove_edges")
        return self._with(
            PlanStep(
                reason=reason or _describe(selection), edges=_edge_ids(G, em), meta=dict(meta or {})
            )
        )

    def remove_units(
        self,
        G: SignedGraph,
        selection: SelectorLike,
        *,
        reason: str | None = None,
        constants: dict[str, float] | np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> PruningPlan:
        """Add a step removing the units that ``selection`` picks from :meth:`SignedGraph.nodes`.

        A selected gate row stands for its unit. Removal takes every coupled row and column along
        (see the module docstring). Removing every unit of a hidden layer is refused.

        Parameters
        ----------
        G : SignedGraph
        selection : str, callable, boolean mask or Selection
        reason : str, optional
        constants : dict of unit name to float, or array of shape (n_nodes,), optional
            Constant output of each removed unit, folded into the biases of the units it feeds
            when the plan is applied (exact for units that are constant on the data).
        meta : dict, optional

        Raises
        ------
        GraphError
            The selection removes every unit of a hidden layer (the message names the layer).
        """
        func = "PruningPlan.remove_units"
        self._check_graph(G, func)
        nm = _node_selection(G, selection, func)
        _warn_if_empty(nm, selection, "nodes", func)
        unit = G.node_column("unit")
        units = np.zeros(G.n_nodes, dtype=bool)
        units[unit[nm]] = True
        check_layers_kept(G, units, np.zeros(G.n_edges, dtype=bool), func)
        names = G.node_column("name")
        consts: dict[str, float] = {}
        if constants is not None:
            if isinstance(constants, dict):
                unknown = set(constants) - set(names[units])
                if unknown:
                    raise param_error(
                        "constants",
                        func,
                        "a mapping over the removed units' names",
                        sorted(unknown)[:5],
                    )
                consts = {str(k): float(v) for k, v in constants.items()}
            else:
                arr = np.asarray(constants, dtype=np.float64)
                if arr.shape != (G.n_nodes,) or not np.isfinite(arr[units]).all():
                    raise param_error(
                        "constants",
                        func,
                        f"a finite array of shape ({G.n_nodes},)",
                        f"shape {arr.shape}",
                    )
                consts = {str(names[i]): float(arr[i]) for i in np.flatnonzero(units)}
        step = PlanStep(
            reason=reason or _describe(selection),
            units=tuple(str(s) for s in names[units]),
            constants=consts,
            meta=dict(meta or {}),
        )
        return self._with(step)

    def remove_masked(
        self,
        G: SignedGraph,
        keep: Mapping[str, np.ndarray],
        *,
        reason: str = "mask",
        meta: dict[str, Any] | None = None,
    ) -> PruningPlan:
        """Add a step removing every entry where a per-block **keep** mask is False.

        This is the one mask convention of netstruct: a dict by block name of boolean arrays
        of the block's shape, True = keep (as :meth:`keep_masks`, ``block_masks`` and every
        pruning result's masks). Blocks not named are kept whole; every False entry is recorded
        (also those already absent in ``G``), so the step replays on a fresh dense model.

        Parameters
        ----------
        G : SignedGraph
        keep : mapping of block name to bool array of the block's shape
        reason : str, default="mask"
        meta : dict, optional

        Raises
        ------
        InvalidParameterError
            ``keep`` is not a mapping (a flat vector, e.g. LEGCNet's ``prune_mask`` where True
            means *prune*, is refused: use the result's ``plan``), names an unknown block, or
            has the wrong shape or dtype.

        Examples
        --------
        >>> import numpy as np, torch, netstruct as ns
        >>> from netstruct.pruning import PruningPlan
        >>> G = ns.from_torch(torch.nn.Linear(2, 2))
        >>> PruningPlan.for_graph(G).remove_masked(G, {"weight": np.eye(2, dtype=bool)}).apply(G).n_edges
        2
        """
        func = "PruningPlan.remove_masked"
        self._check_graph(G, func)
        edges = _masked_edge_ids(G, keep, func)
        return self._with(PlanStep(reason=reason, edges=edges, meta=dict(meta or {})))

    def keep_masks(self, G: SignedGraph) -> dict[str, np.ndarray]:
        """Per-block keep masks (True = keep) of ``G`` after the plan, coupled edges included.

        The inverse of :meth:`remove_masked`: ``PruningPlan.for_graph(G).remove_masked(G,
        plan.keep_masks(G))`` removes the same edges as ``plan``.

        Examples
        --------
        >>> import torch, netstruct as ns
        >>> from netstruct.pruning import PruningPlan
        >>> G = ns.from_torch(torch.nn.Linear(2, 2))
        >>> PruningPlan.for_graph(G).remove_edges(G, "row == 0").keep_masks(G)["weight"].tolist()
        [[False, False], [True, True]]
        """
        em = self.edge_mask(G)
        a = G.edge_arrays()
        out = {}
        for li, b in enumerate(G.blocks):
            m = b.mask.copy()
            gone = em & (a["layer"] == li)
            m[a["row"][gone], a["col"][gone]] = False
            out[b.name] = m
        return out

    def __add__(self, other: PruningPlan) -> PruningPlan:
        if not isinstance(other, PruningPlan):
            return NotImplemented
        if other.architecture != self.architecture:
            raise GraphError("Plans for different architectures cannot be concatenated.")
        return PruningPlan(self.architecture, self.steps + other.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return (
            f"<PruningPlan: {len(self.steps)} steps, {sum(s.n_edges for s in self.steps)} edges, "
            f"{sum(len(s.units) for s in self.steps)} units>"
        )

    # ------------------------------------------------------------------ applying
    def edge_mask(self, G: SignedGraph) -> np.ndarray:
        """Boolean mask over ``G.edges()``: every edge the plan removes (explicit and coupled)."""
        self._check_graph(G, "PruningPlan.edge_mask")
        em = np.zeros(G.n_edges, dtype=bool)
        units = np.zeros(G.n_nodes, dtype=bool)
        for s in self.steps:
            em |= _edge_mask(G, s.edges)
            units |= _unit_mask(G, s.units)
        return em | _coupled(G, units)

    def removed_units(self, G: SignedGraph) -> np.ndarray:
        """Ids of the units the plan removes explicitly."""
        self._check_graph(G, "PruningPlan.removed_units")
        units = np.zeros(G.n_nodes, dtype=bool)
        for s in self.steps:
            units |= _unit_mask(G, s.units)
        return np.flatnonzero(units)

    def apply(self, G: SignedGraph, *, shrink: bool = False) -> SignedGraph:
        """Replay the plan on ``G``: fold constants, remove edges and units, optionally shrink.

        Parameters
        ----------
        G : SignedGraph
            A graph with the plan's architecture (edges already absent are skipped).
        shrink : bool, default=False
            Physically remove the units left without effect (:func:`netstruct.shrink`); the
            re-imported model is smaller and gives the same outputs as the masked one.

        Returns
        -------
        SignedGraph
            ``provenance["pruning"]`` lists each step's reason and counts.

        Raises
        ------
        GraphError
            Architecture mismatch; a constant to fold into a block without bias; a hidden layer
            left without a working unit.
        """
        func = "PruningPlan.apply"
        self._check_graph(G, func)
        if not isinstance(shrink, bool):
            raise param_error("shrink", func, "a bool", shrink)
        if shrink and self.steps and all(not s.edges and not s.constants for s in self.steps):
            fast = self._apply_units_shrunk(G, func)
            if fast is not None:
                return fast
        H = G
        all_units = np.zeros(G.n_nodes, dtype=bool)
        record = list(G.provenance.get("pruning", []))
        for s in self.steps:
            units = _unit_mask(H, s.units)
            all_units |= units
            if s.constants:
                H = _fold(H, s.constants)
            em = _edge_mask(H, s.edges) | _coupled(H, units)
            check_layers_kept(H, all_units, em, func)
            n_before = H.n_edges
            H = _remove(H, em)
            record.append(
                {
                    "reason": s.reason,
                    "n_edges": int(n_before - H.n_edges),
                    "n_units": len(s.units),
                    "n_folded": len(s.constants),
                }
            )
        H = _exclude_from_norms(H, all_units)
        H = _with_provenance(H, pruning=record)
        if shrink:
            from ..convert.shrink import shrink as _shrink

            H = _shrink(H)
        return H

    def removed_unit_names(self, G: SignedGraph, func: str) -> list[str]:
        """Names of the units this plan removes, for a plan that only removes units.

        Used by :func:`netstruct.shrink` (``units=plan``), which asks the plan instead of
        importing this module.

        Raises
        ------
        GraphError
            ``G`` has another architecture.
        InvalidParameterError
            The plan also removes edges or folds constants (apply it with
            ``plan.apply(G, shrink=True)``).
        """
        self._check_graph(G, func)
        if any(s.edges or s.constants for s in self.steps):
            raise param_error(
                "units",
                func,
                "a plan that only removes units (apply plans that remove "
                "edges or fold constants with plan.apply(G, shrink=True))",
                self,
            )
        return [u for s in self.steps for u in s.units]

    def _apply_units_shrunk(self, G: SignedGraph, func: str) -> SignedGraph | None:
        """Unit-only plans with ``shrink=True``: shrink directly, without the masked graph.

        Same result as masking then shrinking (:func:`netstruct.shrink` with ``units=``), same
        checks (a hidden layer left without a working unit is refused) and the same record.
        None when that equality is not guaranteed (recurrent units, whose layers shrink to a
        common size, or units shrink cannot remove, which masking keeps): the caller masks.
        """
        from ..convert.shrink import shrink as _shrink

        all_units = np.zeros(G.n_nodes, dtype=bool)
        em = np.zeros(G.n_edges, dtype=bool)
        record = list(G.provenance.get("pruning", []))
        for s in self.steps:
            units = _unit_mask(G, s.units)
            all_units |= units
            new = _coupled(G, units) & ~em
            em |= new
            record.append(
                {
                    "reason": s.reason,
                    "n_edges": int(new.sum()),
                    "n_units": len(s.units),
                    "n_folded": 0,
                }
            )
        check_layers_kept(G, all_units, em, func)
        modules = (G._spec or {}).get("modules", {})  # read only
        removed_modules = set(G.node_column("module")[all_units].tolist())
        if any(
            modules.get(m, {}).get("handler") in ("RNN", "LSTM", "GRU") for m in removed_modules
        ):
            return None
        try:
            H = _shrink(G, units=all_units)
        except GraphError:
            return None
        return _with_provenance(H, pruning=record)

    def summary(self) -> pd.DataFrame:
        """One row per step: reason, explicit edges, units, folded constants."""
        return pd.DataFrame(
            [
                {
                    "step": i,
                    "reason": s.reason,
                    "n_edges": s.n_edges,
                    "n_units": len(s.units),
                    "n_constants": len(s.constants),
                }
                for i, s in enumerate(self.steps)
            ],
            columns=["step", "reason", "n_edges", "n_units", "n_constants"],
        )

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (see :meth:`from_dict`)."""
        return {
            "format": _FORMAT,
            "version": 1,
            "architecture": self.architecture,
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PruningPlan:
        """Rebuild a plan from :meth:`to_dict` output.

        Raises
        ------
        FileFormatError
            The data is not a netstruct pruning plan.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise FileFormatError(
                "This is not a netstruct pruning plan (missing 'format': 'netstruct-pruning-plan')."
            )
        try:
            steps = [
                PlanStep(
                    reason=str(s["reason"]),
                    edges={k: tuple(int(i) for i in v) for k, v in s["edges"].items()},
                    units=tuple(str(u) for u in s["units"]),
                    constants={str(k): float(v) for k, v in s["constants"].items()},
                    meta=dict(s.get("meta", {})),
                )
                for s in data["steps"]
            ]
            return cls(data["architecture"], steps)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FileFormatError(
                f"The pruning plan is damaged ({type(exc).__name__}: {exc})."
            ) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the plan as JSON (atomically: a partial file never replaces a good one).

        Examples
        --------
        >>> import os, tempfile, torch, netstruct as ns
        >>> from netstruct.pruning import PruningPlan
        >>> G = ns.from_torch(torch.nn.Linear(3, 2))
        >>> plan = PruningPlan.for_graph(G).remove_edges(G, "weight < 0")
        >>> path = os.path.join(tempfile.mkdtemp(), "plan.json")
        >>> plan.save(path)
        >>> PruningPlan.load(path).to_dict() == plan.to_dict()
        True
        """
        p = check_out_path(path, "PruningPlan.save")
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
        with atomic_write(p, "w", encoding="utf-8") as fh:
            fh.write(text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PruningPlan:
        """Read a plan written by :meth:`save`."""
        p = check_in_path(path, "PruningPlan.load")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"{str(p)!r} is not a JSON pruning plan ({exc}).") from None
        return cls.from_dict(data)


# ---------------------------------------------------------------------- helpers (inputs validated)
def _check_steps(architecture: dict[str, list[int]], steps: tuple[PlanStep, ...]) -> None:
    """Refuse edge ids outside their block (a negative id would silently wrap to the end)."""
    for i, s in enumerate(steps):
        if not isinstance(s, PlanStep):
            raise param_error("steps", "PruningPlan", "a sequence of PlanStep", type(s).__name__)
        for name, flat in s.edges.items():
            if name not in architecture:
                raise InvalidParameterError(
                    f"PruningPlan: step {i} ({s.reason!r}) removes edges of block {name!r}, which the "
                    f"plan's architecture does not have (blocks {list(architecture)[:8]})."
                )
            shape = architecture[name]
            size = int(shape[0]) * int(shape[1]) if len(shape) >= 2 else int(np.prod(shape))
            ids = np.asarray(flat, dtype=np.int64)
            bad = ids[(ids < 0) | (ids >= size)]
            if bad.size:
                raise InvalidParameterError(
                    f"PruningPlan: step {i} ({s.reason!r}) removes edge id {int(bad[0])} of block {name!r}, "
                    f"outside [0, {size}) for its shape {shape}; edge ids are row * n_in + col and never "
                    "negative. Build steps with remove_edges/remove_masked rather than by hand."
                )


def _warn_if_empty(mask: np.ndarray, selection: Any, what: str, func: str) -> None:
    """Warn when a query (not an explicit mask) selects nothing."""
    if (
        mask.any()
        or mask.size == 0
        or not isinstance(selection, (str, Selection))
        and not callable(selection)
    ):
        return
    warnings.warn(
        f"{func}: the {what} selection {_describe(selection)!r} matches none of the {mask.size} {what}; "
        "nothing is removed by it. Check the query's column names and thresholds.",
        EmptySelectionWarning,
        stacklevel=3,
    )


def _masked_edge_ids(G: SignedGraph, keep: Any, func: str) -> dict[str, tuple[int, ...]]:
    """Flat ids of the entries a keep-mask dict removes (validated here)."""
    if not isinstance(keep, Mapping):
        raise InvalidParameterError(
            f"The 'keep' parameter of {func} must be a dict of block name -> boolean keep mask of the "
            f"block's shape (True = keep). Got {type(keep).__name__} instead. A flat vector is "
            "ambiguous (LEGCNet's prune_mask means True = prune): pass the result's .plan to "
            "netstruct.prune, or build the dict with PruningPlan.keep_masks."
        )
    names = [b.name for b in G.blocks]
    unknown = sorted(set(keep) - set(names))
    if unknown:
        raise param_error("keep", func, f"a mapping over block names {names}", unknown)
    out: dict[str, tuple[int, ...]] = {}
    for b in G.blocks:
        if b.name not in keep:
            continue
        m = np.asarray(keep[b.name])
        if m.shape != tuple(b.shape) or m.dtype != np.bool_:
            raise param_error(
                "keep",
                func,
                f"bool arrays of the blocks' shapes (block {b.name!r}: {tuple(b.shape)})",
                f"{m.dtype} {m.shape}",
            )
        flat = np.flatnonzero(~m)  # absent entries too: the plan replays on a dense fresh init
        if flat.size:
            out[b.name] = tuple(int(i) for i in flat)
    return out


def _describe(selection: Any) -> str:
    if isinstance(selection, str):
        return selection
    return repr(selection) if not isinstance(selection, (np.ndarray, pd.Series)) else "boolean mask"


def _edge_ids(G: SignedGraph, em: np.ndarray) -> dict[str, tuple[int, ...]]:
    a = G.edge_arrays()
    out: dict[str, tuple[int, ...]] = {}
    for li, b in enumerate(G.blocks):
        sel = em & (a["layer"] == li)
        if sel.any():
            flat = a["row"][sel].astype(np.int64) * b.shape[1] + a["col"][sel]
            out[b.name] = tuple(int(i) for i in np.sort(flat))
    return out


def _edge_mask(G: SignedGraph, edges: dict[str, tuple[int, ...]]) -> np.ndarray:
    em = np.zeros(G.n_edges, dtype=bool)
    if not edges:
        return em
    a = G.edge_arrays()
    for name, flat in edges.items():
        li = G.block_index(name)
        b = G.blocks[li]
        sel = np.zeros(b.weight.size, dtype=bool)
        sel[np.asarray(flat, dtype=np.int64)] = True
        rows = a["layer"] == li
        em[rows] = sel[a["row"][rows].astype(np.int64) * b.shape[1] + a["col"][rows]]
    return em


def _unit_mask(G: SignedGraph, names: tuple[str, ...]) -> np.ndarray:
    units = np.zeros(G.n_nodes, dtype=bool)
    if not names:
        return units
    ids = G._node_ids(names)  # node names are unique
    if (ids < 0).any():
        missing = sorted({n for n, i in zip(names, ids) if i < 0})
        raise GraphError(f"The plan removes units {missing[:5]} that this graph does not have.")
    units[G.node_column("unit")[ids]] = True
    return units


def _node_selection(G: SignedGraph, selection: Any, func: str) -> np.ndarray:
    """Boolean node mask of ``selection``; a boolean array needs no node table, only its length."""
    if isinstance(selection, np.ndarray) and selection.dtype == np.bool_:
        return checked_mask(selection, G.n_nodes, func)
    return evaluate_selector(G.nodes(), selection, func)


def _coupled(G: SignedGraph, units: np.ndarray) -> np.ndarray:
    """Edges into and out of every removed unit's coupling group (gate rows included).

    A removed unit takes along every unit tied to it (:func:`netstruct.graphs.coupling.coupled_units`:
    its gate rows, its norm node, residual-tied channels, a depthwise channel pair, the rest of its
    attention head). Structure edges (attention's token mixing, a composite layer's own sums) stay:
    cutting the weights around them already silences the group.
    """
    if not units.any():
        return np.zeros(G.n_edges, dtype=bool)
    from ..graphs.coupling import coupled_units

    a = G.edge_arrays()
    gone = units[G.node_column("unit")]
    group = coupled_units(G)
    gone = np.isin(group, group[gone])
    em = gone[a["source"]] | gone[a["target"]]
    internal = set((G._spec or {}).get("internal", ()))  # read only
    fixed = [i for i, b in enumerate(G.blocks) if b.kind == "operator" or b.name in internal]
    if fixed:
        em &= ~np.isin(a["layer"], fixed)
    return em


def _fold(G: SignedGraph, constants: dict[str, float]) -> SignedGraph:
    """Add ``w * c`` of every edge leaving a unit with constant output ``c`` to its target's bias."""
    names = G.node_column("name")
    unit = G.node_column("unit")
    c = np.zeros(G.n_nodes, dtype=np.float64)
    has = np.zeros(G.n_nodes, dtype=bool)
    idx = {str(n): i for i, n in enumerate(names)}
    for k, v in constants.items():
        if k not in idx:
            raise GraphError(
                f"The plan folds a constant for unit {k!r}, which this graph does not have."
            )
        c[idx[k]], has[idx[k]] = v, True
    updates = {}
    for b in G.blocks:
        src_has = has[b.sources]
        # a unit's own recurrent column feeds its gate rows: those edges vanish with the unit
        own = unit[b.targets][:, None] == b.sources[None, :]
        w = np.where(own, 0.0, b.weight.astype(np.float64))[:, src_has]
        if not w.size or not np.any(w):
            continue
        if b.bias is None:
            raise GraphError(
                f"Cannot fold the constant output of removed units into block {b.name!r}: its module has no bias. "
                "Remove the units without folding (constants=None)."
            )
        shift = w @ c[b.sources[src_has]]
        updates[b.name] = {"bias": (b.bias.astype(np.float64) + shift).astype(np.float32)}
    return G.replace_blocks(updates) if updates else G


def _exclude_from_norms(G: SignedGraph, units: np.ndarray) -> SignedGraph:
    """Removed units of a normalised width leave every LayerNorm/RMSNorm's statistics.

    The norm handler defines what that means (:func:`netstruct.convert.layers.
    exclude_from_norm_statistics`): the masked norm computes its statistics over the kept
    entries, as the shrunk norm does, so the masked model equals the shrunk one.
    """
    if not units.any():
        return G
    from ..convert.layers import exclude_from_norm_statistics, stat_norm_blocks

    if not stat_norm_blocks(G):
        return G
    from ..graphs.coupling import coupled_units

    group = coupled_units(G)
    gone = np.isin(group, group[units[G.node_column("unit")]])
    return exclude_from_norm_statistics(G, gone)


def _remove(G: SignedGraph, em: np.ndarray) -> SignedGraph:
    if not em.any():
        return G
    return G.remove_edges(em)


def _with_provenance(G: SignedGraph, **items: Any) -> SignedGraph:
    """``G`` with ``items`` added to its provenance (arrays shared; ``G`` is already valid)."""
    from ..convert.to_torch import _SPEC_JSON, _STRUCTURE_KEY, remember_structure_key

    prov = dict(G._provenance)  # read only: the new graph copies it one level deep
    prov.update(items)
    H = SignedGraph._derived(
        {c: G.node_column(c) for c in NODE_COLUMNS},
        G.blocks,
        spec=G._spec,
        provenance=prov,
        node_attrs={k: G.node_column(k) for k in G.node_attr_names},
        edge_attrs={k: G.edge_arrays()[k] for k in G.edge_attr_names},
    )
    # same spec, nodes and blocks: the same wiring fingerprint, when G's is known
    return remember_structure_key(H, G.__dict__.get(_STRUCTURE_KEY), G.__dict__.get(_SPEC_JSON))

"""The outcome of a pruning run and the helpers every pruning rule shares.

A rule decides, for each *prunable* block (every block whose targets are not readout units),
which unit-level connections to keep; :func:`_apply` expands that decision to every gate
row of a unit, applies it to the graph and measures the realised sparsity (spec G11: absent
entries over all entries of the prunable blocks; biases and the readout are excluded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .adjacency import unit_map

__all__ = ["PruneResult"]


@dataclass(frozen=True)
class PruneResult:
    """Outcome of a pruning run.

    Attributes
    ----------
    graph : SignedGraph
        The pruned graph (masks applied) with score columns attached as node attributes.
    masks : dict of str to ndarray of bool
        Entry-level keep masks of the prunable blocks (gate-expanded); with
        ``structured=True`` also the readout masks (columns of removed units are False).
    sparsity : dict of str to float
        Realised sparsity (entries absent / entries) of each prunable block.
    global_sparsity : float
        Over all prunable blocks together.
    config : dict
        Every setting used (for provenance).
    plan : PruningPlan
        The same decision, replayable (a property; see :attr:`plan`).

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> b = ns.make_block(name="hh", weight=np.eye(2), sources=[0, 1], targets=[0, 1], delay=1)
    >>> res = ns.lattice.magnitude_prune(ns.SignedGraph({"name": ["h0", "h1"]}, [b]), amount=0.5)
    >>> res.global_sparsity, res.sparsity
    (0.5, {'hh': 0.5})
    """

    graph: Any
    masks: dict[str, NDArray[np.bool_]]
    sparsity: dict[str, float]
    global_sparsity: float
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def plan(self) -> Any:
        """The decision as a replayable :class:`~netstruct.pruning.PruningPlan` (True = keep masks).

        ``netstruct.prune(G, res)`` (or ``res.plan.apply(G)``) removes exactly the entries
        where ``masks`` is False, on the graph it was computed from or on any graph of the same
        architecture (a fresh initialisation).
        """
        import json

        from ..pruning.plan import PruningPlan

        cfg = json.loads(json.dumps(self.config, default=str))
        method = "lattice_prune" if "variant" in cfg else "lattice baseline"
        reason = f"{method}: " + ", ".join(
            f"{k}={cfg[k]}"
            for k in ("variant", "level", "quantile", "amount")
            if cfg.get(k) is not None
        )
        return PruningPlan.for_graph(self.graph).remove_masked(
            self.graph, self.masks, reason=reason, meta={"method": method, "config": cfg}
        )


def _prunable(G: Any) -> list[int]:
    """Blocks whose targets are not readout units."""
    kind = G.node_column("kind")
    unit = G.node_column("unit")
    return [i for i, b in enumerate(G.blocks) if not (kind[unit[b.targets]] == "output").all()]


def _unit_ids(G: Any) -> NDArray[np.int64]:
    """Node ids of the units (gate nodes excluded)."""
    unit = G.node_column("unit")
    return np.flatnonzero(unit == np.arange(G.n_nodes)).astype(np.int64)


def _entry_counts(G: Any, i: int) -> NDArray[np.int64]:
    """Present (unmasked) entries behind each unit-level connection of block ``i``."""
    um = unit_map(G, i)
    counts = np.zeros((um.post_units.size, um.pre_units.size), dtype=np.int64)
    m = G.blocks[i].mask
    r = np.repeat(um.row_to_post, m.shape[1])
    c = np.tile(um.col_to_pre, m.shape[0])
    np.add.at(counts, (r, c), m.ravel().astype(np.int64))
    return counts


def _closest_prefix(counts: NDArray[np.int64], need: int) -> int:
    """Length k of the prefix of ``counts`` whose sum is closest to ``need`` (ties: shorter)."""
    cum = np.concatenate([[0], np.cumsum(counts)])
    return int(np.argmin(np.abs(cum - need)))


def _apply(
    G: Any,
    keep_unit: dict[int, NDArray[np.bool_]],
    config: dict[str, Any],
    attrs: dict[str, Any],
    extra: dict[int, NDArray[np.bool_]] | None = None,
) -> PruneResult:
    """Apply unit-level keep masks (and entry-level ``extra`` masks of other blocks)."""
    updates, masks, sparsity = {}, {}, {}
    zeros = total = 0
    for i, Ku in keep_unit.items():
        b = G.blocks[i]
        m = unit_map(G, i).expand(Ku) & b.mask
        updates[i] = {"mask": m}
        masks[b.name] = m
        sparsity[b.name] = float(1.0 - m.mean())
        zeros += int((~m).sum())
        total += m.size
    for i, m in (extra or {}).items():
        m = m & G.blocks[i].mask
        updates[i] = {"mask": m}
        masks[G.blocks[i].name] = m
    H = G.replace_blocks(updates).with_node_attrs(**attrs)
    return PruneResult(H, masks, sparsity, zeros / max(total, 1), config)

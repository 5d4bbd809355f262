"""Is a block's lattice structure different from chance? Irreducible counts against null models.

Spec §8.2 (our addition): compare the numbers of meet- and join-irreducible units of a trained
block's formal context with those of an ensemble of sign-preserving randomizations of the
same block (:func:`netstruct.randomize_ensemble`), thresholded at the same quantile, and report
z-scores and empirical p-values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import param_error
from ..utils.validation import check_graph, check_scalar
from .context import FormalContext
from .irreducibles import join_irreducibles, meet_irreducibles

__all__ = ["IrreducibleNull", "irreducible_null"]


@dataclass(frozen=True)
class IrreducibleNull:
    """Observed irreducible counts of one block against a null-model ensemble.

    Attributes
    ----------
    block : str
    model : str
        The null model (see :data:`netstruct.algorithms.randomize.NULL_MODELS`).
    quantile : float
        Every context keeps the strongest ``1 - quantile`` of the unit connections.
    observed : dict
        ``{"meet": count, "join": count}`` of the trained block.
    null : dict
        ``{"meet": array, "join": array}``: the counts of each null sample.
    """

    block: str
    model: str
    quantile: float
    observed: dict[str, int]
    null: dict[str, np.ndarray]

    def zscore(self, kind: str = "meet") -> float:
        """``(observed - mean) / sd`` of the null counts.

        A null ensemble with zero spread gives ``0.0`` when the observed count equals it and
        ``±inf`` otherwise (never NaN).
        """
        x = self.null[kind].astype(np.float64)
        d = self.observed[kind] - x.mean()
        sd = x.std(ddof=1) if x.size > 1 else 0.0
        if sd > 0:
            return float(d / sd)
        return 0.0 if d == 0 else float(np.copysign(np.inf, d))

    def pvalue(self, kind: str = "meet") -> float:
        """Two-sided empirical p-value with the +1 correction: ``(1 + #|null - mean| >= |obs - mean|) / (n + 1)``."""
        x = self.null[kind].astype(np.float64)
        m = x.mean()
        extreme = np.abs(x - m) >= abs(self.observed[kind] - m) - 1e-12
        return float((1 + extreme.sum()) / (x.size + 1))

    def table(self) -> pd.DataFrame:
        """One row per kind: observed, null mean and sd, z-score, p-value."""
        rows = []
        for kind in ("meet", "join"):
            x = self.null[kind]
            rows.append(
                {
                    "block": self.block,
                    "model": self.model,
                    "quantile": self.quantile,
                    "kind": kind,
                    "observed": self.observed[kind],
                    "null mean": float(x.mean()),
                    "null sd": float(x.std(ddof=1)) if x.size > 1 else 0.0,
                    "z": self.zscore(kind),
                    "p": self.pvalue(kind),
                    "samples": int(x.size),
                }
            )
        return pd.DataFrame(rows)


def _counts(G: Any, block: str, quantile: float, aggregate: str) -> tuple[int, int]:
    ctx = FormalContext.from_block(G, block, quantile=quantile, aggregate=aggregate)
    return int(meet_irreducibles(ctx).mask.sum()), int(join_irreducibles(ctx).mask.sum())


def irreducible_null(
    G: Any,
    block: int | str,
    *,
    quantile: float = 0.8,
    model: str = "B",
    n_samples: int = 50,
    seed: int | np.random.Generator | None = 0,
    aggregate: str = "max",
) -> IrreducibleNull:
    """Meet/join-irreducible counts of a block against a sign-preserving null ensemble.

    Parameters
    ----------
    G : SignedGraph
    block : int or str
        The block (index or name).
    quantile : float in (0, 1), default=0.8
        Threshold of every context: the strongest ``1 - quantile`` of the unit connections
        (so every sample has the trained block's density).
    model : str, default="B"
        Null model: ``"B"`` permutes positive and negative weights within their sign (signed
        degrees and sign pattern kept); ``"E"`` also keeps each input unit's weights; see
        :func:`netstruct.randomize`.
    n_samples : int >= 2, default=50
    seed : int, Generator or None, default=0
    aggregate : {"max", "l2"}, default="max"
        How gate rows are aggregated to unit connections.

    Returns
    -------
    IrreducibleNull
        ``.zscore("meet")``, ``.pvalue("join")``, ``.table()``.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct.lattice import irreducible_null
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(12, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3)))
    >>> res = irreducible_null(G, 0, quantile=0.7, n_samples=20, seed=1)
    >>> res.table()[["kind", "observed", "samples"]].to_dict("list")["samples"]
    [20, 20]
    >>> bool(abs(res.zscore("meet")) < 10)
    True
    """
    from ..algorithms.randomize import randomize_ensemble

    func = "irreducible_null"
    check_graph(G, func)
    check_scalar(
        quantile,
        "quantile",
        func,
        min_value=0.0,
        max_value=1.0,
        include_min=False,
        include_max=False,
    )
    n_samples = int(check_scalar(n_samples, "n_samples", func, kind=int, min_value=2))
    names = [b.name for b in G.blocks]
    if isinstance(block, (int, np.integer)) and not isinstance(block, bool):
        if not 0 <= int(block) < len(names):
            raise param_error(
                "block", func, f"an index in [0, {len(names)}) or one of {names}", block
            )
        name = names[int(block)]
    elif isinstance(block, str) and block in names:
        name = block
    else:
        raise param_error("block", func, f"a block index or one of {names}", block)
    meet, join = _counts(G, name, quantile, aggregate)
    ens = randomize_ensemble(G, model, n_samples, blocks=name, seed=seed)
    null = np.array(
        [_counts(ens.graph(k), name, quantile, aggregate) for k in range(n_samples)], dtype=np.int64
    )
    return IrreducibleNull(
        name,
        str(model),
        float(quantile),
        {"meet": meet, "join": join},
        {"meet": null[:, 0], "join": null[:, 1]},
    )

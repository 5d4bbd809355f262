"""The ``lattice`` step of ``netstruct run``: irreducible units and lattice-based pruning.

Uses the public API of :mod:`netstruct.lattice` only. Every weight block is read as a formal
context (presynaptic units x postsynaptic units, thresholded at a quantile of its unit-level
strengths); the step counts meet-irreducible (postsynaptic) and join-irreducible (presynaptic)
units and how persistent meet-irreducibility is across level cuts. Then the recurrent model is
pruned with :func:`~netstruct.lattice.lattice_prune` at several target sparsities and compared
with :func:`~netstruct.lattice.magnitude_prune` at the same realised sparsity; every pruned
graph is re-imported with :func:`netstruct.to_torch` and evaluated on the test split.
"""

from __future__ import annotations

import html
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..exceptions import NetstructError, NetstructWarning
from .html import Section

if TYPE_CHECKING:  # pragma: no cover
    from .job import JobContext

__all__ = ["step_lattice", "block_irreducibles", "LATTICE_RULES"]

#: rules compared by the step: (label, function, keyword arguments). Lattice rules aim at the
#: target sparsity; the baselines prune to the realised sparsity of the first rule (magnitude:
#: globally; random: block by block). The structured rule is re-imported shrunk.
LATTICE_RULES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("lattice, binary (block contexts)", "lattice", {}),
    ("lattice, binary (unrolled window poset)", "lattice", {"construction": "unrolled_dm"}),
    ("lattice, continuous (persistence)", "lattice", {"variant": "continuous"}),
    ("lattice, binary, structured (shrunk)", "lattice", {"structured": True}),
    ("magnitude, entries (matched)", "magnitude", {"level": "entry"}),
    ("magnitude, unit connections (matched)", "magnitude", {"level": "unit"}),
    ("random, unit connections (matched per block)", "random", {"level": "unit"}),
    ("lattice, units irreducible in every block (shrunk)", "lattice", {"variant": "units"}),
    ("random units (matched count, shrunk)", "units", {"by": "random"}),
    ("magnitude units (matched count, shrunk)", "units", {"by": "magnitude"}),
)
_REF, _MAG_ENTRY, _MAG_UNIT = LATTICE_RULES[0][0], LATTICE_RULES[4][0], LATTICE_RULES[5][0]


def _is_recurrent(G: Any) -> bool:
    return any(b.delay > 0 for b in G.blocks)


def block_irreducibles(
    G: Any, quantiles: tuple[float, ...] = (0.5, 0.9), n_cuts: int = 10
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Irreducible units of every block's formal context, and their persistence over cuts.

    Parameters
    ----------
    G : SignedGraph
    quantiles : tuple of float, default=(0.5, 0.9)
        Each block's unit-level strengths ``A`` are cut at ``A > quantile(A, q)``.
    n_cuts : int, default=10
        Level cuts (quantiles 0.05..0.95 of the non-zero strengths) for the persistence.

    Returns
    -------
    table : DataFrame
        One row per block: units on each side, meet-irreducible post units and join-irreducible
        pre units at each quantile, mean meet persistence.
    persistence : dict of str to ndarray
        Per block, the persistence of meet-irreducibility of each post unit.

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.report.lattice_step import block_irreducibles
    >>> df, pers = block_irreducibles(ns.from_torch(ns.training.mlp([4, 6, 3], seed=0)))
    >>> df["block"].tolist(), pers["0.weight"].shape
    (['0.weight', '2.weight'], (6,))
    """
    from ..lattice import (
        FormalContext,
        join_irreducibles,
        level_cuts,
        meet_irreducibles,
        persistence,
        unit_adjacency,
    )

    rows, pers = [], {}
    for i, b in enumerate(G.blocks):
        A = unit_adjacency(G, i)[0]
        if A.max() <= 0:
            continue
        row: dict[str, Any] = {"block": b.name, "pre units": A.shape[1], "post units": A.shape[0]}
        for q in quantiles:
            B = A > np.quantile(A, q)
            K = (
                FormalContext(B.T) if B.any() else None
            )  # objects: pre units; attributes: post units
            row[f"meet-irreducible post units (q={q:g})"] = (
                meet_irreducibles(K).n_irreducible if K else 0
            )
            row[f"join-irreducible pre units (q={q:g})"] = (
                join_irreducibles(K).n_irreducible if K else 0
            )
        nz = A[A > 0]
        taus = np.unique(np.quantile(nz, np.linspace(0.05, 0.95, n_cuts)))
        taus = taus[taus < A.max()]
        p = persistence(level_cuts(A, taus)) if taus.size else np.zeros(A.shape[0])  # A: post x pre
        pers[b.name] = p
        row["mean meet persistence"] = float(p.mean())
        rows.append(row)
    return pd.DataFrame(rows), pers


def block_nulls(
    graphs: dict[str, Any],
    blocks: dict[tuple[str, str], Any],
    *,
    quantile: float = 0.9,
    n_samples: int = 30,
    seed: int = 0,
) -> pd.DataFrame:
    """Meet/join-irreducible counts of the given (model, block) pairs against null model B."""
    from ..lattice import irreducible_null

    frames = []
    for name, blk in blocks:
        t = irreducible_null(
            graphs[name], blk, quantile=quantile, model="B", n_samples=n_samples, seed=seed
        ).table()
        t = t.rename(columns={"model": "null model"})
        t["z"] = t["z"].where(
            np.isfinite(t["z"])
        )  # a null without spread: no z (JSON has no inf); p still says it
        t.insert(0, "model", name)
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _hidden_count(G: Any, column: str) -> int | None:
    nodes = G.nodes()
    if column not in nodes.columns:
        return None
    return int(nodes.loc[nodes["kind"] == "hidden", column].astype(bool).sum())


def _curves_figure(df: pd.DataFrame, dense: dict[str, float]) -> Any:
    import matplotlib.pyplot as plt

    from ..figures import COLUMN_WIDTH, PALETTE, paper_style

    models = list(dict.fromkeys(df["model"]))
    with paper_style():
        fig, axes = plt.subplots(
            1,
            len(models),
            figsize=(COLUMN_WIDTH * 1.3 * len(models), COLUMN_WIDTH * 0.8),
            squeeze=False,
        )
        for ax, model in zip(axes[0], models):
            d = df[(df["model"] == model) & (df["rule"] != "dense")]
            colours = [c for c in PALETTE if c != "#F0E442"]  # yellow is too faint for thin lines
            for j, (rule, g) in enumerate(d.groupby("rule", sort=False)):
                g = g.sort_values("sparsity")
                ls = "-" if rule.startswith("lattice") else "--"
                ax.plot(
                    g["sparsity"],
                    g["test accuracy (%)"],
                    ls,
                    marker="o",
                    ms=3,
                    color=colours[j % len(colours)],
                    label=rule,
                )
            ax.axhline(dense[model], color="0.5", lw=0.8, ls=":", label="dense")
            ax.set_xlabel("sparsity of the prunable blocks")
            ax.set_ylabel("test accuracy (%)")
            ax.set_ylim(0, 102)
            ax.set_title(model)
        axes[0][-1].legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _persistence_figure(pers: dict[tuple[str, str], np.ndarray]) -> Any:
    import matplotlib.pyplot as plt

    from ..figures import COLUMN_WIDTH, PALETTE, paper_style

    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.3, COLUMN_WIDTH * 0.7))
        for j, ((model, block), p) in enumerate(pers.items()):
            v = np.sort(p)[::-1]
            ax.step(
                np.arange(1, v.size + 1) / v.size,
                v,
                where="post",
                color=PALETTE[j % len(PALETTE)],
                label=f"{model}: {block} ({v.size} units)",
            )
        ax.set_xlabel("fraction of postsynaptic units (sorted)")
        ax.set_ylabel("meet-irreducible in this\nfraction of level cuts")
        ax.set_ylim(0, 1.05)
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def step_lattice(ctx: JobContext) -> Section:
    """Irreducible units of every model, and lattice vs magnitude pruning re-imported and evaluated.

    Parameters
    ----------
    ctx : JobContext
        After ``train`` and ``export``.

    Returns
    -------
    Section
        Tables ``lattice_irreducibles`` and ``lattice_pruning``, figures ``lattice_pruning``
        and ``lattice_persistence``; ``numbers`` holds every value shown.
    """
    from tqdm.auto import tqdm

    from .. import lattice as lat
    from ..convert.to_torch import to_torch
    from ..training import evaluate

    def n_params(m: Any) -> int:
        return int(sum(p.numel() for p in m.parameters()))

    o = ctx.options
    sec = Section("lattice", "Lattice analysis")
    graphs = {name: G.without_attrs() for name, G in ctx.graphs.items()}

    # ---- irreducible units of every block
    tables, pers = [], {}
    for name, G in graphs.items():
        df, p = block_irreducibles(G)
        df.insert(0, "model", name)
        tables.append(df)
        readout = set(df["block"].iloc[-1:]) if len(df) else set()
        pers.update({(name, blk): v for blk, v in p.items() if blk not in readout})
    irr = pd.concat(tables, ignore_index=True)
    ctx.table(
        sec,
        irr,
        "lattice_irreducibles",
        "Irreducible units of each block's formal context "
        "(pre units x post units, strengths cut at their q-quantile)",
    )
    if pers:
        ctx.figure(
            sec,
            _persistence_figure(pers),
            "lattice_persistence",
            "Persistence of meet-irreducibility of each postsynaptic unit over 10 level cuts (non-readout blocks)",
        )
    nulls = block_nulls(
        graphs, pers, n_samples=10 if ctx.options.quick else 30, seed=ctx.options.seed
    )
    ctx.table(
        sec,
        nulls,
        "lattice_nulls",
        "Irreducible units against null model B (weights permuted within "
        "sign, signed degrees kept), same cut q = 0.9: z = (observed - null mean) / null sd, two-sided "
        "empirical p",
    )

    # ---- pruning
    recurrent = [n for n, G in graphs.items() if _is_recurrent(G)]
    targets = recurrent or list(graphs)
    protect_io = bool(recurrent)
    levels = [0.5, 0.8] if o.quick else [0.3, 0.5, 0.7, 0.8, 0.9]
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    notes: list[str] = []
    bar = tqdm(
        [(n, s) for n in targets for s in levels],
        desc="lattice",
        leave=False,
        disable=not o.progress,
    )
    for name, s in bar:
        bar.set_postfix(model=name, sparsity=s)
        G = graphs[name]
        _, _, Xte, yte = ctx.inputs[name]
        if not any(r["model"] == name for r in rows):
            rows.append(
                {
                    "model": name,
                    "rule": "dense",
                    "target sparsity": 0.0,
                    "sparsity": 0.0,
                    "critical units": None,
                    "irreducible units": None,
                    "parameters": n_params(ctx.models[name]),
                    "test accuracy (%)": 100 * ctx.accuracy[name],
                }
            )
        ref = units_ref = None
        for rule, kind, kw in LATTICE_RULES:
            try:
                if kind == "lattice":
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", NetstructWarning)
                        res = lat.lattice_prune(G, amount=s, protect_io=protect_io, **kw)
                    notes += [
                        f"{name}, {rule}: {w.message}"
                        for w in caught
                        if issubclass(w.category, NetstructWarning)
                    ]
                elif kind == "magnitude":
                    res = lat.magnitude_prune(G, amount=ref.global_sparsity if ref else s, **kw)
                elif kind == "units":  # controls of the units rule: as many hidden units removed
                    n_rm = len(units_ref.config["removed_units"]) if units_ref else 0
                    res = lat.unit_prune(G, n_units=n_rm, seed=o.seed, **kw)
                else:
                    res = lat.random_prune(
                        G, amount=dict(ref.sparsity) if ref else s, seed=o.seed, **kw
                    )
                ref = res if ref is None else ref
                units_ref = res if kw.get("variant") == "units" else units_ref
                module = to_torch(
                    res.graph,
                    shrink=bool(kw.get("structured"))
                    or kind == "units"
                    or kw.get("variant") == "units",
                )
            except (NetstructError, AttributeError, TypeError) as exc:
                # a rule this graph (or this version of netstruct.lattice) does not support: say so
                failed.append(f"{name}, {rule} at {s:g}: {type(exc).__name__}: {exc}")
                continue
            rows.append(
                {
                    "model": name,
                    "rule": rule,
                    "target sparsity": s,
                    "sparsity": res.global_sparsity,
                    "critical units": _hidden_count(res.graph, "lattice_critical"),
                    "irreducible units": _hidden_count(res.graph, "lattice_irreducible"),
                    "parameters": n_params(module),
                    "test accuracy (%)": 100 * evaluate(module, Xte, yte),
                }
            )
    df = pd.DataFrame(rows)
    ctx.table(
        sec,
        df,
        "lattice_pruning",
        "Lattice vs magnitude pruning, re-imported with to_torch (masked) and "
        "evaluated on the test split (sparsity over the prunable, non-readout blocks)",
    )
    ctx.figure(
        sec,
        _curves_figure(df, {n: 100 * ctx.accuracy[n] for n in targets}),
        "lattice_pruning",
        "Test accuracy after pruning: lattice rules (solid) vs magnitude and random baselines at matched sparsity (dashed)",
    )

    # ---- prose with the headline numbers
    ref_sparsity = 0.5
    head = df[(df["target sparsity"] == ref_sparsity) & (df["model"] == targets[0])].set_index(
        "rule"
    )["test accuracy (%)"]
    n_hidden = int((graphs[targets[0]].nodes()["kind"] == "hidden").sum())
    crit = df[
        (df["target sparsity"] == ref_sparsity) & (df["rule"] == _REF) & (df["model"] == targets[0])
    ]
    n_crit = (
        int(crit["critical units"].iloc[0])
        if len(crit) and pd.notna(crit["critical units"].iloc[0])
        else None
    )
    sec.paragraphs.append(
        "A block is read as a formal context: its presynaptic units are the objects, its postsynaptic units the "
        "attributes, and a unit pair is related when its connection strength (the largest |w| over the gate rows "
        "of a unit) exceeds a cut. A postsynaptic unit is <i>meet-irreducible</i> when its input set is not the "
        "intersection of larger input sets of other units, i.e. it is not redundant in the concept lattice; "
        "<i>persistence</i> is the fraction of level cuts in which it stays so."
    )
    what = (
        f"the recurrent model(s) {', '.join(recurrent)}"
        if recurrent
        else f"{', '.join(targets)} (no recurrent model in this run, so the rule runs on the feed-forward model "
        "with <code>protect_io=False</code>; with protected inputs it would reduce to per-block thresholding)"
    )
    line = (
        f"Pruning of {what}: the binary rule keeps a strong connection when either end is a critical unit "
        "(meet-irreducible, central, or input/output) and reaches the target sparsity by moving the cut; "
        "the magnitude baselines remove the smallest weights (or unit connections) down to the same realised "
        "sparsity (random: the same sparsity block by block). Only non-readout blocks are pruned; masks are "
        "unit-level (all gate rows of a unit together). Pruned graphs are re-imported masked, except the "
        "structured rule (non-critical hidden units cut off and removed whole), which is re-imported shrunk "
        "(<code>to_torch(..., shrink=True)</code>, column <i>parameters</i>). The units rule (ours; the paper's "
        "method section was not available) keeps a hidden unit only when it is meet-irreducible in every block "
        "it belongs to and removes the others whole; its controls remove as many hidden units at random or by "
        "the smallest incoming weight norm."
    )
    if _REF in head and _MAG_ENTRY in head:
        line += (
            f" At sparsity {ref_sparsity:g} on {targets[0]} (dense {100 * ctx.accuracy[targets[0]]:.1f} %): "
            f"lattice binary {head[_REF]:.1f} % vs magnitude {head[_MAG_ENTRY]:.1f} % (entries) and "
            f"{head.get(_MAG_UNIT, float('nan')):.1f} % (unit connections)."
        )
    if n_crit is not None:
        line += (
            f" There, {n_crit} of {n_hidden} hidden units are critical, so the lattice criterion "
            + (
                "barely restricts the rule, which then amounts to keeping each block's strongest unit "
                "connections."
                if n_crit >= 0.9 * n_hidden
                else "selects which connections may survive."
            )
        )
    sec.paragraphs.append(line)
    if notes:
        sec.paragraphs.append(
            "Notes from <code>lattice_prune</code>: " + "; ".join(html.escape(n) for n in notes)
        )
    if failed:
        sec.paragraphs.append(
            "Rules that did not run: " + "; ".join(html.escape(f) for f in failed)
        )
    sec.numbers = {
        "irreducibles": irr.to_dict("records"),
        "nulls": nulls.to_dict("records"),
        "pruning": rows,
        "models": targets,
        "protect_io": protect_io,
        "failed": failed,
        "notes": notes,
    }
    return sec

"""The ``netsci`` step of ``netstruct run``: the network drawn, its signed communities, lesions, spectra.

For every model of the job: a layered drawing of the network (units by layer, the strongest
edges coloured by sign, units coloured by community), the signed communities of the undirected
projection with their clusterability against null model G-left, the accuracy drop per class when
each community's hidden units are lesioned (with same-size random lesions as control), and the
power-law tail exponent and stable rank of every weight matrix (per gate for LSTM/GRU).

The motif z-score profile and structural balance go in :func:`add_motifs_and_balance`, the one
place reserved for them (built in ``netstruct.algorithms.motifs`` and ``balance``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..exceptions import NetstructError
from .html import Section

if TYPE_CHECKING:  # pragma: no cover
    from .job import JobContext

__all__ = ["step_netsci", "plot_network", "add_motifs_and_balance"]


def plot_network(
    G: Any, membership: np.ndarray | None = None, *, max_edges: int = 1500, ax: Any = None
) -> Any:
    """Draw ``G`` layer by layer: units in columns, the ``max_edges`` largest ``|w|`` edges by sign.

    Units of a layer (node table ``group``) share a column, sorted by community so communities
    form runs; gate rows are drawn at their unit. Positive edges are red, negative blue, with
    opacity growing with ``|w|``; edges inside a layer (recurrent) are not drawn.

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.report.netsci_step import plot_network
    >>> fig = plot_network(ns.from_torch(ns.training.mlp([4, 6, 3], seed=0)))
    >>> len(fig.axes)
    1
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from ..figures import COLUMN_WIDTH, paper_style

    unit = G.node_column("unit")
    group = G.node_column("group")
    units = np.unique(unit)
    memb = np.zeros(G.n_nodes, dtype=np.int64) if membership is None else np.asarray(membership)
    y = np.zeros(G.n_nodes)
    for g in np.unique(group[units]):
        us = units[group[units] == g]
        us = us[np.lexsort((us, memb[us]))]
        y[us] = np.linspace(0, 1, us.size) if us.size > 1 else 0.5
    y = y[unit]
    x = group[unit].astype(float)
    e = G.edge_arrays()
    s, t, w = unit[e["source"]], unit[e["target"]], np.asarray(e["weight"], dtype=float)
    keep = np.flatnonzero(x[s] != x[t])
    keep = keep[np.argsort(-np.abs(w[keep]))[:max_edges]]
    with paper_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.6, COLUMN_WIDTH * 1.1))
        else:
            fig = ax.figure
        if keep.size:
            wmax = float(np.abs(w[keep]).max()) or 1.0
            colors = np.zeros((keep.size, 4))
            colors[:, :3] = np.where(w[keep, None] > 0, [0.84, 0.15, 0.16], [0.12, 0.47, 0.71])
            colors[:, 3] = 0.08 + 0.6 * np.abs(w[keep]) / wmax
            segs = np.stack(
                [
                    np.column_stack([x[s[keep]], y[s[keep]]]),
                    np.column_stack([x[t[keep]], y[t[keep]]]),
                ],
                1,
            )
            ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.5))  # type: ignore[arg-type]
        cmap = plt.get_cmap("tab20")
        ax.scatter(
            x[units],
            y[units],
            s=14,
            c=[cmap(int(c) % 20) for c in memb[units]],
            zorder=3,
            linewidths=0,
        )
        ax.set_xticks(sorted(set(x[units].tolist())))
        ax.set_xlabel("layer (node group)")
        ax.set_yticks([])
        ax.set_xlim(x.min() - 0.2, x.max() + 0.2)
        ax.set_ylim(-0.03, 1.03)
    return fig


def add_motifs_and_balance(ctx: JobContext, sec: Section, name: str, G: Any) -> None:
    """The motif z-score profile and structural balance of model ``name``.

    3-node signed motifs (4-node in full mode) against the fixed-topology sign null (STP,
    signed degrees kept), and the balance ratio of the undirected signed projection.
    """
    from ..algorithms.balance import balance_ratio
    from ..algorithms.motifs import motif_zscores

    o = ctx.options
    try:
        mz = motif_zscores(
            G, "stp", n_samples=50 if o.quick else 200, size=3 if o.quick else 4, seed=o.seed
        )
    except NetstructError as exc:
        sec.paragraphs.append(
            f"{html.escape(name)}: motif profile not computed ({html.escape(str(exc))})."
        )
    else:
        ctx.table(
            sec,
            mz.table,
            f"netsci_motifs_{name}",
            f"{name}: signed motif counts against {mz.model} null samples (z, empirical p)",
            collapsed=True,
        )
    bal = balance_ratio(G)
    bal.insert(0, "model", name)
    ctx.table(
        sec, bal, f"netsci_balance_{name}", f"{name}: structural balance of the signed projection"
    )


def _spectra_figure(spec: pd.DataFrame) -> Any:
    import matplotlib.pyplot as plt

    from ..figures import COLUMN_WIDTH, PALETTE, paper_style

    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.4, COLUMN_WIDTH * 0.7))
        labels = [
            f"{r.model}: {r.block}{'[' + r.gate + ']' if r.gate else ''}" for r in spec.itertuples()
        ]
        ax.bar(range(len(spec)), spec["alpha"].to_numpy(), color=PALETTE[0])
        ax.axhspan(2, 6, color="0.9", zorder=0, label="2 <= alpha <= 6")
        ax.set_xticks(range(len(spec)), labels, rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("power-law tail exponent alpha")
        ax.legend(frameon=False)
    return fig


def step_netsci(ctx: JobContext) -> Section:
    """Network picture, signed communities, clusterability, lesions and spectra of every model.

    Returns
    -------
    Section
        Tables ``netsci_communities``, ``netsci_lesions``, ``netsci_spectra``; figures
        ``<model>_network`` and ``netsci_spectra``; ``numbers`` holds every value shown.
    """
    from ..algorithms.communities import clusterability, community_lesion
    from ..algorithms.spectra import layer_spectra

    o = ctx.options
    sec = Section("netsci", "Network science: communities, lesions, spectra")
    comm_rows: list[dict[str, Any]] = []
    lesion_frames, spec_frames, failed = [], [], []
    n_null = 5 if o.quick else 20
    for name, G0 in ctx.graphs.items():
        G = G0.without_attrs()
        try:
            cl = clusterability(G, model="G-left", n_samples=n_null, seed=o.seed)
        except NetstructError as exc:
            failed.append(f"{name}, communities: {type(exc).__name__}: {exc}")
            continue
        C = cl.communities
        ctx.figure(
            sec,
            plot_network(G, C.membership),
            f"{name}_network",
            f"{name}: the network by layer; the strongest edges (red +, blue -) and units coloured by "
            f"signed community ({C.n_communities} communities, Q = {C.modularity:.3f})",
        )
        comm_rows.append({"model": name, "communities": C.n_communities, **cl.row()})
        _, _, Xte, yte = ctx.inputs[name]
        n_te = min(len(Xte), 2000)
        try:
            les = community_lesion(
                G, C, Xte[:n_te], yte[:n_te], n_random=2 if o.quick else 5, seed=o.seed
            )
            les.insert(0, "model", name)
            lesion_frames.append(les)
        except NetstructError as exc:
            failed.append(f"{name}, lesions: {type(exc).__name__}: {exc}")
        sp = layer_spectra(G)
        sp.insert(0, "model", name)
        spec_frames.append(sp)
        add_motifs_and_balance(ctx, sec, name, G)
    comm = pd.DataFrame(comm_rows)
    ctx.table(
        sec,
        comm,
        "netsci_communities",
        "Signed communities of the undirected unit projection: optimised "
        "signed modularity Q against the same optimiser on null model G-left samples (z, one-sided p)",
    )
    if comm_rows:
        from ._wording import model_phrase, p_value_text

        sec.paragraphs.append(
            "One-sided empirical p-values of the observed Q against its null: "
            + "; ".join(
                f"{model_phrase(r['model'])}: {p_value_text(r['p'], r['samples'])}"
                for r in comm_rows
            )
            + "."
        )
    lesions = pd.concat(lesion_frames, ignore_index=True) if lesion_frames else pd.DataFrame()
    if len(lesions):
        lesions["class"] = lesions["class"].astype(str)
        # accuracy in % like the rest of the report; drops in percentage points
        units = {"baseline": "baseline (%)", "accuracy": "accuracy (%)", "drop": "drop (points)",
                 "random drop": "random drop (points)", "excess drop": "excess drop (points)"}  # fmt: skip
        for col in [c for c in units if c in lesions]:
            lesions[col] = 100 * lesions[col]
        lesions = lesions.rename(columns=units)
        ctx.table(
            sec,
            lesions,
            "netsci_lesions",
            "Accuracy (%) per class after lesioning each community's hidden units; drops in "
            "percentage points (random drop: same number of random hidden units per layer)",
            collapsed=True,
        )
    spec = pd.concat(spec_frames, ignore_index=True) if spec_frames else pd.DataFrame()
    if len(spec):
        ctx.table(
            sec,
            spec,
            "netsci_spectra",
            "Spectral diagnostics per weight matrix (per gate for LSTM): "
            "power-law tail exponent alpha of the ESD (WeightWatcher's estimator), stable rank",
        )
        ctx.figure(
            sec,
            _spectra_figure(spec),
            "netsci_spectra",
            "Power-law tail exponent per weight matrix",
        )
    if len(lesions):
        top = lesions[lesions["class"] == "all"].sort_values("drop (points)", ascending=False)
        top = top.head(1)
        if len(top):
            r = top.iloc[0]
            sec.paragraphs.append(
                f"Largest overall accuracy drop: lesioning community {int(r['community'])} of {html.escape(str(r['model']))} "
                f"({int(r['hidden units'])} hidden units) costs {r['drop (points)']:.1f} points"
                + (
                    f" (random units of the same layers: {r['random drop (points)']:.1f} points)."
                    if "random drop (points)" in r
                    else "."
                )
            )
    sec.paragraphs.append(
        "Communities maximise signed modularity (Gomez, Jensen and Arenas 2009: positive weight inside, negative "
        "weight between communities) on the undirected projection of the network onto its units, found with "
        "netstruct's Leiden-type optimiser. alpha near 2-4 marks heavy-tailed, well-trained layers in the "
        "WeightWatcher reading; alpha > 6 is close to a random matrix."
    )
    if failed:
        sec.paragraphs.append("Not computed: " + "; ".join(html.escape(f) for f in failed))
    sec.numbers = {
        "communities": comm.to_dict("records"),
        "lesions": lesions.to_dict("records"),
        "spectra": spec.to_dict("records"),
        "failed": failed,
    }
    return sec

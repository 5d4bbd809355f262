"""Figures for papers: one style, signed-weight colour maps, functions that return figures.

* :func:`paper_style` — a context with embedded TrueType fonts (PDF/PS type 42, SVG text),
  journal column widths and a colour-blind-safe palette (Okabe–Ito);
* :data:`SIGNED_CMAP` with :func:`signed_norm` — a diverging map centred at zero;
* plotting functions return :class:`matplotlib.figure.Figure` and never call ``show()``;
* :func:`save_figure` writes vector PDF/SVG (and PNG) atomically.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .graphs.signed import SignedGraph
from .utils.validation import check_graph

__all__ = [
    "COLUMN_WIDTH",
    "DOUBLE_COLUMN_WIDTH",
    "PALETTE",
    "SIGNED_CMAP",
    "paper_style",
    "signed_norm",
    "plot_weight_matrix",
    "plot_weight_histograms",
    "plot_curves",
    "save_figure",
    "figure_png_bytes",
]

#: Single- and double-column widths in inches (two-column journals).
COLUMN_WIDTH = 3.4
DOUBLE_COLUMN_WIDTH = 7.0
#: Okabe–Ito colour-blind-safe palette.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
#: Diverging colour map for signed weights (use with :func:`signed_norm`).
SIGNED_CMAP = "RdBu_r"

_RC = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 150,
    "savefig.bbox": "tight",
}


def _mpl():
    import matplotlib

    if os.environ.get("MPLBACKEND") is None and matplotlib.get_backend().lower() not in (
        "agg",
        "module://matplotlib_inline.backend_inline",
    ):
        with contextlib.suppress(Exception):
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return matplotlib, plt


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Matplotlib settings for publication figures (fonts embedded, palette, sizes)."""
    matplotlib, _ = _mpl()
    from cycler import cycler

    with matplotlib.rc_context({**_RC, "axes.prop_cycle": cycler(color=list(PALETTE))}):
        yield


def signed_norm(values: np.ndarray):
    """A colour normalisation centred at zero and symmetric in the largest magnitude."""
    from matplotlib.colors import TwoSlopeNorm

    vmax = float(np.max(np.abs(values))) if np.size(values) else 1.0
    vmax = vmax or 1.0
    return TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)


def plot_weight_matrix(G: SignedGraph, block: int | str = 0, *, ax: Any = None) -> Any:
    """Heat map of one block's signed weights (rows = targets, columns = sources).

    Pruned entries are shown in grey.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> fig = plot_weight_matrix(ns.from_torch(torch.nn.Linear(5, 3)))
    >>> type(fig).__name__
    'Figure'
    """
    check_graph(G, "plot_weight_matrix")
    _, plt = _mpl()
    b = G.block(block)
    with paper_style():
        if ax is None:
            fig, ax = plt.subplots(
                figsize=(
                    COLUMN_WIDTH,
                    COLUMN_WIDTH * min(1.0, max(0.3, b.shape[0] / max(b.shape[1], 1))),
                )
            )
        else:
            fig = ax.figure
        W = np.ma.masked_array(b.weight, mask=~b.mask)
        cmap = plt.get_cmap(SIGNED_CMAP).with_extremes(bad="#bbbbbb")
        im = ax.imshow(
            W, cmap=cmap, norm=signed_norm(b.weight), aspect="auto", interpolation="nearest"
        )
        ax.set_title(b.name)
        ax.set_xlabel("source")
        ax.set_ylabel("target")
        fig.colorbar(im, ax=ax, label="weight", fraction=0.046, pad=0.04)
    return fig


def plot_weight_histograms(G: SignedGraph, *, bins: int = 60) -> Any:
    """One histogram of weights per block, positive and negative in two palette colours."""
    check_graph(G, "plot_weight_histograms")
    _, plt = _mpl()
    n = len(G.blocks)
    with paper_style():
        cols = min(n, 3)
        rows = int(np.ceil(n / cols))
        fig, axes = plt.subplots(
            rows, cols, figsize=(DOUBLE_COLUMN_WIDTH, 1.6 * rows), squeeze=False
        )
        for ax, b in zip(axes.ravel(), G.blocks):
            w = b.weight[b.mask]
            edges = (
                np.linspace(w.min(), w.max(), bins + 1) if w.size and w.min() < w.max() else bins
            )
            ax.hist(w[w > 0], bins=edges, color=PALETTE[0], label="+")
            ax.hist(w[w < 0], bins=edges, color=PALETTE[1], label="−")
            ax.set_title(b.name)
            ax.set_xlabel("weight")
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        axes[0, 0].legend(frameon=False)
        fig.tight_layout()
    return fig


def plot_curves(
    x: ArrayLike,
    curves: Mapping[str, tuple[ArrayLike, ArrayLike | None, ArrayLike | None]],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    ax: Any = None,
) -> Any:
    """Lines with optional bands: ``curves = {label: (median, low, high)}`` (low/high may be None)."""
    _, plt = _mpl()
    with paper_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.7))
        else:
            fig = ax.figure
        for i, (label, (mid, lo, hi)) in enumerate(curves.items()):
            c = PALETTE[i % len(PALETTE)]
            ax.plot(x, mid, marker="o", ms=2.5, color=c, label=label)
            if lo is not None and hi is not None:
                ax.fill_between(x, lo, hi, color=c, alpha=0.25, linewidth=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        ax.legend(frameon=False)
    return fig


def save_figure(
    fig: Any, path: str | os.PathLike, *, formats: Sequence[str] = ("pdf", "svg", "png")
) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (atomic writes); returns the paths."""
    from .io._atomic import atomic_write

    base = Path(path)
    out = []
    for fmt in formats:
        p = base.with_suffix(f".{fmt}")
        with atomic_write(p, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=200)
        out.append(p)
    return out


def figure_png_bytes(fig: Any, dpi: int = 120) -> bytes:
    """PNG bytes of a figure (for self-contained HTML reports)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()

"""Figures of probe sweeps: median curves with inter-quartile bands, and null-model violins.

Both functions take the tidy table of :func:`~netstruct.probes.sweep`, return a
:class:`matplotlib.figure.Figure` in :func:`netstruct.figures.paper_style`, and never show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import param_error
from ..figures import COLUMN_WIDTH, PALETTE, _mpl, paper_style, plot_curves
from .sweep import METRICS, fold50, summarize

__all__ = ["plot_sweep", "plot_violins"]

_LABELS = {"acc_full": "full precision", "acc_sign": "binarized"}


def plot_sweep(
    df: pd.DataFrame,
    *,
    probes: Sequence[str] | None = None,
    metrics: Sequence[str] = METRICS,
    fold: bool = False,
    over: str = "runs",
    xlabel: str = "level",
    logx: bool = False,
    title: str = "",
    ax: Any = None,
) -> Any:
    """Median accuracy against level, with the 25–75 % band, one line per probe and metric.

    Parameters
    ----------
    df : DataFrame
        A :func:`sweep` table.
    probes : list of str, optional
        Probes to draw (default: all in ``df``).
    metrics : subset of {"acc_full", "acc_sign"}, default=both
    fold : bool, default=False
        Fold with flip50 before aggregating.
    over : {"runs", "samples"}, default="runs"
        See :func:`summarize`.
    xlabel : str, default="level"
    logx : bool, default=False
    title : str, default=""
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from netstruct.probes import plot_sweep
    >>> df = pd.DataFrame({"probe": "prune-smallest", "level": [0.0, 0.0, 0.5, 0.5], "run": 0,
    ...                    "repeat": 0, "seed": 1, "metric": ["acc_full", "acc_sign"] * 2,
    ...                    "value": [98.0, 60.0, 95.0, 90.0]})
    >>> type(plot_sweep(df)).__name__
    'Figure'
    """
    s = summarize(df, fold=fold, over=over)
    names = list(dict.fromkeys(s["probe"])) if probes is None else list(probes)
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    x = None
    for name in names:
        for metric in metrics:
            part = s[(s["probe"] == name) & (s["metric"] == metric)].sort_values("level")
            if part.empty:
                continue
            if x is not None and not np.array_equal(x, part["level"].to_numpy()):
                raise param_error(
                    "probes", "plot_sweep", "probes swept over the same levels", names
                )
            x = part["level"].to_numpy()
            label = f"{name}, {_LABELS[metric]}" if len(names) > 1 else _LABELS[metric]
            curves[label] = (
                part["median"].to_numpy(),
                part["q25"].to_numpy(),
                part["q75"].to_numpy(),
            )
    if not curves or x is None:
        raise param_error(
            "probes",
            "plot_sweep",
            f"probes present in the table ({sorted(set(s['probe']))})",
            names,
        )
    fig = plot_curves(x, curves, xlabel=xlabel, ylabel="accuracy (%)", title=title, ax=ax)
    if logx:
        fig.axes[0].set_xscale("log", base=2) if ax is None else ax.set_xscale("log", base=2)
    return fig


def plot_violins(
    df: pd.DataFrame,
    *,
    metric: str = "acc_full",
    level: float = 0.0,
    fold: bool = True,
    probes: Sequence[str] | None = None,
    title: str = "",
    ax: Any = None,
) -> Any:
    """Violins of the accuracy of each probe (typically the null models) at one level.

    The original network (probe ``"none"``) is drawn first when present. Values are the
    individual (run, repeat) accuracies, folded with flip50 by default as in the study (which
    also trimmed its violins to the IQR; here they are not trimmed, spec G9).

    Parameters
    ----------
    df : DataFrame
        A :func:`sweep` table, e.g. with probes ``none`` and ``null-A`` … ``null-G-left``.
    metric : {"acc_full", "acc_sign"}, default="acc_full"
    level : float, default=0.0
        Pruning fraction applied before the null models.
    fold : bool, default=True
    probes : list of str, optional
    title : str, default=""
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> from netstruct.probes import plot_violins
    >>> df = pd.DataFrame({"probe": ["none"] * 3 + ["null-A"] * 3, "level": 0.0, "run": [0, 1, 2] * 2,
    ...                    "repeat": 0, "seed": 1, "metric": "acc_full",
    ...                    "value": [97.0, 98.0, 96.0, 52.0, 49.0, 55.0]})
    >>> type(plot_violins(df)).__name__
    'Figure'
    """
    _, plt = _mpl()
    d = df[(df["metric"] == metric) & np.isclose(df["level"], level)]
    if probes is None:
        probes = list(dict.fromkeys(d["probe"]))
        if "none" in probes:
            probes.remove("none")
            probes.insert(0, "none")
    data, labels = [], []
    for name in probes:
        v = d.loc[d["probe"] == name, "value"].to_numpy()
        if v.size:
            data.append(fold50(v) if fold else v)
            labels.append("original" if name == "none" else name.removeprefix("null-"))
    if not data:
        raise param_error(
            "df", "plot_violins", f"rows with metric {metric!r} at level {level}", "none"
        )
    with paper_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.7))
        else:
            fig = ax.figure
        pos = np.arange(1, len(data) + 1)
        single = [len(v) < 2 for v in data]
        multi = [i for i, s in enumerate(single) if not s]
        if multi:
            parts = ax.violinplot([data[i] for i in multi], positions=pos[multi], showmedians=True)
            for body, i in zip(parts["bodies"], multi):
                body.set_facecolor(PALETTE[i % len(PALETTE)])
                body.set_alpha(0.6)
        for i, v in enumerate(data):
            ax.scatter(np.full(v.size, pos[i]), v, s=4, color=PALETTE[i % len(PALETTE)], zorder=3)
        ax.set_xticks(pos, labels)
        ax.set_ylabel(f"accuracy (%), {_LABELS.get(metric, metric)}" + (", folded" if fold else ""))
        ax.axhline(50.0, color="0.6", lw=0.6, ls="--")
        if title:
            ax.set_title(title)
    return fig

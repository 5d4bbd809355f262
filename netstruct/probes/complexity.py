"""The task-complexity gap: accuracy lost by binarizing or sign-preserving shuffling.

For a task T with trained runs r (spec §5)::

    gap_bin(T)  = fold(median_r acc_full) - fold(median_r acc_sign)
    gap_rand(T) = fold(median_r acc_full) - fold(median_r acc_B)

with ``fold`` the flip50 rule (a median below 50 % becomes 100 minus it). Larger = harder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_scalar
from .registry import check_probe
from .sweep import fold50, sweep

__all__ = ["task_complexity", "TaskComplexity", "complexity_gap"]


@dataclass(frozen=True, eq=False)
class TaskComplexity:
    """Gaps of one task, with the per-run accuracies behind them.

    Attributes
    ----------
    gaps : dict of str to float
        Folded (or raw, when ``fold=False``) gap per probe, in accuracy points.
    gaps_raw : dict of str to float
        Gaps from unfolded medians.
    medians : dict of str to float
        Raw median accuracy (%) of ``"full"`` and of each probe, over the kept runs.
    per_run : DataFrame
        One row per run: ``acc_full`` and ``acc_<probe>`` (mean over repeats), and ``kept``.
    dropped : tuple of int
        Runs whose full-precision accuracy was below ``min_accuracy`` (failed trainings).
    table : DataFrame
        The underlying sweep (tidy).
    collapsed : dict of str to float
        Fraction of the kept runs whose binarized network predicts one class for at least
        ``collapse_share`` of the test samples (a collapse to a constant class; key
        ``"binarize"``, present when that probe is). ``per_run["collapsed_binarize"]`` flags
        the runs. On hard tasks about a third of the runs collapse, so a median over few runs
        jumps between ~50 % and the typical value: use 50 or more runs for a headline.
    """

    gaps: Mapping[str, float]
    gaps_raw: Mapping[str, float]
    medians: Mapping[str, float]
    per_run: pd.DataFrame
    dropped: tuple[int, ...]
    table: pd.DataFrame
    collapsed: Mapping[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        g = ", ".join(f"{k}={v:.2f}" for k, v in self.gaps.items())
        return f"TaskComplexity({g}; {len(self.per_run) - len(self.dropped)} runs, {len(self.dropped)} dropped)"


def complexity_gap(acc_full: object, acc_probe: object, *, fold: bool = True) -> float:
    """``fold(median(acc_full)) - fold(median(acc_probe))``, accuracies in % (spec §5).

    Parameters
    ----------
    acc_full, acc_probe : float or array-like of float
        Per-run accuracies (%) of the original and of the probed networks.
    fold : bool, default=True
        Apply flip50 to each median (values below 50 become 100 minus them).

    Examples
    --------
    >>> from netstruct.probes import complexity_gap
    >>> round(complexity_gap([99.70], [96.02]), 2)  # spec E7
    3.68
    >>> round(complexity_gap([98.0, 99.0, 99.5], [30.0, 45.0, 60.0]), 2)  # median 45 folds to 55
    44.0
    """
    func = "complexity_gap"
    meds = []
    for name, v in (("acc_full", acc_full), ("acc_probe", acc_probe)):
        a = np.atleast_1d(np.asarray(v, dtype=np.float64))
        if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
            raise param_error(name, func, "a non-empty 1-D array of finite accuracies (%)", v)
        meds.append(float(np.median(a)))
    if fold:
        meds = [float(fold50(m)) for m in meds]
    return meds[0] - meds[1]


def _probe_key(name: str, func: str) -> tuple[str, str, str]:
    """(label, sweep probe, metric) of a gap probe."""
    if name == "binarize":
        return "binarize", "none", "acc_sign"
    spec = check_probe(name, func)
    if spec.family != "null":
        raise param_error("probes", func, "'binarize' or null-model names such as 'B'", name)
    return spec.option, spec.name, "acc_full"


def _collapsed(graphs: SignedGraph | Sequence[SignedGraph], X: object, share: float) -> np.ndarray:
    """Per run: does the binarized network give one class for >= ``share`` of the samples?"""
    from .evaluate import predict_batch
    from .transforms import binarize

    runs = [graphs] if isinstance(graphs, SignedGraph) else list(graphs)
    out = np.zeros(len(runs), dtype=bool)
    for r, G in enumerate(runs):
        pred = predict_batch(binarize(G), X, func="task_complexity")[0].argmax(axis=1)
        out[r] = np.bincount(pred).max() >= share * pred.size
    return out


def task_complexity(
    graphs: SignedGraph | Sequence[SignedGraph],
    X: object,
    y: object,
    *,
    probes: Sequence[str] = ("binarize", "B"),
    n_repeats: int = 1,
    fold: bool = True,
    min_accuracy: float | None = None,
    seed: int = 0,
    scheduler: str | None = None,
    n_jobs: int | None = None,
    collapse_share: float = 0.99,
) -> TaskComplexity:
    """Full-vs-binarized and full-vs-randomized accuracy gaps of a task (spec §5).

    Parameters
    ----------
    graphs : SignedGraph or list of SignedGraph
        The trained runs of one task (the study uses 10).
    X, y : array-like
        The task's test set.
    probes : sequence of str, default=("binarize", "B")
        ``"binarize"`` (sign of weights and biases) and/or null models (``"B"``, ``"E"`` …),
        applied without pruning and evaluated at full precision.
    n_repeats : int >= 1, default=1
        Null-model samples per run (averaged per run).
    fold : bool, default=True
        Fold each median with flip50 before subtracting (the study's rule).
    min_accuracy : float, optional
        Drop runs whose full-precision accuracy (%) is below this (failed trainings, G10);
        None keeps every run (the study's choice for the gap).
    seed : int, default=0
    scheduler, n_jobs
        Where the sweep runs; see :func:`~netstruct.probes.sweep`.
    collapse_share : float in (0.5, 1], default=0.99
        A binarized run counts as collapsed when one class takes at least this share of its
        test predictions.

    Returns
    -------
    TaskComplexity

    Raises
    ------
    InvalidParameterError
        Unknown probe, bad ``min_accuracy``, all runs dropped, or data/graph errors of
        :func:`sweep`.

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.probes import task_complexity
    >>> ds = ns.datasets.class_pair(ns.datasets.load_digits(), 0, 7)
    >>> model = ns.training.mlp([64, 16, 2], seed=0)
    >>> _ = ns.training.train(model, ds.X_train, ds.y_train, epochs=3, progress=False)
    >>> tc = task_complexity(ns.from_torch(model), ds.X_test, ds.y_test)
    >>> sorted(tc.gaps), 0 <= tc.gaps["binarize"] <= 50
    (['B', 'binarize'], True)
    """
    func = "task_complexity"
    if isinstance(probes, str) or not probes:
        raise param_error("probes", func, "a non-empty list such as ['binarize', 'B']", probes)
    keys = [_probe_key(p, func) for p in probes]
    if min_accuracy is not None:
        min_accuracy = float(
            check_scalar(min_accuracy, "min_accuracy", func, min_value=0.0, max_value=100.0)
        )
    spec = {"none": [0.0]}
    spec.update({k[1]: [0.0] for k in keys if k[1] != "none"})
    df = sweep(
        graphs, X, y, spec, n_repeats=n_repeats, seed=seed, scheduler=scheduler, n_jobs=n_jobs
    )
    per_run = df.groupby(["probe", "metric", "run"])["value"].mean()
    out = pd.DataFrame({"acc_full": per_run.loc[("none", "acc_full")]})
    for label, probe, metric in keys:
        out[f"acc_{label}"] = per_run.loc[(probe, metric)]
    out.index.name = "run"
    out["kept"] = True if min_accuracy is None else out["acc_full"] >= min_accuracy
    share = float(
        check_scalar(
            collapse_share, "collapse_share", func, min_value=0.5, max_value=1.0, include_min=False
        )
    )
    if any(k[0] == "binarize" for k in keys):
        out["collapsed_binarize"] = _collapsed(graphs, X, share)
    dropped = tuple(int(r) for r in out.index[~out["kept"]])
    kept = out[out["kept"]]
    if kept.empty:
        raise param_error(
            "min_accuracy", func, "a threshold that keeps at least one run", min_accuracy
        )
    medians = {"full": float(kept["acc_full"].median())}
    for label, _, _ in keys:
        medians[label] = float(kept[f"acc_{label}"].median())
    raw = {
        label: complexity_gap(kept["acc_full"], kept[f"acc_{label}"], fold=False)
        for label, _, _ in keys
    }
    folded = {label: complexity_gap(kept["acc_full"], kept[f"acc_{label}"]) for label, _, _ in keys}
    collapsed = (
        {"binarize": float(kept["collapsed_binarize"].mean())}
        if "collapsed_binarize" in kept
        else {}
    )
    return TaskComplexity(
        collapsed=collapsed,
        gaps=folded if fold else raw,
        gaps_raw=raw,
        medians=medians,
        per_run=out.reset_index(),
        dropped=dropped,
        table=df,
    )

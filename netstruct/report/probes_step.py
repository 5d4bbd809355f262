"""The ``probes`` step of ``netstruct run``: robustness probe sweeps and the task-complexity gap.

Uses the public API of :mod:`netstruct.probes` only: the job's MLP (or the user's feed-forward
model) plus extra seeded runs trained with :func:`~netstruct.probes.train_runs` are swept with
:func:`~netstruct.probes.sweep` (pruning, noise, sign flips and null-model randomization after
pruning; every copy is also evaluated binarized), summarised with
:func:`~netstruct.probes.summarize` (medians and inter-quartile ranges over runs) and drawn with
:func:`~netstruct.probes.plot_sweep`. :func:`~netstruct.probes.task_complexity` gives the
binarization and randomization gaps of the whole task and of an easy and a hard class pair.

Sweeps and training runs go to a Dask local cluster by default (:mod:`netstruct.utils.cluster`);
``--scheduler serial`` keeps them in this process, an address sends them to a running cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError
from .html import Section

if TYPE_CHECKING:  # pragma: no cover
    from .job import JobContext

__all__ = ["step_probes", "probe_support", "probe_levels", "choose_pairs"]

#: the probe families of the report: {family: ({probe: levels}, x label, log x)}
_FAMILIES = ("prune", "noise", "flip", "randomize")


def probe_levels(quick: bool) -> dict[str, tuple[dict[str, list[float]], str, bool]]:
    """Probes and levels of each family (fewer levels with ``quick``).

    Parameters
    ----------
    quick : bool

    Returns
    -------
    dict
        ``{family: ({probe name: levels}, x-axis label, logarithmic x)}``; probes of one family
        share their levels, so they are drawn in one figure.

    Examples
    --------
    >>> from netstruct.report.probes_step import probe_levels
    >>> sorted(probe_levels(True))
    ['flip', 'noise', 'prune', 'randomize']
    """
    if quick:
        p, n, f, r = (
            [0.0, 0.3, 0.6, 0.8, 0.95],
            [2.0**-6, 2.0**-4, 2.0**-2, 1.0],
            [0.0, 0.1, 0.3, 0.5],
            [0.0, 0.5, 0.9],
        )
    else:
        p = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
        n = [2.0**k for k in range(-8, 1)]
        f = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5]
        r = [0.0, 0.25, 0.5, 0.75, 0.9]
    return {
        "prune": (
            {"prune-smallest": p, "prune-random": p},
            "fraction of weights removed (per layer)",
            False,
        ),
        "noise": ({"noise-uniform": n}, "a, additive uniform noise U(-a, a)", True),
        "flip": (
            {"flip-smallest": f, "flip-random": f},
            "fraction of signs flipped (per layer)",
            False,
        ),
        "randomize": (
            {"null-B": r, "null-E": r},
            "fraction pruned before sign-preserving shuffling",
            False,
        ),
    }


def probe_support(G: Any) -> str | None:
    """``None`` when the probes can evaluate ``G``, otherwise the reason they cannot.

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.report.probes_step import probe_support
    >>> probe_support(ns.from_torch(ns.training.mlp([4, 3, 2], seed=0))) is None
    True
    >>> "feed-forward" in probe_support(ns.from_torch(ns.training.recurrent_classifier("LSTM", 4, 3, 2)))
    True
    """
    from ..probes import check_classifier

    try:
        check_classifier(G, func="netstruct run")
    except InvalidParameterError as exc:
        return str(exc)
    return None


def choose_pairs(
    ds: Any, model: Any, X_test: np.ndarray, *, dataset: str | None = None
) -> dict[str, tuple[int, int]]:
    """An easy and a hard class pair of a data set, for the task-complexity gap.

    On Fashion-MNIST these are the study's pairs (:data:`netstruct.probes.TASKS`). Otherwise
    the hard pair is the one the trained ``model`` confuses most on the test set (confusions in
    both directions, as fractions of each class), and the easy pair the one it confuses least,
    ties broken by the largest distance between the two class means of the training set.

    Parameters
    ----------
    ds : netstruct.datasets.Dataset
        At least three classes (with two the task is its own pair; returns ``{}``).
    model : torch.nn.Module
        A trained classifier of ``ds``.
    X_test : ndarray
        Test inputs as the model takes them.
    dataset : str, optional
        The embedded data set's name (``"fashion-mnist"`` selects the study's pairs).

    Returns
    -------
    dict
        ``{"easy": (a, b), "hard": (c, d)}`` (labels of ``ds``).
    """
    from ..probes import TASKS
    from ..training import predict

    k = ds.n_classes
    if k < 3:
        return {}
    if dataset == "fashion-mnist":
        return {"easy": TASKS["fashion-mnist"]["easy"], "hard": TASKS["fashion-mnist"]["hard"]}
    pred = predict(model, X_test).argmax(1)
    C = np.zeros((k, k))
    np.add.at(C, (ds.y_test, pred), 1.0)
    C /= np.maximum(C.sum(axis=1, keepdims=True), 1.0)
    S = C + C.T
    Xtr = ds.X_train.reshape(len(ds.X_train), -1)
    means = np.stack(
        [
            Xtr[ds.y_train == c].mean(axis=0) if (ds.y_train == c).any() else np.zeros(Xtr.shape[1])
            for c in range(k)
        ]
    )
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    dist = {p: float(np.linalg.norm(means[p[0]] - means[p[1]])) for p in pairs}
    hard = max(pairs, key=lambda p: (S[p], -dist[p]))
    easy = min(pairs, key=lambda p: (S[p], -dist[p]))
    return {"easy": (int(easy[0]), int(easy[1])), "hard": (int(hard[0]), int(hard[1]))}


def _wide_summary(df: pd.DataFrame, over: str) -> pd.DataFrame:
    """One row per (probe, level): median and IQR at full precision and binarized."""
    from ..probes import summarize

    s = summarize(df, over=over)
    rows = []
    for (probe, level), g in s.groupby(["probe", "level"], sort=False):
        row: dict[str, Any] = {"probe": probe, "level": float(level)}
        for metric, label in (("acc_full", "full"), ("acc_sign", "binarized")):
            m = g[g["metric"] == metric]
            for col in ("median", "q25", "q75"):
                row[f"{label} {col}"] = float(m[col].iloc[0]) if len(m) else float("nan")
        row["n"] = int(g["n"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def _complexity_figure(results: dict[str, Any]) -> Any:
    """Per-run accuracies (full, binarized, B-shuffled) of each task, medians as bars."""
    import matplotlib.pyplot as plt

    from ..figures import COLUMN_WIDTH, PALETTE, paper_style

    series = (
        ("acc_full", "full precision"),
        ("acc_binarize", "binarized"),
        ("acc_B", "B-shuffled"),
    )
    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.6, COLUMN_WIDTH * 0.75))
        rng = np.random.default_rng(0)
        for t, tc in enumerate(results.values()):
            for j, (col, label) in enumerate(series):
                v = tc.per_run[col].to_numpy()
                x = t + (j - 1) * 0.25
                ax.bar(
                    x,
                    np.median(v),
                    width=0.22,
                    color=PALETTE[j],
                    alpha=0.35,
                    label=label if t == 0 else None,
                )
                ax.scatter(x + rng.uniform(-0.06, 0.06, v.size), v, s=6, color=PALETTE[j], zorder=3)
        ax.set_xticks(range(len(results)), list(results))
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(0, 105)
        ax.legend(frameon=False, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    return fig


def step_probes(ctx: JobContext) -> Section:
    """Probe sweeps over levels and trained runs, and the task-complexity gap.

    Parameters
    ----------
    ctx : JobContext
        After ``train`` and ``export``.

    Returns
    -------
    Section
        Tables ``probes_runs``, ``probes_summary``, ``task_complexity`` (also as CSV), the tidy
        sweep as ``tables/probes_sweep.csv``, one figure per probe family and one of the gaps;
        ``numbers`` holds every value shown.
    """
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    from .. import datasets
    from ..figures import COLUMN_WIDTH, paper_style
    from ..io._atomic import atomic_write
    from ..probes import PAPER, plot_sweep, sweep, task_complexity, train_runs

    o = ctx.options
    sec = Section("probes", "Robustness probes and task complexity")
    name = (
        "user" if "user" in ctx.graphs else "mlp" if "mlp" in ctx.graphs else next(iter(ctx.graphs))
    )
    G = ctx.graphs[name].without_attrs()
    why = probe_support(G)
    if why:
        sec.paragraphs.append(
            f"Skipped: the probes evaluate feed-forward classifiers only, and model "
            f"<b>{name}</b> is not one ({why})."
        )
        sec.numbers = {"skipped": why}
        return sec
    _, _, Xte, yte = ctx.inputs[name]
    ds = ctx.dataset
    n_runs = 1 if name == "user" else (min(o.runs, 3) if o.quick else o.runs)
    n_pair_runs = min(o.runs, 3) if o.quick else o.runs
    repeats = 2 if o.quick else 5
    families = probe_levels(o.quick)
    pairs = choose_pairs(ds, ctx.models[name], Xte, dataset=None if o.data else o.dataset)
    binary = ds.n_classes == 2

    work = ["runs", *families, "gap: all classes", *(f"gap: {t} pair" for t in pairs)]
    bar = tqdm(work, desc="probes", leave=False, disable=not o.progress)
    graphs, accs, seeds = [G], [100.0 * ctx.accuracy[name]], [o.seed if name == "mlp" else None]
    sweeps: dict[str, pd.DataFrame] = {}
    gaps: dict[str, Any] = {}
    sched = ctx.scheduler
    for item in bar:
        bar.set_postfix(item=item)
        if item == "runs":
            if n_runs > 1:
                extra = train_runs(
                    ds,
                    n_runs - 1,
                    seed=o.seed + 1,
                    scheduler=sched,
                    hidden=o.hidden,
                    epochs=ctx.epochs,
                )
                graphs += [r.graph for r in extra]
                accs += [r.accuracy for r in extra]
                seeds += [r.seed for r in extra]
        elif item in families:
            sweeps[item] = sweep(
                graphs, Xte, yte, families[item][0], n_repeats=repeats, seed=o.seed, scheduler=sched
            )
        elif item == "gap: all classes":
            gaps["all classes"] = task_complexity(
                graphs,
                Xte,
                yte,
                probes=("binarize", "B"),
                n_repeats=repeats,
                fold=binary,
                seed=o.seed,
                scheduler=sched,
            )
        else:
            task = item.split()[1]
            a, b = pairs[task]
            pair = datasets.class_pair(ds, a, b)
            runs = train_runs(
                pair, n_pair_runs, seed=o.seed, scheduler=sched, hidden=o.hidden, epochs=ctx.epochs
            )
            label = f"{task} pair ({ds.classes[a]} vs {ds.classes[b]})"
            gaps[label] = task_complexity(
                [r.graph for r in runs],
                pair.X_test,
                pair.y_test,
                probes=("binarize", "B"),
                n_repeats=repeats,
                fold=True,
                seed=o.seed,
                scheduler=sched,
            )

    # ---- runs
    runs_df = pd.DataFrame({"run": range(len(graphs)), "seed": seeds, "test accuracy (%)": accs})
    over = "runs" if len(graphs) > 1 else "samples"
    sec.paragraphs.append(
        f"Model <b>{name}</b>: {len(graphs)} trained run(s) (run 0 is the model of the Models section"
        + (
            f"; runs 1–{len(graphs) - 1} use seeds {o.seed + 1}–{o.seed + len(graphs) - 1} with the same protocol"
            if len(graphs) > 1
            else ""
        )
        + f"). Random probes draw {repeats} copies per run and level. "
        "Every perturbed copy is evaluated at full precision and after binarization (signs of weights and "
        "biases only). Curves show the median over runs"
        + (
            " (each run's copies averaged first) with the 25–75 % band."
            if over == "runs"
            else " over the random copies with the 25–75 % band (one run)."
        )
    )
    ctx.table(sec, runs_df, "probes_runs", "Trained runs swept by the probes")

    # ---- sweeps
    tidy = pd.concat(sweeps.values(), ignore_index=True)
    with atomic_write(
        ctx.out / "tables" / "probes_sweep.csv", "w", encoding="utf-8", newline=""
    ) as fh:
        tidy.to_csv(fh, index=False)
    titles = {
        "prune": "Pruning",
        "noise": "Additive noise",
        "flip": "Sign flips",
        "randomize": "Pruning, then sign-preserving shuffles (null models B, E)",
    }
    for fam, df in sweeps.items():
        _, xlabel, logx = families[fam]
        with paper_style():
            fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.4, COLUMN_WIDTH * 0.75))
        plot_sweep(df, over=over, xlabel=xlabel, logx=logx, ax=ax)
        ax.set_ylim(0, 102)
        with paper_style():
            ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ctx.figure(
            sec,
            fig,
            f"probes_{fam}",
            f"{titles[fam]}: median test accuracy (%) with IQR band, full precision and binarized",
        )
    summary = _wide_summary(tidy, over)
    ctx.table(
        sec,
        summary,
        "probes_summary",
        f"Probe sweeps: median and quartiles of test accuracy (%) over {'runs' if over == 'runs' else 'copies'}",
        collapsed=True,
    )

    # ---- task complexity
    rows = []
    for task, tc in gaps.items():
        row = {
            "task": task,
            "runs": int(tc.per_run["kept"].sum()),
            "folded": bool(task != "all classes" or binary),
            "full median": tc.medians["full"],
            "binarized median": tc.medians["binarize"],
            "B-shuffled median": tc.medians["B"],
            "gap binarize": tc.gaps["binarize"],
            "gap B": tc.gaps["B"],
            "collapsed binarized runs": tc.collapsed.get("binarize"),
        }
        if o.dataset == "fashion-mnist" and o.data is None and task != "all classes":
            ref = PAPER["fashion-mnist"][task.split()[0]]
            row["paper gap binarize"] = ref["full"] - ref["binarized"]
            row["paper gap B"] = ref["full"] - ref["B"]
        rows.append(row)
    cx = pd.DataFrame(rows)
    ctx.table(
        sec, cx, "task_complexity", "Task-complexity gaps (accuracy points, medians over runs)"
    )
    ctx.figure(
        sec,
        _complexity_figure(gaps),
        "task_complexity",
        "Per-run test accuracy of each task at full precision, binarized and B-shuffled (bars: medians)",
    )
    s = summary.set_index(["probe", "level"])
    half = s.loc[("prune-smallest", 0.6 if o.quick else 0.5)]
    gtext = "; ".join(
        f"{r['task']}: {r['gap binarize']:.1f} (binarize), {r['gap B']:.1f} (B)" for r in rows
    )
    sec.paragraphs.append(
        f"Removing the {'60' if o.quick else '50'} % smallest weights of every layer leaves a median accuracy of "
        f"{half['full median']:.1f} %; binarizing the unpruned network leaves {gaps['all classes'].medians['binarize']:.1f} % "
        f"(chance {100 / ds.n_classes:.0f} %). Task-complexity gap = median accuracy at full precision minus median "
        "accuracy binarized (or after the sign-preserving shuffle B), in points; on two-class tasks each median is "
        "folded first (below 50 % becomes 100 minus it, the study's rule; not used with more classes, where "
        f"folding is meaningless). Gaps — {gtext}. A larger gap means a task whose solution needs more than the "
        "sign pattern (Jankowski et al., arXiv:2508.05463). 'collapsed binarized runs' is the fraction of runs "
        "whose binarized network predicts one class for 99 % of the test samples; on hard tasks about a third "
        "collapse, so a median over few runs is unstable (the headline needs 50 or more runs, see the probes "
        "notebook; learning rate 1e-3 or inputs in [0, 1] remove the collapse)."
        + (
            " Pairs: the hard pair is the one the trained model confuses most, the easy pair the one it confuses "
            "least (ties: the most distant class means)."
            if pairs and not (o.dataset == "fashion-mnist" and o.data is None)
            else " Pairs: the study's Fashion-MNIST tasks; its numbers (re-initialised biases) are shown beside ours."
            if pairs
            else ""
        )
    )
    sec.numbers = {
        "model": name,
        "runs": runs_df.to_dict("records"),
        "repeats": repeats,
        "aggregation": over,
        "summary": summary.to_dict("records"),
        "complexity": rows,
        "pairs": {k: list(v) for k, v in pairs.items()},
    }
    return sec

"""Probe sweeps: probe x level x run, evaluated in batches, as a tidy DataFrame.

A *cell* is one probe on one trained network (a *run*) at all its levels; it draws every
perturbed copy (levels x repeats, at full precision and binarized), stacks them and
evaluates them in one batched pass (:func:`~netstruct.probes.evaluate_batch`). Cells run on
Dask distributed (:mod:`netstruct.utils.cluster`): the active client or a local cluster by
default, ``scheduler="tcp://..."`` for a real cluster, ``scheduler="serial"`` in-process. Each (probe, level, run) gets a seed derived from the root seed and those three
keys only, so results never depend on scheduling, worker count or the order of levels.
"""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.random import check_random_state
from ..utils.validation import check_choice, check_graph, check_scalar
from .evaluate import check_classifier, evaluate_batch
from .registry import ProbeSpec, check_level, check_probe, perturb

__all__ = ["sweep", "summarize", "fold50", "cell_seed", "METRICS", "SWEEP_COLUMNS"]

#: Metrics of a sweep: accuracy (in %) at full precision and after binarization.
METRICS = ("acc_full", "acc_sign")
#: Columns of the tidy result.
SWEEP_COLUMNS = ("probe", "level", "run", "repeat", "seed", "metric", "value")


def cell_seed(root: int, probe: str, level: float, run: int) -> int:
    """The seed of one (probe, level, run): a function of these keys and ``root`` only.

    Examples
    --------
    >>> from netstruct.probes import cell_seed
    >>> cell_seed(0, "noise-uniform", 0.1, 3) == cell_seed(0, "noise-uniform", 0.1, 3)
    True
    >>> cell_seed(0, "noise-uniform", 0.1, 3) != cell_seed(0, "noise-uniform", 0.1, 4)
    True
    """
    bits = int(np.float64(level).view(np.uint64))
    key = (zlib.crc32(probe.encode()), bits >> 32, bits & 0xFFFFFFFF, int(run))
    state = np.random.SeedSequence(int(root), spawn_key=key).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def fold50(values: object) -> np.ndarray:
    """The study's flip50 folding: accuracies (in %) below 50 become ``100 - value``.

    For two classes a network that is systematically wrong carries as much information as one
    that is right (spec §5).

    Examples
    --------
    >>> from netstruct.probes import fold50
    >>> fold50([30.0, 50.0, 96.02]).tolist()
    [70.0, 50.0, 96.02]
    """
    v = np.asarray(values, dtype=np.float64)
    return np.where(v < 50.0, 100.0 - v, v)


def _run_cell(G, spec: ProbeSpec, levels, n_repeats, seeds, X, y, metrics, n_steps, chunk_bytes):
    """Evaluate one probe on one network at all levels (inputs already validated)."""
    import warnings

    from ..algorithms.randomize import LayerTooSmallWarning

    n = n_repeats if spec.stochastic else 1
    weights: dict[str, list[np.ndarray]] = {b.name: [] for b in G.blocks}
    biases: dict[str, list[np.ndarray]] = {b.name: [] for b in G.blocks if b.bias is not None}
    keys = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerTooSmallWarning)
        for level, seed in zip(levels, seeds):
            stack = perturb(G, spec.name, level, n_samples=n, seed=seed, n_steps=n_steps)
            variants = {
                "acc_full": stack,
                "acc_sign": stack.binarized() if "acc_sign" in metrics else None,
            }
            for metric in metrics:
                st = variants[metric]
                assert st is not None  # metrics only lists variants that were built
                for name in weights:
                    weights[name].append(st.weights[name])
                for name in biases:
                    biases[name].append(st.biases[name])
                keys += [(level, r, seed, metric) for r in range(n)]
    acc = evaluate_batch(
        G,
        X,
        y,
        weights={k: np.concatenate(v) for k, v in weights.items()},
        biases={k: np.concatenate(v) for k, v in biases.items()},
        chunk_bytes=chunk_bytes,
    )
    return keys, 100.0 * acc


def _check_graphs(graphs: object, func: str) -> list[SignedGraph]:
    if isinstance(graphs, SignedGraph):
        return [graphs]
    if isinstance(graphs, Sequence) and len(graphs) > 0:
        return [check_graph(g, func, "graphs") for g in graphs]
    raise param_error(
        "graphs", func, "a SignedGraph or a non-empty list of them (one per trained run)", graphs
    )


def _check_probes(probes: object, func: str) -> list[tuple[ProbeSpec, list[float]]]:
    if not isinstance(probes, Mapping) or not probes:
        raise param_error("probes", func, "a non-empty dict {probe name: levels}", probes)
    out = []
    for name, levels in probes.items():
        spec = check_probe(name, func)
        lv = (
            [levels]
            if isinstance(levels, numbers.Real)
            else list(np.asarray(levels, dtype=float).ravel())
        )
        if not lv:
            raise param_error("probes", func, f"at least one level for probe {name!r}", levels)
        out.append((spec, [check_level(spec, float(v), func) for v in lv]))
    names = [s.name for s, _ in out]
    if len(set(names)) != len(names):
        raise param_error(
            "probes", func, "distinct probes (aliases count as their target)", list(probes)
        )
    return out


def _check_not_empty(X: object, func: str) -> None:
    """Refuse data that is not numeric or has no samples (before the classifier checks)."""
    try:
        Xa = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise param_error(
            "X",
            func,
            "a numeric array of shape (n_samples, n_features)",
            f"{type(X).__name__} ({exc})",
        ) from None
    if Xa.ndim == 0 or len(Xa) == 0:
        raise param_error("X", func, "an array with at least one sample", f"shape {Xa.shape}")


def sweep(
    graphs: SignedGraph | Sequence[SignedGraph],
    X: object,
    y: object,
    probes: Mapping[str, object],
    *,
    n_repeats: int = 1,
    metrics: Sequence[str] = METRICS,
    seed: int | np.random.Generator | None = 0,
    scheduler: str | None = None,
    n_jobs: int | None = None,
    n_steps: int | None = None,
    chunk_bytes: int = 256 * 2**20,
) -> pd.DataFrame:
    """Run probes at several levels on one or more trained networks; return a tidy table.

    Parameters
    ----------
    graphs : SignedGraph or list of SignedGraph
        One graph per trained run (column ``run`` is its position).
    X, y : array-like
        Test data (``X`` of shape (n_samples, n_features) or images) and int labels.
    probes : dict of str to float or list of float
        ``{probe name: levels}``; names from :data:`~netstruct.probes.PROBES`, e.g.
        ``{"prune": [0, .5, .9], "noise": np.logspace(-10, 0, 30, base=2), "null-B": [0]}``.
    n_repeats : int >= 1, default=1
        Copies per (probe, level, run) for random probes (noise draws, random masks, null
        samples); deterministic probes are evaluated once.
    metrics : subset of {"acc_full", "acc_sign"}, default=both
        Evaluate each copy at full precision and/or followed by binarization.
    seed : int, Generator or None, default=0
        Root seed. With None, one root is drawn once, before any cell runs.
    scheduler : str or None, default=None
        Where the cells run: None for the active Dask client or a local Dask cluster, an
        address (``"tcp://host:8786"``) for a running cluster, ``"serial"`` for this process.
    n_jobs : int, optional
        ``1`` runs serially; otherwise the worker count of the local cluster when it starts.
    n_steps : int, optional
        Chain length of MCMC null models.
    chunk_bytes : int, default=256 MiB
        Activation memory budget of the batched evaluation.

    Returns
    -------
    DataFrame
        Columns :data:`SWEEP_COLUMNS`: ``probe`` (canonical name), ``level``, ``run``,
        ``repeat``, ``seed`` (the cell seed; ``perturb(graphs[run], probe, level,
        n_samples=repeat + 1, seed=seed)`` rebuilds the copy), ``metric``, ``value``
        (accuracy in %). Rows are ordered by probe, level, run, metric, repeat.

    Raises
    ------
    InvalidParameterError
        Bad probes or levels (fraction outside [0, 1], negative scale, unknown probe), a graph
        that is not a classifier the evaluator understands, or data that do not fit it.

    See Also
    --------
    summarize : medians and inter-quartile ranges.
    plot_sweep, plot_violins : figures.

    Notes
    -----
    Blocks too small for an MCMC null model are returned unchanged, silently here (see
    :func:`netstruct.randomize_ensemble`). Cells are (probe, run); within a cell all copies
    are evaluated in one batched pass.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import sweep
    >>> ds = ns.datasets.class_pair(ns.datasets.load_digits(), 0, 7)
    >>> model = ns.training.mlp([64, 16, 2], seed=0)
    >>> _ = ns.training.train(model, ds.X_train, ds.y_train, epochs=3, progress=False)
    >>> df = sweep(ns.from_torch(model), ds.X_test, ds.y_test,
    ...            {"prune": [0.0, 0.5], "noise": [0.1]}, n_repeats=3)
    >>> df.columns.tolist()
    ['probe', 'level', 'run', 'repeat', 'seed', 'metric', 'value']
    >>> len(df)  # prune: 2 levels x 2 metrics; noise: 1 level x 3 repeats x 2 metrics
    10
    """
    from ..utils.cluster import run_tasks

    func = "sweep"
    Gs = _check_graphs(graphs, func)
    plist = _check_probes(probes, func)
    n_repeats = int(check_scalar(n_repeats, "n_repeats", func, kind=int, min_value=1))
    if not isinstance(metrics, (str, list, tuple)):
        raise param_error("metrics", func, f"a non-empty subset of {list(METRICS)}", metrics)
    metrics = list(metrics) if not isinstance(metrics, str) else [metrics]
    if not metrics or len(set(metrics)) != len(metrics):
        raise param_error("metrics", func, f"a non-empty subset of {list(METRICS)}", metrics)
    for m in metrics:
        check_choice(m, "metrics", func, METRICS)
    _check_not_empty(X, func)
    _, Xa, ya = check_classifier(Gs[0], X, y, func=func)
    for G in Gs[1:]:
        check_classifier(G, Xa, ya, func=func)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        root = int(check_scalar(seed, "seed", func, kind=int, min_value=0))
    else:  # None or a Generator: draw one root now, before any cell runs
        root = int(check_random_state(seed, func=func).integers(2**63 - 1))
    tasks, meta = [], []
    for spec, levels in plist:
        for run, G in enumerate(Gs):
            seeds = [cell_seed(root, spec.name, lv, run) for lv in levels]
            tasks.append((G, spec, levels, n_repeats, seeds, Xa, ya, metrics, n_steps, chunk_bytes))
            meta.append((spec.name, run))
    results = run_tasks(_run_cell, tasks, scheduler=scheduler, n_jobs=n_jobs, caller=func)
    frames = []
    for (name, run), (keys, values) in zip(meta, results):
        level, rep, sd, metric = zip(*keys)
        frames.append(
            pd.DataFrame(
                {
                    "probe": name,
                    "level": np.asarray(level, dtype=float),
                    "run": run,
                    "repeat": np.asarray(rep, dtype=np.int64),
                    "seed": np.asarray(sd, dtype=np.int64),
                    "metric": list(metric),
                    "value": values,
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    order = {s.name: i for i, (s, _) in enumerate(plist)}
    df["_p"] = df["probe"].map(order)
    df = df.sort_values(["_p", "level", "run", "metric", "repeat"], kind="stable").drop(
        columns="_p"
    )
    return df.reset_index(drop=True)[list(SWEEP_COLUMNS)]


def summarize(df: pd.DataFrame, *, fold: bool = False, over: str = "runs") -> pd.DataFrame:
    """Medians and inter-quartile ranges of a sweep, per (probe, level, metric).

    Parameters
    ----------
    df : DataFrame
        The output of :func:`sweep`.
    fold : bool, default=False
        Apply :func:`fold50` to every value first (the study's violins).
    over : {"runs", "samples"}, default="runs"
        ``"runs"``: average the repeats of each run first, then take quantiles across runs
        (the study's aggregation); ``"samples"``: quantiles over every (run, repeat).

    Returns
    -------
    DataFrame
        Columns ``probe, level, metric, median, q25, q75, n``.

    Examples
    --------
    >>> import pandas as pd
    >>> from netstruct.probes import summarize
    >>> df = pd.DataFrame({"probe": "none", "level": 0.0, "run": [0, 1, 2], "repeat": 0,
    ...                    "seed": 1, "metric": "acc_sign", "value": [30.0, 60.0, 90.0]})
    >>> summarize(df, fold=True)[["median", "q25", "q75", "n"]].values.tolist()
    [[70.0, 65.0, 80.0, 3.0]]
    """
    func = "summarize"
    missing = set(SWEEP_COLUMNS) - set(getattr(df, "columns", []))
    if missing:
        raise param_error(
            "df",
            func,
            f"a sweep table with columns {list(SWEEP_COLUMNS)}",
            f"missing {sorted(missing)}",
        )
    check_choice(over, "over", func, ("runs", "samples"))
    d = df.assign(value=fold50(df["value"])) if fold else df
    keys = ["probe", "level", "metric"]
    if over == "runs":
        d = d.groupby([*keys, "run"], sort=False, as_index=False)["value"].mean()
    g = d.groupby(keys, sort=False)["value"]
    out = pd.DataFrame(
        {
            "median": g.median(),
            "q25": g.quantile(0.25),
            "q75": g.quantile(0.75),
            "n": g.size().astype(float),
        }
    ).reset_index()
    return out

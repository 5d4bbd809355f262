"""Signed motif census of layered networks, and motif z-scores against null models.

Motifs are counted in closed form from co-occurrence products per block and per pair of
adjacent blocks (sparse or BLAS products reduced by numba kernels), never by enumeration.
See :mod:`netstruct.algorithms._motif_plan` for the motif instances and the sign classes:

* size 3 -- ``chain`` (``++ +- -+ --``, edge order along the path), ``convergent`` and
  ``divergent`` pairs (``++ +- --``), ``skip_triangle`` (signs of ``a->b, b->c, a->c``);
* size 4 -- ``chain4`` (three signs), ``bifan`` (``++++``, ``+++-``, ``++--/source`` where
  each source's two edges agree, ``++--/target`` where each target's do, ``++--/cross``,
  ``+---``, ``----``) and ``biparallel`` (the unordered pair of path types, ``"++|-+"``).

Edges are the non-zero weights (a masked or exactly-zero weight has no sign). LSTM/GRU gate
rows count as their unit (with ``aggregate`` saying how the gates' weights combine), so the
census of a recurrent graph is per block on the unit graph.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._dtypes import WEIGHT_DTYPE
from ..backends import dispatch, resolve_backend
from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.cluster import check_scheduler, run_tasks
from ..utils.random import check_random_state, spawn_seeds
from ..utils.validation import check_choice, check_graph, check_scalar
from . import _motif_plan as _p
from . import _randomize_models as _m
from ._motif_plan import MOTIFS
from .randomize import LayerTooSmallWarning

__all__ = ["motif_census", "motif_zscores", "MotifZScores", "MOTIFS"]

_AGGREGATES = ("max", "sum")


def _check_size(size: object, func: str) -> tuple[int, ...]:
    if size is None:
        return (3, 4)
    if isinstance(size, numbers.Integral) and not isinstance(size, bool) and int(size) in (3, 4):
        return (int(size),)
    raise param_error("size", func, "3, 4 or None (both)", size)


def _groups(
    keys: list[tuple[str, str, str]], by_block: bool, signed: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of the output table and, per census entry, the row it is summed into."""
    df = pd.DataFrame(keys, columns=["motif", "signs", "blocks"])
    if not signed:
        df["signs"] = ""
    if not by_block:
        df = df.drop(columns="blocks")
    cols = list(df.columns)
    codes, uniques = pd.MultiIndex.from_frame(df).factorize()
    rows = uniques.to_frame(index=False, name=cols)
    rows.insert(1, "size", rows["motif"].map(lambda m: MOTIFS[m][0]).astype(np.int64))
    return rows, codes


def _sum_rows(codes: np.ndarray, n_rows: int, values: np.ndarray) -> np.ndarray:
    """Sum the last axis of ``values`` into ``n_rows`` groups."""
    values = np.atleast_2d(values)
    out = np.zeros((values.shape[0], n_rows))
    for j in range(values.shape[0]):
        out[j] = np.bincount(codes, weights=values[j], minlength=n_rows)
    return out


def _census(G: SignedGraph, size: tuple[int, ...], aggregate: str, backend: str | None):
    plan = _p.build_plan(G)
    kernels = _kernels(backend)
    mats = _p.block_matrices(
        plan, [b.weight for b in G.blocks], [b.mask for b in G.blocks], aggregate
    )
    return plan, _p.census_vector(plan, mats, size, True, kernels)


def _kernels(backend: str | None):
    import importlib

    name = resolve_backend(backend)
    dispatch("motifs.bifan_classes", name)  # raises a clear error when the backend lacks it
    return importlib.import_module(f"netstruct.backends.{name}.motifs")


def motif_census(
    G: SignedGraph,
    *,
    size: int | None = 4,
    signed: bool = True,
    by_block: bool = False,
    aggregate: str = "max",
    backend: str | None = None,
) -> pd.DataFrame:
    """Count signed 3- and 4-node motifs of a layered network in closed form.

    Parameters
    ----------
    G : SignedGraph
    size : {3, 4} or None, default=4
        Motif size; None counts both.
    signed : bool, default=True
        False sums the sign classes of each motif (the unsigned census).
    by_block : bool, default=False
        True gives one row per block tuple (column ``blocks``, e.g. ``"0.weight -> 2.weight"``);
        False sums over block tuples.
    aggregate : {"max", "sum"}, default="max"
        How the weights of a unit's gate rows combine (LSTM/GRU): the signed weight of the
        largest magnitude, or the sum. Ignored for graphs without gates.
    backend : {"numba"}, default=None

    Returns
    -------
    DataFrame
        Columns ``motif, size, signs, [blocks,] count`` (float64 holding exact integers).

    Raises
    ------
    InvalidParameterError
        For a bad ``size``, ``aggregate`` or ``G``.
    GraphError
        When a block lists a node twice.

    See Also
    --------
    motif_zscores : the same counts against a null ensemble.
    netstruct.algorithms.maxent.expected_motif_census : analytic expectations.

    Notes
    -----
    A motif combines distinct blocks that are adjacent (targets of one overlap sources of the
    next). Cost per block ``O(n_out^2 n_in)`` dense (or the sparse product cost) for bi-fans,
    and per adjacent pair ``O(n_c n_b n_a)`` for bi-parallels; chains and pairs are
    ``O(n_edges)``. Without skip blocks, the unsigned chain, convergent, divergent, chain4,
    bifan and biparallel counts equal the induced counts of igraph's ``motifs_randesu``.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> W1 = np.array([[1.0, -1.0], [1.0, 1.0]])
    >>> W2 = np.array([[1.0, -1.0]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [
    ...     ns.make_block(name="l1", weight=W1, sources=[0, 1], targets=[2, 3]),
    ...     ns.make_block(name="l2", weight=W2, sources=[2, 3], targets=[4])])
    >>> c = ns.motif_census(G, size=4)
    >>> c[c["motif"] == "bifan"].set_index("signs")["count"].to_dict()["+++-"]
    1.0
    >>> int(ns.motif_census(G, size=3, signed=False).set_index("motif")["count"]["chain"])
    4
    """
    func = "motif_census"
    check_graph(G, func)
    sizes = _check_size(size, func)
    check_choice(aggregate, "aggregate", func, _AGGREGATES)
    plan, vec = _census(G, sizes, aggregate, backend)
    rows, codes = _groups(plan.keys(sizes), bool(by_block), bool(signed))
    rows["count"] = _sum_rows(codes, len(rows), vec)[0]
    return rows


# ----------------------------------------------------------------------------- null ensembles
@dataclass(frozen=True, eq=False)
class MotifZScores:
    """Motif counts of a graph against a null ensemble.

    Attributes
    ----------
    table : DataFrame
        ``motif, size, signs, [blocks,] observed, mean, std, z, p_greater, p_less``.
        ``z = (observed - mean) / std``; where the ensemble has no spread ``z`` is 0 when the
        observed count equals it and +-inf otherwise. Empirical p-values are
        ``(1 + #{null >= observed}) / (n_samples + 1)`` and the same with ``<=``.
    samples : ndarray of shape (n_samples, n_rows)
        The null counts, columns aligned with ``table``'s rows.
    model : str
        The null model's name.
    """

    table: pd.DataFrame
    samples: np.ndarray
    model: str


def _chunk_counts(task: tuple) -> np.ndarray:
    """Census of a chunk of null samples (one Dask task; module level so it can be shipped)."""
    kind, G, spec, steps, seeds, sizes, aggregate, backend, extra = task
    plan = _p.build_plan(G)
    kernels = _kernels(backend if kind != "maxent" else None)
    n = next(s.size for s in seeds if s is not None)
    stacks: list[Any] = []
    for b, block in enumerate(G.blocks):
        if seeds[b] is None:
            stacks.append(None)
        elif kind == "maxent":
            stacks.append(extra.sample_block(b, seeds[b]))
        else:
            w = np.ascontiguousarray(block.weight, dtype=WEIGHT_DTYPE)
            stacks.append(_m.run_block(w, spec, steps, seeds[b], backend)[0])
    rows = []
    for k in range(n):
        ws = [block.weight if st is None else st[k] for block, st in zip(G.blocks, stacks)]
        mats = _p.block_matrices(plan, ws, [b.mask for b in G.blocks], aggregate)
        rows.append(_p.census_vector(plan, mats, sizes, True, kernels))
    return np.array(rows)


def _zscore_table(base: pd.DataFrame, obs: np.ndarray, samples: np.ndarray) -> pd.DataFrame:
    mean = samples.mean(0) if samples.size else np.zeros(obs.size)
    std = samples.std(0, ddof=1) if samples.shape[0] > 1 else np.zeros(obs.size)
    diff = obs - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(
            std > 0,
            diff / np.where(std > 0, std, 1.0),
            np.where(np.isclose(diff, 0.0, atol=1e-9), 0.0, np.sign(diff) * np.inf),
        )
    n = samples.shape[0]
    t = base.copy()
    t["observed"], t["mean"], t["std"], t["z"] = obs, mean, std, z
    t["p_greater"] = (1 + (samples >= obs - 1e-9).sum(0)) / (n + 1)
    t["p_less"] = (1 + (samples <= obs + 1e-9).sum(0)) / (n + 1)
    return t


def motif_zscores(
    G: SignedGraph,
    model: str,
    *,
    n_samples: int = 1000,
    size: int | None = 4,
    signed: bool = True,
    by_block: bool = False,
    seed: int | np.random.Generator | None = None,
    n_steps: int | None = None,
    aggregate: str = "max",
    chunk_size: int = 64,
    scheduler: str | None = "serial",
    n_jobs: int | None = None,
    backend: str | None = None,
) -> MotifZScores:
    """Motif z-scores and empirical p-values of ``G`` against a null ensemble.

    Parameters
    ----------
    G : SignedGraph
    model : str
        A sign-preserving null model of :func:`netstruct.randomize` (``"A"`` ... ``"G"``,
        ``"curveball"`` ...) or a maximum-entropy model, ``"stp"`` (fixed topology, signed
        degrees in expectation) or ``"scm"`` (signed configuration model); see
        :func:`netstruct.algorithms.maxent.fit_maxent`.
    n_samples : int >= 2, default=1000
    size, signed, by_block, aggregate
        As in :func:`motif_census`.
    seed : int, Generator or None, default=None
        For the randomize models, sample ``k`` is ``randomize_ensemble(G, model, n,
        seed=seed).graph(k)`` whatever ``chunk_size`` and the scheduler.
    n_steps : int, default=None
        Chain length of the MCMC models (see :func:`netstruct.randomize_ensemble`).
    chunk_size : int >= 1, default=64
        Samples drawn per kernel call (one Dask task each).
    scheduler : str or None, default="serial"
        ``"serial"`` runs here; None uses the active Dask client or a local cluster, an
        address a running cluster (:mod:`netstruct.utils.cluster`).
    n_jobs : int, optional
        Workers of the local cluster.
    backend : {"numba", "cuda", "auto"}, default=None
        Backend of the null-model kernels.

    Returns
    -------
    MotifZScores

    Raises
    ------
    InvalidParameterError
        For bad parameters or an unknown model.

    Warns
    -----
    LayerTooSmallWarning
        When a chain cannot move on a block (it stays as observed).

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> rng = np.random.default_rng(0)
    >>> G = ns.SignedGraph({"name": [str(i) for i in range(12)]}, [
    ...     ns.make_block(name="l1", weight=rng.standard_normal((4, 4)), sources=range(4), targets=range(4, 8)),
    ...     ns.make_block(name="l2", weight=rng.standard_normal((4, 4)), sources=range(4, 8), targets=range(8, 12))])
    >>> zs = ns.motif_zscores(G, "A", n_samples=50, seed=0)
    >>> zs.samples.shape == (50, len(zs.table))
    True
    """
    func = "motif_zscores"
    check_graph(G, func)
    sizes = _check_size(size, func)
    check_choice(aggregate, "aggregate", func, _AGGREGATES)
    n_samples = int(check_scalar(n_samples, "n_samples", func, kind=numbers.Integral, min_value=2))
    chunk_size = int(
        check_scalar(chunk_size, "chunk_size", func, kind=numbers.Integral, min_value=1)
    )
    check_scheduler(scheduler, func)
    rng = check_random_state(seed, func=func)
    plan, obs = _census(G, sizes, aggregate, None)
    maxent_name = model.strip().lower() if isinstance(model, str) else None
    if maxent_name in ("stp", "scm"):
        from .maxent import fit_maxent

        fitted = fit_maxent(G, maxent_name, aggregate=aggregate)
        kind, spec, steps, extra = "maxent", None, None, fitted
        # the maxent sampler draws unit-level blocks: census them directly
        G_run = fitted.unit_graph
        seeds_all: list[np.ndarray | None] = [
            spawn_seeds(c, n_samples, func=func) for c in rng.spawn(len(G_run.blocks))
        ]
        name = maxent_name
    else:
        spec = _m.check_model(model, func)
        from .randomize import _check_n_steps

        steps = _check_n_steps(n_steps, spec, func)
        kind, extra, G_run = "randomize", None, G
        children = rng.spawn(len(G.blocks))
        seeds_all = []
        for b, block in enumerate(G.blocks):
            seeds = spawn_seeds(children[b], n_samples, func=func)
            reason = _m.too_small(np.asarray(block.weight), spec) if spec.is_mcmc else None
            if reason is not None:
                warnings.warn(
                    f"Block {block.name!r} is too small for null model {spec.name!r}: {reason}. "
                    "It stays as observed.",
                    LayerTooSmallWarning,
                    stacklevel=2,
                )
                seeds_all.append(None)
                continue
            seeds_all.append(seeds)
        name = spec.name
    movable = any(s is not None for s in seeds_all)
    tasks = [
        (
            (
                kind,
                G_run,
                spec,
                steps,
                [None if s is None else s[lo : lo + chunk_size] for s in seeds_all],
                sizes,
                aggregate,
                backend,
                extra,
            ),
        )
        for lo in range(0, n_samples, chunk_size)
    ]
    if movable:
        samples = np.concatenate(
            run_tasks(_chunk_counts, tasks, scheduler=scheduler, n_jobs=n_jobs, caller=func)
        )
    else:  # nothing can move: every sample is the observed graph
        samples = np.tile(obs, (n_samples, 1))
    rows, codes = _groups(plan.keys(sizes), bool(by_block), bool(signed))
    agg_obs = _sum_rows(codes, len(rows), obs)[0]
    agg_samples = _sum_rows(codes, len(rows), samples)
    return MotifZScores(
        table=_zscore_table(rows, agg_obs, agg_samples), samples=agg_samples, model=name
    )

"""Mixing diagnostic for the randomization chains (re-exported by ``algorithms.randomize``)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .._dtypes import WEIGHT_DTYPE
from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.random import check_random_state, spawn_seeds
from ..utils.validation import check_graph, check_scalar
from . import _randomize_models as _m

__all__ = ["MixingTrace", "mixing_diagnostic"]


@dataclass(frozen=True)
class MixingTrace:
    """How far chains have moved from the original sign pattern, against steps.

    Attributes
    ----------
    steps : ndarray of shape (n_points,)
        Cumulative steps (swap proposals or curveball trades) at each checkpoint.
    hamming : ndarray of shape (n_chains, n_points)
        Fraction of non-zero cells whose sign differs from the original.
    overlap : ndarray of shape (n_chains, n_points)
        Fraction of the original positive edges that are still positive.
    acceptance : ndarray of shape (n_chains, n_points)
        Fraction of the steps since the previous checkpoint that changed the pattern.
    default_n_steps : int
        What :func:`randomize` would run by default on this block.
    plateau : float
        Mean Hamming fraction over the last quarter of the checkpoints.
    mixed_at : int or None
        First checkpoint whose chain-mean Hamming fraction reaches 90 % of ``plateau`` (a
        coarse, noise-tolerant mark; look at the whole trace for a finer choice).
    """

    steps: np.ndarray
    hamming: np.ndarray
    overlap: np.ndarray
    acceptance: np.ndarray
    default_n_steps: int
    plateau: float
    mixed_at: int | None


def mixing_diagnostic(
    G: SignedGraph,
    model: str = "G-left",
    *,
    layer: int | str = 0,
    n_steps: int | None = None,
    n_points: int = 20,
    n_chains: int = 4,
    seed: int | np.random.Generator | None = None,
    backend: str | None = None,
) -> MixingTrace:
    """Trace the distance from the original sign pattern along a chain, to choose ``n_steps``.

    Runs ``n_chains`` chains of a G or curveball model on one block, stopping at ``n_points``
    checkpoints. A chain has mixed once the Hamming fraction stops growing (``plateau``);
    pick ``n_steps`` at or beyond ``mixed_at`` (the default rule is ``default_n_steps``).

    Parameters
    ----------
    G : SignedGraph
    model : str, default="G-left"
        A chain model (G family or curveball).
    layer : int or str, default=0
    n_steps : int >= 1, default=None
        Total steps; None means three times the default chain length.
    n_points : int >= 1, default=20
    n_chains : int >= 1, default=4
    seed : int, Generator or None, default=None
    backend : {"numba", "cuda", "auto"}, default=None

    Returns
    -------
    MixingTrace

    Raises
    ------
    InvalidParameterError
        For an exact model (A–F), a block too small to move, or bad counts.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.algorithms.randomize import mixing_diagnostic
    >>> W = np.random.default_rng(0).standard_normal((20, 30))
    >>> G = ns.SignedGraph({"name": [str(i) for i in range(50)]}, [ns.make_block(
    ...     name="fc", weight=W, sources=range(30), targets=range(30, 50))])
    >>> tr = mixing_diagnostic(G, "G-left", n_points=5, n_chains=2, seed=0)
    >>> tr.hamming.shape, bool(tr.plateau > 0.3)
    ((2, 5), True)
    """
    func = "mixing_diagnostic"
    check_graph(G, func)
    spec = _m.check_model(model, func)
    if not spec.is_mcmc:
        raise param_error(
            "model",
            func,
            "a chain model (G-left, G-right, G-shuffle, curveball, curveball-right)",
            model,
        )
    b = G.block_index(layer)
    n_points = int(check_scalar(n_points, "n_points", func, kind=numbers.Integral, min_value=1))
    n_chains = int(check_scalar(n_chains, "n_chains", func, kind=numbers.Integral, min_value=1))
    w0 = np.ascontiguousarray(G.blocks[b].weight, dtype=WEIGHT_DTYPE)
    if _m.too_small(w0, spec) is not None:
        raise param_error(
            "layer",
            func,
            "a block large enough to move (" + str(_m.too_small(w0, spec)) + ")",
            layer,
        )
    default = _m.default_n_steps(w0, spec)
    total = (
        3 * default
        if n_steps is None
        else int(check_scalar(n_steps, "n_steps", func, kind=numbers.Integral, min_value=1))
    )
    chunk = max(math.ceil(total / n_points), 1)
    seeds = spawn_seeds(check_random_state(seed, func=func), n_chains * n_points, func=func)
    support = w0 != 0
    pos0 = w0 > 0
    n_support = max(int(support.sum()), 1)
    n_pos0 = max(int(pos0.sum()), 1)
    hamming = np.zeros((n_chains, n_points))
    overlap = np.zeros((n_chains, n_points))
    acceptance = np.zeros((n_chains, n_points))
    steps = np.zeros(n_points, dtype=np.int64)
    for c in range(n_chains):
        w = w0
        done = 0
        for k in range(n_points):
            out, ran, acc = _m.run_block(
                w, spec, chunk, seeds[c * n_points + k : c * n_points + k + 1], backend
            )
            w = out[0]
            done += ran
            steps[k] = done
            hamming[c, k] = np.count_nonzero((np.sign(w) != np.sign(w0)) & support) / n_support
            overlap[c, k] = np.count_nonzero((w > 0) & pos0) / n_pos0
            acceptance[c, k] = float(acc[0]) if acc is not None else 0.0
    mean = hamming.mean(axis=0)
    plateau = float(mean[-max(n_points // 4, 1) :].mean())
    reached = np.flatnonzero(mean >= 0.9 * plateau) if plateau > 0 else np.zeros(0, dtype=np.int64)
    mixed_at = int(steps[reached[0]]) if reached.size else None
    return MixingTrace(steps, hamming, overlap, acceptance, default, plateau, mixed_at)

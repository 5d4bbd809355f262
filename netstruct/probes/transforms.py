"""The data-agnostic probes as graph transforms: prune, binarize, add noise, flip signs, shuffle.

Every probe acts on each weight block (bipartite layer) of a :class:`~netstruct.SignedGraph`
independently, with the same parameter in every selected block, and — except the null-model
shuffle — also on the biases, as in the task-complexity study (spec §4). Each returns a new
graph; follow any of them with :func:`binarize` for the "signed" variant.

The per-block array kernels live in :mod:`netstruct.probes._layers`; the flip statistics of
noise in :mod:`netstruct.probes.flip_fraction`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from ..algorithms.randomize import _check_layers, randomize
from ..graphs.signed import SignedGraph
from ..utils.deprecation import renamed_parameters
from ..utils.random import check_random_state
from ..utils.validation import check_choice, check_fraction, check_graph, check_scalar

if TYPE_CHECKING:
    from ..pruning.plan import PruningPlan
from ._layers import _binarize_layer, _flip_layer, _noise_layer, _prune_layer

__all__ = [
    "prune",
    "prune_plan",
    "binarize",
    "add_noise",
    "flip_signs",
    "shuffle_weights",
    "PRUNE_RULES",
    "NOISE_DISTS",
    "NOISE_MODES",
]

#: Selection rules of :func:`prune` and :func:`flip_signs` (which weights are hit).
PRUNE_RULES = ("smallest", "largest", "random")
#: Noise distributions of :func:`add_noise`.
NOISE_DISTS = ("uniform", "gaussian")
#: Noise modes of :func:`add_noise`.
NOISE_MODES = ("additive", "multiplicative")

#: A block selector: index, name, a list of them, or None (all blocks).
Layers = int | str | Iterable[int | str] | None


def _apply(G: SignedGraph, layers: list[int], fn) -> SignedGraph:
    updates = {}
    for i in layers:
        blk = G.blocks[i]
        W, m, b = fn(blk.weight, blk.mask, blk.bias)
        ch = {"weight": W, "mask": m}
        if b is not None:
            ch["bias"] = b
        updates[i] = ch
    return G.replace_blocks(updates)


# ----------------------------------------------------------------------------- public probes
def _check_blocks(G: SignedGraph, blocks: Layers, func: str) -> list[int]:
    """Validated block indices; messages name the ``blocks`` parameter."""
    return _check_layers(G, blocks, func)


def _check_fraction_probe(
    G: SignedGraph, fraction: float, rule: str, blocks: Layers, seed: object, func: str,
    fraction_name: str = "fraction",
):  # fmt: skip
    """Validated ``(fraction, rule, block indices, rng)`` of the fraction-based probes."""
    check_graph(G, func)
    fraction = check_fraction(fraction, fraction_name, func)
    rule = check_choice(rule, "rule", func, PRUNE_RULES)
    idx = _check_blocks(G, blocks, func)
    return fraction, rule, idx, check_random_state(seed, func=func)


@renamed_parameters("probes.prune", fraction="amount", layers="blocks")
def prune(
    G: SignedGraph,
    amount: float,
    *,
    rule: str = "smallest",
    seed: int | np.random.Generator | None = 0,
    blocks: Layers = None,
    prune_bias: bool = True,
) -> SignedGraph:
    """Remove a fraction of the edges of every block, chosen by magnitude or at random.

    In each selected block ``floor((1 - amount) * n_edges)`` edges are kept (per layer, not
    globally); the others are removed (mask False, weight 0). The block's bias is pruned with
    the same kept fraction, as in the study. :func:`prune_plan` gives the same edge decision
    as a replayable :class:`~netstruct.pruning.PruningPlan` (biases are not part of a plan).

    Parameters
    ----------
    G : SignedGraph
    amount : float in [0, 1]
        Fraction ``p`` of the present edges to remove (formerly ``fraction``, still accepted
        with a FutureWarning). 0 returns ``G`` unchanged.
    rule : {"smallest", "largest", "random"}, default="smallest"
        Remove the smallest ``|w|`` (keep the largest), the largest ``|w|``, or a uniformly
        random subset. Ties are broken by position (row-major), lowest first.
    seed : int, Generator or None, default=0
        Used by ``rule="random"`` only.
    blocks : int, str or list of them, default=None
        Blocks to prune (index or name); None means all (formerly ``layers``).
    prune_bias : bool, default=True
        Also zero ``n_out - floor((1 - amount) * n_out)`` bias entries by the same rule.

    Returns
    -------
    SignedGraph

    Raises
    ------
    InvalidParameterError
        ``amount`` outside [0, 1], an unknown ``rule``, bad ``seed`` or ``blocks``.

    Notes
    -----
    The count uses ``floor(f * N + 1e-9)`` so that ``int((1 - 0.9) * 10) == 0`` does not
    happen (spec G6). Pruning is one-shot from the given weights, never cumulative.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import prune
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
    ...     name="fc", weight=W, bias=[0.1, -0.2], sources=[0, 1, 2], targets=[3, 4])])
    >>> P = prune(G, 0.5)
    >>> P.blocks[0].weight.astype(float).round(2).tolist(), P.blocks[0].bias.astype(float).round(2).tolist()
    ([[0.5, 0.0, 0.0], [-0.4, 0.3, 0.0]], [0.0, -0.2])
    """
    fraction, rule, idx, rng = _check_fraction_probe(
        G, amount, rule, blocks, seed, "prune", "amount"
    )
    if fraction == 0.0:
        return G
    return _apply(G, idx, lambda W, m, b: _prune_layer(W, m, b, fraction, rule, rng, prune_bias))


def prune_plan(
    G: SignedGraph,
    amount: float,
    *,
    rule: str = "smallest",
    seed: int | np.random.Generator | None = 0,
    blocks: Layers = None,
) -> PruningPlan:
    """The edge decision of :func:`prune` (with ``prune_bias=False``) as a replayable plan.

    Parameters
    ----------
    G, amount, rule, seed, blocks
        As in :func:`prune`.

    Returns
    -------
    PruningPlan
        Removes the edges ``prune(G, amount, ..., prune_bias=False)`` removes; apply it with
        ``netstruct.prune(G, plan)`` or replay it on a graph of the same architecture.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import prune, prune_plan
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> nodes = {"name": list("abcde"), "kind": ["input"] * 3 + ["output"] * 2}
    >>> G = ns.SignedGraph(nodes, [ns.make_block(name="fc", weight=W, sources=[0, 1, 2], targets=[3, 4])])
    >>> ns.prune(G, prune_plan(G, 0.5)).blocks[0].mask.tolist()
    [[True, False, False], [True, True, False]]
    """
    from ..pruning.plan import PruningPlan

    func = "prune_plan"
    fraction, rule, idx, rng = _check_fraction_probe(G, amount, rule, blocks, seed, func, "amount")
    keep = {}
    if fraction > 0.0:
        for i in idx:
            b = G.blocks[i]
            keep[b.name] = _prune_layer(b.weight, b.mask, None, fraction, rule, rng, False)[1]
    return PruningPlan.for_graph(G).remove_masked(
        G,
        keep,
        reason=f"probes.prune: {fraction:g} of each block's edges by rule {rule!r}",
        meta={"method": "probes.prune", "amount": fraction, "rule": rule},
    )


@renamed_parameters("probes.binarize", layers="blocks")
def binarize(G: SignedGraph, *, blocks: Layers = None, scale: str = "none") -> SignedGraph:
    """Keep only the signs of the weights and biases: ``W <- sign(W)``, ``b <- sign(b)``.

    Parameters
    ----------
    G : SignedGraph
    blocks : int, str or list of them, default=None
        Blocks to binarize; None means all (the study binarizes every layer at once).
    scale : {"none", "mean"}, default="none"
        ``"none"`` is the study's plain sign; ``"mean"`` multiplies each block's signs (and its
        bias signs) by the block's mean ``|w|`` (XNOR-Net style, spec G4).

    Returns
    -------
    SignedGraph
        Weights in {-1, 0, +1} (pruned edges stay 0).

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import binarize
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
    ...     name="fc", weight=W, bias=[0.1, -0.2], sources=[0, 1, 2], targets=[3, 4])])
    >>> S = binarize(G)
    >>> S.blocks[0].weight.tolist(), S.blocks[0].bias.tolist()
    ([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]], [1.0, -1.0])
    """
    func = "binarize"
    check_graph(G, func)
    scale = check_choice(scale, "scale", func, ("none", "mean"))
    idx = _check_blocks(G, blocks, func)
    return _apply(G, idx, lambda W, m, b: _binarize_layer(W, m, b, scale))


@renamed_parameters("probes.add_noise", layers="blocks")
def add_noise(
    G: SignedGraph,
    scale: float,
    *,
    dist: str = "uniform",
    mode: str = "additive",
    seed: int | np.random.Generator | None = None,
    blocks: Layers = None,
    noise_bias: bool = True,
) -> SignedGraph:
    """Perturb every non-zero weight and bias with i.i.d. noise of absolute scale ``scale``.

    ``additive``: ``w + eps``; ``multiplicative``: ``w * eps`` (the study's sanity check, which
    randomises every sign). ``eps ~ U(-a, a)`` for ``dist="uniform"`` or ``N(0, a**2)`` for
    ``"gaussian"``, drawn once per call (the study redrew it per test batch, spec G7).

    Parameters
    ----------
    G : SignedGraph
    scale : float >= 0
        ``a`` (uniform half-width) or ``sigma`` (Gaussian). 0 returns ``G`` unchanged.
    dist : {"uniform", "gaussian"}, default="uniform"
    mode : {"additive", "multiplicative"}, default="additive"
    seed : int, Generator or None, default=None
        Per block, the weight noise then the bias noise are drawn from one generator.
    blocks : int, str or list of them, default=None
    noise_bias : bool, default=True
        Also perturb the non-zero biases.

    Returns
    -------
    SignedGraph
        Same edges; zero weights (pruned or exact zeros) stay zero.

    Raises
    ------
    InvalidParameterError
        Negative ``scale``, unknown ``dist`` or ``mode``, bad ``seed`` or ``blocks``.

    See Also
    --------
    netstruct.probes.expected_flip_fraction : how many signs the noise flips on average.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import add_noise
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
    ...     name="fc", weight=W, sources=[0, 1, 2], targets=[3, 4])])
    >>> add_noise(G, 0.0, seed=0) is G
    True
    >>> N = add_noise(G, 0.01, seed=0)
    >>> bool(np.abs(N.blocks[0].weight - G.blocks[0].weight).max() <= 0.01)
    True
    """
    func = "add_noise"
    check_graph(G, func)
    scale = float(check_scalar(scale, "scale", func, min_value=0.0))
    dist = check_choice(dist, "dist", func, NOISE_DISTS)
    mode = check_choice(mode, "mode", func, NOISE_MODES)
    idx = _check_blocks(G, blocks, func)
    rng = check_random_state(seed, func=func)
    if scale == 0.0:
        return G
    return _apply(G, idx, lambda W, m, b: _noise_layer(W, m, b, scale, dist, mode, rng, noise_bias))


@renamed_parameters("probes.flip_signs", layers="blocks")
def flip_signs(
    G: SignedGraph,
    fraction: float,
    *,
    rule: str = "smallest",
    seed: int | np.random.Generator | None = None,
    blocks: Layers = None,
    flip_bias: bool = True,
) -> SignedGraph:
    """Multiply ``floor(fraction * n_edges)`` weights of every block by -1.

    Parameters
    ----------
    G : SignedGraph
    fraction : float in [0, 1]
        Fraction ``q`` of each block's edges to flip. 0 returns ``G`` unchanged.
    rule : {"smallest", "largest", "random"}, default="smallest"
        Flip the smallest ``|w|`` first (the study's main probe), the largest, or a random
        subset. Ties are broken by position.
    seed : int, Generator or None, default=None
        Used by ``rule="random"`` only.
    blocks : int, str or list of them, default=None
    flip_bias : bool, default=True
        Also flip ``floor(fraction * n_out)`` bias entries by the same rule.

    Returns
    -------
    SignedGraph

    Raises
    ------
    InvalidParameterError
        ``fraction`` outside [0, 1], an unknown ``rule``, bad ``seed`` or ``blocks``.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import flip_signs
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
    ...     name="fc", weight=W, sources=[0, 1, 2], targets=[3, 4])])
    >>> flip_signs(G, 0.5).blocks[0].weight.astype(float).round(2).tolist()
    [[0.5, 0.2, -0.1], [-0.4, 0.3, 0.05]]
    """
    fraction, rule, idx, rng = _check_fraction_probe(G, fraction, rule, blocks, seed, "flip_signs")
    if fraction == 0.0:
        return G
    return _apply(G, idx, lambda W, m, b: _flip_layer(W, m, b, fraction, rule, rng, flip_bias))


@renamed_parameters("probes.shuffle_weights", layers="blocks")
def shuffle_weights(
    G: SignedGraph,
    model: str,
    *,
    prune_fraction: float = 0.0,
    seed: int | np.random.Generator | None = None,
    blocks: Layers = None,
    n_steps: int | None = None,
) -> SignedGraph:
    """Prune the smallest weights (optional), then randomize every block with a null model.

    The study's randomization probe (spec §4.5): ``prune(G, prune_fraction)`` (biases
    included), then one sample of :func:`netstruct.randomize`; zeros never move and biases are
    not randomized.

    Parameters
    ----------
    G : SignedGraph
    model : str
        A null model of :data:`netstruct.algorithms.randomize.NULL_MODELS` (``"A"`` … ``"F"``,
        ``"G-left"``, ``"G-right"``, ``"G-shuffle"``, ``"curveball"`` …).
    prune_fraction : float in [0, 1], default=0.0
    seed : int, Generator or None, default=None
        Seeds the null model (equals ``randomize(prune(G, p), model, seed=seed)``).
    blocks : int, str or list of them, default=None
        Blocks to prune and randomize.
    n_steps : int, optional
        Chain length for the MCMC models (see :func:`netstruct.randomize_ensemble`).

    Returns
    -------
    SignedGraph

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import shuffle_weights, binarize
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
    ...     name="fc", weight=W, sources=[0, 1, 2], targets=[3, 4])])
    >>> S = shuffle_weights(G, "B", seed=0)
    >>> binarize(S).blocks[0].weight.tolist() == binarize(G).blocks[0].weight.tolist()
    True
    """
    func = "shuffle_weights"
    check_graph(G, func)
    prune_fraction = check_fraction(prune_fraction, "prune_fraction", func)
    _check_blocks(G, blocks, func)
    P = prune(G, prune_fraction, blocks=blocks)
    return randomize(P, model, blocks=blocks, seed=seed, n_steps=n_steps)

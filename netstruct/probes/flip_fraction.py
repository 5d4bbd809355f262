"""How many signs does additive noise flip? (spec §4.3 and G20)."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_choice, check_scalar
from .transforms import NOISE_DISTS

__all__ = ["flip_probability", "expected_flip_fraction"]


def flip_probability(weights: object, scale: float, *, dist: str = "uniform") -> np.ndarray:
    """Probability that additive noise changes the sign of each weight.

    Uniform ``U(-a, a)``: ``max(0, (a - |w|) / (2a))``; Gaussian ``N(0, s**2)``:
    ``Phi(-|w| / s)``. Zero weights get no noise, hence probability 0; ``scale == 0`` gives 0.

    Parameters
    ----------
    weights : array-like of float
    scale : float >= 0
    dist : {"uniform", "gaussian"}, default="uniform"

    Returns
    -------
    ndarray of float64, same shape as ``weights``

    Examples
    --------
    >>> from netstruct.probes import flip_probability
    >>> W = [[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]]
    >>> flip_probability(W, 0.5).round(2).tolist()
    [[0.0, 0.3, 0.4], [0.1, 0.2, 0.45]]
    """
    func = "flip_probability"
    scale = float(check_scalar(scale, "scale", func, min_value=0.0))
    dist = check_choice(dist, "dist", func, NOISE_DISTS)
    w = np.abs(np.asarray(weights, dtype=np.float64))
    if scale == 0.0:
        return np.zeros_like(w)
    if dist == "uniform":
        p = np.maximum(0.0, (scale - w) / (2.0 * scale))
    else:
        p = ndtr(-w / scale)
    return np.where(w > 0, p, 0.0)


def expected_flip_fraction(
    weights: object, scale: float, *, dist: str = "uniform", include_bias: bool = False
) -> float:
    """Expected fraction of weights whose sign additive noise of scale ``scale`` flips (G20).

    Maps the noise axis of :func:`add_noise` onto the sign-flip axis of :func:`flip_signs`:
    ``q(a) = mean_w P(flip | w)`` over the edges (exact zeros count as never flipped).

    Parameters
    ----------
    weights : SignedGraph or array-like
        A graph (all edges of all blocks) or an array of weights.
    scale : float >= 0
    dist : {"uniform", "gaussian"}, default="uniform"
    include_bias : bool, default=False
        For a graph, also average over the bias entries.

    Returns
    -------
    float

    Examples
    --------
    >>> from netstruct.probes import expected_flip_fraction
    >>> W = [[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]]
    >>> round(expected_flip_fraction(W, 0.2), 4)  # (0.25 + 0.375) / 6
    0.1042
    """
    if isinstance(weights, SignedGraph):
        parts = [b.weight[b.mask] for b in weights.blocks]
        if include_bias:
            parts += [b.bias for b in weights.blocks if b.bias is not None]
        w = np.concatenate([np.ravel(p) for p in parts]) if parts else np.zeros(0)
    else:
        w = np.ravel(np.asarray(weights, dtype=np.float64))
    if w.size == 0:
        raise param_error(
            "weights", "expected_flip_fraction", "a non-empty graph or array", weights
        )
    return float(flip_probability(w, scale, dist=dist).mean())

"""Per-block array kernels of the probes (private; inputs already validated).

Each takes one block's ``weight`` (n_out, n_in), ``mask`` and ``bias`` (or None) and returns new
arrays; :mod:`netstruct.probes.transforms` wraps them as graph transforms and
:mod:`netstruct.probes.registry` stacks them for batched evaluation.
"""

from __future__ import annotations

import numpy as np

from .._dtypes import WEIGHT_DTYPE

_EPS = 1e-9  # floor(f * N + eps): int((1 - 0.9) * 10) would give 0 (spec G6)


def _count(fraction: float, n: int) -> int:
    """``floor(fraction * n)`` robust to float error (spec G6)."""
    return min(n, int(np.floor(fraction * n + _EPS)))


def _order(values: np.ndarray, rule: str, rng: np.random.Generator | None) -> np.ndarray:
    """Indices of ``values`` in the order a rule hits them (stable: ties by position)."""
    if rule == "smallest":
        return np.argsort(np.abs(values), kind="stable")
    if rule == "largest":
        return np.argsort(-np.abs(values), kind="stable")
    return rng.permutation(values.size)  # type: ignore[union-attr]


def _prune_layer(W, mask, b, fraction, rule, rng, prune_bias):
    """Remove ``floor(fraction * n_edges)`` edges of one block (inputs already validated)."""
    idx = np.flatnonzero(mask)
    n_cut = idx.size - _count(1.0 - fraction, idx.size)
    W2, m2 = W.copy(), mask.copy()
    if n_cut:
        cut = idx[_order(W.reshape(-1)[idx], rule, rng)[:n_cut]]
        W2.reshape(-1)[cut] = 0.0
        m2.reshape(-1)[cut] = False
    b2 = b
    if b is not None and prune_bias:
        n_cut_b = b.size - _count(1.0 - fraction, b.size)
        b2 = b.copy()
        b2[_order(b, rule, rng)[:n_cut_b]] = 0.0
    return W2, m2, b2


def _flip_layer(W, mask, b, fraction, rule, rng, flip_bias):
    """Negate ``floor(fraction * n_edges)`` weights of one block (inputs already validated)."""
    idx = np.flatnonzero(mask)
    W2 = W.copy()
    n = _count(fraction, idx.size)
    if n:
        hit = idx[_order(W.reshape(-1)[idx], rule, rng)[:n]]
        W2.reshape(-1)[hit] *= -1.0
    b2 = b
    if b is not None and flip_bias:
        b2 = b.copy()
        b2[_order(b, rule, rng)[: _count(fraction, b.size)]] *= -1.0
    return W2, mask, b2


def _draw(shape, scale, dist, rng):
    if dist == "uniform":
        return rng.uniform(-scale, scale, size=shape)
    return rng.normal(0.0, scale, size=shape)


def _noise_layer(W, mask, b, scale, dist, mode, rng, noise_bias):
    """Perturb the non-zero weights (and biases) of one block (inputs already validated)."""

    def one(x):
        eps = _draw(x.shape, scale, dist, rng)
        x64 = x.astype(np.float64)
        out = x64 + eps if mode == "additive" else x64 * eps
        return np.where(x != 0, out, 0.0).astype(WEIGHT_DTYPE)

    W2 = one(W)
    b2 = one(b) if (b is not None and noise_bias) else b
    return W2, mask, b2


def _binarize_layer(W, mask, b, scale):
    """Signs of one block's weights and bias (times the mean |w| when ``scale == 'mean'``)."""
    alpha = 1.0
    if scale == "mean":
        alpha = float(np.abs(W[mask]).mean()) if mask.any() else 1.0
    W2 = (np.sign(W) * alpha).astype(WEIGHT_DTYPE)
    b2 = None if b is None else (np.sign(b) * alpha).astype(WEIGHT_DTYPE)
    return W2, mask, b2

"""Spectral diagnostics per weight matrix: empirical spectral density, power-law tail, stable rank.

The empirical spectral density (ESD) of a weight matrix ``W`` is the set of eigenvalues of
``W^T W`` (the squared singular values, not normalised), as in WeightWatcher. Its tail is fit
by a continuous power law ``p(x) ~ x^-alpha`` for ``x >= xmin``: for every candidate ``xmin``
(each eigenvalue but the largest) the maximum-likelihood exponent
``alpha = 1 + n / sum_j log(x_j / xmin)`` over the ``n`` eigenvalues ``>= xmin`` is computed,
and the ``xmin`` whose fit has the smallest Kolmogorov-Smirnov distance between the empirical and
fitted tail CDFs is kept (Clauset, Shalizi & Newman 2009). Eigenvalues ``<= 1e-5`` are dropped
first. Fewer than 20 eigenvalues: the bias-corrected exponent ``1 + (n - 1) / sum log`` is used,
tails need ``n >= 8``, and ``xmin`` still minimises ``D``. These are the choices of
WeightWatcher 0.7 (its default ``pl_package``), so the values agree on Linear layers.

LSTM/GRU blocks are split into one matrix per gate (rows by the node table's ``gate`` column).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph

__all__ = [
    "PowerLawFit",
    "esd",
    "powerlaw_fit",
    "stable_rank",
    "layer_spectra",
    "block_matrices",
    "spectra_trajectory",
]

_THRESH = 1e-5
_SMALL_N = 20
_K_MIN = 8


@dataclass(frozen=True)
class PowerLawFit:
    """A power-law fit of an ESD tail: ``alpha``, ``xmin``, KS distance ``D``, ``sigma``, ``n_tail``."""

    alpha: float
    xmin: float
    D: float
    sigma: float
    n_tail: int


def esd(W: np.ndarray) -> np.ndarray:
    """Sorted eigenvalues of ``W^T W`` (squared singular values, float64).

    Examples
    --------
    >>> from netstruct.algorithms.spectra import esd
    >>> esd(np.diag([1.0, 2.0])).tolist()
    [1.0, 4.0]
    """
    sv = np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)
    return np.sort(sv * sv)


def stable_rank(W: np.ndarray) -> float:
    """``||W||_F^2 / ||W||_2^2`` (1 for rank one, up to min(shape) for orthogonal rows)."""
    ev = esd(W)
    return float(ev.sum() / ev[-1]) if ev.size and ev[-1] > 0 else 0.0


def _ks_distances(
    x: np.ndarray, logx: np.ndarray, alphas: np.ndarray, cand: np.ndarray
) -> np.ndarray:
    """KS distance of the fitted tail CDF for each candidate start index (chunked O(N^2))."""
    N = x.size
    D = np.ones(cand.size)
    for lo in range(0, cand.size, 256):
        idx = cand[lo : lo + 256]
        j = np.arange(N)
        tail = j[None, :] >= idx[:, None]
        n = (N - idx).astype(np.float64)
        a = alphas[lo : lo + 256]
        ratio = np.exp((logx[None, :] - logx[idx][:, None]) * (1.0 - a[:, None]))
        emp = (j[None, :] - idx[:, None]) / n[:, None]
        diff = np.where(tail, np.abs(1.0 - ratio - emp), 0.0)
        d = diff.max(axis=1)
        D[lo : lo + 256] = np.where(a > 1, d, 1.0)
    return D


def powerlaw_fit(evals: object) -> PowerLawFit:
    """Fit the power-law tail of an ESD with the KS-chosen ``xmin`` (module docstring).

    Parameters
    ----------
    evals : array-like of float
        Eigenvalues (any order); values ``<= 1e-5`` are ignored.

    Returns
    -------
    PowerLawFit

    Raises
    ------
    InvalidParameterError
        Fewer than 2 eigenvalues above the threshold, or non-finite values.

    Examples
    --------
    >>> from netstruct.algorithms.spectra import powerlaw_fit
    >>> x = (1 - np.random.default_rng(0).random(2000)) ** (-1 / 1.5)  # alpha = 2.5 from xmin = 1
    >>> round(powerlaw_fit(x).alpha, 1)
    2.5
    """
    try:
        x = np.asarray(evals, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise param_error(
            "evals", "powerlaw_fit", "an array of real eigenvalues", type(evals).__name__
        ) from None
    if not np.isfinite(x).all():
        raise param_error(
            "evals", "powerlaw_fit", "finite eigenvalues", "an array holding NaN or inf"
        )
    x = np.sort(x[x > _THRESH])
    N = x.size
    if N < 2:
        raise param_error("evals", "powerlaw_fit", "at least 2 eigenvalues above 1e-5", f"{N}")
    logx = np.log(x)
    suffix = np.cumsum(logx[::-1])[::-1]
    idx = np.arange(N - 1)
    n = (N - idx).astype(np.float64)
    s = suffix[idx] - n * logx[idx]
    small = N < _SMALL_N
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = 1.0 + ((n - 1.0) if small else n) / s
    if small:
        ok = (n >= _K_MIN) & (s > 1e-12)
        alphas = np.where(ok, alphas, 0.0)
    else:
        alphas = np.where(np.isfinite(alphas), alphas, 0.0)
    D = _ks_distances(x, logx, alphas, idx)
    if small:
        D = np.where(ok & (alphas > 1), D, 1.0)
        if not (ok & (alphas > 1)).any():  # no admissible tail: fit the whole ESD
            s0 = suffix[0] - N * logx[0]
            a0 = 1.0 + (N - 1.0) / s0 if s0 > 1e-12 else 1.0
            alphas[0] = a0
            D[0] = _ks_distances(x, logx, np.array([a0]), np.array([0]))[0] if a0 > 1 else 1.0
    best = int(np.argmin(D))
    sigma = (alphas[best] - 1.0) / np.sqrt(N - best)
    return PowerLawFit(
        float(alphas[best]), float(x[best]), float(D[best]), float(sigma), int(N - best)
    )


def block_matrices(G: SignedGraph, *, per_gate: bool = True) -> list[tuple[str, str, np.ndarray]]:
    """``(block name, gate, matrix)`` for every block, split per gate for LSTM/GRU blocks."""
    gate = G.node_column("gate")
    out = []
    for b in G.blocks:
        W = np.asarray(b.weight, dtype=np.float64)
        gates = gate[b.targets]
        names = [g for g in dict.fromkeys(gates.tolist()) if g]
        if per_gate and names:
            out += [(b.name, g, W[gates == g]) for g in names]
        else:
            out.append((b.name, "", W))
    return out


def _row(block: str, gate: str, W: np.ndarray) -> dict[str, object]:
    ev = esd(W)
    row: dict[str, object] = {
        "block": block,
        "gate": gate,
        "n_out": W.shape[0],
        "n_in": W.shape[1],
        "n_evals": int(ev.size),
        "spectral norm": float(np.sqrt(ev[-1])) if ev.size else 0.0,
        "stable rank": float(ev.sum() / ev[-1]) if ev.size and ev[-1] > 0 else 0.0,
    }
    if np.count_nonzero(ev > _THRESH) >= _K_MIN:
        f = powerlaw_fit(ev)
        row.update(alpha=f.alpha, xmin=f.xmin, D=f.D, sigma=f.sigma, n_tail=f.n_tail)
    else:
        row.update(alpha=np.nan, xmin=np.nan, D=np.nan, sigma=np.nan, n_tail=0)
    return row


def layer_spectra(G: SignedGraph, *, per_gate: bool = True) -> pd.DataFrame:
    """Spectral diagnostics of every weight matrix of ``G``: one row per block (and gate).

    Parameters
    ----------
    G : SignedGraph
    per_gate : bool, default=True
        Split LSTM/GRU blocks into one matrix per gate (i, f, g, o or r, z, n).

    Returns
    -------
    DataFrame
        ``block``, ``gate``, ``n_out``, ``n_in``, ``n_evals``, ``spectral norm``, ``stable rank``,
        ``alpha`` (power-law tail exponent, NaN with fewer than 8 non-zero eigenvalues), ``xmin``,
        ``D`` (KS distance), ``sigma``, ``n_tail``.

    Examples
    --------
    >>> import netstruct as ns
    >>> df = ns.layer_spectra(ns.from_torch(ns.training.recurrent_classifier("LSTM", 8, 16, 3, seed=0)))
    >>> df[["block", "gate"]].head(4).values.tolist()
    [['rnn.weight_ih_l0', 'i'], ['rnn.weight_ih_l0', 'f'], ['rnn.weight_ih_l0', 'g'], ['rnn.weight_ih_l0', 'o']]
    """
    check_graph(G, "layer_spectra")
    return pd.DataFrame([_row(b, g, W) for b, g, W in block_matrices(G, per_gate=bool(per_gate))])


def spectra_trajectory(
    path: str | os.PathLike[str], *, rows: Iterable[int] | None = None, G: SignedGraph | None = None
) -> pd.DataFrame:
    """Spectral diagnostics of every recorded weight matrix over a training trajectory.

    Parameters
    ----------
    path : str or Path
        A directory written by :class:`netstruct.causal.TrajectoryRecorder` that recorded whole
        parameters (no edge selection).
    rows : iterable of int, optional
        Recorded rows (snapshots) to analyse; default: all.
    G : SignedGraph, optional
        The exported model; when given, LSTM/GRU parameters are split per gate as in
        :func:`layer_spectra` (blocks are matched by parameter name).

    Returns
    -------
    DataFrame
        :func:`layer_spectra`'s columns plus ``row`` and ``step``.
    """
    from ..causal.recorder import TrajectoryReader

    tr = TrajectoryReader(path)
    table = tr.edge_table()
    steps = tr.steps()
    sel = list(range(tr.n_rows)) if rows is None else [int(r) for r in rows]
    bad = [r for r in sel if not 0 <= r < tr.n_rows]
    if bad:
        raise param_error("rows", "spectra_trajectory", f"row numbers in 0..{tr.n_rows - 1}", bad)
    data = tr.weights()[sel]
    gate = G.node_column("gate") if G is not None else None
    blocks = {b.name: b for b in G.blocks} if G is not None else {}
    out = []
    for name in dict.fromkeys(table["param"].tolist()):
        cols = np.flatnonzero(table["param"] == name)
        r, c = table["row"][cols], table["col"][cols]
        shape = (int(r.max()) + 1, int(c.max()) + 1)
        if cols.size != shape[0] * shape[1]:
            raise param_error(
                "path",
                "spectra_trajectory",
                "a trajectory of whole parameters",
                f"an edge selection of {name!r}",
            )
        for k, rr in enumerate(sel):
            W = np.zeros(shape)
            W[r, c] = data[k, cols]
            parts = [("", W)]
            if name in blocks and gate is not None:
                gates = gate[blocks[name].targets]
                names = [g for g in dict.fromkeys(gates.tolist()) if g]
                parts = [(g, W[gates == g]) for g in names] or parts
            for g, M in parts:
                out.append({"row": rr, "step": int(steps[rr]), **_row(name, g, M)})
    return pd.DataFrame(out)

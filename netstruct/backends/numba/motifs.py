"""numba (CPU) kernels for the signed motif census and its maximum-entropy ensembles.

The census is closed-form: the public layer (:mod:`netstruct.algorithms.motifs`) forms the
co-occurrence matrices of a block or of a pair of adjacent blocks with sparse or BLAS
products, and these kernels reduce them to class counts in one fused pass (no temporaries).
Every reduction works on *probability* matrices: fed 0/1 indicators it returns exact counts,
fed the cell probabilities of a model with independent cells it returns exact expectations.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from .randomize import _popcount

__all__ = [
    "bifan_classes",
    "biparallel_classes",
    "bifan_bits",
    "biparallel_bits",
]


@njit
def bifan_classes(q: np.ndarray, d: np.ndarray, row0: np.int64, indicator: bool) -> np.ndarray:
    """Bi-fan class sums over ordered row pairs ``(b1, b2)``, ``b1 != b2`` (halve for counts).

    Parameters
    ----------
    q : float (4, n_chunk, n_rows)
        ``Q_pp, Q_nn, Q_pn, Q_np``: ``Q_xy[b1, b2] = sum_a P_x[b1, a] P_y[b2, a]`` for rows
        ``b1 = row0 .. row0 + n_chunk - 1`` of the block.
    d : float (10, n_chunk, n_rows)
        Diagonal corrections ``D[(xy),(x'y')] = (P_x o P_x') (P_y o P_y')^T`` in the order
        ``pppp, nnnn, pppn, ppnp, nnpn, nnnp, ppnn, pnpn, npnp, pnnp``; ignored (may be empty)
        when ``indicator`` is True, where they follow from ``q``.
    row0 : int
        Global index of the chunk's first row (to skip ``b1 == b2``).
    indicator : bool
        True when the matrices are 0/1 indicators of disjoint sign classes.

    Returns
    -------
    float64 (7,)
        ``++++, +++-, ++--/source, ++--/target, ++--/cross, +---, ----`` summed over ordered
        row pairs. O(n_chunk * n_rows).
    """
    n_chunk = q.shape[1]
    n_rows = q.shape[2]
    out = np.zeros(7, dtype=np.float64)
    for i in range(n_chunk):
        b1 = row0 + i
        for b2 in range(n_rows):
            if b2 == b1:
                continue
            pp = np.float64(q[0, i, b2])
            nn = np.float64(q[1, i, b2])
            pn = np.float64(q[2, i, b2])
            np_ = np.float64(q[3, i, b2])
            if indicator:
                out[0] += 0.5 * (pp * pp - pp)
                out[1] += pp * (pn + np_)
                out[2] += pp * nn
                out[3] += 0.5 * (pn * pn - pn) + 0.5 * (np_ * np_ - np_)
                out[4] += pn * np_
                out[5] += nn * (pn + np_)
                out[6] += 0.5 * (nn * nn - nn)
            else:
                out[0] += 0.5 * (pp * pp - d[0, i, b2])
                out[1] += pp * (pn + np_) - d[2, i, b2] - d[3, i, b2]
                out[2] += pp * nn - d[6, i, b2]
                out[3] += 0.5 * (pn * pn - d[7, i, b2]) + 0.5 * (np_ * np_ - d[8, i, b2])
                out[4] += pn * np_ - d[9, i, b2]
                out[5] += nn * (pn + np_) - d[4, i, b2] - d[5, i, b2]
                out[6] += 0.5 * (nn * nn - d[1, i, b2])
    return out


@njit
def biparallel_classes(m: np.ndarray, e: np.ndarray, indicator: bool) -> np.ndarray:
    """Chain and bi-parallel class sums from the path matrices of an adjacent block pair.

    Parameters
    ----------
    m : float (4, n_c, n_a)
        ``M_t = Y_y X_x`` for path types ``t = (x, y)`` in the order ``++, +-, -+, --``
        (first edge ``a -> b`` in ``X``, second ``b -> c`` in ``Y``).
    e : float (10, n_c, n_a)
        Corrections ``E_tu = (Y_y o Y_y') (X_x o X_x')`` for ``t <= u`` in row-major order of
        the upper triangle; ignored when ``indicator`` is True (then ``E_tt = M_t`` and
        ``E_tu = 0``).
    indicator : bool

    Returns
    -------
    float64 (14,)
        4 chain sums (``sum M_t``), then the 10 bi-parallel classes ``{t, u}``, ``t <= u``:
        ``(M_t^2 - E_tt) / 2`` and ``M_t M_u - E_tu`` summed over ``(c, a)``.
        O(n_c * n_a).
    """
    n_c = m.shape[1]
    n_a = m.shape[2]
    out = np.zeros(14, dtype=np.float64)
    vals = np.zeros(4, dtype=np.float64)
    for c in range(n_c):
        for a in range(n_a):
            for t in range(4):
                vals[t] = np.float64(m[t, c, a])
                out[t] += vals[t]
            k = 0
            for t in range(4):
                for u in range(t, 4):
                    if t == u:
                        corr = vals[t] if indicator else np.float64(e[k, c, a])
                        out[4 + k] += 0.5 * (vals[t] * vals[t] - corr)
                    else:
                        corr = 0.0 if indicator else np.float64(e[k, c, a])
                        out[4 + k] += vals[t] * vals[u] - corr
                    k += 1
    return out


# ----------------------------------------------------------------------------- bit-set kernels
@njit
def bifan_bits(pbits: np.ndarray, nbits: np.ndarray) -> np.ndarray:
    """Bi-fan class counts of a 0/1 block from its rows packed as bit sets.

    Parameters
    ----------
    pbits, nbits : uint64 (n_rows, n_words)
        Row ``b`` of the positive / negative indicator, bit ``a & 63`` of word ``a >> 6``.

    Returns
    -------
    float64 (7,)
        The classes of :func:`bifan_classes`, as counts (unordered row pairs).

    Notes
    -----
    ``O(n_rows^2 n_words)`` popcounts, serial (``nogil``: parallelism comes from running
    samples in threads; a ``prange`` here was slower than serial on a shared 2-core machine).
    """
    n, n_words = pbits.shape
    part = np.zeros((n, 7), dtype=np.float64)
    for b1 in range(n):
        acc = part[b1]
        for b2 in range(b1 + 1, n):
            pp = 0
            nn = 0
            pn = 0
            np_ = 0
            for w in range(n_words):
                p1 = pbits[b1, w]
                p2 = pbits[b2, w]
                n1 = nbits[b1, w]
                n2 = nbits[b2, w]
                pp += _popcount(p1 & p2)
                nn += _popcount(n1 & n2)
                pn += _popcount(p1 & n2)
                np_ += _popcount(n1 & p2)
            fpp = np.float64(pp)
            fnn = np.float64(nn)
            fpn = np.float64(pn)
            fnp = np.float64(np_)
            acc[0] += 0.5 * fpp * (fpp - 1.0)
            acc[1] += fpp * (fpn + fnp)
            acc[2] += fpp * fnn
            acc[3] += 0.5 * fpn * (fpn - 1.0) + 0.5 * fnp * (fnp - 1.0)
            acc[4] += fpn * fnp
            acc[5] += fnn * (fpn + fnp)
            acc[6] += 0.5 * fnn * (fnn - 1.0)
    return part.sum(axis=0)


@njit
def biparallel_bits(xp: np.ndarray, xn: np.ndarray, yp: np.ndarray, yn: np.ndarray) -> np.ndarray:
    """Chain and bi-parallel counts of a 0/1 block pair from bit sets over the middle nodes.

    Parameters
    ----------
    xp, xn : uint64 (n_a, n_words)
        Column ``a`` of the first block (edges ``a -> b``) over the shared middle nodes ``b``.
    yp, yn : uint64 (n_c, n_words)
        Row ``c`` of the second block (edges ``b -> c``) over the same middle nodes.

    Returns
    -------
    float64 (14,)
        As :func:`biparallel_classes`. ``O(n_c n_a n_words)``, serial.
    """
    n_c, n_words = yp.shape
    n_a = xp.shape[0]
    part = np.zeros((n_c, 14), dtype=np.float64)
    vals = np.zeros((n_c, 4), dtype=np.float64)
    for c in range(n_c):
        acc = part[c]
        v = vals[c]
        for a in range(n_a):
            m0 = 0
            m1 = 0
            m2 = 0
            m3 = 0
            for w in range(n_words):
                xpw = xp[a, w]
                xnw = xn[a, w]
                ypw = yp[c, w]
                ynw = yn[c, w]
                m0 += _popcount(xpw & ypw)
                m1 += _popcount(xpw & ynw)
                m2 += _popcount(xnw & ypw)
                m3 += _popcount(xnw & ynw)
            v[0] = m0
            v[1] = m1
            v[2] = m2
            v[3] = m3
            k = 0
            for t in range(4):
                acc[t] += v[t]
                for u in range(t, 4):
                    if t == u:
                        acc[4 + k] += 0.5 * v[t] * (v[t] - 1.0)
                    else:
                        acc[4 + k] += v[t] * v[u]
                    k += 1
    return part.sum(axis=0)

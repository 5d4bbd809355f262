"""numba (CPU) kernels for structural balance: exact and heuristic frustration of a signed graph.

The graph is an undirected signed CSR (``indptr``, ``indices``, ``sign`` with both directions
stored). A colouring ``c`` in ``{-1, +1}^n`` violates edge ``{i, j}`` when
``sign_ij c_i c_j < 0``; the frustration index is the fewest violated edges over colourings.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import njit
from ._rng import new_state, rand_below, seed_state

__all__ = ["frustration_exact", "frustration_local_search"]


@njit(inline="always")
def _flip_delta(i, col, indptr, indices, sign):
    """Change of the violated-edge count when node ``i`` flips."""
    d = 0
    for k in range(indptr[i], indptr[i + 1]):
        if sign[k] * col[i] * col[indices[k]] < 0:
            d -= 1
        else:
            d += 1
    return d


@njit
def frustration_exact(
    indptr: np.ndarray, indices: np.ndarray, sign: np.ndarray
) -> tuple[np.int64, np.ndarray]:
    """Exact frustration by a Gray-code walk over all ``2^(n-1)`` colourings.

    Parameters
    ----------
    indptr : int64 (n + 1,)
    indices : int64 (2 m,)
    sign : int8 (2 m,)

    Returns
    -------
    best : int64
    colouring : int8 (n,)
        A colouring attaining ``best``. O(2^n * max degree); use for n <= ~25.
    """
    n = indptr.shape[0] - 1
    col = np.ones(n, dtype=np.int8)
    best_col = col.copy()
    cur = 0
    for i in range(n):
        for k in range(indptr[i], indptr[i + 1]):
            if sign[k] < 0 and indices[k] > i:
                cur += 1
    best = cur
    if n <= 1:
        return np.int64(best), best_col
    total = np.int64(1) << np.int64(n - 1)
    for g in range(1, total):
        i = 0  # bit that changes between Gray codes g-1 and g: the lowest set bit of g
        x = g
        while (x & 1) == 0:
            x >>= 1
            i += 1
        cur += _flip_delta(i, col, indptr, indices, sign)
        col[i] = -col[i]
        if cur < best:
            best = cur
            best_col[:] = col
    return np.int64(best), best_col


@njit(parallel=True)
def frustration_local_search(
    indptr: np.ndarray, indices: np.ndarray, sign: np.ndarray, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Single-flip descent from one random colouring per seed (upper bounds).

    Returns
    -------
    best : int64 (n_seeds,)
        Violated edges at each local minimum.
    colourings : int8 (n_seeds, n)

    Notes
    -----
    Sweeps nodes in order and flips any node whose flip lowers the count, until a sweep makes
    no flip. Stream 0 of ``seeds[s]``; ``prange`` over seeds.
    """
    n = indptr.shape[0] - 1
    n_seeds = seeds.shape[0]
    best = np.zeros(n_seeds, dtype=np.int64)
    cols = np.ones((n_seeds, n), dtype=np.int8)
    for s in prange(n_seeds):
        state = new_state()
        seed_state(state, seeds[s], np.uint64(0))
        col = cols[s]
        for i in range(n):
            col[i] = 1 if rand_below(state, 2) == 1 else -1
        moved = True
        while moved:
            moved = False
            for i in range(n):
                if _flip_delta(i, col, indptr, indices, sign) < 0:
                    col[i] = -col[i]
                    moved = True
        cur = 0
        for i in range(n):
            for k in range(indptr[i], indptr[i + 1]):
                if indices[k] > i and sign[k] * col[i] * col[indices[k]] < 0:
                    cur += 1
        best[s] = cur
    return best, cols

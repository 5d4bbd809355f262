"""numba (CPU) kernels of the maximum-entropy signed null models.

``sample_signs`` draws the sign pattern of an independent-cell model inside the kernel, one
random stream per ``(seed, row)`` (see :mod:`._rng`), so samples do not depend on threads.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import njit
from ._rng import new_state, next_u64, seed_state

__all__ = ["sample_signs"]

_INV_2_53 = 1.0 / 9007199254740992.0


@njit(parallel=True)
def sample_signs(p_pos: np.ndarray, p_neg: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Draw independent cell signs: ``+1`` w.p. ``p_pos``, ``-1`` w.p. ``p_neg``, else 0.

    Parameters
    ----------
    p_pos, p_neg : float64 (n_out, n_in)
        Cell probabilities with ``p_pos + p_neg <= 1``.
    seeds : uint64 (n_samples,)

    Returns
    -------
    int8 (n_samples, n_out, n_in)

    Notes
    -----
    Row ``r`` of sample ``s`` uses stream ``r`` of ``seeds[s]`` (one 53-bit uniform per cell),
    so results do not depend on the thread count. ``prange`` over samples.
    """
    n_samples = seeds.shape[0]
    n_out, n_in = p_pos.shape
    out = np.zeros((n_samples, n_out, n_in), dtype=np.int8)
    for s in prange(n_samples):
        state = new_state()
        for r in range(n_out):
            seed_state(state, seeds[s], np.uint64(r))
            for c in range(n_in):
                u = np.float64(next_u64(state) >> np.uint64(11)) * _INV_2_53
                pp = p_pos[r, c]
                if u < pp:
                    out[s, r, c] = 1
                elif u < pp + p_neg[r, c]:
                    out[s, r, c] = -1
    return out

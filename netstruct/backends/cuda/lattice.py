"""numba.cuda twin of ``netstruct.backends.numba.lattice.irreducible_test``.

Same name, signature and (bit-for-bit) result as the CPU kernel. Three layers, as in the
CPU module: a device popcount, ``cuda.jit`` kernels (one thread per attribute), and a host
driver that copies arrays, picks the grid and copies the result back.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..._config import config

__all__ = ["irreducible_test"]


@cuda.jit(device=True, inline=True)
def _popcount64(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    # byte sums by shifts, not a wrapping multiply (keeps the simulator free of overflow)
    x = x + (x >> np.uint64(8))
    x = x + (x >> np.uint64(16))
    x = x + (x >> np.uint64(32))
    return np.int64(x & np.uint64(0x7F))


@cuda.jit
def _sizes_kernel(cols, sizes):
    """sizes[m] = popcount(cols[m]); one thread per row."""
    m = cuda.grid(1)
    if m < cols.shape[0]:
        s = 0
        for k in range(cols.shape[1]):
            s += _popcount64(cols[m, k])
        sizes[m] = s


@cuda.jit
def _irreducible_kernel(cols, sizes, cover, irr):
    """One thread per attribute m: cover[m] &= cols[n] over strict supersets n of cols[m].

    ``cover`` is initialised to the all-objects bitset by the host. The thread stops early
    once cover[m] == cols[m], which cannot change the final value.
    """
    a = cuda.grid(1)
    m, w = cols.shape
    if a >= m:
        return
    equal = False
    for b in range(m):
        if sizes[b] <= sizes[a]:
            continue
        sub = True
        for k in range(w):
            if cols[a, k] & ~cols[b, k]:
                sub = False
                break
        if not sub:
            continue
        equal = True
        for k in range(w):
            cover[a, k] &= cols[b, k]
            if cover[a, k] != cols[a, k]:
                equal = False
        if equal:
            break
    if not equal:
        equal = True
        for k in range(w):
            if cover[a, k] != cols[a, k]:
                equal = False
                break
    irr[a] = not equal


def irreducible_test(cols: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Meet-irreducibility of attribute concepts on the GPU (see the numba kernel).

    Parameters
    ----------
    cols : uint64[n_attributes, w]
        Attribute extents as bitsets over objects.
    valid : uint64[w]
        The bitset of all objects.

    Returns
    -------
    irr : bool[n_attributes]
    cover : uint64[n_attributes, w]
        E(m) = AND of the strict supersets of m' (G when there are none).

    Notes
    -----
    One thread per attribute, ``config.cuda_threads_per_block`` threads per block; each
    thread scans all columns (no sort), so the work is O(|M|^2 |G| / 64) like the CPU
    kernel, and the output is identical because E(m) does not depend on the scan order.
    """
    m, w = cols.shape
    tpb = max(1, int(config.cuda_threads_per_block))
    blocks = max(1, math.ceil(m / tpb))
    d_cols = cuda.to_device(np.ascontiguousarray(cols, dtype=np.uint64))
    d_sizes = cuda.device_array(m, dtype=np.int64)
    d_cover = cuda.to_device(np.ascontiguousarray(np.broadcast_to(valid, (m, w)), dtype=np.uint64))
    d_irr = cuda.device_array(m, dtype=np.bool_)
    if m:
        _sizes_kernel[blocks, tpb](d_cols, d_sizes)
        _irreducible_kernel[blocks, tpb](d_cols, d_sizes, d_cover, d_irr)
    return d_irr.copy_to_host(), d_cover.copy_to_host()

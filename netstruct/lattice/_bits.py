"""Packing boolean matrices into uint64 bitsets and back (private helpers).

Bit ``k`` of a row lives in word ``k >> 6`` at position ``k & 63`` (little-endian bit
order), which is the layout every lattice kernel uses.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_rows", "unpack_rows", "full_bits", "n_words"]


def n_words(n_bits: int) -> int:
    """Number of uint64 words holding ``n_bits`` bits (at least 1)."""
    return max(1, (int(n_bits) + 63) // 64)


def pack_rows(matrix: np.ndarray) -> np.ndarray:
    """Pack a boolean matrix of shape (n, k) into a C-contiguous uint64 array (n, ceil(k/64)).

    Examples
    --------
    >>> pack_rows(np.array([[True, False, True]])).tolist()
    [[5]]
    """
    a = np.asarray(matrix, dtype=bool)
    n, k = a.shape
    w = n_words(k)
    padded = np.zeros((n, w * 64), dtype=bool)
    padded[:, :k] = a
    packed = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(packed.view("<u8").astype(np.uint64, copy=False))


def unpack_rows(bits: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_rows`: uint64 (n, w) -> bool (n, n_bits).

    Examples
    --------
    >>> unpack_rows(np.array([[5]], dtype=np.uint64), 3).tolist()
    [[True, False, True]]
    """
    b = np.ascontiguousarray(bits, dtype=np.uint64)
    as_bytes = b.view(np.uint8).reshape(b.shape[0], -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little", count=int(n_bits)).astype(bool)


def full_bits(n_bits: int) -> np.ndarray:
    """The bitset {0, ..., n_bits - 1} as a uint64 row."""
    return pack_rows(np.ones((1, int(n_bits)), dtype=bool))[0]

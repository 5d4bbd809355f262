"""Launch geometry and host-side helpers shared by the CUDA kernels.

Threads per block come from :data:`netstruct.config` (``cuda_threads_per_block``, env
``NETSTRUCT_CUDA_TPB``) and are read at launch time, so tests can patch them small.
"""

from __future__ import annotations

import numpy as np

from ..._config import config

__all__ = ["threads_per_block", "grid_1d", "pack_bits"]


def threads_per_block() -> int:
    """Threads per block for 1-D launches (``config.cuda_threads_per_block``, at least 1)."""
    return max(int(config.cuda_threads_per_block), 1)


def grid_1d(n_threads: int) -> tuple[int, int]:
    """``(blocks, threads_per_block)`` covering ``n_threads`` threads (at least one block).

    Examples
    --------
    >>> from netstruct import config_context
    >>> with config_context(cuda_threads_per_block=4):
    ...     grid_1d(10)
    (3, 4)
    """
    tpb = threads_per_block()
    return max((int(n_threads) + tpb - 1) // tpb, 1), tpb


def pack_bits(mask: np.ndarray) -> np.ndarray:
    """Pack the rows of a 2-D boolean array into little-endian uint64 words.

    Bit ``c & 63`` of word ``c >> 6`` in row ``a`` is ``mask[a, c]``.

    Parameters
    ----------
    mask : ndarray of bool, shape (n_rows, n_cols)

    Returns
    -------
    ndarray of uint64, shape (n_rows, max(ceil(n_cols / 64), 1))

    Examples
    --------
    >>> pack_bits(np.array([[True, False, True]])).tolist()
    [[5]]
    """
    n_rows, n_cols = mask.shape
    n_words = max((n_cols + 63) // 64, 1)
    padded = np.zeros((n_rows, n_words * 64), dtype=np.uint8)
    padded[:, :n_cols] = mask
    packed = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64).reshape(n_rows, n_words)

"""A small, explicit random number generator for numba kernels.

Kernels never use ``np.random`` (its per-thread state makes ``prange`` results depend on
scheduling). Instead every independent stream is keyed by ``(seed, stream)``: a uint64 seed
per chain (from :func:`netstruct.utils.random.spawn_seeds`) and a stream id chosen by the
kernel (a group, a round, a trade). The key is hashed with splitmix64 into the two words of a
xoroshiro128+ state (Blackman & Vigna), which then produces the numbers. The CUDA backend
implements the same three functions as device functions, so both backends draw identical
streams for identical keys.

The state is a ``uint64[2]`` array that callers allocate once with :func:`new_state` and
re-key in place with :func:`seed_state` (no allocation inside hot loops).
"""

from __future__ import annotations

import numpy as np

from ._jit import njit

__all__ = ["new_state", "seed_state", "next_u64", "rand_below", "splitmix64_mix"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_SALT = np.uint64(0x632BE59BD9B4E019)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 1.0 / 9007199254740992.0


@njit
def splitmix64_mix(z: np.uint64) -> np.uint64:
    """The splitmix64 finalizer: a bijective 64-bit hash."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit
def new_state() -> np.ndarray:
    """Allocate an (unseeded) generator state, ``uint64[2]``."""
    return np.zeros(2, dtype=np.uint64)


@njit
def seed_state(state: np.ndarray, seed: np.uint64, stream: np.uint64) -> None:
    """Key ``state`` (written in place) by ``(seed, stream)``."""
    x = splitmix64_mix(np.uint64(seed) ^ splitmix64_mix(np.uint64(stream) + _STREAM_SALT))
    s0 = splitmix64_mix(x + _GOLDEN)
    s1 = splitmix64_mix(x + _GOLDEN + _GOLDEN)
    if s0 == np.uint64(0) and s1 == np.uint64(0):
        s0 = np.uint64(1)
    state[0] = s0
    state[1] = s1


@njit
def next_u64(state: np.ndarray) -> np.uint64:
    """Next 64-bit output of xoroshiro128+ (``state`` is advanced in place)."""
    s0 = state[0]
    s1 = state[1]
    result = s0 + s1
    s1 ^= s0
    state[0] = ((s0 << np.uint64(55)) | (s0 >> np.uint64(9))) ^ s1 ^ (s1 << np.uint64(14))
    state[1] = (s1 << np.uint64(36)) | (s1 >> np.uint64(28))
    return result


@njit
def rand_below(state: np.ndarray, n: np.int64) -> np.int64:
    """Uniform integer in ``[0, n)`` for ``1 <= n < 2**52`` (53-bit float method; relative bias <= n / 2**53)."""
    u = np.float64(next_u64(state) >> np.uint64(11)) * _INV_2_53
    r = np.int64(u * np.float64(n))
    if r >= n:
        r = n - 1
    return r

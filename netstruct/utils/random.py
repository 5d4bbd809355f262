"""One entry point for randomness: seeds in, generators and kernel seeds out."""

from __future__ import annotations

import numbers

import numpy as np

from ..exceptions import param_error

__all__ = ["check_random_state", "spawn_seeds", "SeedLike"]

SeedLike = "int | np.random.Generator | np.random.SeedSequence | None"


def check_random_state(seed: object, *, func: str = "this function") -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator`.

    Parameters
    ----------
    seed : int, Generator, SeedSequence or None
        ``None`` draws fresh entropy; an int or SeedSequence seeds a new PCG64 generator;
        a Generator is returned as is.
    func : str
        Name of the public function, used in the error message.

    Examples
    --------
    >>> int(check_random_state(0).integers(10)) == int(check_random_state(0).integers(10))
    True
    """
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and int(seed) >= 0:
        return np.random.default_rng(int(seed))
    raise param_error("seed", func, "a non-negative int, a numpy Generator or None", seed)


def spawn_seeds(seed: object, n: int, *, func: str = "this function") -> np.ndarray:
    """Derive ``n`` independent uint64 seeds for kernels (one per chain or thread).

    The result depends only on ``seed`` and ``n``, never on scheduling.

    Examples
    --------
    >>> s = spawn_seeds(0, 3)
    >>> s.dtype, s.shape
    (dtype('uint64'), (3,))
    """
    rng = check_random_state(seed, func=func)
    return rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)

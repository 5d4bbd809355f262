"""Global configuration: default backend, fallback policy, progress bars.

Values come from ``NETSTRUCT_*`` environment variables at import time and can be changed
for a block of code with :func:`config_context`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields

__all__ = ["Config", "config", "config_context"]


def _env_bool(name: str, default: bool) -> bool:
    val = os.environ.get(name)
    if val is None:
        return default
    return val.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Config:
    """Process-wide settings.

    Attributes
    ----------
    backend : str
        Default compute backend (``"numba"``, ``"cuda"`` or ``"auto"``).
    fallback : bool
        When an operation is missing from the selected backend, fall back to ``numba``
        with a warning instead of raising.
    progress : bool
        Show progress bars in long-running helpers.
    cuda_threads_per_block : int
        Threads per block used by CUDA launches (tests patch it small).
    """

    backend: str = os.environ.get("NETSTRUCT_BACKEND", "numba")
    fallback: bool = _env_bool("NETSTRUCT_FALLBACK", False)
    progress: bool = _env_bool("NETSTRUCT_PROGRESS", True)
    cuda_threads_per_block: int = int(os.environ.get("NETSTRUCT_CUDA_TPB", "128"))


config = Config()


@contextlib.contextmanager
def config_context(**changes: object) -> Iterator[Config]:
    """Temporarily change :data:`config`.

    Examples
    --------
    >>> import netstruct as ns
    >>> with ns.config_context(backend="numba") as cfg:
    ...     cfg.backend
    'numba'
    """
    names = {f.name for f in fields(Config)}
    unknown = set(changes) - names
    if unknown:
        from .exceptions import InvalidParameterError

        raise InvalidParameterError(
            f"config_context got unknown setting(s) {sorted(unknown)}; known settings are {sorted(names)}."
        )
    old = {k: getattr(config, k) for k in changes}
    try:
        for k, v in changes.items():
            setattr(config, k, v)
        yield config
    finally:
        for k, v in old.items():
            setattr(config, k, v)

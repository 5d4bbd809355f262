"""Compute backends: where kernels run.

Kernels live in ``netstruct.backends.<backend>.<topic>`` and share names and signatures
across backends (``numba`` on the CPU, ``cuda`` through numba.cuda). Public functions call
:func:`dispatch` with a ``"topic.function"`` key; kernels never see graphs, only arrays.

Backend choice, first match wins: the ``backend=`` argument, ``netstruct.config.backend``
(also set by :func:`netstruct.config_context` or ``NETSTRUCT_BACKEND``), then ``"numba"``.
``"auto"`` picks ``cuda`` when a device (or the simulator) is present.

Kernels returned by :func:`dispatch` leave torch's intra-op thread count as they found it:
numba's OpenMP threading layer shares libgomp with torch and sets its global thread count
when it starts, which would otherwise change torch's numerics (and seeded results) after the
first parallel kernel.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from .._config import config
from ..exceptions import (
    BackendUnavailableError,
    InvalidParameterError,
    NetstructWarning,
    NotImplementedForBackend,
)

__all__ = ["available_backends", "register_backend", "dispatch", "resolve_backend", "has_cuda"]


@dataclass(frozen=True)
class _Backend:
    name: str
    package: str
    is_available: Callable[[], bool]
    install_hint: str


def _numba_ok() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def has_cuda() -> bool:
    """True when numba.cuda can run kernels (a device, or ``NUMBA_ENABLE_CUDASIM=1``)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # driver probing can fail in many ways; all mean "no CUDA"
        return False


_BACKENDS: dict[str, _Backend] = {}


def register_backend(
    name: str, package: str, is_available: Callable[[], bool], install_hint: str = ""
) -> None:
    """Register a backend whose kernels live in ``package.<topic>``."""
    _BACKENDS[name] = _Backend(name, package, is_available, install_hint)


register_backend("numba", "netstruct.backends.numba", _numba_ok, "pip install numba")
register_backend(
    "cuda",
    "netstruct.backends.cuda",
    has_cuda,
    "pip install 'netstruct[cuda]' on a machine with an NVIDIA GPU and driver, "
    "or set NUMBA_ENABLE_CUDASIM=1 to run the kernels in numba's simulator",
)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine.

    Examples
    --------
    >>> "numba" in available_backends()
    True
    """
    return [name for name, b in _BACKENDS.items() if b.is_available()]


def resolve_backend(backend: str | None) -> str:
    """Resolve ``backend`` (None, a name or ``"auto"``) to a registered, available name."""
    name = backend if backend is not None else (config.backend or "numba")
    if name == "auto":
        return "cuda" if has_cuda() else "numba"
    if name not in _BACKENDS:
        raise InvalidParameterError(
            f"The 'backend' parameter must be one of {sorted(_BACKENDS) + ['auto']}. Got {name!r} instead."
        )
    b = _BACKENDS[name]
    if not b.is_available():
        raise BackendUnavailableError(
            f"The {name!r} backend is not available here: {b.install_hint}."
        )
    return name


def _lookup(name: str, key: str) -> Callable | None:
    topic, _, func = key.rpartition(".")
    try:
        mod = importlib.import_module(f"{_BACKENDS[name].package}.{topic}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(_BACKENDS[name].package):
            return None
        raise
    return getattr(mod, func, None)


def _keep_torch_threads(fn: Callable) -> Callable:
    """Wrap ``fn`` so that torch's thread count after the call is the one before it."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        torch = sys.modules.get("torch")
        if torch is None:  # torch imported later reads OMP_NUM_THREADS itself
            return fn(*args, **kwargs)
        n = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            if torch.get_num_threads() != n:
                torch.set_num_threads(n)

    run.kernel = fn  # type: ignore[attr-defined]
    return run


@cache
def _wrapped(fn: Callable) -> Callable:
    return _keep_torch_threads(fn)


def dispatch(key: str, backend: str | None = None) -> Callable:
    """Return the kernel ``key`` (``"topic.function"``) of the resolved backend.

    Raises
    ------
    NotImplementedForBackend
        When the backend lacks the kernel (the message lists the backends that have it),
        unless ``config.fallback`` is on, in which case numba's kernel is used with a warning.
    """
    name = resolve_backend(backend)
    fn = _lookup(name, key)
    if fn is not None:
        return _wrapped(fn)
    if config.fallback and name != "numba":
        fn = _lookup("numba", key)
        if fn is not None:
            warnings.warn(
                f"{key!r} is not implemented for {name!r}; using numba.",
                NetstructWarning,
                stacklevel=2,
            )
            return _wrapped(fn)
    have = [n for n in _BACKENDS if n != name and _BACKENDS[n].is_available() and _lookup(n, key)]
    raise NotImplementedForBackend(
        f"{key!r} has no {name!r} implementation; backends that have it: {have or 'none'}."
    )

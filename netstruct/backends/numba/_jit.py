"""The one place numba's jit options are set for netstruct kernels.

Kernels are cached on disk (``cache=True``): a process pays a kernel's compile time only the
first time that kernel is ever called on the machine. numba writes the cache next to the
source (``__pycache__``) or, where the package folder is read-only, in the user-wide cache
folder; :func:`use_writable_cache_dir` picks a folder under the temporary directory when
neither is writable (numba would otherwise refuse to define the kernels at import).
``NUMBA_CACHE_DIR`` always wins.
"""

from __future__ import annotations

import os
import tempfile
import types
from typing import Any

import numba as nb

FASTMATH = os.environ.get("NETSTRUCT_FASTMATH", "0") == "1"

__all__ = ["njit", "njit_serial_and_parallel", "use_writable_cache_dir"]


def _writable(path: str) -> bool:
    """Whether ``path`` (a folder, existing or not) can be created and written to."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def use_writable_cache_dir() -> str | None:
    """Point numba's cache at a writable folder when its own choices are not writable.

    Returns the folder chosen, or None when numba's defaults (``NUMBA_CACHE_DIR``, the
    package's ``__pycache__``, the user-wide cache folder) work.
    """
    if os.environ.get("NUMBA_CACHE_DIR") or nb.config.CACHE_DIR:  # type: ignore[attr-defined]  # set at run time by numba
        return None
    if _writable(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")):
        return None
    from numba.misc.appdirs import AppDirs

    if _writable(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    folder = os.path.join(tempfile.gettempdir(), f"netstruct-numba-cache-{uid}")
    nb.config.CACHE_DIR = folder  # type: ignore[attr-defined]
    return folder


use_writable_cache_dir()


def njit(*args, parallel: bool = False, cache: bool = True, **kwargs):
    """``numba.njit`` with netstruct's defaults (``cache=True, nogil=True``, fastmath from config)."""
    opts: dict[str, Any] = {
        "cache": cache,
        "nogil": True,
        "fastmath": FASTMATH,
        "parallel": parallel,
    }
    opts.update(kwargs)
    return nb.njit(*args, **opts)


def njit_serial_and_parallel(py_func, **kwargs):
    """``(parallel, serial)`` dispatchers of one kernel body (``prange`` runs as ``range`` in the
    serial one).

    numba's on-disk cache keys a compiled function by its qualified name, bytecode and
    signature, not by its options, so two dispatchers of the same function would read each
    other's cache entries (a serial call could load the threaded code, or the reverse). The
    serial one is therefore compiled from a copy of the function named ``<name>_serial``.
    """
    serial = types.FunctionType(
        py_func.__code__,
        py_func.__globals__,
        py_func.__name__ + "_serial",
        py_func.__defaults__,
        py_func.__closure__,
    )
    serial.__qualname__ = py_func.__qualname__ + "_serial"
    serial.__module__ = py_func.__module__
    serial.__doc__ = py_func.__doc__
    return njit(py_func, parallel=True, **kwargs), njit(serial, **kwargs)

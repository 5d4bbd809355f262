"""The one place numba's jit options are set for netstruct kernels."""

from __future__ import annotations

import os

import numba as nb

FASTMATH = os.environ.get("NETSTRUCT_FASTMATH", "0") == "1"


def njit(*args, parallel: bool = False, cache: bool = True, **kwargs):
    """``numba.njit`` with netstruct's defaults (``cache=True, nogil=True``, fastmath from config)."""
    opts = {"cache": cache, "nogil": True, "fastmath": FASTMATH, "parallel": parallel}
    opts.update(kwargs)
    return nb.njit(*args, **opts)

"""numba's on-disk cache for netstruct kernels (issue 14: first-call time)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba as nb

from netstruct.backends.numba import _jit

ROOT = Path(__file__).resolve().parents[2]

_MODULE = textwrap.dedent(
    """
    import numba as nb
    import numpy as np
    from netstruct.backends.numba._jit import njit_serial_and_parallel

    def _total_py(x):
        out = np.zeros(4)
        for k in nb.prange(4):
            for i in range(x.shape[0]):
                out[k] += x[i] * (k + 1)
        return out.sum()

    total, total_serial = njit_serial_and_parallel(_total_py)
    """
)


def _run(code: str, cache: Path, cwd: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_serial_and_parallel_variants_are_cached_apart(tmp_path):
    (tmp_path / "kmod.py").write_text(_MODULE)
    cache = tmp_path / "cache"
    call = (
        "import numpy as np, kmod\n"
        "x = np.arange(5.0)\n"
        "a = kmod.{first}(x); b = kmod.{second}(x)\n"
        "print(a == b, sum(kmod.{second}.stats.cache_hits.values()))\n"
    )
    # the parallel version is compiled and cached first; the serial one must not load it
    assert _run(call.format(first="total", second="total_serial"), cache, tmp_path) == "True 0"
    index = sorted(p.name for p in cache.rglob("*.nbi"))
    assert len(index) == 2 and any("_serial" in name for name in index), index
    # a second process finds both in the cache
    assert _run(call.format(first="total", second="total_serial"), cache, tmp_path) == "True 1"


def test_cache_falls_back_to_a_temporary_folder_when_nothing_is_writable(monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(nb.config, "CACHE_DIR", "")
    monkeypatch.setattr(_jit.os, "access", lambda path, mode: False)
    folder = _jit.use_writable_cache_dir()
    assert folder is not None and nb.config.CACHE_DIR == folder
    assert folder.startswith(__import__("tempfile").gettempdir())


def test_cache_dir_is_left_alone_when_numba_can_write(monkeypatch, tmp_path):
    monkeypatch.setattr(nb.config, "CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(_jit.os, "access", lambda path, mode: True)
    assert _jit.use_writable_cache_dir() is None and nb.config.CACHE_DIR == ""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_jit.os, "access", lambda path, mode: False)
    assert _jit.use_writable_cache_dir() is None and nb.config.CACHE_DIR == ""

"""CUDA twins of the causal kernels equal the numba kernels (run in numba's CUDA simulator).

The simulator must be enabled before numba is imported, so the comparison runs in a
subprocess with ``NUMBA_ENABLE_CUDASIM=1`` and tiny grids (threads per block patched to 4).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.cuda

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from numba import config as nbconfig
    assert nbconfig.ENABLE_CUDASIM
    import netstruct as ns
    from netstruct.causal import granger, lyapunov

    rng = np.random.default_rng(0)
    cause = rng.standard_normal((7, 24))
    effect = rng.standard_normal((7, 24))
    cause[2] = 1.0                      # constant_cause
    cause[3] = 2.0 * effect[3] + 1.0    # singular
    cause[4, 5] = np.nan                # nonfinite
    with ns.config_context(cuda_threads_per_block=4):
        for eff, lags in ((effect, [1, 3]), (effect[0], [1, 3]), (effect, [1]), (effect, [2]), (effect, [1, 2])):
            a = granger(cause, eff, lags=lags, backend="cuda", errors="ignore")
            b = granger(cause, eff, lags=lags, backend="numba", errors="ignore")
            assert np.array_equal(a.status, b.status), (a.status, b.status)
            for f in ("f_stat", "f_pvalue", "chi2_stat", "chi2_pvalue", "df_denom", "ssr_unrestricted"):
                assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
        x = np.empty(40); x[0] = 0.3
        for i in range(1, 40):
            x[i] = 4.0 * x[i - 1] * (1.0 - x[i - 1])
        windows = np.stack([x, rng.standard_normal(40), np.round(rng.standard_normal(40), 1), np.full(40, 0.2), 0.5 + 0.1 * 0.9 ** np.arange(40)])
        for kw in ({}, {"theiler": 3, "emb_dim": 3, "steps": 2}, {"mode": "authors"}):
            a = lyapunov(windows, backend="cuda", return_divergence=True, **kw)
            b = lyapunov(windows, backend="numba", return_divergence=True, **kw)
            assert np.array_equal(a.exponent, b.exponent, equal_nan=True), kw
            assert np.array_equal(a.divergence, b.divergence, equal_nan=True), kw
            assert np.array_equal(a.counts, b.counts), kw
    print("CUDA-PARITY-OK")
    """
)


def test_cuda_kernels_equal_numba_kernels_in_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "CUDA-PARITY-OK" in proc.stdout

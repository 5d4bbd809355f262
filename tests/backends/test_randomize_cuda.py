"""CUDA twins of the randomization kernels equal the numba kernels (numba's CUDA simulator).

The simulator must be enabled before numba is imported, so the checks run in a subprocess
with ``NUMBA_ENABLE_CUDASIM=1`` and tiny grids (threads per block patched to 4). Both
backends key their random streams identically, so their outputs agree exactly; the CUDA
samples are also checked against the invariants each model claims.
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
    import warnings
    # the simulator runs uint64 arithmetic on numpy scalars, which warn when they wrap
    warnings.filterwarnings("ignore", message=".*overflow encountered", category=RuntimeWarning)
    import numpy as np
    from numba import config as nbconfig
    assert nbconfig.ENABLE_CUDASIM
    import netstruct as ns
    from netstruct.algorithms.randomize import NULL_MODELS
    from netstruct.backends.cuda import randomize as gpu
    from netstruct.backends.numba import randomize as cpu
    from tests.oracles.naive_randomize import invariants

    rng = np.random.default_rng(SEED)
    W = (rng.standard_normal((5, 8)) * (rng.random((5, 8)) < 0.8)).astype(np.float32)
    W[0, 0] = 0.0
    seeds = rng.integers(0, 2**63, size=3, dtype=np.uint64)
    with ns.config_context(cuda_threads_per_block=4):
        # kernels, directly
        for reshuffle in (False, True):
            a, b = cpu.signed_swap(W, 60, seeds, reshuffle), gpu.signed_swap(W, 60, seeds, reshuffle)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), ("swap", reshuffle)
        cells = np.flatnonzero(W).astype(np.int64)
        indptr = np.array([0, 7, 20, cells.size], dtype=np.int64)
        assert np.array_equal(cpu.permute_segments(W, indptr, cells, seeds),
                              gpu.permute_segments(W, indptr, cells, seeds)), "permute"
        for M in (W, np.ascontiguousarray(W.T), np.ascontiguousarray(np.tile(W, (1, 10)))):
            a, b = cpu.signed_curveball(M, 4, seeds), gpu.signed_curveball(M, 4, seeds)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), ("curveball", M.shape)
            assert a[1].sum() > 0
        # public API on a graph, every model
        block = ns.make_block(name="fc", weight=W, mask=W != 0, sources=range(8), targets=range(8, 13))
        G = ns.SignedGraph({"name": [str(i) for i in range(13)]}, [block])
        ref = invariants(W)
        for model, spec in NULL_MODELS.items():
            kw = {"n_steps": 24} if spec.is_mcmc else {}
            a = ns.randomize_ensemble(G, model, 2, seed=SEED, backend="cuda", **kw)
            b = ns.randomize_ensemble(G, model, 2, seed=SEED, backend="numba", **kw)
            assert np.array_equal(a.weights["fc"], b.weights["fc"]), model
            for w in a.weights["fc"]:
                got = invariants(w)
                assert all(got[name] == ref[name] for name in spec.preserves), model
    print("CUDA-RANDOMIZE-OK")
    """
)


def test_cuda_randomize_kernels_equal_numba_kernels_in_simulator(seed):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    script = _SCRIPT.replace("SEED", str(seed))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA-RANDOMIZE-OK" in proc.stdout

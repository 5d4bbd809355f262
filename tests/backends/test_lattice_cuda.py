"""numba.cuda twin of the irreducibility test, run in the CUDA simulator (subprocess).

The simulator must be enabled before numba is imported, so the parity check runs in a child
interpreter with ``NUMBA_ENABLE_CUDASIM=1`` and tiny grids; a plain ``pytest`` covers it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import netstruct as ns
    from netstruct.backends import has_cuda
    from netstruct.lattice import FormalContext, join_irreducibles, meet_irreducibles

    assert has_cuda(), "the CUDA simulator is not active"
    rng = np.random.default_rng(SEED)
    shapes = [(1, 1), (3, 4), (6, 6), (70, 9), (9, 70), (130, 20)]
    n_checked = 0
    for g, m in shapes:
        for _ in range(3):
            inc = rng.random((g, m)) < rng.uniform(0.2, 0.9)
            if m > 1:
                inc[:, -1] = inc[:, 0]          # duplicate column
            inc[:, rng.integers(m)] = True      # full column
            K = FormalContext(inc)
            for test in (meet_irreducibles, join_irreducibles):
                a = test(K, backend="numba")
                b = test(K, backend="cuda")
                assert np.array_equal(a.mask, b.mask), (g, m, test.__name__)
                assert np.array_equal(a.cover, b.cover), (g, m, test.__name__)
                n_checked += 1
    # the spec's C1 through the device path
    K = FormalContext([[1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1]])
    assert meet_irreducibles(K, backend="cuda").elements == (0, 1)
    print("checked", n_checked)
    """
)


@pytest.mark.cuda
def test_cuda_irreducible_test_matches_numba_bit_for_bit(seed):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", NETSTRUCT_CUDA_TPB="8", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", _SCRIPT.replace("SEED", str(seed))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checked 36" in proc.stdout


@pytest.mark.cuda
def test_cuda_backend_is_refused_without_a_device_or_simulator():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    code = (
        "import netstruct as ns\n"
        "from netstruct.backends import has_cuda\n"
        "if has_cuda():\n    print('has device')\n"
        "else:\n"
        "    try:\n"
        "        ns.lattice.meet_irreducibles(ns.lattice.FormalContext([[1]]), backend='cuda')\n"
        "    except ns.BackendUnavailableError as e:\n        print('refused', 'NUMBA_ENABLE_CUDASIM' in str(e))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() in {"has device", "refused True"}

"""First-call time of each numba kernel module on an empty cache, then with the on-disk cache.

Each measurement runs in a fresh Python process with ``NUMBA_CACHE_DIR`` set to a new folder
(empty: a fresh install) and then again in another fresh process with the same folder (what
every later process, e.g. a Dask worker, pays), and in a fresh process after ``netstruct
warmup`` ran on a new empty cache (a fresh install set up by ``scripts/setup.sh``). Times
include the module's import and one small call of each kernel family that the public functions
use.

Run with ``python benchmarks/bench_first_call.py [module ...]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

CALLS = {
    "import only": "import numpy, torch, numba, netstruct, netstruct.causal, netstruct.lattice\n",
    "randomize": (
        "import torch, netstruct as ns\n"
        "G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)))\n"
        "for m in ('A', 'C', 'G-left', 'curveball'):\n"
        "    ns.randomize(G, m, seed=0)\n"
    ),
    "causal": (
        "import numpy as np\n"
        "from netstruct.causal import granger, lyapunov\n"
        "x = np.random.default_rng(0).standard_normal((60, 3))\n"
        "lyapunov(x[:, 0])\n"
        "granger(x[:, :2].T.copy(), x[:, 1:].T.copy(), 2)\n"
    ),
    "lattice": (
        "import numpy as np\n"
        "from netstruct.lattice import FormalContext, concept_lattice, meet_irreducibles\n"
        "I = np.random.default_rng(0).random((8, 6)) < 0.5\n"
        "K = FormalContext(I)\n"
        "concept_lattice(K)\n"
        "meet_irreducibles(K)\n"
    ),
}


def _time(code: str, cache: str) -> tuple[float, float]:
    """(wall s, CPU s) of ``code`` in a fresh process (CPU time is robust to other load)."""
    prog = (
        "import time; t0 = time.perf_counter(); c0 = time.process_time()\n"
        + code
        + "print(time.perf_counter() - t0, time.process_time() - c0)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", prog], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    wall, cpu = out.stdout.split()[-2:]
    return float(wall), float(cpu)


def _warmup(mod: str, cache: str) -> None:
    """``netstruct warmup <mod>`` in a fresh process (what scripts/setup.sh does at install)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    args = [sys.executable, "-m", "netstruct.cli", "warmup"] + ([mod] if mod in WARMED else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])


#: modules with kernels (``import only`` has none to warm up)
WARMED = ("randomize", "causal", "lattice")


def main(mods: list[str], repeats: int = 2) -> None:
    print("best of", repeats, "fresh processes; wall s (CPU s); goal <= 5 s per module")
    print(f"{'module':<12}{'empty cache':>18}{'cached':>16}{'after warmup':>18}")
    for mod in mods or list(CALLS):
        cold, warm, fresh = [], [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cache:
                cold.append(_time(CALLS[mod], cache))
                warm.append(_time(CALLS[mod], cache))
            with tempfile.TemporaryDirectory() as cache:  # a fresh install set up by setup.sh
                if mod in WARMED:
                    _warmup(mod, cache)
                fresh.append(_time(CALLS[mod], cache))
        (cw, cc), (ww, wc), (fw, fc) = min(cold), min(warm), min(fresh)
        print(f"{mod:<12}{cw:>10.1f} ({cc:4.1f}){ww:>9.1f} ({wc:4.1f}){fw:>11.1f} ({fc:4.1f})")


if __name__ == "__main__":
    main(sys.argv[1:])

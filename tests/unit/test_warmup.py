"""netstruct warmup: the kernels it compiles are the ones first calls need (loaded, not compiled)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from netstruct.exceptions import InvalidParameterError
from netstruct.warmup import WORKLOADS, warmup


def test_unknown_module_is_refused_naming_the_parameter():
    with pytest.raises(InvalidParameterError, match="'modules' parameter of warmup"):
        warmup(["lattice", "nope"])


def test_cli_warmup_reports_each_module(capsys):
    from netstruct.cli import main

    assert main(["warmup", "lattice"]) == 0
    assert capsys.readouterr().out.startswith("lattice: ")


@pytest.mark.parametrize("warm", [True, False])
def test_after_warmup_a_fresh_process_compiles_nothing_for_the_lattice(tmp_path, warm):
    """In a new cache folder: warm up, then a fresh process's first calls only load from disk
    (and without the warm-up the same process compiles: the check can fail)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    if warm:
        cmd = [sys.executable, "-m", "netstruct.cli", "warmup", "lattice"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    probe = (  # cache misses (= compilations) of the lattice kernels in a fresh process
        "import numba.core.dispatcher as d\n"
        "from netstruct.warmup import WORKLOADS\n"
        "WORKLOADS['lattice']()\n"
        "from netstruct.backends.numba import lattice as L\n"
        "kernels = [f for f in vars(L).values() if isinstance(f, d.Dispatcher)]\n"
        "print(sum(sum(f.stats.cache_misses.values()) for f in kernels),"
        " sum(sum(f.stats.cache_hits.values()) for f in kernels))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, check=True, capture_output=True, text=True
    )
    misses, hits = map(int, out.stdout.split()[-2:])
    if warm:
        assert misses == 0 and hits > 0, out.stdout
    else:
        assert misses > 0, out.stdout


def test_workloads_cover_the_kernel_modules():
    assert set(WORKLOADS) == {"randomize", "causal", "lattice"}

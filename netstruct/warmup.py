"""Compile netstruct's numba kernels once, at install, into the on-disk cache.

numba compiles a kernel on its first call; with ``cache=True`` (every netstruct kernel) the
machine code is written to disk and later processes load it in milliseconds. :func:`warmup`
makes those first calls on small inputs, for every kernel family the public functions use
(serial *and* threaded drivers, which compile separately), so that a user's first call — and
every Dask worker's — loads cached code instead of compiling. ``scripts/setup.sh`` runs it
(``netstruct warmup``); a bare ``pip install`` does not, and then the first call of each module
pays its compile once (see ``benchmarks/bench_first_call.py``).

The cache lives next to the package (or in the user cache folder when the package folder is
read-only; see :func:`netstruct.backends.numba._jit.use_writable_cache_dir`) and is keyed by
the source files, so editing netstruct invalidates exactly the kernels whose files changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["WORKLOADS", "warmup"]


def _randomize() -> None:
    import torch

    import netstruct as ns

    torch.manual_seed(0)
    G = ns.from_torch(
        torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    )
    for model in ("A", "B", "C", "D", "E", "F", "G-left", "G-right", "curveball"):
        ns.randomize(G, model, seed=0)  # one chain: the serial drivers
        ns.randomize_ensemble(G, model, 2, seed=0)  # ensembles: the threaded drivers


def _causal() -> None:
    from netstruct.causal import granger, lyapunov

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    lyapunov(x[:, 0])
    big = rng.standard_normal((400, 120))  # above the serial-work threshold: threaded kernels
    calls: list[tuple[np.ndarray, np.ndarray, int | list[int]]] = [
        (x[:, :2].T.copy(), x[:, 1:].T.copy(), 2),  # small: serial kernels (L = 2 tables)
        (x[:, :2].T.copy(), x[:, 1:].T.copy(), [1]),  # the lag-1 tables
        (x[:, :2].T.copy(), x[:, 1:].T.copy(), 3),  # the general tables
        (big, big[::-1].copy(), 2),
        (big, big[0], 2),
    ]
    for cause, effect, lags in calls:
        res = granger(cause, effect, lags)
        _ = res.f_pvalue, res.chi2_pvalue, res.lr_pvalue  # (computed on first read)
    lyapunov(rng.standard_normal(3000))


def _lattice() -> None:
    from netstruct.lattice import FormalContext, concept_lattice, meet_irreducibles

    rng = np.random.default_rng(0)
    for shape in ((8, 6), (300, 200)):  # serial and threaded irreducibility tests
        K = FormalContext(rng.random(shape) < 0.5)
        meet_irreducibles(K)
    concept_lattice(FormalContext(rng.random((8, 6)) < 0.5))


#: Module -> the calls that compile its kernels.
WORKLOADS: dict[str, Callable[[], None]] = {
    "randomize": _randomize,
    "causal": _causal,
    "lattice": _lattice,
}


def warmup(modules: Iterable[str] | None = None) -> dict[str, float]:
    """Compile (or load from the cache) the kernels of ``modules``; seconds per module.

    Parameters
    ----------
    modules : iterable of str, optional
        Names from :data:`WORKLOADS`; default all.

    Returns
    -------
    dict of str to float
        Wall seconds each module took (compile on an empty cache, load on a warm one).

    Raises
    ------
    InvalidParameterError
        An unknown module name.

    Examples
    --------
    >>> from netstruct.warmup import warmup
    >>> sorted(warmup(["lattice"]))
    ['lattice']
    """
    from .exceptions import param_error

    names = list(WORKLOADS) if modules is None else list(modules)
    for name in names:
        if name not in WORKLOADS:
            raise param_error("modules", "warmup", f"names from {list(WORKLOADS)}", name)
    out = {}
    for name in names:
        t = time.perf_counter()
        WORKLOADS[name]()
        out[name] = time.perf_counter() - t
    return out

"""numba.cuda twins of :mod:`netstruct.backends.numba.causal` (same names and signatures).

The per-series arithmetic is the numba module's device-agnostic core functions, compiled
here with ``cuda.jit(device=True)``: one CUDA thread per series (Granger) or per window
(Lyapunov). Host drivers copy inputs to the device, allocate per-thread scratch in chunks
of series so device memory stays bounded, launch, and copy results into the ``out_*``
arrays. Importing this module imports ``numba.cuda``; the registry does so on first use.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ..._config import config
from ..numba.causal import GRANGER_STATUS, _granger_core_py, _lyapunov_core_py

__all__ = ["granger", "lyapunov", "GRANGER_STATUS"]

_SCRATCH_BYTES = 256 * 2**20  # device scratch budget per Granger launch

_granger_core = cuda.jit(device=True)(_granger_core_py)
_lyapunov_core = cuda.jit(device=True)(_lyapunov_core_py)


@cuda.jit
def _granger_kernel(
    effect, cause, lags, rank_tol, A, v, out_ssr_r, out_diff, out_ssr_u, out_status
):
    b = cuda.grid(1)
    if b < cause.shape[0]:
        e = effect[0] if effect.shape[0] == 1 else effect[b]
        _granger_core(
            e,
            cause[b],
            lags,
            rank_tol,
            A[b],
            v[b],
            out_ssr_r[b],
            out_diff[b],
            out_ssr_u[b],
            out_status[b],
        )


@cuda.jit
def _lyapunov_kernel(windows, order, emb_dim, lag, theiler, steps, out_sum, out_count):
    w = cuda.grid(1)
    if w < windows.shape[0]:
        _lyapunov_core(windows[w], order[w], emb_dim, lag, theiler, steps, out_sum[w], out_count[w])


def _blocks(n: int) -> tuple[int, int]:
    tpb = max(1, int(config.cuda_threads_per_block))
    return (n + tpb - 1) // tpb, tpb


def granger(effect, cause, lags, rank_tol, out_ssr_r, out_diff, out_ssr_u, out_status):
    """Batched Granger regressions on the GPU (same contract as the numba kernel).

    Scratch is (chunk, 2 max(lags)+1, T) float64 on the device; chunks of series are sized
    to keep it under 256 MiB. One thread per series.
    """
    n_series, T = cause.shape
    kmax = 2 * int(lags.max()) + 1
    chunk = max(1, min(n_series, _SCRATCH_BYTES // (8 * T * (kmax + 1))))
    d_lags = cuda.to_device(lags)
    shared = effect.shape[0] == 1
    d_eff_shared = cuda.to_device(effect) if shared else None
    for s in range(0, n_series, chunk):
        e = min(n_series, s + chunk)
        m = e - s
        d_eff = d_eff_shared if shared else cuda.to_device(np.ascontiguousarray(effect[s:e]))
        d_cause = cuda.to_device(np.ascontiguousarray(cause[s:e]))
        d_A = cuda.device_array((m, kmax, T), dtype=np.float64)
        d_v = cuda.device_array((m, T), dtype=np.float64)
        outs = [
            cuda.device_array((m, lags.shape[0]), dtype=a.dtype)
            for a in (out_ssr_r, out_diff, out_ssr_u, out_status)
        ]
        grid, tpb = _blocks(m)
        _granger_kernel[grid, tpb](d_eff, d_cause, d_lags, float(rank_tol), d_A, d_v, *outs)
        for host, dev in zip((out_ssr_r, out_diff, out_ssr_u, out_status), outs):
            host[s:e] = dev.copy_to_host()


def lyapunov(windows, emb_dim, lag, theiler, steps, out_sum, out_count):
    """Batched nearest-neighbour divergence sums on the GPU (same contract as numba's).

    The points of each window are sorted by first coordinate on the host (numpy argsort);
    one thread per window; accumulators are the output rows, so no scratch is needed.
    """
    n = windows.shape[0]
    d_w = cuda.to_device(windows)
    n_pts = windows.shape[1] - (emb_dim - 1) * lag - steps
    d_order = cuda.to_device(
        np.ascontiguousarray(np.argsort(windows[:, :n_pts], axis=1, kind="stable"), dtype=np.int64)
    )
    d_sum = cuda.device_array(out_sum.shape, dtype=np.float64)
    d_cnt = cuda.device_array(out_count.shape, dtype=out_count.dtype)
    grid, tpb = _blocks(n)
    _lyapunov_kernel[grid, tpb](
        d_w, d_order, int(emb_dim), int(lag), int(theiler), int(steps), d_sum, d_cnt
    )
    out_sum[...] = d_sum.copy_to_host()
    out_count[...] = d_cnt.copy_to_host()

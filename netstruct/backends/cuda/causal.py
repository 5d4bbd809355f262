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
from ..numba.causal import (
    GRANGER_STATUS,
    _granger_core_py,
    _granger_gram_lag_py,
    _granger_gram_prefix_py,
    _granger_lag_lanes_py,
    _granger_prep_lanes_py,
    _lyapunov_core_py,
    granger_gram_precompute,
    granger_shared_precompute,
)

__all__ = ["granger", "lyapunov", "GRANGER_STATUS"]

_SCRATCH_BYTES = 256 * 2**20  # device scratch budget per Granger launch

_granger_core = cuda.jit(device=True)(_granger_core_py)
_granger_prep_lanes = cuda.jit(device=True)(_granger_prep_lanes_py)
_granger_lag_lanes = cuda.jit(device=True)(_granger_lag_lanes_py)
_granger_gram_prefix = cuda.jit(device=True)(_granger_gram_prefix_py)
_granger_gram_lag = cuda.jit(device=True)(_granger_gram_lag_py)
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
def _granger_shared_kernel(
    cbt,
    lags,
    rank_tol,
    Q,
    e,
    rstat,
    rpiv,
    tss,
    yc,
    Rinv,
    kz,
    zn,
    ssr_r,
    use,
    any_gram,
    nxt,
    bad,
    A,
    W,
    ev,
    sc,
    cc,
    cm,
    PY,
    PC,
    P1,
    Bm,
    M,
    rr,
    fb,
    out_ssr_r,
    out_diff,
    out_ssr_u,
    out_status,
):
    # one thread per cause = one lane of the lane-major (T, m) arrays, so neighbouring
    # threads read neighbouring addresses; the same per-lag route choice and hand-off as the
    # CPU kernel (a handed-off lane is refitted by the QR lanes in place)
    b = cuda.grid(1)
    if b < cbt.shape[1]:
        L = PC.shape[0]
        _granger_prep_lanes(cbt, b, b + 1, nxt, bad)
        if any_gram != 0:
            _granger_gram_prefix(cbt, yc, L, b, b + 1, cc, cm, PY, PC, P1, sc[0])
        for li in range(lags.shape[0]):
            p = lags[li]
            if use[li] != 0:
                _granger_gram_lag(
                    p,
                    li,
                    L,
                    cc,
                    cm,
                    PY,
                    PC,
                    P1,
                    e,
                    ssr_r,
                    Rinv,
                    kz,
                    zn,
                    rank_tol,
                    nxt,
                    bad,
                    Bm,
                    M,
                    rr,
                    sc,
                    fb,
                    b,
                    b + 1,
                    out_ssr_r,
                    out_diff,
                    out_ssr_u,
                    out_status,
                )
                if fb[b] == 0:
                    continue
            _granger_lag_lanes(
                cbt,
                p,
                li,
                Q,
                e,
                rstat,
                rpiv,
                tss,
                rank_tol,
                nxt,
                bad,
                A,
                W,
                ev,
                sc,
                b,
                b + 1,
                out_ssr_r,
                out_diff,
                out_ssr_u,
                out_status,
            )


@cuda.jit
def _lyapunov_kernel(windows, order, emb_dim, lag, theiler, steps, P, nb, out_sum, out_count):
    w = cuda.grid(1)
    if w < windows.shape[0]:
        _lyapunov_core(
            windows[w],
            order[w],
            emb_dim,
            lag,
            theiler,
            steps,
            P[w],
            nb[w],
            out_sum[w],
            out_count[w],
        )


def _blocks(n: int) -> tuple[int, int]:
    tpb = max(1, int(config.cuda_threads_per_block))
    return (n + tpb - 1) // tpb, tpb


def granger(effect, cause, lags, rank_tol, out_ssr_r, out_diff, out_ssr_u, out_status):
    """Batched Granger regressions on the GPU (same contract as the numba kernel).

    Shared effect row: the restricted fits are computed once on the host (the numba
    backend's ``granger_shared_precompute`` and ``granger_gram_precompute``) and each thread
    runs the numba backend's lane cores for one cause (Gram route, QR lanes where it hands
    off: the arithmetic of the CPU kernel, lane by lane). One effect row
    per cause: one thread per series runs the full per-series core. Device scratch is
    chunked by series to stay under 256 MiB.
    """
    n_series, T = cause.shape
    pmax = int(lags.max())
    d_lags = cuda.to_device(lags)
    if effect.shape[0] == 1:
        Q, e, rstat, rpiv, tss = granger_shared_precompute(effect[0], lags)
        gram = granger_gram_precompute(effect[0], lags, rank_tol, rstat, rpiv, e)
        any_gram = int(gram[-1].max())
        dev = [cuda.to_device(a) for a in (Q, e, rstat, rpiv, tss, *gram)] + [any_gram]
        L = pmax
        per_series = 8 * (
            3 * T
            + (pmax + 1) * pmax
            + pmax * T
            + 4
            + 1
            + T
            + 1
            + (3 * L) * (2 * L + 1)
            + (L + 1) * L
            + L * L
            + L
            + 1
        )
        chunk = max(1, min(n_series, _SCRATCH_BYTES // per_series))
        for s in range(0, n_series, chunk):
            stop = min(n_series, s + chunk)
            m = stop - s
            d_cbt = cuda.to_device(np.ascontiguousarray(cause[s:stop].T))
            scratch = (
                cuda.device_array((T, m), dtype=np.int64),
                cuda.device_array(m, dtype=np.int8),
                cuda.device_array((pmax + 1, pmax, m), dtype=np.float64),
                cuda.device_array((pmax, T, m), dtype=np.float64),
                cuda.device_array((T, m), dtype=np.float64),
                cuda.device_array((4, m), dtype=np.float64),
                cuda.device_array((T, m), dtype=np.float64),
                cuda.device_array(m, dtype=np.float64),
                cuda.device_array((2 * L - 1, 2 * L + 1, m), dtype=np.float64),
                cuda.device_array((L, 2 * L + 1, m), dtype=np.float64),
                cuda.device_array((2 * L + 1, m), dtype=np.float64),
                cuda.device_array((L + 1, L, m), dtype=np.float64),
                cuda.device_array((L, L, m), dtype=np.float64),
                cuda.device_array((L, m), dtype=np.float64),
                cuda.device_array(m, dtype=np.int8),
            )
            outs = [
                cuda.device_array((m, lags.shape[0]), dtype=a.dtype)
                for a in (out_ssr_r, out_diff, out_ssr_u, out_status)
            ]
            grid, tpb = _blocks(m)
            _granger_shared_kernel[grid, tpb](d_cbt, d_lags, float(rank_tol), *dev, *scratch, *outs)
            for host, d in zip((out_ssr_r, out_diff, out_ssr_u, out_status), outs):
                host[s:stop] = d.copy_to_host()
        return
    kmax = 2 * pmax + 1
    chunk = max(1, min(n_series, _SCRATCH_BYTES // (8 * T * (kmax + 1))))
    for s in range(0, n_series, chunk):
        stop = min(n_series, s + chunk)
        m = stop - s
        d_eff = cuda.to_device(np.ascontiguousarray(effect[s:stop]))
        d_cause = cuda.to_device(np.ascontiguousarray(cause[s:stop]))
        d_A = cuda.device_array((m, kmax, T), dtype=np.float64)
        d_v = cuda.device_array((m, T), dtype=np.float64)
        outs = [
            cuda.device_array((m, lags.shape[0]), dtype=a.dtype)
            for a in (out_ssr_r, out_diff, out_ssr_u, out_status)
        ]
        grid, tpb = _blocks(m)
        _granger_kernel[grid, tpb](d_eff, d_cause, d_lags, float(rank_tol), d_A, d_v, *outs)
        for host, d in zip((out_ssr_r, out_diff, out_ssr_u, out_status), outs):
            host[s:stop] = d.copy_to_host()


def lyapunov(windows, emb_dim, lag, theiler, steps, out_sum, out_count):
    """Batched nearest-neighbour divergence sums on the GPU (same contract as numba's).

    The points of each window are sorted by first coordinate on the host (numpy argsort);
    one thread per window, with (n_windows, n_pts, emb_dim) + (n_windows, n_pts) device
    scratch for the sorted points and the neighbours.
    """
    n = windows.shape[0]
    d_w = cuda.to_device(windows)
    n_pts = windows.shape[1] - (emb_dim - 1) * lag - steps
    d_order = cuda.to_device(
        np.ascontiguousarray(np.argsort(windows[:, :n_pts], axis=1, kind="stable"), dtype=np.int64)
    )
    d_P = cuda.device_array((n, n_pts, int(emb_dim)), dtype=np.float64)
    d_nb = cuda.device_array((n, n_pts), dtype=np.int64)
    d_sum = cuda.device_array(out_sum.shape, dtype=np.float64)
    d_cnt = cuda.device_array(out_count.shape, dtype=out_count.dtype)
    grid, tpb = _blocks(n)
    _lyapunov_kernel[grid, tpb](
        d_w, d_order, int(emb_dim), int(lag), int(theiler), int(steps), d_P, d_nb, d_sum, d_cnt
    )
    out_sum[...] = d_sum.copy_to_host()
    out_count[...] = d_cnt.copy_to_host()

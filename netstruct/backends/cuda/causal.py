"""numba.cuda twins of :mod:`netstruct.backends.numba.causal` (same names and signatures).

The per-series arithmetic is the numba module's device-agnostic core functions, compiled
here with ``cuda.jit(device=True)``: one CUDA thread per series or pair (Granger) or per window
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
    _granger_pair_centre_py,
    _granger_pair_ends_py,
    _granger_pair_lag_py,
    _granger_pair_sums_py,
    _granger_prep_lanes_py,
    _lyapunov_core_py,
    _pair_prefix_sum_py,
    _pair_prefix_table_py,
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
_granger_pair_sums = cuda.jit(device=True)(_granger_pair_sums_py)
_granger_pair_ends = cuda.jit(device=True)(_granger_pair_ends_py)
_granger_pair_centre = cuda.jit(device=True)(_granger_pair_centre_py)
_pair_prefix_table = cuda.jit(device=True)(_pair_prefix_table_py)
_pair_prefix_sum = cuda.jit(device=True)(_pair_prefix_sum_py)
_granger_pair_lag = cuda.jit(device=True)(_granger_pair_lag_py)
_lyapunov_core = cuda.jit(device=True)(_lyapunov_core_py)


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
def _granger_pairs_kernel(
    ybt,
    cbt,
    effect,
    cause,
    lags,
    rank_tol,
    nxy,
    nxc,
    bad,
    yc,
    cc,
    PYY,
    PCC,
    PYC,
    PY1,
    PC1,
    M,
    gd,
    cn,
    bt,
    sc,
    fb,
    A,
    v,
    out_ssr_r,
    out_diff,
    out_ssr_u,
    out_status,
):
    # one thread per pair = one lane of the lane-major (T, m) arrays; the CPU kernel's calls
    # (facts, prefix tables, Gram route per lag), then the full QR for the lags handed off
    b = cuda.grid(1)
    if b < ybt.shape[1]:
        L = PCC.shape[0]
        _granger_pair_sums(ybt, cbt, b, b + 1, sc)
        _granger_pair_ends(ybt, cbt, L, b, b + 1, nxy, nxc, bad, sc)
        _granger_pair_centre(ybt, cbt, b, b + 1, sc, yc, cc)
        for d in range(L + 1):
            _pair_prefix_table(yc, yc, d, L, b, b + 1, PYY[d], sc[2])
        for d in range(L):
            _pair_prefix_table(cc, cc, d, L, b, b + 1, PCC[d], sc[2])
        for dd in range(2 * L):
            _pair_prefix_table(yc, cc, dd - (L - 1), L, b, b + 1, PYC[dd], sc[2])
        _pair_prefix_sum(yc, L, b, b + 1, PY1, sc[2])
        _pair_prefix_sum(cc, L, b, b + 1, PC1, sc[2])
        for li in range(lags.shape[0]):
            _granger_pair_lag(
                lags[li],
                li,
                L,
                nxy,
                nxc,
                bad,
                PYY,
                PCC,
                PYC,
                PY1,
                PC1,
                rank_tol,
                M,
                gd,
                cn,
                bt,
                sc,
                fb,
                b,
                b + 1,
                out_ssr_r,
                out_diff,
                out_ssr_u,
                out_status,
            )
        for li in range(lags.shape[0]):
            if fb[b, li] != 0:
                _granger_core(
                    effect[b],
                    cause[b],
                    lags[li : li + 1],
                    rank_tol,
                    A[b],
                    v[b],
                    out_ssr_r[b, li : li + 1],
                    out_diff[b, li : li + 1],
                    out_ssr_u[b, li : li + 1],
                    out_status[b, li : li + 1],
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
    per cause: one thread per pair runs the CPU kernel's per-pair Gram route, then the full
    per-series QR core for the lags it hands off. Device scratch is
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
    _granger_pairs_device(
        effect, cause, lags, d_lags, rank_tol, out_ssr_r, out_diff, out_ssr_u, out_status
    )


def _granger_pairs_device(effect, cause, lags, d_lags, rank_tol, *outs_host):
    """One effect row per cause: the Gram route per pair, QR per handed-off lag (per thread)."""
    n_series, T = cause.shape
    L = int(lags.max())
    S = 2 * L + 2
    Km = 2 * L + 2
    n_lags = lags.shape[0]
    per_series = 8 * (
        6 * T + (4 * L + 1) * S + 2 * S + Km * Km + 3 * Km + 8 + (2 * L + 1) * T + T + 4 * n_lags
    )
    chunk = max(1, min(n_series, _SCRATCH_BYTES // per_series))
    for s in range(0, n_series, chunk):
        stop = min(n_series, s + chunk)
        m = stop - s
        f64 = np.float64
        d_in = [
            cuda.to_device(np.ascontiguousarray(effect[s:stop].T)),
            cuda.to_device(np.ascontiguousarray(cause[s:stop].T)),
            cuda.to_device(np.ascontiguousarray(effect[s:stop])),
            cuda.to_device(np.ascontiguousarray(cause[s:stop])),
        ]
        scratch = (
            cuda.device_array((T, m), dtype=np.int64),
            cuda.device_array((T, m), dtype=np.int64),
            cuda.device_array(m, dtype=np.int8),
            cuda.device_array((T, m), dtype=f64),
            cuda.device_array((T, m), dtype=f64),
            cuda.device_array((L + 1, S, m), dtype=f64),
            cuda.device_array((L, S, m), dtype=f64),
            cuda.device_array((2 * L, S, m), dtype=f64),
            cuda.device_array((S, m), dtype=f64),
            cuda.device_array((S, m), dtype=f64),
            cuda.device_array((Km, Km, m), dtype=f64),
            cuda.device_array((Km, m), dtype=f64),
            cuda.device_array((Km, m), dtype=f64),
            cuda.device_array((Km, m), dtype=f64),
            cuda.device_array((8, m), dtype=f64),
            cuda.device_array((m, n_lags), dtype=np.int8),
            cuda.device_array((m, 2 * L + 1, T), dtype=f64),
            cuda.device_array((m, T), dtype=f64),
        )
        outs = [cuda.device_array((m, n_lags), dtype=a.dtype) for a in outs_host]
        grid, tpb = _blocks(m)
        _granger_pairs_kernel[grid, tpb](*d_in, d_lags, float(rank_tol), *scratch, *outs)
        for host, d in zip(outs_host, outs):
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

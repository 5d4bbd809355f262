"""numba.cuda kernels for sign-preserving randomization; twins of ``backends.numba.randomize``.

Same names, signatures, return values and random streams as the CPU kernels: every stream is
keyed by ``(seeds[s], stream id)`` and hashed into a xoroshiro128+ state by the device
functions below (the same arithmetic as :mod:`netstruct.backends.numba._rng`). Host drivers
copy inputs to the device, choose the grid (:mod:`._launch`) and copy results back.

Work split: ``permute_segments`` runs one thread per (sample, group); ``signed_swap`` one
thread per chain (a swap chain is sequential; ensembles give the parallelism);
``signed_curveball`` runs two kernels per global round, one thread per chain to draw the
matching and one thread per (chain, pair) for the disjoint trades.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from ._launch import grid_1d, pack_bits

__all__ = ["permute_segments", "signed_swap", "signed_curveball"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_STREAM_SALT = np.uint64(0x632BE59BD9B4E019)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 1.0 / 9007199254740992.0
_ONE = np.uint64(1)
_ZERO = np.uint64(0)


# ----------------------------------------------------------------------------- device RNG
@cuda.jit(device=True)
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@cuda.jit(device=True)
def _seed_state(state, seed, stream):
    x = _mix(np.uint64(seed) ^ _mix(np.uint64(stream) + _STREAM_SALT))
    s0 = _mix(x + _GOLDEN)
    s1 = _mix(x + _GOLDEN + _GOLDEN)
    if s0 == _ZERO and s1 == _ZERO:
        s0 = _ONE
    state[0] = s0
    state[1] = s1


@cuda.jit(device=True)
def _next_u64(state):
    s0 = state[0]
    s1 = state[1]
    result = s0 + s1
    s1 ^= s0
    state[0] = ((s0 << np.uint64(55)) | (s0 >> np.uint64(9))) ^ s1 ^ (s1 << np.uint64(14))
    state[1] = (s1 << np.uint64(36)) | (s1 >> np.uint64(28))
    return result


@cuda.jit(device=True)
def _rand_below(state, n):
    u = np.float64(_next_u64(state) >> np.uint64(11)) * _INV_2_53
    r = np.int64(u * np.float64(n))
    if r >= n:
        r = n - 1
    return r


# ----------------------------------------------------------------------------- A–F
@cuda.jit
def _permute_kernel(out, indptr, cell_ids, seeds, n_groups):
    tid = cuda.grid(1)
    if tid >= seeds.shape[0] * n_groups:
        return
    s = tid // n_groups
    g = tid % n_groups
    lo = indptr[g]
    hi = indptr[g + 1]
    if hi - lo < 2:
        return
    state = cuda.local.array(2, np.uint64)
    _seed_state(state, seeds[s], np.uint64(g))
    for k in range(hi - lo - 1, 0, -1):
        j = _rand_below(state, k + 1)
        a = cell_ids[lo + k]
        b = cell_ids[lo + j]
        tmp = out[s, a]
        out[s, a] = out[s, b]
        out[s, b] = tmp


def permute_segments(
    weight: np.ndarray, indptr: np.ndarray, cell_ids: np.ndarray, seeds: np.ndarray
) -> np.ndarray:
    """CUDA twin of :func:`netstruct.backends.numba.randomize.permute_segments`.

    Same arrays in and out: ``weight`` float32 (n_out, n_in), ``indptr`` int64
    (n_groups + 1,), ``cell_ids`` int64, ``seeds`` uint64 (n_samples,) -> float32
    (n_samples, n_out, n_in). One thread per (sample, group).
    """
    n_samples = seeds.shape[0]
    n_out, n_in = weight.shape
    n_groups = indptr.shape[0] - 1
    host = np.ascontiguousarray(np.broadcast_to(weight.reshape(1, -1), (n_samples, n_out * n_in)))
    d_out = cuda.to_device(host)
    if n_groups > 0 and n_samples > 0:
        blocks, tpb = grid_1d(n_samples * n_groups)
        _permute_kernel[blocks, tpb](
            d_out, cuda.to_device(indptr), cuda.to_device(cell_ids), cuda.to_device(seeds), n_groups
        )
    return d_out.copy_to_host().reshape(n_samples, n_out, n_in)


# ----------------------------------------------------------------------------- G swap chain
_LAZY = 8  # the swap chain holds on one proposal in _LAZY (as the CPU kernel)


@cuda.jit(device=True)
def _shuffle_sign_class(w, s, rows, cols, n, state):
    for k in range(n - 1, 0, -1):
        j = _rand_below(state, k + 1)
        tmp = w[s, rows[s, k], cols[s, k]]
        w[s, rows[s, k], cols[s, k]] = w[s, rows[s, j], cols[s, j]]
        w[s, rows[s, j], cols[s, j]] = tmp


@cuda.jit(device=True)
def _select_bit(bits, s, line, k):
    for q in range(bits.shape[2]):
        x = bits[s, line, q]
        c = cuda.popc(x)
        if k < c:
            for _ in range(k):
                x &= x - _ONE
            return q * 64 + cuda.popc((x & (~x + _ONE)) - _ONE)
        k -= c
    return -1


@cuda.jit(device=True)
def _and_count(p, n, s, a, b):
    t = 0
    for q in range(p.shape[2]):
        t += cuda.popc(p[s, a, q] & n[s, b, q])
    return t


@cuda.jit(device=True)
def _and_select(p, n, s, a, b, k):
    for q in range(p.shape[2]):
        x = p[s, a, q] & n[s, b, q]
        c = cuda.popc(x)
        if k < c:
            for _ in range(k):
                x &= x - _ONE
            return q * 64 + cuda.popc((x & (~x + _ONE)) - _ONE)
        k -= c
    return -1


@cuda.jit(device=True)
def _flip_pair(bits, s, line, u, v):
    bits[s, line, u >> 6] ^= _ONE << np.uint64(u & 63)
    bits[s, line, v >> 6] ^= _ONE << np.uint64(v & 63)


@cuda.jit(device=True)
def _column_of(cum, e):
    lo = 0
    hi = cum.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if cum[mid] <= e:
            lo = mid
        else:
            hi = mid
    return lo


@cuda.jit
def _swap_kernel(
    w, prow, nrow, pcol, ncol, cum, n_neg_col, n_steps, seeds, reshuffle, pr, pc, nr, nc, n_accepted
):
    s = cuda.grid(1)
    if s >= seeds.shape[0]:
        return
    n_pos = cum[cum.shape[0] - 1]
    state = cuda.local.array(2, np.uint64)
    _seed_state(state, seeds[s], np.uint64(0))
    acc = 0
    for _ in range(n_steps):
        e = _rand_below(state, _LAZY * n_pos)
        if e % _LAZY == 0:
            continue
        e //= _LAZY
        c = _column_of(cum, e)
        a = _select_bit(pcol, s, c, e - cum[c])
        kc = n_neg_col[c]
        if kc == 0:
            continue
        b = _select_bit(ncol, s, c, _rand_below(state, kc))
        nt = _and_count(prow, nrow, s, b, a)
        if nt == 0:
            continue
        d = _and_select(prow, nrow, s, b, a, _rand_below(state, nt))
        ns_ = _and_count(prow, nrow, s, a, b)
        kd = n_neg_col[d]
        num = kd * nt + kc * ns_
        den = kd * ns_ + kc * nt
        if num < den and _rand_below(state, den) >= num:
            continue
        tmp = w[s, a, c]
        w[s, a, c] = w[s, b, c]
        w[s, b, c] = tmp
        tmp = w[s, a, d]
        w[s, a, d] = w[s, b, d]
        w[s, b, d] = tmp
        _flip_pair(prow, s, a, c, d)
        _flip_pair(nrow, s, a, c, d)
        _flip_pair(prow, s, b, c, d)
        _flip_pair(nrow, s, b, c, d)
        _flip_pair(pcol, s, c, a, b)
        _flip_pair(ncol, s, c, a, b)
        _flip_pair(pcol, s, d, a, b)
        _flip_pair(ncol, s, d, a, b)
        acc += 1
    n_accepted[s] = acc
    if reshuffle:
        kp = 0
        kn = 0
        for j in range(w.shape[1]):
            for i in range(w.shape[2]):
                if w[s, j, i] > 0:
                    pr[s, kp] = j
                    pc[s, kp] = i
                    kp += 1
                elif w[s, j, i] < 0:
                    nr[s, kn] = j
                    nc[s, kn] = i
                    kn += 1
        _shuffle_sign_class(w, s, pr, pc, kp, state)
        _shuffle_sign_class(w, s, nr, nc, kn, state)


def signed_swap(
    weight: np.ndarray, n_steps: int, seeds: np.ndarray, reshuffle: bool
) -> tuple[np.ndarray, np.ndarray]:
    """CUDA twin of :func:`netstruct.backends.numba.randomize.signed_swap`.

    ``weight`` float32 (n_out, n_in), ``seeds`` uint64 (n_samples,) ->
    (float32 (n_samples, n_out, n_in), int64 (n_samples,) accepted swaps). One thread per
    chain, the same direct proposal and random stream as the CPU kernel; each chain's row and
    column bit sets (and the cell lists of ``reshuffle``) live in global memory.
    """
    n_samples = seeds.shape[0]
    n_out, n_in = weight.shape
    pos, neg = weight > 0, weight < 0
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    cum = np.concatenate(([0], np.cumsum(pos.sum(0)))).astype(np.int64)
    n_neg_col = neg.sum(0).astype(np.int64)

    def per_chain(bits: np.ndarray):
        return cuda.to_device(np.ascontiguousarray(np.broadcast_to(bits, (n_samples, *bits.shape))))

    d_w = per_chain(weight)
    tables = [per_chain(pack_bits(m)) for m in (pos, neg, pos.T, neg.T)]
    lists = [
        cuda.to_device(np.zeros((n_samples, max(k, 1) if reshuffle else 1), dtype=np.int64))
        for k in (n_pos, n_pos, n_neg, n_neg)
    ]
    d_acc = cuda.to_device(np.zeros(n_samples, dtype=np.int64))
    steps = int(n_steps) if n_pos >= 2 and n_neg >= 2 else 0
    if n_samples > 0:
        blocks, tpb = grid_1d(n_samples)
        _swap_kernel[blocks, tpb](
            d_w, *tables, cuda.to_device(cum), cuda.to_device(n_neg_col), steps,
            cuda.to_device(seeds), bool(reshuffle), *lists, d_acc,
        )  # fmt: skip
    return d_w.copy_to_host(), d_acc.copy_to_host()


# ----------------------------------------------------------------------------- curveball
@cuda.jit
def _matching_kernel(perm, seeds, stream):
    s = cuda.grid(1)
    if s >= seeds.shape[0]:
        return
    state = cuda.local.array(2, np.uint64)
    _seed_state(state, seeds[s], stream)
    for k in range(perm.shape[1] - 1, 0, -1):
        j = _rand_below(state, k + 1)
        tmp = perm[s, k]
        perm[s, k] = perm[s, j]
        perm[s, j] = tmp


@cuda.jit
def _trade_kernel(w, zbits, pbits, xbits, perm, seeds, base, n_pairs, n_changed):
    tid = cuda.grid(1)
    if tid >= seeds.shape[0] * n_pairs:
        return
    s = tid // n_pairs
    p = tid % n_pairs
    a = perm[s, 2 * p]
    b = perm[s, 2 * p + 1]
    n_words = zbits.shape[1]
    state = cuda.local.array(2, np.uint64)
    _seed_state(state, seeds[s], base + np.uint64(p + 1))
    nx = 0
    t = 0
    for q in range(n_words):
        x = zbits[a, q] & zbits[b, q] & (pbits[s, a, q] ^ pbits[s, b, q])
        xbits[s, p, q] = x
        nx += cuda.popc(x)
        t += cuda.popc(x & pbits[s, a, q])
    if t == 0 or t == nx:
        return
    need = t
    remaining = nx
    for q in range(n_words):
        x = xbits[s, p, q]
        bits = x
        chosen = _ZERO
        while bits != _ZERO:
            low = bits & (~bits + _ONE)
            if _rand_below(state, remaining) < need:
                chosen |= low
                need -= 1
            remaining -= 1
            bits ^= low
        pbits[s, a, q] = (pbits[s, a, q] & ~x) | chosen
    ql = 0
    qr = 0
    bl = xbits[s, p, 0] & ~pbits[s, b, 0] & ~pbits[s, a, 0]
    br = xbits[s, p, 0] & pbits[s, b, 0] & pbits[s, a, 0]
    moved = False
    while True:
        while bl == _ZERO and ql < n_words - 1:
            ql += 1
            bl = xbits[s, p, ql] & ~pbits[s, b, ql] & ~pbits[s, a, ql]
        if bl == _ZERO:
            break
        while br == _ZERO and qr < n_words - 1:
            qr += 1
            br = xbits[s, p, qr] & pbits[s, b, qr] & pbits[s, a, qr]
        lowl = bl & (~bl + _ONE)
        lowr = br & (~br + _ONE)
        bl ^= lowl
        br ^= lowr
        cl = ql * 64 + cuda.popc(lowl - _ONE)
        cr = qr * 64 + cuda.popc(lowr - _ONE)
        tmp = w[s, a, cl]
        w[s, a, cl] = w[s, a, cr]
        w[s, a, cr] = tmp
        tmp = w[s, b, cl]
        w[s, b, cl] = w[s, b, cr]
        w[s, b, cr] = tmp
        moved = True
    for q in range(n_words):
        x = xbits[s, p, q]
        pbits[s, b, q] = (pbits[s, b, q] & ~x) | (x & ~pbits[s, a, q])
    if moved:
        n_changed[s, p] += 1


def signed_curveball(
    weight: np.ndarray, n_rounds: int, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CUDA twin of :func:`netstruct.backends.numba.randomize.signed_curveball`.

    ``weight`` float32 (n_nodes, n_partners), ``seeds`` uint64 (n_samples,) ->
    (float32 (n_samples, n_nodes, n_partners), int64 (n_samples,) trades that changed the
    pattern). Per round: one thread per chain draws the matching, then one thread per
    (chain, pair) trades; the kernel boundary separates rounds.
    """
    n_samples = seeds.shape[0]
    n_nodes, n_partners = weight.shape
    n_pairs = n_nodes // 2
    zbits = pack_bits(weight != 0)
    n_words = zbits.shape[1]
    pbits = np.ascontiguousarray(
        np.broadcast_to(pack_bits(weight > 0), (n_samples, n_nodes, n_words))
    )
    d_w = cuda.to_device(
        np.ascontiguousarray(np.broadcast_to(weight, (n_samples, n_nodes, n_partners)))
    )
    d_z = cuda.to_device(zbits)
    d_p = cuda.to_device(pbits)
    d_x = cuda.to_device(np.zeros((n_samples, max(n_pairs, 1), n_words), dtype=np.uint64))
    d_perm = cuda.to_device(np.tile(np.arange(n_nodes, dtype=np.int64), (n_samples, 1)))
    d_seeds = cuda.to_device(seeds)
    d_changed = cuda.to_device(np.zeros((n_samples, max(n_pairs, 1)), dtype=np.int64))
    if n_pairs >= 1 and n_samples > 0:
        mb, mt = grid_1d(n_samples)
        tb, tt = grid_1d(n_samples * n_pairs)
        for rnd in range(int(n_rounds)):
            base = np.uint64(rnd) * np.uint64(n_pairs + 1)
            _matching_kernel[mb, mt](d_perm, d_seeds, base)
            _trade_kernel[tb, tt](d_w, d_z, d_p, d_x, d_perm, d_seeds, base, n_pairs, d_changed)
    return d_w.copy_to_host(), d_changed.copy_to_host().sum(axis=1).astype(np.int64)

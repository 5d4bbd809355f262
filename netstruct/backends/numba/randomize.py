"""numba (CPU) kernels for sign-preserving randomization (null models A–G, signed curveball).

Kernels take C-contiguous arrays and explicit uint64 seeds (one per chain), never validate,
never modify their inputs, and return new arrays. Each chain's random numbers come from
streams keyed by ``(seeds[s], stream id)`` (see :mod:`._rng`), so results do not depend on
the number of threads. Ensemble members run in parallel (``prange`` over chains).

The CUDA backend (:mod:`netstruct.backends.cuda.randomize`) exports the same three kernels
with the same signatures and the same random streams.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._jit import njit
from ._rng import new_state, rand_below, seed_state

__all__ = ["permute_segments", "signed_swap", "signed_curveball"]

_ONE = np.uint64(1)
_LAZY = 8  # the swap chain holds on one proposal in _LAZY


# ----------------------------------------------------------------------------- bit helpers
@njit
def _popcount(x: np.uint64) -> int:
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))  # type: ignore[return-value]


@njit
def _lowest_bit(x: np.uint64) -> np.uint64:
    return x & (~x + _ONE)


# ----------------------------------------------------------------------------- drivers
def _run(serial, parallel, n_samples: int, inputs: tuple, outputs: tuple) -> None:
    """Call ``parallel`` (``prange`` over chains) for ensembles when numba has several threads,
    else ``serial``: one chain (``ns.randomize``) never compiles the parallel driver, and both
    give the same samples (each chain is keyed by its own seed).

    Input arrays are passed as read-only C-contiguous views (the graph's frozen arrays are
    read-only, and numba compiles read-only and writable arrays separately), so each driver
    has one signature per dtype whatever the caller holds.
    """
    args = []
    for a in inputs:
        if isinstance(a, np.ndarray):
            a = np.ascontiguousarray(a).view()
            a.flags.writeable = False
        args.append(a)
    if n_samples > 1 and numba.get_num_threads() > 1:
        parallel(*args, *outputs)
    else:
        serial(*args, *outputs)


# ----------------------------------------------------------------------------- A–F
@njit
def _permute_one(
    flat: np.ndarray,
    indptr: np.ndarray,
    cell_ids: np.ndarray,
    seed: np.uint64,
    buf: np.ndarray,
    row: np.ndarray,
) -> None:
    """One sample of :func:`permute_segments` into ``row`` (``buf``: scratch of the longest group)."""
    state = new_state()
    for k in range(flat.shape[0]):
        row[k] = flat[k]
    for g in range(indptr.shape[0] - 1):
        lo = indptr[g]
        n = indptr[g + 1] - lo
        if n < 2:
            continue
        seed_state(state, seed, np.uint64(g))
        for k in range(n):
            buf[k] = flat[cell_ids[lo + k]]
        for k in range(n - 1, 0, -1):
            j = rand_below(state, k + 1)
            tmp = buf[k]
            buf[k] = buf[j]
            buf[j] = tmp
        for k in range(n):
            row[cell_ids[lo + k]] = buf[k]


@njit
def _longest_group(indptr: np.ndarray) -> int:
    longest = 0
    for g in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[g + 1] - indptr[g])
    return longest


@njit
def _permute_serial(flat, indptr, cell_ids, seeds, out):
    buf = np.empty(_longest_group(indptr), dtype=np.float32)
    for s in range(seeds.shape[0]):
        _permute_one(flat, indptr, cell_ids, seeds[s], buf, out[s])


@njit(parallel=True)
def _permute_parallel(flat, indptr, cell_ids, seeds, out):
    longest = _longest_group(indptr)
    for s in prange(seeds.shape[0]):
        _permute_one(flat, indptr, cell_ids, seeds[s], np.empty(longest, dtype=np.float32), out[s])


def permute_segments(
    weight: np.ndarray, indptr: np.ndarray, cell_ids: np.ndarray, seeds: np.ndarray
) -> np.ndarray:
    """Permute values uniformly inside groups of cells, one sample per seed.

    Parameters
    ----------
    weight : float32 (n_out, n_in)
    indptr : int64 (n_groups + 1,)
        Group ``g`` owns ``cell_ids[indptr[g]:indptr[g + 1]]``.
    cell_ids : int64 (n_cells,)
        Flat (row-major) indices into ``weight``; cells not listed keep their value.
    seeds : uint64 (n_samples,)

    Returns
    -------
    out : float32 (n_samples, n_out, n_in)

    Notes
    -----
    Fisher–Yates per group, stream ``g`` of ``seeds[s]``; O(n_samples * (size + n_cells)).
    Each group's values are gathered into a contiguous buffer, shuffled there (the random
    accesses then stay in a buffer of the group's size instead of the whole layer and its
    cell ids) and scattered back: the same swaps, so the same samples as shuffling in place.
    Chains run in parallel (``prange``) for ensembles when numba has several threads.
    """
    n_samples = seeds.shape[0]
    n_out, n_in = weight.shape
    out = np.empty((n_samples, n_out * n_in), dtype=np.float32)
    flat = weight.reshape(-1)
    if flat.size:
        _run(_permute_serial, _permute_parallel, n_samples, (flat, indptr, cell_ids, seeds), (out,))
    return out.reshape((n_samples, n_out, n_in))


# ----------------------------------------------------------------------------- G swap chain
@njit
def _shuffle_sign_class(
    w: np.ndarray, rows: np.ndarray, cols: np.ndarray, state: np.ndarray
) -> None:
    for k in range(rows.shape[0] - 1, 0, -1):
        j = rand_below(state, k + 1)
        tmp = w[rows[k], cols[k]]
        w[rows[k], cols[k]] = w[rows[j], cols[j]]
        w[rows[j], cols[j]] = tmp


@njit
def _select_bit(bits: np.ndarray, line: np.int64, k: np.int64) -> int:
    """Index of the ``k``-th (0-based) set bit of the bit set ``bits[line]`` (-1 if none)."""
    for q in range(bits.shape[1]):
        x = bits[line, q]
        c = _popcount(x)
        if k < c:
            for _ in range(k):
                x &= x - _ONE
            return q * 64 + _popcount(_lowest_bit(x) - _ONE)
        k -= c
    return -1


@njit
def _and_count(p: np.ndarray, a: np.int64, n: np.ndarray, b: np.int64) -> int:
    """``|p[a] & n[b]|`` for two bit-set tables of the same width."""
    t = 0
    for q in range(p.shape[1]):
        t += _popcount(p[a, q] & n[b, q])
    return t


@njit
def _and_select(p: np.ndarray, a: np.int64, n: np.ndarray, b: np.int64, k: np.int64) -> int:
    """Index of the ``k``-th set bit of ``p[a] & n[b]``."""
    for q in range(p.shape[1]):
        x = p[a, q] & n[b, q]
        c = _popcount(x)
        if k < c:
            for _ in range(k):
                x &= x - _ONE
            return q * 64 + _popcount(_lowest_bit(x) - _ONE)
        k -= c
    return -1


@njit
def _flip_pair(bits: np.ndarray, line: np.int64, u: np.int64, v: np.int64) -> None:
    bits[line, u >> 6] ^= _ONE << np.uint64(u & 63)
    bits[line, v >> 6] ^= _ONE << np.uint64(v & 63)


@njit
def _bit_tables(w: np.ndarray, sign: np.float32, by_row: bool, n_words: np.int64) -> np.ndarray:
    """Bit sets of the cells of ``w`` with sign ``sign``, one per row (or per column)."""
    n_out, n_in = w.shape
    n_lines = n_out if by_row else n_in
    bits = np.zeros((n_lines, n_words), dtype=np.uint64)
    for j in range(n_out):
        for i in range(n_in):
            if w[j, i] * sign > 0:
                if by_row:
                    bits[j, i >> 6] |= _ONE << np.uint64(i & 63)
                else:
                    bits[i, j >> 6] |= _ONE << np.uint64(j & 63)
    return bits


@njit
def _column_of(cum: np.ndarray, e: np.int64) -> int:
    """The column ``c`` with ``cum[c] <= e < cum[c + 1]`` (binary search; cum is non-decreasing)."""
    lo = 0
    hi = cum.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if cum[mid] <= e:
            lo = mid
        else:
            hi = mid
    return lo


@njit
def _swap_tables(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``cum`` (positive cells before each column), negative degree per column, ``|E-|``."""
    n_out, n_in = weight.shape
    cum = np.zeros(n_in + 1, dtype=np.int64)
    n_neg_col = np.zeros(n_in, dtype=np.int64)
    n_neg = 0
    for i in range(n_in):
        k = 0
        for j in range(n_out):
            if weight[j, i] > 0:
                k += 1
            elif weight[j, i] < 0:
                n_neg_col[i] += 1
        cum[i + 1] = cum[i] + k
        n_neg += n_neg_col[i]
    return cum, n_neg_col, n_neg


@njit
def _swap_chain(
    weight: np.ndarray,
    cum: np.ndarray,
    n_neg_col: np.ndarray,
    n_neg: np.int64,
    n_steps: np.int64,
    seed: np.uint64,
    reshuffle: bool,
    w: np.ndarray,
) -> int:
    """One chain of :func:`signed_swap`, written into ``w``; returns the accepted moves."""
    n_out, n_in = weight.shape
    w_in = max((n_in + 63) // 64, 1)
    w_out = max((n_out + 63) // 64, 1)
    n_pos = cum[n_in]
    for j in range(n_out):
        for i in range(n_in):
            w[j, i] = weight[j, i]
    state = new_state()
    seed_state(state, seed, np.uint64(0))
    acc = 0
    if n_pos >= 2 and n_neg >= 2:
        prow = _bit_tables(w, np.float32(1.0), True, w_in)
        nrow = _bit_tables(w, np.float32(-1.0), True, w_in)
        pcol = _bit_tables(w, np.float32(1.0), False, w_out)
        ncol = _bit_tables(w, np.float32(-1.0), False, w_out)
        for _ in range(n_steps):
            e = rand_below(state, _LAZY * n_pos)
            if e % _LAZY == 0:  # hold: makes the chain aperiodic where every move is accepted
                continue
            e //= _LAZY
            c = _column_of(cum, e)
            a = _select_bit(pcol, c, e - cum[c])
            kc = n_neg_col[c]
            if kc == 0:
                continue
            b = _select_bit(ncol, c, rand_below(state, kc))
            nt = _and_count(prow, b, nrow, a)
            if nt == 0:
                continue
            d = _and_select(prow, b, nrow, a, rand_below(state, nt))
            ns_ = _and_count(prow, a, nrow, b)
            kd = n_neg_col[d]
            num = kd * nt + kc * ns_
            den = kd * ns_ + kc * nt
            if num < den and rand_below(state, den) >= num:
                continue
            tmp = w[a, c]
            w[a, c] = w[b, c]
            w[b, c] = tmp
            tmp = w[a, d]
            w[a, d] = w[b, d]
            w[b, d] = tmp
            _flip_pair(prow, a, c, d)
            _flip_pair(nrow, a, c, d)
            _flip_pair(prow, b, c, d)
            _flip_pair(nrow, b, c, d)
            _flip_pair(pcol, c, a, b)
            _flip_pair(ncol, c, a, b)
            _flip_pair(pcol, d, a, b)
            _flip_pair(ncol, d, a, b)
            acc += 1
    if reshuffle:
        pr = np.empty(n_pos, dtype=np.int64)
        pc = np.empty(n_pos, dtype=np.int64)
        nr = np.empty(n_neg, dtype=np.int64)
        nc = np.empty(n_neg, dtype=np.int64)
        kp = 0
        kn = 0
        for j in range(n_out):
            for i in range(n_in):
                if w[j, i] > 0:
                    pr[kp] = j
                    pc[kp] = i
                    kp += 1
                elif w[j, i] < 0:
                    nr[kn] = j
                    nc[kn] = i
                    kn += 1
        _shuffle_sign_class(w, pr, pc, state)
        _shuffle_sign_class(w, nr, nc, state)
    return acc


@njit
def _swap_serial(weight, n_steps, seeds, reshuffle, out, n_accepted):
    cum, n_neg_col, n_neg = _swap_tables(weight)
    for s in range(seeds.shape[0]):
        n_accepted[s] = _swap_chain(
            weight, cum, n_neg_col, n_neg, n_steps, seeds[s], reshuffle, out[s]
        )


@njit(parallel=True)
def _swap_parallel(weight, n_steps, seeds, reshuffle, out, n_accepted):
    cum, n_neg_col, n_neg = _swap_tables(weight)
    for s in prange(seeds.shape[0]):
        n_accepted[s] = _swap_chain(
            weight, cum, n_neg_col, n_neg, n_steps, seeds[s], reshuffle, out[s]
        )


def signed_swap(
    weight: np.ndarray, n_steps: np.int64, seeds: np.ndarray, reshuffle: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Checkerboard swap chain (null model G-left), one independent chain per seed.

    Parameters
    ----------
    weight : float32 (n_out, n_in)
        Columns keep their own values (pass the transpose for G-right).
    n_steps : int
        Proposals per chain (rejections count as steps).
    seeds : uint64 (n_samples,)
    reshuffle : bool
        After the chain, permute positive values over positive cells and negative values over
        negative cells, layer-wide (G-shuffle).

    Returns
    -------
    out : float32 (n_samples, n_out, n_in)
    n_accepted : int64 (n_samples,)

    Notes
    -----
    A proposal builds a checkerboard directly: a uniform positive cell ``(a, c)``, a uniform
    row ``b`` negative in column ``c``, and a uniform column ``d`` of
    ``T = P(b) & N(a)`` (``P``, ``N``: the positive and negative columns of a row). The swap
    exchanges rows ``a`` and ``b`` inside columns ``c`` and ``d``. With ``S = P(a) & N(b)``
    and ``n-(i)`` the (invariant) negative degree of column ``i``, the move is proposed with
    probability ``(1/(n-(c)|T|) + 1/(n-(d)|S|)) / |E+|`` and its reverse with ``|S|`` and
    ``|T|`` exchanged (both sets keep their sizes through the move), so it is accepted with
    the Metropolis–Hastings probability
    ``min(1, (n-(d)|T| + n-(c)|S|) / (n-(d)|S| + n-(c)|T|))`` (an exact integer test): the
    chain is uniform over the patterns it reaches, like the uniform-pair chain of
    ``tests/oracles/naive_randomize.py``, but proposals fail only when ``T`` is empty. One
    proposal in eight is a hold, which keeps the chain aperiodic on layers where every move
    would be accepted (a 2x2 checkerboard would otherwise alternate between its two states).
    Rows and columns are bit sets of 64-cell words; a proposal costs
    O((n_out + n_in) / 64). Stream 0 of ``seeds[s]``; chains run in parallel (``prange``) for ensembles.
    """
    n_samples = seeds.shape[0]
    out = np.empty((n_samples, *weight.shape), dtype=np.float32)
    n_accepted = np.zeros(n_samples, dtype=np.int64)
    inputs = (weight, np.int64(n_steps), seeds, bool(reshuffle))
    _run(_swap_serial, _swap_parallel, n_samples, inputs, (out, n_accepted))
    return out, n_accepted


# ----------------------------------------------------------------------------- curveball
@njit
def _trade(
    w: np.ndarray,
    zbits: np.ndarray,
    pbits: np.ndarray,
    xbits: np.ndarray,
    a: np.int64,
    b: np.int64,
    state: np.ndarray,
) -> bool:
    """One signed curveball trade between rows ``a`` and ``b`` of ``w`` (inputs already valid)."""
    n_words = zbits.shape[1]
    nx = 0
    t = 0
    for q in range(n_words):
        x = zbits[a, q] & zbits[b, q] & (pbits[a, q] ^ pbits[b, q])
        xbits[q] = x
        nx += _popcount(x)
        t += _popcount(x & pbits[a, q])
    if t == 0 or t == nx:
        return False
    # choose a uniform t-subset C of X (selection sampling); a is positive exactly on C
    need = t
    remaining = nx
    for q in range(n_words):
        x = xbits[q]
        bits = x
        chosen = np.uint64(0)
        while bits != np.uint64(0):
            low = _lowest_bit(bits)
            if rand_below(state, remaining) < need:
                chosen |= low
                need -= 1
            remaining -= 1
            bits ^= low
        pbits[a, q] = (pbits[a, q] & ~x) | chosen
    # pair the cells a left (L) with the cells a entered (R), in index order; each pair is a
    # checkerboard swap inside rows a and b, so both rows keep their own values
    ql = 0
    qr = 0
    bl = xbits[0] & ~pbits[b, 0] & ~pbits[a, 0]
    br = xbits[0] & pbits[b, 0] & pbits[a, 0]
    moved = False
    while True:
        while bl == np.uint64(0) and ql < n_words - 1:
            ql += 1
            bl = xbits[ql] & ~pbits[b, ql] & ~pbits[a, ql]
        if bl == np.uint64(0):
            break
        while br == np.uint64(0) and qr < n_words - 1:
            qr += 1
            br = xbits[qr] & pbits[b, qr] & pbits[a, qr]
        lowl = _lowest_bit(bl)
        lowr = _lowest_bit(br)
        bl ^= lowl
        br ^= lowr
        cl = ql * 64 + _popcount(lowl - _ONE)
        cr = qr * 64 + _popcount(lowr - _ONE)
        tmp = w[a, cl]
        w[a, cl] = w[a, cr]
        w[a, cr] = tmp
        tmp = w[b, cl]
        w[b, cl] = w[b, cr]
        w[b, cr] = tmp
        moved = True
    for q in range(n_words):
        x = xbits[q]
        pbits[b, q] = (pbits[b, q] & ~x) | (x & ~pbits[a, q])
    return moved


@njit
def _curveball_chain(
    weight: np.ndarray, zbits: np.ndarray, n_rounds: np.int64, seed: np.uint64, w: np.ndarray
) -> int:
    """One chain of :func:`signed_curveball`, written into ``w``; returns the changing trades."""
    n_nodes, n_partners = weight.shape
    n_words = zbits.shape[1]
    n_pairs = n_nodes // 2
    pbits = np.zeros((n_nodes, n_words), dtype=np.uint64)
    for a in range(n_nodes):
        for c in range(n_partners):
            v = weight[a, c]
            w[a, c] = v
            if v > 0:
                pbits[a, c >> 6] |= _ONE << np.uint64(c & 63)
    xbits = np.zeros(n_words, dtype=np.uint64)
    perm = np.arange(n_nodes)
    state = new_state()
    changed = 0
    if n_pairs >= 1:
        for rnd in range(n_rounds):
            base = np.uint64(rnd) * np.uint64(n_pairs + 1)
            seed_state(state, seed, base)
            for k in range(n_nodes - 1, 0, -1):
                j = rand_below(state, k + 1)
                tmp = perm[k]
                perm[k] = perm[j]
                perm[j] = tmp
            for p in range(n_pairs):
                seed_state(state, seed, base + np.uint64(p + 1))
                if _trade(w, zbits, pbits, xbits, perm[2 * p], perm[2 * p + 1], state):
                    changed += 1
    return changed


@njit
def _support_bits(weight: np.ndarray) -> np.ndarray:
    n_nodes, n_partners = weight.shape
    zbits = np.zeros((n_nodes, max((n_partners + 63) // 64, 1)), dtype=np.uint64)
    for a in range(n_nodes):
        for c in range(n_partners):
            if weight[a, c] != 0:
                zbits[a, c >> 6] |= _ONE << np.uint64(c & 63)
    return zbits


@njit
def _curveball_serial(weight, n_rounds, seeds, out, n_changed):
    zbits = _support_bits(weight)
    for s in range(seeds.shape[0]):
        n_changed[s] = _curveball_chain(weight, zbits, n_rounds, seeds[s], out[s])


@njit(parallel=True)
def _curveball_parallel(weight, n_rounds, seeds, out, n_changed):
    zbits = _support_bits(weight)
    for s in prange(seeds.shape[0]):
        n_changed[s] = _curveball_chain(weight, zbits, n_rounds, seeds[s], out[s])


def signed_curveball(
    weight: np.ndarray, n_rounds: np.int64, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signed global curveball over the rows of ``weight``, one independent chain per seed.

    Parameters
    ----------
    weight : float32 (n_nodes, n_partners)
        Rows are the trading nodes and keep their own values (pass ``W.T`` to trade input-side
        nodes).
    n_rounds : int
        Global rounds; each pairs the rows by a uniform random matching and performs
        ``n_nodes // 2`` disjoint trades.
    seeds : uint64 (n_samples,)

    Returns
    -------
    out : float32 (n_samples, n_nodes, n_partners)
    n_changed : int64 (n_samples,)
        Trades that changed the sign pattern.

    Notes
    -----
    A trade between rows ``a`` and ``b`` finds ``X`` = columns where both are non-zero and
    exactly one is positive, keeps ``t = |X ∩ P_a|`` and gives ``a`` a uniform random
    ``t``-subset of ``X``; values move by checkerboard swaps, so every row keeps its multiset
    and every column keeps its signed degrees. Rows are bit sets of ``ceil(n_partners / 64)``
    words. Round ``k`` uses stream ``k * (n_pairs + 1)`` for the matching and stream
    ``k * (n_pairs + 1) + 1 + p`` for trade ``p``;
    chains run in parallel (``prange``) for ensembles.
    """
    n_samples = seeds.shape[0]
    out = np.empty((n_samples, *weight.shape), dtype=np.float32)
    n_changed = np.zeros(n_samples, dtype=np.int64)
    inputs = (weight, np.int64(n_rounds), seeds)
    _run(_curveball_serial, _curveball_parallel, n_samples, inputs, (out, n_changed))
    return out, n_changed

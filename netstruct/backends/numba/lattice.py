"""numba (CPU) kernels for formal contexts, concept lattices and posets.

Bitsets are ``uint64`` rows: bit ``k`` of a set lives in word ``k >> 6`` at position
``k & 63``. Kernels assume validated, C-contiguous inputs (see ``netstruct.lattice``), never
raise user-facing errors and never write to their inputs.

Kernels
-------
irreducible_test(cols, valid) -> (irr, cover)
    Ganter–Wille meet-irreducibility test on attribute extents.
concepts_cbo(cols, valid_rows, max_concepts) -> (extents, intents, n)
    Close-by-One enumeration of all concepts.
concept_covers(extents, sizes, rows, cols, valid) -> (lower, upper)
    Lindig's neighbour search on a canonically sorted concept list.
closure_bitsets(order, indptr, indices, n_words) -> anc
    Reachability (ancestor) bitsets of a DAG by a topological sweep.
topological_order(indptr, indices, n) -> order
    Kahn's algorithm (shorter than n when there is a cycle).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._jit import njit

__all__ = [
    "irreducible_test",
    "concepts_cbo",
    "concept_covers",
    "closure_bitsets",
    "topological_order",
    "popcount_rows",
]

_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@njit
def _popcount64(x):
    """SWAR popcount of one uint64 word."""
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@njit
def popcount_rows(bits):
    """Popcount of each row of ``bits`` (uint64[n, w]) -> int64[n]."""
    n, w = bits.shape
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        s = 0
        for k in range(w):
            s += _popcount64(bits[i, k])
        out[i] = s
    return out


@njit
def _set_bit(row, k):
    row[k >> 6] |= _ONE << np.uint64(k & 63)


@njit
def _has_bit(row, k):
    return (row[k >> 6] >> np.uint64(k & 63)) & _ONE


@njit
def _is_subset(a, b):
    """True when bitset ``a`` is contained in bitset ``b`` (same word count)."""
    for k in range(a.shape[0]):
        if a[k] & ~b[k]:
            return False
    return True


# --------------------------------------------------------------------------- irreducibles
@njit
def _stable_order(sizes, max_size):
    """``np.argsort(sizes, kind="stable")`` for integers in ``[0, max_size]`` (counting sort)."""
    count = np.zeros(max_size + 2, dtype=np.int64)
    for v in range(sizes.shape[0]):
        count[sizes[v] + 1] += 1
    for k in range(1, max_size + 2):
        count[k] += count[k - 1]
    order = np.empty(sizes.shape[0], dtype=np.int64)
    for v in range(sizes.shape[0]):
        order[count[sizes[v]]] = v
        count[sizes[v]] += 1
    return order


@njit
def _sift_down(a, start, end):
    root = start
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and a[child] < a[child + 1]:
            child += 1
        if a[root] < a[child]:
            tmp = a[root]
            a[root] = a[child]
            a[child] = tmp
            root = child
        else:
            return


@njit
def _heapsort(a, n):
    """Sort ``a[:n]`` ascending in place (heapsort; cheaper to compile than ``np.sort``)."""
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(a, start, n)
    for end in range(n - 1, 0, -1):
        tmp = a[0]
        a[0] = a[end]
        a[end] = tmp
        _sift_down(a, 0, end)


@njit
def _irreducible_prep(cols):
    """Popcount order of the columns and, per sorted position, the first strictly larger one."""
    m, w = cols.shape
    sizes = popcount_rows(cols)
    order = _stable_order(sizes, w * 64)
    start = np.empty(m, dtype=np.int64)
    j = 0
    for p in range(m):
        while j < m and sizes[order[j]] <= sizes[order[p]]:
            j += 1
        start[p] = j
    return order, start


@njit
def _irreducible_one(p, cols, valid, order, start, irr, cover):
    """Row ``order[p]`` of :func:`irreducible_test`'s outputs."""
    m, w = cols.shape
    a = order[p]
    for k in range(w):
        cover[a, k] = valid[k]
    equal = False
    for q in range(start[p], m):
        b = order[q]
        if not _is_subset(cols[a], cols[b]):
            continue
        equal = True
        for k in range(w):
            cover[a, k] &= cols[b, k]
            if cover[a, k] != cols[a, k]:
                equal = False
        if equal:
            break
    if not equal:
        equal = True
        for k in range(w):
            if cover[a, k] != cols[a, k]:
                equal = False
                break
    irr[a] = not equal


@njit
def _irreducible_serial(cols, valid, order, start, irr, cover):
    for p in range(cols.shape[0]):
        _irreducible_one(p, cols, valid, order, start, irr, cover)


@njit(parallel=True)
def _irreducible_parallel(cols, valid, order, start, irr, cover):
    for p in prange(cols.shape[0]):
        _irreducible_one(p, cols, valid, order, start, irr, cover)


#: Work (|M|^2 |G| / 64 word operations) above which irreducible_test uses threads.
_PARALLEL_WORK = 1 << 22


def irreducible_test(cols, valid):
    """Meet-irreducibility of attribute concepts.

    Parameters
    ----------
    cols : uint64[n_attributes, w]
        Extent m' of each attribute as a bitset over objects.
    valid : uint64[w]
        The bitset of all objects (G).

    Returns
    -------
    irr : bool[n_attributes]
        ``irr[m]`` iff m' != E(m) = AND{n' : n' strict superset of m'} (AND of nothing = G).
    cover : uint64[n_attributes, w]
        E(m) for every m (equal to m' exactly when m is reducible).

    Notes
    -----
    Columns are sorted by popcount so only strictly larger columns are candidates. Large
    contexts split the attributes over ``prange`` threads (small ones run serially, so a first
    call does not compile the parallel driver); each writes only its own output row, and the
    early exit (E == m') cannot change E, so the result is deterministic. O(|M|^2 |G| / 64).
    """
    m, w = cols.shape
    order, start = _irreducible_prep(cols)
    irr = np.zeros(m, dtype=np.bool_)
    cover = np.empty((m, w), dtype=np.uint64)
    big = m * m * w > _PARALLEL_WORK and numba.get_num_threads() > 1
    run = _irreducible_parallel if big else _irreducible_serial
    run(cols, valid, order, start, irr, cover)
    return irr, cover


# --------------------------------------------------------------------------- enumeration
@njit
def _grow(arr, n_rows):
    out = np.zeros((n_rows, arr.shape[1]), dtype=arr.dtype)
    for i in range(arr.shape[0]):
        _copy_row(out, i, arr, i)
    return out


@njit
def _copy_row(dst, i, src, j):
    """``dst[i] = src[j]`` as a loop (a row assignment would compile numba's broadcasting)."""
    for k in range(dst.shape[1]):
        dst[i, k] = src[j, k]


@njit
def concepts_cbo(cols, valid_rows, max_concepts):
    """Enumerate all formal concepts by Close-by-One (Kuznetsov), iteratively.

    Parameters
    ----------
    cols : uint64[n_attributes, wg]
        Attribute extents (bitsets over objects).
    valid_rows : uint64[wg]
        Bitset of all objects.
    max_concepts : int
        Stop as soon as more than this many concepts are found.

    Returns
    -------
    extents : uint64[n, wg], intents : uint64[n, wm], n : int
        ``n`` is the number of concepts, or -1 when the budget was exceeded (the arrays then
        hold the first ``max_concepts`` concepts found).

    Notes
    -----
    Each candidate C = A & m' is tested for canonicity with a partial closure over the
    attributes below m first (In-Close style), so non-canonical candidates are dropped after
    scanning only those columns. Output-sensitive: O(|L| |M|^2 |G| / 64). Serial.
    """
    n_attributes, wg = cols.shape
    wm = (n_attributes + 63) // 64
    cap = 64
    extents = np.zeros((cap, wg), dtype=np.uint64)
    intents = np.zeros((cap, wm), dtype=np.uint64)
    # stack of frames (extent, intent, next attribute)
    depth_max = n_attributes + 2
    st_ext = np.zeros((depth_max, wg), dtype=np.uint64)
    st_int = np.zeros((depth_max, wm), dtype=np.uint64)
    st_j = np.zeros(depth_max, dtype=np.int64)
    c_ext = np.zeros(wg, dtype=np.uint64)
    # top concept (G, G')
    for k in range(wg):
        st_ext[0, k] = valid_rows[k]
    for mm in range(n_attributes):
        if _is_subset(valid_rows, cols[mm]):
            _set_bit(st_int[0], mm)
    _copy_row(extents, 0, st_ext, 0)
    _copy_row(intents, 0, st_int, 0)
    n = 1
    if n > max_concepts:
        return extents, intents, -1
    st_j[0] = 0
    depth = 0
    while depth >= 0:
        j = st_j[depth]
        if j >= n_attributes:
            depth -= 1
            continue
        st_j[depth] = j + 1
        if _has_bit(st_int[depth], j):
            continue
        for k in range(wg):
            c_ext[k] = st_ext[depth, k] & cols[j, k]
        # canonicity: no attribute m < j outside the intent may contain C
        canonical = True
        for mm in range(j):
            if _has_bit(st_int[depth], mm):
                continue
            if _is_subset(c_ext, cols[mm]):
                canonical = False
                break
        if not canonical:
            continue
        nd = depth + 1
        for k in range(wg):
            st_ext[nd, k] = c_ext[k]
        for k in range(wm):
            st_int[nd, k] = st_int[depth, k]
        _set_bit(st_int[nd], j)
        for mm in range(j + 1, n_attributes):
            if _has_bit(st_int[nd], mm):
                continue
            if _is_subset(c_ext, cols[mm]):
                _set_bit(st_int[nd], mm)
        if n >= max_concepts:
            return extents, intents, -1
        if n >= cap:
            cap = min(2 * cap, max_concepts + 1)
            extents = _grow(extents, cap)
            intents = _grow(intents, cap)
        _copy_row(extents, n, st_ext, nd)
        _copy_row(intents, n, st_int, nd)
        n += 1
        st_j[nd] = j + 1
        depth = nd
    return extents[:n], intents[:n], n


# --------------------------------------------------------------------------- covers
@njit
def _cmp_key(size_a, row_a, size_b, row_b):
    """Compare (popcount, words) keys: -1, 0 or 1."""
    if size_a != size_b:
        return -1 if size_a < size_b else 1
    for k in range(row_a.shape[0]):
        if row_a[k] != row_b[k]:
            return -1 if row_a[k] < row_b[k] else 1
    return 0


@njit
def _find(extents, sizes, size, row):
    lo = 0
    hi = extents.shape[0] - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        c = _cmp_key(sizes[mid], extents[mid], size, row)
        if c == 0:
            return mid
        if c < 0:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


@njit
def _upper_neighbours(i, extents, intents, sizes, rows, cols, valid, buf, cand, minimal, add):
    """Write the ids of the upper covers of concept ``i`` into ``buf``; return their count."""
    wg = extents.shape[1]
    wm = rows.shape[1]
    n_objects = rows.shape[0]
    cnt = 0
    for k in range(wg):
        minimal[k] = valid[k] & ~extents[i, k]
    for g in range(n_objects):
        if not _has_bit(minimal, g):
            continue
        # (A + g)' = A' & g'; its extent is the AND of those attribute columns (G if none)
        for k in range(wm):
            add[k] = intents[i, k] & rows[g, k]
        for k in range(wg):
            cand[k] = valid[k]
        for k in range(wm):
            x = add[k]
            while x:
                low = x & (~x + _ONE)
                m = k * 64 + _popcount64(low - _ONE)
                for kk in range(wg):
                    cand[kk] &= cols[m, kk]
                x ^= low
        # Lindig: a neighbour iff no other still-minimal object was added with g
        clash = False
        gw = g >> 6
        gb = _ONE << np.uint64(g & 63)
        for k in range(wg):
            extra = cand[k] & ~extents[i, k] & minimal[k]
            if k == gw:
                extra &= ~gb
            if extra:
                clash = True
                break
        if clash:
            minimal[gw] &= ~gb
            continue
        # every other new object of this neighbour closes to the same neighbour: skip them
        for k in range(wg):
            minimal[k] &= ~(cand[k] & ~extents[i, k])
        minimal[gw] |= gb
        s = 0
        for k in range(wg):
            s += _popcount64(cand[k])
        buf[cnt] = _find(extents, sizes, s, cand)
        cnt += 1
    return cnt


@njit
def concept_covers(extents, intents, sizes, rows, cols, valid):
    """Cover relation of a concept lattice by Lindig's neighbour search.

    Parameters
    ----------
    extents : uint64[n, wg]
        All concept extents, sorted by (popcount, words) ascending.
    intents : uint64[n, wm]
        The matching intents.
    sizes : int64[n]
        Popcounts of ``extents``.
    rows : uint64[n_objects, wm]
        Object intents g' (bitsets over attributes).
    cols : uint64[n_attributes, wg]
        Attribute extents m' (bitsets over objects).
    valid : uint64[wg]
        Bitset of all objects.

    Returns
    -------
    lower, upper : int64[n_covers]
        Cover pairs ``lower[k] < upper[k]`` (concept ids), sorted by (lower, upper).

    Notes
    -----
    Serial, one pass with amortised growth of the output (a parallel two-pass version lost
    to the second pass and to thread contention in benchmarks). A closure (A + g)'' is the
    AND of the columns of A' & g'; once a neighbour N is found, the other new objects of N
    are skipped (they close to N). O(|L| |G| |M| |G| / 64) worst case.
    """
    n, wg = extents.shape
    n_objects = rows.shape[0]
    wm = rows.shape[1]
    buf = np.empty(n_objects + 1, dtype=np.int64)
    cand = np.empty(wg, dtype=np.uint64)
    minimal = np.empty(wg, dtype=np.uint64)
    add = np.empty(wm, dtype=np.uint64)
    cap = max(16, 2 * n)
    lower = np.empty(cap, dtype=np.int64)
    upper = np.empty(cap, dtype=np.int64)
    total = 0
    for i in range(n):
        c = _upper_neighbours(
            i, extents, intents, sizes, rows, cols, valid, buf, cand, minimal, add
        )
        if total + c > cap:
            cap = max(2 * cap, total + c)
            lo2 = np.empty(cap, dtype=np.int64)
            up2 = np.empty(cap, dtype=np.int64)
            for t in range(total):
                lo2[t] = lower[t]
                up2[t] = upper[t]
            lower, upper = lo2, up2
        _heapsort(buf, c)
        for t in range(c):
            lower[total + t] = i
            upper[total + t] = buf[t]
        total += c
    return lower[:total].copy(), upper[:total].copy()


# --------------------------------------------------------------------------- posets
@njit
def closure_bitsets(order, indptr, indices, n_words):
    """Ancestor bitsets of a DAG by a sweep in topological order.

    Parameters
    ----------
    order : int64[n]
        A topological order of the nodes.
    indptr, indices : int64
        CSR of predecessors: ``indices[indptr[v]:indptr[v+1]]`` are the u with u -> v.
    n_words : int
        ``ceil(n / 64)``.

    Returns
    -------
    anc : uint64[n, n_words]
        ``anc[v]`` = {v} | all ancestors of v (the down-set of v). O(m n / 64), serial.
    """
    n = order.shape[0]
    anc = np.zeros((n, n_words), dtype=np.uint64)
    for p in range(n):
        v = order[p]
        _set_bit(anc[v], v)
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            for k in range(n_words):
                anc[v, k] |= anc[u, k]
    return anc


@njit
def topological_order(indptr, indices, n):
    """Kahn's algorithm on a successor CSR (``indices[indptr[u]:indptr[u+1]]`` = successors).

    Returns int64[k]: a topological order of the k nodes not on or behind a cycle (k == n
    iff the graph is acyclic). A FIFO queue seeded with the sources in id order makes the
    order deterministic. O(n + m), serial.
    """
    indeg = np.zeros(n, dtype=np.int64)
    for e in range(indices.shape[0]):
        indeg[indices[e]] += 1
    order = np.empty(n, dtype=np.int64)
    head = 0
    tail = 0
    for v in range(n):
        if indeg[v] == 0:
            order[tail] = v
            tail += 1
    while head < tail:
        u = order[head]
        head += 1
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            indeg[v] -= 1
            if indeg[v] == 0:
                order[tail] = v
                tail += 1
    return order[:tail]

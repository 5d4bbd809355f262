"""numba kernels for signed modularity: its value and a Leiden-type optimiser.

The graph is a symmetric CSR ``(indptr, indices, weight)`` over ``n`` nodes whose signed weights
hold both parts (``A+ = max(A, 0)``, ``A- = max(-A, 0)``); diagonal entries are self-loops as
stored in ``A``. ``kpos``/``kneg`` are the node strengths of the two parts and ``cpos =
gamma+ / (2 m+)``, ``cneg = gamma- / (2 m-)`` (0 when that part is empty). The objective is the
unnormalised signed modularity (Gomez, Jensen & Arenas 2009)::

    H = sum_ij [A_ij - cpos kpos_i kpos_j + cneg kneg_i kneg_j] delta(c_i, c_j)

so that ``Q = H / (2 m+ + 2 m-)``. Inputs are never written.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit
from ._rng import new_state, rand_below, seed_state

__all__ = ["signed_modularity", "signed_leiden"]


@njit
def signed_modularity(indptr, indices, weight, kpos, kneg, cpos, cneg, membership):
    """Unnormalised signed modularity ``H`` of ``membership`` (int64[n]); O(nnz + n)."""
    n = indptr.shape[0] - 1
    inner = 0.0
    for i in range(n):
        ci = membership[i]
        for p in range(indptr[i], indptr[i + 1]):
            if membership[indices[p]] == ci:
                inner += weight[p]
    n_comm = 0
    for i in range(n):
        if membership[i] + 1 > n_comm:
            n_comm = membership[i] + 1
    tp = np.zeros(n_comm)
    tn = np.zeros(n_comm)
    for i in range(n):
        tp[membership[i]] += kpos[i]
        tn[membership[i]] += kneg[i]
    null = 0.0
    for c in range(n_comm):
        null += cpos * tp[c] * tp[c] - cneg * tn[c] * tn[c]
    return inner - null


@njit(inline="always")
def _shuffle(order, state):
    for i in range(order.shape[0] - 1, 0, -1):
        j = rand_below(state, i + 1)
        t = order[i]
        order[i] = order[j]
        order[j] = t


@njit
def _renumber(labels):
    """Relabel to 0..k-1 in order of first appearance (in place); return k."""
    n = labels.shape[0]
    mp = np.full(n + 1, -1, dtype=np.int64)
    k = 0
    for i in range(n):
        c = labels[i]
        if mp[c] < 0:
            mp[c] = k
            k += 1
        labels[i] = mp[c]
    return k


@njit
def _local_moving(indptr, indices, weight, kpos, kneg, cpos, cneg, comm, state):
    """Queue-based fast local moving (Leiden): move nodes to their best community; True if any moved."""
    n = indptr.shape[0] - 1
    tp = np.zeros(n)
    tn = np.zeros(n)
    size = np.zeros(n, dtype=np.int64)
    for i in range(n):
        tp[comm[i]] += kpos[i]
        tn[comm[i]] += kneg[i]
        size[comm[i]] += 1
    empty = np.empty(n, dtype=np.int64)
    n_empty = 0
    for c in range(n - 1, -1, -1):
        if size[c] == 0:
            empty[n_empty] = c
            n_empty += 1
    queue = np.arange(n)
    _shuffle(queue, state)
    in_queue = np.ones(n, dtype=np.bool_)
    head = 0
    n_queued = n
    link = np.zeros(n)
    touched = np.empty(n, dtype=np.int64)
    moved_any = False
    while n_queued > 0:
        i = queue[head]
        head = (head + 1) % n
        n_queued -= 1
        in_queue[i] = False
        a = comm[i]
        kp = kpos[i]
        kn = kneg[i]
        tp[a] -= kp
        tn[a] -= kn
        size[a] -= 1
        n_t = 0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j == i:
                continue
            c = comm[j]
            if link[c] == 0.0:
                touched[n_t] = c
                n_t += 1
            link[c] += weight[p]
            if link[c] == 0.0:  # an exact cancellation: keep it marked as touched
                link[c] = 1e-300
        best = a
        best_gain = link[a] - cpos * kp * tp[a] + cneg * kn * tn[a]
        for t in range(n_t):
            c = touched[t]
            g = link[c] - cpos * kp * tp[c] + cneg * kn * tn[c]
            if g > best_gain + 1e-12 * (abs(best_gain) + 1.0):
                best_gain = g
                best = c
        for t in range(n_t):
            link[touched[t]] = 0.0
        if size[a] > 0 and best_gain < -1e-12 * (abs(best_gain) + 1.0) and n_empty > 0:
            best = empty[n_empty - 1]  # a community of its own is better
            n_empty -= 1
        comm[i] = best
        tp[best] += kp
        tn[best] += kn
        size[best] += 1
        if size[a] == 0 and best != a:
            empty[n_empty] = a
            n_empty += 1
        if best != a:
            moved_any = True
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if j != i and not in_queue[j] and comm[j] != best:
                    queue[(head + n_queued) % n] = j
                    n_queued += 1
                    in_queue[j] = True
    return moved_any


@njit
def _refine(indptr, indices, weight, kpos, kneg, cpos, cneg, comm, state):
    """Leiden refinement, greedy variant: singletons merge into sub-communities of their community."""
    n = indptr.shape[0] - 1
    ref = np.arange(n)
    rp = kpos.copy()
    rn = kneg.copy()
    rsize = np.ones(n, dtype=np.int64)
    order = np.arange(n)
    _shuffle(order, state)
    link = np.zeros(n)
    touched = np.empty(n, dtype=np.int64)
    for t0 in range(n):
        i = order[t0]
        r0 = ref[i]
        if rsize[r0] != 1:
            continue
        kp = kpos[i]
        kn = kneg[i]
        n_t = 0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j == i or comm[j] != comm[i]:
                continue
            r = ref[j]
            if link[r] == 0.0:
                touched[n_t] = r
                n_t += 1
            link[r] += weight[p]
            if link[r] == 0.0:
                link[r] = 1e-300
        best = r0
        best_gain = 1e-12
        for t in range(n_t):
            r = touched[t]
            g = link[r] - cpos * kp * rp[r] + cneg * kn * rn[r]
            if g > best_gain:
                best_gain = g
                best = r
            link[r] = 0.0
        if best != r0:
            ref[i] = best
            rp[r0] = 0.0
            rn[r0] = 0.0
            rsize[r0] = 0
            rp[best] += kp
            rn[best] += kn
            rsize[best] += 1
    return ref


@njit
def _aggregate(indptr, indices, weight, kpos, kneg, ref, n_ref):
    """Collapse nodes with the same ``ref`` label (0..n_ref-1) into super-nodes."""
    n = indptr.shape[0] - 1
    start = np.zeros(n_ref + 1, dtype=np.int64)
    for i in range(n):
        start[ref[i] + 1] += 1
    for r in range(n_ref):
        start[r + 1] += start[r]
    members = np.empty(n, dtype=np.int64)
    fill = start[:-1].copy()
    for i in range(n):
        members[fill[ref[i]]] = i
        fill[ref[i]] += 1
    acc = np.zeros(n_ref)
    mark = np.zeros(n_ref, dtype=np.bool_)
    touched = np.empty(n_ref, dtype=np.int64)
    new_indptr = np.zeros(n_ref + 1, dtype=np.int64)
    cap = indices.shape[0]
    new_indices = np.empty(cap, dtype=np.int64)
    new_weight = np.empty(cap)
    kp2 = np.zeros(n_ref)
    kn2 = np.zeros(n_ref)
    nnz = 0
    for r in range(n_ref):
        n_t = 0
        for q in range(start[r], start[r + 1]):
            i = members[q]
            kp2[r] += kpos[i]
            kn2[r] += kneg[i]
            for p in range(indptr[i], indptr[i + 1]):
                s = ref[indices[p]]
                if not mark[s]:
                    mark[s] = True
                    touched[n_t] = s
                    n_t += 1
                acc[s] += weight[p]
        for t in range(n_t):
            s = touched[t]
            new_indices[nnz] = s
            new_weight[nnz] = acc[s]
            nnz += 1
            acc[s] = 0.0
            mark[s] = False
        new_indptr[r + 1] = nnz
    return new_indptr, new_indices[:nnz].copy(), new_weight[:nnz].copy(), kp2, kn2


@njit
def _leiden_pass(indptr, indices, weight, kpos, kneg, cpos, cneg, membership, state):
    """One Leiden iteration from ``membership``; returns the new membership (int64[n])."""
    n = indptr.shape[0] - 1
    node_map = np.arange(n)
    comm = membership.copy()
    _renumber(comm)
    ip, ix, w, kp, kn = indptr, indices, weight, kpos, kneg
    while True:
        _local_moving(ip, ix, w, kp, kn, cpos, cneg, comm, state)
        _renumber(comm)  # labels < number of communities <= number of refined parts
        n_level = ip.shape[0] - 1
        ref = _refine(ip, ix, w, kp, kn, cpos, cneg, comm, state)
        n_ref = _renumber(ref)
        if n_ref == n_level:
            break
        agg_comm = np.empty(n_ref, dtype=np.int64)
        for v in range(n_level):
            agg_comm[ref[v]] = comm[v]
        for i in range(n):
            node_map[i] = ref[node_map[i]]
        ip, ix, w, kp, kn = _aggregate(ip, ix, w, kp, kn, ref, n_ref)
        comm = agg_comm
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = comm[node_map[i]]
    _renumber(out)
    return out


@njit
def signed_leiden(indptr, indices, weight, kpos, kneg, cpos, cneg, membership, seed, n_iterations):
    """Leiden-type optimisation of signed modularity from ``membership`` (int64[n]).

    Runs ``n_iterations`` passes (local moving, greedy refinement, aggregation until the refined
    partition is all singletons), each starting from the previous result, and stops early when
    a pass changes nothing. Returns ``(membership int64[n], H float)``; deterministic for a
    given ``seed`` (uint64). One thread; O(nnz) per sweep.
    """
    state = new_state()
    seed_state(state, seed, np.uint64(0))
    memb = membership.copy()
    _renumber(memb)
    for _ in range(n_iterations):
        new = _leiden_pass(indptr, indices, weight, kpos, kneg, cpos, cneg, memb, state)
        same = True
        for i in range(memb.shape[0]):
            if new[i] != memb[i]:
                same = False
                break
        memb = new
        if same:
            break
    return memb, signed_modularity(indptr, indices, weight, kpos, kneg, cpos, cneg, memb)

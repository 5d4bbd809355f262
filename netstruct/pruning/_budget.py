"""Choosing how many groups each family loses: fractions, ``round_to`` and budget refinement.

Private helpers of :func:`netstruct.pruning.structured.structured_prune` (inputs validated).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import param_error
from ..graphs.signed import SignedGraph


def _check_fraction(x: Any, name: str, func: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise param_error(name, func, "a float in [0, 1)", x)
    x = float(x)
    if not 0.0 <= x < 1.0:
        raise param_error(name, func, "a float in [0, 1)", x)
    return x


def _family_caps(family: np.ndarray, round_to: int) -> dict[int, tuple[int, int]]:
    """``family -> (n_groups, most that may go)``: one group (or ``round_to``) always stays."""
    out = {}
    for f in np.unique(family):
        n = int((family == f).sum())
        keep_min = round_to if n >= round_to else n
        out[int(f)] = (n, max(n - max(keep_min, 1), 0))
    return out


def _round_removed(n: int, k: int, cap: int, round_to: int) -> int:
    """Fewest removals >= 0 near ``k`` leaving a multiple of ``round_to`` (never over ``cap``)."""
    k = min(k, cap)
    if round_to == 1 or n < round_to:
        return k
    kept = -(-(n - k) // round_to) * round_to  # round the kept count up to a multiple
    return max(min(n - kept, cap), 0)


def _tied_families(G: SignedGraph, gids: np.ndarray, family: np.ndarray) -> list[list[int]]:
    """Families that must lose as many groups (the layers and directions of one RNN module)."""
    spec = G._spec or {}  # read only: no copy of the spec
    mods = G.node_column("module")[gids]
    out = []
    for path, m in spec.get("modules", {}).items():
        if m.get("handler") in ("RNN", "LSTM", "GRU"):
            fams = sorted({int(f) for f in family[mods == path]})
            if len(fams) > 1:
                out.append(fams)
    return out


def _select(order: np.ndarray, family: np.ndarray, k: int, caps, round_to: int, tied) -> np.ndarray:
    """Remove the first ``k`` groups of ``order``, adjusted to the family rules."""
    removed = np.zeros(family.size, dtype=bool)
    first = order[:k]
    want = {f: int((family[first] == f).sum()) for f in caps}
    for fams in tied:
        low = min(want[f] for f in fams)
        for f in fams:
            want[f] = low
    for f, (n, cap) in caps.items():
        take = _round_removed(n, want[f], cap, round_to)
        if take:
            in_f = order[family[order] == f]  # weakest first
            removed[in_f[:take]] = True
    return removed


def _refine(removed, order, family, caps, round_to, tied, target, count) -> np.ndarray:
    """Trade whole ``round_to`` steps between families while that nears the target.

    The greedy global order fixes a selection whose count can miss the target by a whole
    family step when ``round_to`` is coarse. Line searches over one family's count, then over
    pairs of families (at most 24 families), close the gap; every family still loses its
    weakest groups first.
    """
    fams = [f for f in caps if not any(f in fs[1:] for fs in tied)]  # one per tied set
    tied_of = {fs[0]: fs for fs in tied}
    ranked = {f: order[family[order] == f] for f in caps}
    taken = {f: int(removed[ranked[f]].sum()) for f in caps}

    def values(f):
        n, cap = caps[f]
        step = round_to if n >= round_to else 1
        return range(0, cap + 1, step) if step > 1 else range(cap + 1)

    def err(t):
        sel = np.zeros(family.size, dtype=bool)
        for f in caps:
            sel[ranked[f][: t[f]]] = True
        return abs(count(sel) - target), sel

    def with_(t, f, v):
        t = dict(t)
        for g in tied_of.get(f, [f]):
            t[g] = v
        return t

    best, sel = err(taken)
    pairs = [(f, g) for i, f in enumerate(fams) for g in fams[i + 1 :]] if len(fams) <= 24 else []
    sizes = {f: len(values(f)) for f in fams}
    if sum(sizes[f] * sizes[g] for f, g in pairs) > 50_000:  # fine-grained: lines suffice
        pairs = []
    for _ in range(3):
        if best <= 0.002 * max(target, 1.0):
            break
        improved = False
        for f in fams:
            for v in values(f):
                e, s_ = err(with_(taken, f, v))
                if e < best:
                    best, sel, taken, improved = e, s_, with_(taken, f, v), True
        for f, g in pairs if best > 0.01 * max(target, 1.0) else []:
            for v in values(f):
                t0 = with_(taken, f, v)
                for w in values(g):
                    e, s_ = err(with_(t0, g, w))
                    if e < best:
                        best, sel, taken, improved = e, s_, with_(t0, g, w), True
        if not improved:
            break
    if best > 0.01 * max(target, 1.0):
        best, sel = _complete(best, sel, order, family, caps, round_to, tied, target, count)
    return sel


def _complete(best, sel, order, family, caps, round_to, tied, target, count):
    """Fix one family's count, fill the rest greedily to the target (coupled widths).

    Removing a normalised width shrinks every other family's groups, so a budget can need
    one family far from the global order's share while all others move together: for each
    family and (at most 32) counts of it, the weakest groups of the other families in the
    global order are taken until the count reaches the target (binary search).
    """
    ranked = {f: order[family[order] == f] for f in caps}
    tied_of = {f: fs for fs in tied for f in fs}

    def pick(first: np.ndarray, fixed: set[int], v: int) -> np.ndarray:
        want = {f: (v if f in fixed else int((family[first] == f).sum())) for f in caps}
        for fs in tied:
            low = min(want[f] for f in fs)
            for f in fs:
                want[f] = low
        out = np.zeros(family.size, dtype=bool)
        for f, (n, cap) in caps.items():
            take = want[f] if f in fixed else _round_removed(n, want[f], cap, round_to)
            out[ranked[f][:take]] = True
        return out

    for f, (n, cap) in caps.items():
        fixed = set(tied_of.get(f, [f]))
        others = order[~np.isin(family[order], list(fixed))]
        step = round_to if n >= round_to else 1
        values = list(range(0, cap + 1, step))
        if len(values) > 32:
            values = [values[i] for i in np.linspace(0, len(values) - 1, 32).round().astype(int)]
        for v in values:
            lo, hi = 0, others.size
            while lo < hi:
                mid = (lo + hi) // 2
                if count(pick(others[:mid], fixed, v)) <= target:
                    hi = mid
                else:
                    lo = mid + 1
            for k in {max(lo - 1, 0), lo}:
                cand = pick(others[:k], fixed, v)
                e = abs(count(cand) - target)
                if e < best:
                    best, sel = e, cand
    return best, sel

"""Slow, obvious references for the null models of ``netstruct.randomize`` (tests only).

Everything works on a plain ``(n_out, n_in)`` array with Python loops, sets and the standard
``random`` module; nothing is shared with the kernels. A column is an input-side node, a row
an output-side node; only non-zero cells ever move.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict, deque
from fractions import Fraction

import numpy as np

__all__ = [
    "naive_permute",
    "naive_swap_chain",
    "naive_direct_swap_chain",
    "direct_swap_transitions",
    "naive_curveball",
    "naive_randomize",
    "invariants",
    "degree_preserving_patterns",
    "reachable_patterns",
    "pattern_key",
]

_GROUPS = {
    "A": lambda j, i, v: 0,
    "B": lambda j, i, v: v > 0,
    "C": lambda j, i, v: i,
    "D": lambda j, i, v: j,
    "E": lambda j, i, v: (i, v > 0),
    "F": lambda j, i, v: (j, v > 0),
}


def naive_permute(W: np.ndarray, model: str, rng: random.Random) -> np.ndarray:
    """Models A–F: shuffle the non-zero values inside each group with ``random.shuffle``."""
    out = np.array(W, dtype=np.float64)
    groups: dict[object, list[tuple[int, int]]] = defaultdict(list)
    for j in range(W.shape[0]):
        for i in range(W.shape[1]):
            if W[j, i] != 0:
                groups[_GROUPS[model](j, i, W[j, i])].append((j, i))
    for cells in groups.values():
        values = [W[c] for c in cells]
        rng.shuffle(values)
        for c, v in zip(cells, values):
            out[c] = v
    return out


def naive_swap_chain(
    W: np.ndarray,
    n_steps: int,
    rng: random.Random,
    *,
    keeps: str = "input",
    reshuffle: bool = False,
) -> np.ndarray:
    """G-left / G-right / G-shuffle: ``n_steps`` attempts of the uniform-pair checkerboard move.

    Two positive cells drawn uniformly, swapped when they form a checkerboard: the textbook
    chain (and the kernel's proposal before issue 16), kept as the reference the direct
    proposal of :func:`naive_direct_swap_chain` is compared with.
    """
    out = np.array(W, dtype=np.float64)
    pos = [(j, i) for j in range(W.shape[0]) for i in range(W.shape[1]) if W[j, i] > 0]
    for _ in range(n_steps):
        if len(pos) < 2:
            break
        a = rng.randrange(len(pos))
        b = rng.randrange(len(pos))
        (j1, i1), (j2, i2) = pos[a], pos[b]
        if i1 == i2 or j1 == j2 or not (out[j1, i2] < 0 and out[j2, i1] < 0):
            continue
        if keeps == "input":  # values move up/down inside their columns
            out[[j1, j2], i1] = out[[j2, j1], i1]
            out[[j1, j2], i2] = out[[j2, j1], i2]
        else:  # values move left/right inside their rows
            out[j1, [i1, i2]] = out[j1, [i2, i1]]
            out[j2, [i1, i2]] = out[j2, [i2, i1]]
        pos[a] = (j2, i1)
        pos[b] = (j1, i2)
    if reshuffle:
        for sign in (1, -1):
            cells = [tuple(c) for c in np.argwhere(np.sign(out) == sign)]
            values = [out[c] for c in cells]
            rng.shuffle(values)
            for c, v in zip(cells, values):
                out[c] = v
    return out


def _direct_proposals(S: np.ndarray) -> list[tuple[Fraction, tuple[int, int, int, int], Fraction]]:
    """Every outcome of one direct proposal on the sign pattern ``S`` (entries -1, 0, 1).

    A proposal picks a positive cell ``(a, c)`` uniformly, a row ``b`` uniformly among the
    rows negative in column ``c`` and a column ``d`` uniformly among the columns where ``b`` is
    positive and ``a`` negative. Returns ``(probability, (a, b, c, d), acceptance)`` for each
    checkerboard reached, with the Metropolis–Hastings acceptance computed from the sets.
    """
    n_out, n_in = S.shape
    pos = [(j, i) for j in range(n_out) for i in range(n_in) if S[j, i] > 0]
    neg_rows = {i: [j for j in range(n_out) if S[j, i] < 0] for i in range(n_in)}
    out = []
    for a, c in pos:
        for b in neg_rows[c]:
            T = [i for i in range(n_in) if S[b, i] > 0 and S[a, i] < 0]
            Sset = [i for i in range(n_in) if S[a, i] > 0 and S[b, i] < 0]
            for d in T:
                p = Fraction(1, len(pos)) / len(neg_rows[c]) / len(T)
                kc, kd = len(neg_rows[c]), len(neg_rows[d])
                ratio = Fraction(kd * len(T) + kc * len(Sset), kd * len(Sset) + kc * len(T))
                out.append((p, (a, b, c, d), min(Fraction(1), ratio)))
    return out


def direct_swap_transitions(
    W: np.ndarray, *, hold: Fraction = Fraction(1, 8)
) -> dict[tuple, Fraction]:
    """Exact one-step probabilities of the direct swap chain from ``W``'s sign pattern.

    Keys are :func:`pattern_key` of the patterns reached (the start included, for holds,
    rejections and failed proposals); values sum to 1.
    """
    S = np.sign(np.asarray(W)).astype(int)
    probs: dict[tuple, Fraction] = defaultdict(Fraction)
    stay = hold
    moves = _direct_proposals(S)
    for p, (a, b, c, d), acc in moves:
        T = S.copy()
        T[a, c], T[b, c], T[a, d], T[b, d] = -1, 1, 1, -1
        probs[pattern_key(T)] += (1 - hold) * p * acc
        stay += (1 - hold) * p * (1 - acc)
    total_p = sum((p for p, _, _ in moves), Fraction(0))
    stay += (1 - hold) * (1 - total_p)  # proposals that found no checkerboard
    probs[pattern_key(S)] += stay
    return dict(probs)


def naive_direct_swap_chain(
    W: np.ndarray,
    n_steps: int,
    rng: random.Random,
    *,
    keeps: str = "input",
    reshuffle: bool = False,
) -> np.ndarray:
    """G models with the direct proposal of the kernel: ``n_steps`` proposals, one in 8 a hold.

    ``keeps="output"`` runs the chain on ``W.T`` (as the kernel does for G-right).
    """
    if keeps == "output":
        return naive_direct_swap_chain(np.asarray(W).T, n_steps, rng, reshuffle=reshuffle).T
    out = np.array(W, dtype=np.float64)
    for _ in range(n_steps):
        if rng.randrange(8) == 0:
            continue
        u = Fraction(rng.random())
        for p, (a, b, c, d), acc in _direct_proposals(np.sign(out).astype(int)):
            if u < p:
                if Fraction(rng.random()) < acc:
                    out[[a, b], c] = out[[b, a], c]  # values move inside their columns
                    out[[a, b], d] = out[[b, a], d]
                break
            u -= p
    if reshuffle:
        for sign in (1, -1):
            cells = [tuple(c) for c in np.argwhere(np.sign(out) == sign)]
            values = [out[c] for c in cells]
            rng.shuffle(values)
            for c, v in zip(cells, values):
                out[c] = v
    return out


def naive_curveball(
    W: np.ndarray, n_trades: int, rng: random.Random, *, keeps: str = "input"
) -> np.ndarray:
    """Signed curveball with random pairs of trading nodes and a random matching of values."""
    M = np.array(W, dtype=np.float64)
    M = M.T.copy() if keeps == "input" else M  # rows trade
    n = M.shape[0]
    for _ in range(n_trades):
        if n < 2:
            break
        a, b = rng.sample(range(n), 2)
        X = [
            c
            for c in range(M.shape[1])
            if M[a, c] != 0 and M[b, c] != 0 and (M[a, c] > 0) != (M[b, c] > 0)
        ]
        t = sum(1 for c in X if M[a, c] > 0)
        C = set(rng.sample(X, t))
        for row, gets_pos in ((a, C), (b, set(X) - C)):
            pos_vals = [M[row, c] for c in X if M[row, c] > 0]
            neg_vals = [M[row, c] for c in X if M[row, c] < 0]
            rng.shuffle(pos_vals)
            rng.shuffle(neg_vals)
            for c in X:
                M[row, c] = pos_vals.pop() if c in gets_pos else neg_vals.pop()
    return M.T if keeps == "input" else M


def naive_randomize(
    W: np.ndarray, model: str, rng: random.Random, n_steps: int = 200
) -> np.ndarray:
    """Dispatch on the canonical model name."""
    if model in _GROUPS:
        return naive_permute(W, model, rng)
    if model.startswith("G"):
        keeps = "output" if model == "G-right" else "input"
        return naive_direct_swap_chain(W, n_steps, rng, keeps=keeps, reshuffle=model == "G-shuffle")
    return naive_curveball(
        W, n_steps, rng, keeps="output" if model == "curveball-right" else "input"
    )


# ----------------------------------------------------------------------------- invariants
def _multisets(W: np.ndarray, axis: int, sign: int | None = None) -> tuple:
    lines = W.T if axis == 1 else W  # axis=1: per column (input node)
    out = []
    for line in lines:
        vals = [float(v) for v in line if v != 0 and (sign is None or np.sign(v) == sign)]
        out.append(tuple(sorted(vals)))
    return tuple(out)


def invariants(W: np.ndarray) -> dict[str, object]:
    """Every invariant of ``netstruct.algorithms.randomize.INVARIANTS`` as a comparable value."""
    W = np.asarray(W, dtype=np.float64)
    P, N = W > 0, W < 0
    return {
        "support": tuple(map(tuple, W != 0)),
        "multiset": tuple(sorted(float(v) for v in W.ravel() if v != 0)),
        "sign_pattern": tuple(map(tuple, np.sign(W).astype(int))),
        "input_signed_degrees": (tuple(P.sum(0)), tuple(N.sum(0))),
        "output_signed_degrees": (tuple(P.sum(1)), tuple(N.sum(1))),
        "input_sign_multisets": (_multisets(W, 1, 1), _multisets(W, 1, -1)),
        "output_sign_multisets": (_multisets(W, 0, 1), _multisets(W, 0, -1)),
        "input_multisets": _multisets(W, 1),
        "output_multisets": _multisets(W, 0),
    }


# ----------------------------------------------------------------------------- enumeration
def pattern_key(W: np.ndarray) -> tuple:
    """The positive cells of ``W`` as a hashable key."""
    return tuple(map(tuple, np.argwhere(np.asarray(W) > 0)))


def degree_preserving_patterns(W: np.ndarray) -> set[tuple]:
    """All sign patterns on the support of ``W`` with the same k+ on every row and column."""
    W = np.asarray(W)
    support = [tuple(c) for c in np.argwhere(W != 0)]
    rows, cols = (W > 0).sum(1), (W > 0).sum(0)
    found = set()
    for chosen in itertools.combinations(support, int((W > 0).sum())):
        r = np.zeros(W.shape[0], int)
        c = np.zeros(W.shape[1], int)
        for j, i in chosen:
            r[j] += 1
            c[i] += 1
        if (r == rows).all() and (c == cols).all():
            found.add(tuple(sorted(chosen)))
    return found


def reachable_patterns(W: np.ndarray) -> set[tuple]:
    """Patterns reachable from ``W`` by checkerboard moves inside its support (BFS)."""
    start = np.sign(np.asarray(W)).astype(int)
    seen = {pattern_key(start)}
    queue = deque([start])
    while queue:
        S = queue.popleft()
        pos = [tuple(c) for c in np.argwhere(S > 0)]
        for (j1, i1), (j2, i2) in itertools.permutations(pos, 2):
            if j1 != j2 and i1 != i2 and S[j1, i2] < 0 and S[j2, i1] < 0:
                T = S.copy()
                T[j1, i1] = T[j2, i2] = -1
                T[j1, i2] = T[j2, i1] = 1
                key = pattern_key(T)
                if key not in seen:
                    seen.add(key)
                    queue.append(T)
    return seen

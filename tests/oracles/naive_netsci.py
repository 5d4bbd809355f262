"""Slow, obvious references for the signed network-science measures (tests only).

Motifs are enumerated node tuple by node tuple with Python loops over each block's edge
dictionary ``{(source, target): sign}``; balance and frustration enumerate cycles and all
2-colourings. Nothing is shared with the closed-form code except the gate-to-unit collapse
(:func:`netstruct.graphs.unroll.unit_blocks`), which is tested on its own.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from netstruct.graphs.unroll import unit_blocks

__all__ = [
    "naive_blocks",
    "naive_motifs",
    "naive_projection",
    "naive_cycle_balance",
    "naive_frustration",
]

_S = {1: "+", -1: "-"}


def naive_blocks(G, aggregate: str = "max"):
    """Per block: (name, delay, {(source, target): +-1}) on the unit graph."""
    unit = G.node_column("unit")
    out = []
    for name, delay, src, tgt, W, M in unit_blocks(G, aggregate):
        edges = {}
        for r in range(W.shape[0]):
            for c in range(W.shape[1]):
                if M[r, c] and W[r, c] != 0:
                    edges[(int(unit[src[c]]), int(tgt[r]))] = 1 if W[r, c] > 0 else -1
        out.append((name, delay, edges))
    return out


def _bifan_label(s11, s12, s21, s22):
    """Sign class of a1->b1 (s11), a1->b2 (s12), a2->b1 (s21), a2->b2 (s22)."""
    n_pos = [s11, s12, s21, s22].count(1)
    if n_pos in (4, 3, 1, 0):
        return {4: "++++", 3: "+++-", 1: "+---", 0: "----"}[n_pos]
    if s11 == s12:
        return "++--/source"
    if s11 == s21:
        return "++--/target"
    return "++--/cross"


def naive_motifs(G, aggregate: str = "max") -> Counter:
    """Counter of ``(motif, signs, blocks)`` by enumeration (time-unrolled node identity)."""
    blocks = naive_blocks(G, aggregate)
    cnt: Counter = Counter()
    for name, _, E in blocks:
        into, outof = {}, {}
        for (a, b), s in E.items():
            into.setdefault(b, []).append((a, s))
            outof.setdefault(a, []).append((b, s))
        for lst, motif in ((into, "convergent"), (outof, "divergent")):
            for _, es in lst.items():
                for (_, s1), (_, s2) in itertools.combinations(es, 2):
                    lab = "".join(sorted(_S[s1] + _S[s2]))  # '+' < '-'
                    cnt[(motif, lab, name)] += 1
        srcs = sorted({a for a, _ in E})
        tgts = sorted({b for _, b in E})
        for a1, a2 in itertools.combinations(srcs, 2):
            for b1, b2 in itertools.combinations(tgts, 2):
                k = [(a1, b1), (a1, b2), (a2, b1), (a2, b2)]
                if all(e in E for e in k):
                    cnt[("bifan", _bifan_label(*[E[e] for e in k]), name)] += 1
    n = len(blocks)
    for x, y in itertools.permutations(range(n), 2):
        (nx_, dx, X), (ny, dy, Y) = blocks[x], blocks[y]
        lab = f"{nx_} -> {ny}"
        paths = {}  # (a, c) -> list of (b, type)
        for (a, b), s1 in X.items():
            for (b2, c), s2 in Y.items():
                if b2 != b or ((a, -dx) == (c, dy)):
                    continue
                cnt[("chain", _S[s1] + _S[s2], lab)] += 1
                paths.setdefault((a, c), []).append(_S[s1] + _S[s2])
        order = ["++", "+-", "-+", "--"]
        for ts in paths.values():
            for t, u in itertools.combinations(ts, 2):
                t, u = sorted((t, u), key=order.index)
                cnt[("biparallel", f"{t}|{u}", lab)] += 1
        for z in range(n):
            if z in (x, y):
                continue
            nz, dz, Z = blocks[z]
            lab3 = f"{nx_} -> {ny} -> {nz}"
            for (a, b), s1 in X.items():
                for (b2, c), s2 in Y.items():
                    if b2 != b:
                        continue
                    for (c2, _d), s3 in Z.items():
                        if c2 == c:
                            cnt[("chain4", _S[s1] + _S[s2] + _S[s3], lab3)] += 1
                    if dz == dx + dy and (a, c) in Z:
                        cnt[("skip_triangle", _S[s1] + _S[s2] + _S[Z[(a, c)]], lab3)] += 1
    return cnt


# ----------------------------------------------------------------------------- balance
def naive_projection(G, aggregate: str = "max") -> dict:
    """Undirected projection ``{frozenset({u, v}): sign of the summed weight}`` (no self-loops)."""
    tot: dict = {}
    unit = G.node_column("unit")
    for _, _, src, tgt, W, M in unit_blocks(G, aggregate):
        for r in range(W.shape[0]):
            for c in range(W.shape[1]):
                a, b = int(unit[src[c]]), int(tgt[r])
                if M[r, c] and W[r, c] != 0 and a != b:
                    key = frozenset((a, b))
                    tot[key] = tot.get(key, 0.0) + float(W[r, c])
    return {k: (1 if v > 0 else -1) for k, v in tot.items() if v != 0}


def naive_cycle_balance(edges: dict, length: int) -> tuple[int, int]:
    """(number of cycles of ``length``, number of them with positive sign product)."""
    nodes = sorted({v for e in edges for v in e})
    adj = {v: set() for v in nodes}
    for e in edges:
        a, b = tuple(e)
        adj[a].add(b)
        adj[b].add(a)
    seen = set()
    total = pos = 0
    for combo in itertools.permutations(nodes, length):
        if combo[0] != min(combo):
            continue
        if all(combo[(i + 1) % length] in adj[combo[i]] for i in range(length)):
            key = frozenset(frozenset((combo[i], combo[(i + 1) % length])) for i in range(length))
            if key in seen:
                continue
            seen.add(key)
            total += 1
            sign = np.prod(
                [edges[frozenset((combo[i], combo[(i + 1) % length]))] for i in range(length)]
            )
            pos += int(sign > 0)
    return total, pos


def naive_frustration(edges: dict) -> int:
    """Minimum number of edges violated by a 2-colouring, over all colourings."""
    nodes = sorted({v for e in edges for v in e})
    idx = {v: i for i, v in enumerate(nodes)}
    best = len(edges)
    for bits in range(2 ** max(len(nodes) - 1, 0)):
        col = [((bits >> i) & 1) * 2 - 1 for i in range(len(nodes))]
        bad = 0
        for e, s in edges.items():
            a, b = tuple(e)
            bad += int(s * col[idx[a]] * col[idx[b]] < 0)
        best = min(best, bad)
    return best


def random_layered_graph(rng, sizes, density=0.6, *, skip=False, weights=None):
    """A random layered SignedGraph (layers of ``sizes``), optionally with a skip block 0 -> 2."""
    import netstruct as ns

    ids = np.cumsum([0, *sizes])
    blocks = []

    def block(name, src, tgt):
        W = rng.standard_normal((tgt[1] - tgt[0], src[1] - src[0]))
        W = W * (rng.random(W.shape) < density)
        return ns.make_block(
            name=name, weight=W, mask=W != 0, sources=range(*src), targets=range(*tgt)
        )

    for layer in range(len(sizes) - 1):
        blocks.append(
            block(f"b{layer}", (ids[layer], ids[layer + 1]), (ids[layer + 1], ids[layer + 2]))
        )
    if skip:
        blocks.append(block("skip", (ids[0], ids[1]), (ids[2], ids[3])))
    return ns.SignedGraph({"name": [str(i) for i in range(ids[-1])]}, blocks)

"""Which blocks a motif census combines, and the closed-form counts (private; inputs validated).

A census works on *census blocks*: the graph's blocks with LSTM/GRU gate rows collapsed onto
their units (node column ``unit``), so that a block's targets and the next block's sources are
the same node ids. Two distinct blocks are *adjacent* when the targets of the first overlap the
sources of the second; nothing else is assumed, so skip (identity) blocks need no special case.

Nodes are read in the time-unrolled sense: an edge of a block with delay ``d`` goes from a node
at step ``t - d`` to a node at step ``t``. Motifs only combine distinct blocks, so every motif
instance uses distinct weight cells; with an acyclic feed-forward part its nodes are distinct.

Counts are computed from *probability* matrices ``(P_pos, P_neg)`` per census block: 0/1
indicators give exact counts; the cell probabilities of an independent-cell model (the
maximum-entropy nulls) give exact expectations. The motif instances are:

==============  ====  =====================================================================
motif           size  instance
==============  ====  =====================================================================
chain           3     ``a -> b`` in block X, ``b -> c`` in an adjacent block Y
convergent      3     ``a1 -> b <- a2`` inside one block
divergent       3     ``b1 <- a -> b2`` inside one block
skip_triangle   3     ``a -> b`` (X), ``b -> c`` (Y), ``a -> c`` in a third block Z whose delay
                      is the sum of X's and Y's (a skip connection)
chain4          4     ``a -> b -> c -> d`` through blocks X, Y, Z
bifan           4     ``a1, a2 -> b1, b2`` (all four edges) inside one block
biparallel      4     ``a -> b1 -> c`` and ``a -> b2 -> c`` through X and Y
==============  ====  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..exceptions import GraphError
from ..graphs.signed import SignedGraph
from ..graphs.unroll import _aggregate

__all__ = ["MOTIFS", "Plan", "build_plan", "census_vector", "block_matrices"]

_T = ("++", "+-", "-+", "--")
#: motif name -> (size, sign-class labels in kernel order)
MOTIFS: dict[str, tuple[int, tuple[str, ...]]] = {
    "chain": (3, _T),
    "convergent": (3, ("++", "+-", "--")),
    "divergent": (3, ("++", "+-", "--")),
    "skip_triangle": (3, tuple(a + b + c for a in "+-" for b in "+-" for c in "+-")),
    "chain4": (4, tuple(a + b + c for a in "+-" for b in "+-" for c in "+-")),
    "bifan": (4, ("++++", "+++-", "++--/source", "++--/target", "++--/cross", "+---", "----")),
    "biparallel": (4, tuple(f"{_T[t]}|{_T[u]}" for t in range(4) for u in range(t, 4))),
}

_CHUNK_CELLS = 2_000_000
_SPARSE_BELOW = 0.25


@dataclass
class _Pair:
    x: int
    y: int
    x_rows: np.ndarray  # rows of X on the shared nodes
    y_cols: np.ndarray  # the matching columns of Y
    triangles: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )


@dataclass
class Plan:
    """Census blocks and the block tuples each motif combines."""

    names: list[str]
    delays: list[int]
    sources: list[np.ndarray]
    targets: list[np.ndarray]
    row_units: list[np.ndarray | None]  # gate rows -> units (None when rows are units)
    pairs: list[_Pair]
    chains4: list[tuple[int, int, np.ndarray, np.ndarray]]  # (pair index, Z, Y rows, Z cols)

    def keys(self, size: tuple[int, ...]) -> list[tuple[str, str, str]]:
        """``(motif, signs, blocks)`` in the order of :func:`census_vector`."""
        out: list[tuple[str, str, str]] = []
        for motif, (msize, labels) in MOTIFS.items():
            if msize not in size:
                continue
            for tup in self._tuples(motif):
                out += [(motif, s, " -> ".join(self.names[i] for i in tup)) for s in labels]
        return out

    def _tuples(self, motif: str) -> list[tuple[int, ...]]:
        if motif in ("convergent", "divergent", "bifan"):
            return [(i,) for i in range(len(self.names))]
        if motif in ("chain", "biparallel"):
            return [(p.x, p.y) for p in self.pairs]
        if motif == "chain4":
            return [(self.pairs[q].x, self.pairs[q].y, z) for q, z, _, _ in self.chains4]
        return [(p.x, p.y, t[0]) for p in self.pairs for t in p.triangles]


def _match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, ia, ib = np.intersect1d(a, b, assume_unique=True, return_indices=True)
    return ia, ib


def build_plan(G: SignedGraph) -> Plan:
    """The census plan of ``G`` (raises GraphError on repeated node ids inside a block)."""
    unit = G.node_column("unit")
    names, delays, sources, targets, row_units = [], [], [], [], []
    for b in G.blocks:
        src = unit[b.sources]
        tgt_units = unit[b.targets]
        if np.unique(src).size != src.size:
            raise GraphError(
                f"Block {b.name!r} lists a source unit twice; a motif census needs each source "
                "column to be a distinct node."
            )
        collapse = not np.array_equal(tgt_units, b.targets)
        tgt = np.unique(tgt_units) if collapse else b.targets
        if not collapse and np.unique(tgt).size != tgt.size:
            raise GraphError(f"Block {b.name!r} lists a target node twice.")
        names.append(b.name)
        delays.append(int(b.delay))
        sources.append(np.asarray(src))
        targets.append(np.asarray(tgt))
        row_units.append(tgt_units if collapse else None)
    n = len(names)
    pairs = []
    for x in range(n):
        for y in range(n):
            if x == y:
                continue
            xr, yc = _match(targets[x], sources[y])
            if xr.size:
                pairs.append(_Pair(x, y, xr, yc))
    chains4 = []
    for q, p in enumerate(pairs):
        for z in range(n):
            if z in (p.x, p.y):
                continue
            yr, zc = _match(targets[p.y], sources[z])
            if yr.size:
                chains4.append((q, z, yr, zc))
            if delays[z] != delays[p.x] + delays[p.y]:
                continue
            zr, yr2 = _match(targets[z], targets[p.y])
            zc2, xc = _match(sources[z], sources[p.x])
            if zr.size and zc2.size:
                p.triangles.append((z, zr, yr2, zc2, xc))
    return Plan(names, delays, sources, targets, row_units, pairs, chains4)


def block_matrices(
    plan: Plan, weights: list[np.ndarray], masks: list[np.ndarray], aggregate: str
) -> list[tuple[np.ndarray, np.ndarray]]:
    """0/1 float32 indicators ``(P_pos, P_neg)`` of the census blocks from block weights."""
    out = []
    for w, m, ru in zip(weights, masks, plan.row_units):
        if ru is not None:
            _, w, m = _aggregate(w, m, ru, aggregate)
        out.append(((w > 0).astype(np.float32), (w < 0).astype(np.float32)))
    return out


# ----------------------------------------------------------------------------- products
def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a <= b else (b, a)


def _is_sparse(a: np.ndarray, indicator: bool) -> bool:
    return bool(indicator and a.size > 4096 and np.count_nonzero(a) < _SPARSE_BELOW * a.size)


class _Mat:
    """A matrix with a cached sparse copy for products of sparse indicators."""

    def __init__(self, a: np.ndarray, indicator: bool):
        self.a = a
        self.s = sp.csr_array(a) if _is_sparse(a, indicator) else None

    def rows(self, lo: int, hi: int):
        return self.s[lo:hi] if self.s is not None else self.a[lo:hi]


def _mul(a, b) -> np.ndarray:
    """Dense result of ``a @ b`` (either may be a scipy sparse array)."""
    if sp.issparse(a) and sp.issparse(b):
        return (a @ b).toarray()
    if sp.issparse(a) or sp.issparse(b):
        r = a @ b
        return r.toarray() if sp.issparse(r) else np.asarray(r)
    return a @ b


def _chunks(n_rows: int, n_cols: int):
    step = max(1, _CHUNK_CELLS // max(n_cols, 1))
    for lo in range(0, n_rows, step):
        yield lo, min(lo + step, n_rows)


def pack_rows(a: np.ndarray) -> np.ndarray:
    """Rows of a 0/1 matrix as little-endian uint64 bit sets, shape (n_rows, ceil(n_cols / 64))."""
    n_rows, n_cols = a.shape
    n_words = max((n_cols + 63) // 64, 1)
    padded = np.zeros((n_rows, n_words * 64), dtype=np.uint8)
    padded[:, :n_cols] = a != 0
    return (
        np.ascontiguousarray(np.packbits(padded, axis=1, bitorder="little"))
        .view("<u8")
        .astype(np.uint64)
    )


def _block_counts(
    pp: np.ndarray, pn: np.ndarray, indicator: bool, want4: bool, kernels
) -> np.ndarray:
    out = np.zeros(13)
    for axis, off in ((1, 0), (0, 3)):  # convergent (per target row), divergent (per source column)
        kp, kn = pp.sum(axis, dtype=np.float64), pn.sum(axis, dtype=np.float64)
        if indicator:
            sp_, sn, spn = kp, kn, 0.0
        else:
            sp_, sn, spn = (pp * pp).sum(axis), (pn * pn).sum(axis), (pp * pn).sum(axis)
        out[off : off + 3] = [
            0.5 * (kp @ kp - np.sum(sp_)),
            kp @ kn - np.sum(spn),
            0.5 * (kn @ kn - np.sum(sn)),
        ]
    if not want4 or pp.shape[0] < 2 or pp.shape[1] < 2:
        return out
    if indicator:
        out[6:] = kernels.bifan_bits(pack_rows(pp), pack_rows(pn))
        return out
    P, N = _Mat(pp, indicator), _Mat(pn, indicator)
    if indicator:
        h = None
    else:
        h = {k: _Mat(v, False) for k, v in (("pp", pp * pp), ("nn", pn * pn), ("pn", pp * pn))}
    n = pp.shape[0]
    PT = P.s.T if P.s is not None else pp.T
    NT = N.s.T if N.s is not None else pn.T
    acc = np.zeros(7)
    for lo, hi in _chunks(n, n):
        q = np.stack(
            [
                _mul(P.rows(lo, hi), PT),
                _mul(N.rows(lo, hi), NT),
                _mul(P.rows(lo, hi), NT),
                _mul(N.rows(lo, hi), PT),
            ]
        )
        if h is None:
            d = np.zeros((0, 0, 0), dtype=q.dtype)
        else:
            order = (
                ("pp", "pp"),
                ("nn", "nn"),
                ("pp", "pn"),
                ("pn", "pp"),
                ("pn", "nn"),
                ("nn", "pn"),
                ("pn", "pn"),
                ("pp", "nn"),
                ("nn", "pp"),
                ("pn", "pn"),
            )
            d = np.stack([_mul(h[u].rows(lo, hi), h[v].a.T) for u, v in order])
        acc += kernels.bifan_classes(
            np.ascontiguousarray(q), np.ascontiguousarray(d), np.int64(lo), indicator
        )
    out[6:] = 0.5 * acc
    return out


def _pair_products(X: tuple, Y: tuple, pair: _Pair, indicator: bool, kernels, tri_mats: list):
    """Bi-parallel sums (10) and triangle sums (8 per triangle) of one adjacent pair."""
    xs = [x[pair.x_rows] for x in X]
    ys = [np.ascontiguousarray(y[:, pair.y_cols]) for y in Y]
    xm = [_Mat(x, indicator) for x in xs]
    ym = [_Mat(y, indicator) for y in ys]
    types = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (x sign, y sign), 0 = +, 1 = -
    if not indicator:
        hx = {(0, 0): xs[0] * xs[0], (1, 1): xs[1] * xs[1], (0, 1): xs[0] * xs[1]}
        hy = {(0, 0): ys[0] * ys[0], (1, 1): ys[1] * ys[1], (0, 1): ys[0] * ys[1]}
    bip = np.zeros(10)
    tri = [np.zeros(8) for _ in tri_mats]
    xa = [m.s if m.s is not None else m.a for m in xm]
    for lo, hi in _chunks(ys[0].shape[0], xs[0].shape[1]):
        m = np.stack([_mul(ym[yy].rows(lo, hi), xa[xx]) for xx, yy in types])
        if indicator:
            e = np.zeros((0, 0, 0), dtype=m.dtype)
        else:
            e = np.stack(
                [
                    hy[_pair(types[t][1], types[u][1])][lo:hi] @ hx[_pair(types[t][0], types[u][0])]
                    for t in range(4)
                    for u in range(t, 4)
                ]
            )
        bip += kernels.biparallel_classes(
            np.ascontiguousarray(m), np.ascontiguousarray(e), indicator
        )[4:]
        for k, zal in enumerate(tri_mats):
            for t, (sx, sy) in enumerate(types):
                for sz in (0, 1):
                    tri[k][4 * sx + 2 * sy + sz] += float(
                        np.sum(m[t] * zal[sz][lo:hi], dtype=np.float64)
                    )
    return bip, tri


def census_vector(
    plan: Plan,
    mats: list[tuple[np.ndarray, np.ndarray]],
    size: tuple[int, ...],
    indicator: bool,
    kernels,
) -> np.ndarray:
    """All class sums in the order of ``plan.keys(size)``."""
    want3, want4 = 3 in size, 4 in size
    parts: dict[str, list[np.ndarray]] = {m: [] for m in MOTIFS}
    for pp, pn in mats:
        c = _block_counts(pp, pn, indicator, want4, kernels)
        parts["convergent"].append(c[0:3])
        parts["divergent"].append(c[3:6])
        parts["bifan"].append(c[6:13])
    ins = [(m[0].sum(1, dtype=np.float64), m[1].sum(1, dtype=np.float64)) for m in mats]
    outs = [(m[0].sum(0, dtype=np.float64), m[1].sum(0, dtype=np.float64)) for m in mats]
    for p in plan.pairs:
        parts["chain"].append(
            np.array(
                [ins[p.x][sx][p.x_rows] @ outs[p.y][sy][p.y_cols] for sx in (0, 1) for sy in (0, 1)]
            )
        )
        tri_mats = []
        if want3:
            n_c, n_a = mats[p.y][0].shape[0], mats[p.x][0].shape[1]
            for z, zr, yr, zc, xc in p.triangles:
                zal = []
                for s in (0, 1):
                    a = np.zeros((n_c, n_a), dtype=np.float64)
                    a[np.ix_(yr, xc)] = mats[z][s][np.ix_(zr, zc)]
                    zal.append(a)
                tri_mats.append(zal)
        if indicator and want4 and not tri_mats:
            xs = [x[p.x_rows].T for x in mats[p.x]]
            ys = [y[:, p.y_cols] for y in mats[p.y]]
            parts["biparallel"].append(kernels.biparallel_bits(*map(pack_rows, (*xs, *ys)))[4:])
        elif want4 or tri_mats:
            bip, tri = _pair_products(mats[p.x], mats[p.y], p, indicator, kernels, tri_mats)
            parts["biparallel"].append(bip)
            parts["skip_triangle"].extend(tri)
    for q, z, yr, zc in plan.chains4:
        p = plan.pairs[q]
        Y = mats[p.y]
        res = np.zeros(8)
        for sx in (0, 1):
            vin = np.zeros(Y[0].shape[1])
            vin[p.y_cols] = ins[p.x][sx][p.x_rows]
            for sy in (0, 1):
                yv = Y[sy].astype(np.float64, copy=False) @ vin
                for sz in (0, 1):
                    res[4 * sx + 2 * sy + sz] = outs[z][sz][zc] @ yv[yr]
        parts["chain4"].append(res)
    vec = [v for motif, (msize, _) in MOTIFS.items() if msize in size for v in parts[motif]]
    return np.concatenate(vec) if vec else np.zeros(0)

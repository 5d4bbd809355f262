"""Dense, obvious references for signed modularity and the undirected signed projection."""

from __future__ import annotations

import numpy as np


def dense_projection(G) -> tuple[np.ndarray, np.ndarray]:
    """``A = S + S^T`` over units, built entry by entry from the edge table; returns (A, units)."""
    unit = G.node_column("unit")
    units = sorted(set(int(u) for u in unit))
    pos = {u: i for i, u in enumerate(units)}
    A = np.zeros((len(units), len(units)))
    e = G.edges()
    for s, t, w in zip(e["source"], e["target"], e["weight"]):
        a, b = pos[int(unit[t])], pos[int(unit[s])]
        A[a, b] += float(w)
        A[b, a] += float(w)
    return A, np.array(units)


def dense_signed_modularity(
    A: np.ndarray, labels, gamma_pos: float = 1.0, gamma_neg: float = 1.0
) -> float:
    """Gomez-Jensen-Arenas signed modularity by the double sum over all pairs."""
    Ap, An = np.maximum(A, 0), np.maximum(-A, 0)
    kp, kn = Ap.sum(1), An.sum(1)
    mp, mn = Ap.sum(), An.sum()
    total = 0.0
    n = len(A)
    for i in range(n):
        for j in range(n):
            if labels[i] != labels[j]:
                continue
            null_p = gamma_pos * kp[i] * kp[j] / mp if mp > 0 else 0.0
            null_n = gamma_neg * kn[i] * kn[j] / mn if mn > 0 else 0.0
            total += A[i, j] - null_p + null_n
    return total / (mp + mn)


def leiden_signed_best(
    A: np.ndarray, gamma_pos: float = 1.0, gamma_neg: float = 1.0, n_runs: int = 10, seed: int = 0
):
    """Best membership of ``n_runs`` leidenalg multiplex runs on the same signed objective (GPL, tests only)."""
    import igraph as ig
    import leidenalg as la

    n = len(A)
    iu = np.triu_indices(n)

    def layer(M):
        sel = M[iu] != 0
        r, c = iu[0][sel], iu[1][sel]
        w = M[r, c] * np.where(r == c, 0.5, 1.0)  # igraph counts a loop's weight twice in strengths
        g = ig.Graph(n=n, edges=list(zip(r.tolist(), c.tolist())))
        g.es["weight"] = w.tolist()
        return g

    gp, gn = layer(np.maximum(A, 0)), layer(np.maximum(-A, 0))
    best, best_q = None, -np.inf
    for k in range(n_runs):
        pp = la.RBConfigurationVertexPartition(gp, weights="weight", resolution_parameter=gamma_pos)
        pn = la.RBConfigurationVertexPartition(gn, weights="weight", resolution_parameter=gamma_neg)
        opt = la.Optimiser()
        opt.set_rng_seed(seed + k)
        opt.optimise_partition_multiplex([pp, pn], layer_weights=[1, -1], n_iterations=-1)
        memb = np.array(pp.membership)
        q = dense_signed_modularity(A, memb, gamma_pos, gamma_neg)
        if q > best_q:
            best, best_q = memb, q
    return best, best_q

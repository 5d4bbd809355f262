"""Signed motif census, null z-score profile and maximum-entropy solve, with peer ratios.

Inputs: a 1,024-node layered graph (4 layers of 256 units, 3 random blocks at 10 % density,
random signs) and a dense 4096x4096 layer. The peer for the census is igraph's
``motifs_randesu`` (unsigned, induced; it enumerates subgraphs), timed in the same run; when
it exceeds 60 s on the full graph it is timed once on a smaller graph of the same shape and
the size is printed. There is no open peer for the signed maximum-entropy solve (NEMtropy is
GPL); its time is printed against the 1 s goal.

Run ``python benchmarks/bench_motifs.py`` (prints min / median and ratios), or
``python -m pytest benchmarks/bench_motifs.py --benchmark-only -q``.
"""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest

import netstruct as ns

LAYERS, WIDTH, DENSITY = 4, 256, 0.10


def layered_graph(
    width: int = WIDTH, layers: int = LAYERS, density: float = DENSITY, seed: int = 0
):
    rng = np.random.default_rng(seed)
    blocks = []
    for k in range(layers - 1):
        W = rng.standard_normal((width, width)) * (rng.random((width, width)) < density)
        blocks.append(
            ns.make_block(
                name=f"l{k}",
                weight=W,
                mask=W != 0,
                sources=range(k * width, (k + 1) * width),
                targets=range((k + 1) * width, (k + 2) * width),
            )
        )
    return ns.SignedGraph({"name": [str(i) for i in range(layers * width)]}, blocks)


def dense_layer(n: int = 4096, seed: int = 0):
    W = np.random.default_rng(seed).standard_normal((n, n)).astype(np.float32)
    return ns.SignedGraph(
        {"name": [str(i) for i in range(2 * n)]},
        [ns.make_block(name="w", weight=W, sources=range(n), targets=range(n, 2 * n))],
    )


def _times(fn, repeat: int) -> np.ndarray:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out)


def _igraph_census(width: int, q) -> None:
    import igraph as ig

    G = layered_graph(width)
    e = G.edges()
    g = ig.Graph(
        n=G.n_nodes, edges=list(zip(e["source"].tolist(), e["target"].tolist())), directed=True
    )
    t = time.perf_counter()
    g.motifs_randesu(size=4)
    q.put(time.perf_counter() - t)


def igraph_time(limit: float = 60.0) -> tuple[float, int]:
    """igraph's 4-node census time on the full graph, or on a smaller one when over ``limit``."""
    for width in (WIDTH, 128, 64):
        q = mp.get_context("fork").Queue()
        p = mp.get_context("fork").Process(target=_igraph_census, args=(width, q))
        p.start()
        p.join(limit)
        if p.is_alive():
            p.kill()
            p.join()
            print(
                f"igraph motifs_randesu(size=4) on {LAYERS}x{width}: > {limit:.0f} s, trying a smaller graph"
            )
            continue
        return float(q.get()), width
    return float("nan"), 0


def main() -> None:
    G = layered_graph()
    ns.motif_census(G, size=4)  # compile
    t = _times(lambda: ns.motif_census(G, size=4), 20)
    print(
        f"signed 4-node census, {LAYERS}x{WIDTH} at {DENSITY:.0%}: min {t.min() * 1e3:.2f} ms, "
        f"median {np.median(t) * 1e3:.2f} ms (goal 10 ms)"
    )
    ti, width = igraph_time()
    if width == WIDTH:
        print(
            f"igraph motifs_randesu(size=4), unsigned, same graph: {ti:.2f} s; ratio min {ti / t.min():.0f}x, "
            f"median {ti / np.median(t):.0f}x"
        )
    elif width:
        Gs = layered_graph(width)
        ts = _times(lambda: ns.motif_census(Gs, size=4), 20)
        print(
            f"igraph motifs_randesu(size=4) on the smaller {LAYERS}x{width} graph: {ti:.2f} s; netstruct there "
            f"min {ts.min() * 1e3:.2f} ms; ratio min {ti / ts.min():.0f}x, median {ti / np.median(ts):.0f}x"
        )
    for model in ("curveball", "stp"):
        ns.motif_zscores(G, model, n_samples=4, seed=0)
        for sched, label in (("serial", "serial"), (None, "Dask, 2 threads")):
            tz = _times(
                lambda m=model, s=sched: ns.motif_zscores(
                    G, m, n_samples=1000, seed=0, chunk_size=125, scheduler=s, n_jobs=2
                ),
                1,
            )
            print(f"1,000-sample z-score profile ({model}, {label}): {tz[0]:.1f} s (goal 30 s)")
    D = dense_layer()
    ns.fit_maxent(dense_layer(64), "stp")
    tm = _times(lambda: ns.fit_maxent(D, "stp"), 3)
    print(
        f"maximum-entropy (stp) solve of a dense 4096x4096 layer: min {tm.min():.3f} s, median "
        f"{np.median(tm):.3f} s (goal 1 s; no open peer)"
    )


# ----------------------------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module")
def graph():
    return layered_graph()


def test_signed_census(benchmark, graph):
    ns.motif_census(graph, size=4)
    benchmark.pedantic(ns.motif_census, args=(graph,), kwargs={"size": 4}, rounds=10)


def test_maxent_dense_solve(benchmark):
    D = dense_layer()
    benchmark.pedantic(ns.fit_maxent, args=(D, "stp"), rounds=2)


if __name__ == "__main__":
    main()

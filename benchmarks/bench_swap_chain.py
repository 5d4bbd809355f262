"""Model G per sample at its default length, against igraph's default ``rewire``, with mixing.

One sample of G-left on an ``n x n`` layer at 10 % density with random signs (``n`` from
``NETSTRUCT_BENCH_G_SIZE``, default 1024; the issue's 4096 is the same code, about a minute
of peers per round on a quiet core). Peers, all on the same layer in the same run, one thread:

* ``igraph_rewire_default``: ``Graph.rewire()`` with its default ``10 |E+|`` trials on the
  digraph of positive edges (unsigned: it knows nothing of the support, signs or weights);
* ``uniform_pair_default``: the kernel this issue replaced (two uniform positive cells per
  attempt, ``ceil(10 |E+| / r)`` attempts), kept below as the mixing baseline.

Mixing (``test_mixing_at_the_default_lengths``, printed): from the same start, the fraction of
non-zero cells whose sign differs from the start (Hamming, whose plateau is what independent
samples reach), on a random layer, and on a *structured* layer (positives packed in the
top-left and bottom-right quadrants) the relaxation ``(Q_t - Q_inf) / (Q_0 - Q_inf)`` of the
positive count ``Q`` in the top-left quadrant, for both chains at their default lengths and at
fractions of them, with the seconds each took.

Run with ``python -m pytest benchmarks/bench_swap_chain.py --benchmark-only -q -s``.
"""

from __future__ import annotations

import math
import os
import time

import numba
import numpy as np
import pytest

from netstruct.algorithms import _randomize_models as _m
from netstruct.backends.numba._jit import njit
from netstruct.backends.numba._rng import new_state, rand_below, seed_state
from netstruct.backends.numba.randomize import signed_swap

N = int(os.environ.get("NETSTRUCT_BENCH_G_SIZE", "1024"))
DENSITY = 0.10
G_LEFT = _m.NULL_MODELS["G-left"]


@njit
def uniform_pair_chain(weight: np.ndarray, n_steps: np.int64, seed: np.uint64) -> np.ndarray:
    """The pre-issue-16 G-left kernel (one chain): two uniform positive cells per attempt."""
    n_out, n_in = weight.shape
    w = weight.copy()
    n_pos = 0
    for j in range(n_out):
        for i in range(n_in):
            if w[j, i] > 0:
                n_pos += 1
    pr = np.empty(n_pos, dtype=np.int64)
    pc = np.empty(n_pos, dtype=np.int64)
    k = 0
    for j in range(n_out):
        for i in range(n_in):
            if w[j, i] > 0:
                pr[k] = j
                pc[k] = i
                k += 1
    state = new_state()
    seed_state(state, seed, np.uint64(0))
    for _ in range(n_steps):
        a = rand_below(state, n_pos)
        b = rand_below(state, n_pos)
        j1, i1, j2, i2 = pr[a], pc[a], pr[b], pc[b]
        if i1 != i2 and j1 != j2 and w[j1, i2] < 0 and w[j2, i1] < 0:
            w[j1, i1], w[j2, i1] = w[j2, i1], w[j1, i1]
            w[j1, i2], w[j2, i2] = w[j2, i2], w[j1, i2]
            pr[a] = j2
            pr[b] = j1
    return w


def uniform_pair_default(weight: np.ndarray) -> int:
    """The replaced default rule: ``ceil(10 |E+| / r)``, ``r`` floored at 1/1000."""
    r = max(_m.checkerboard_rate(weight), 1e-3)
    return int(math.ceil(10 * int(np.count_nonzero(weight > 0)) / r))


def random_layer(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, n)) * (rng.random((n, n)) < DENSITY)).astype(np.float32)


def structured_layer(n: int, seed: int = 1) -> np.ndarray:
    """Positive on the two diagonal quadrants, negative off them (90 % of the time)."""
    rng = np.random.default_rng(seed)
    mag = np.abs(rng.standard_normal((n, n))) * (rng.random((n, n)) < DENSITY)
    h = n // 2
    diag = np.zeros((n, n), dtype=bool)
    diag[:h, :h] = diag[h:, h:] = True
    flip = rng.random((n, n)) < 0.1
    sign = np.where(diag ^ flip, 1.0, -1.0)
    return (mag * sign).astype(np.float32)


@pytest.fixture(scope="module")
def layer() -> np.ndarray:
    return random_layer(N)


@pytest.fixture(autouse=True)
def one_thread():
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


GROUP = f"G-left one sample {N}x{N} 10%"


def test_g_left_default_netstruct(benchmark, layer):
    benchmark.group = GROUP
    seeds = np.array([1], dtype=np.uint64)
    steps = _m.default_n_steps(layer, G_LEFT)
    signed_swap(layer, 10, seeds, False)  # compile outside the timing
    _, acc = benchmark.pedantic(signed_swap, args=(layer, steps, seeds, False), rounds=3)
    benchmark.extra_info.update({"n_steps": steps, "acceptance": float(acc[0]) / steps})


def test_igraph_rewire_default(benchmark, layer):
    ig = pytest.importorskip("igraph")
    benchmark.group = GROUP
    rows, cols = np.nonzero(layer > 0)
    base = ig.Graph(n=2 * N, edges=list(zip(cols.tolist(), (N + rows).tolist())), directed=True)

    def setup():
        return (base.copy(),), {}

    benchmark.pedantic(lambda g: g.rewire(), setup=setup, rounds=3)
    benchmark.extra_info["trials"] = 10 * base.ecount()


def test_uniform_pair_default(benchmark, layer):
    benchmark.group = GROUP
    steps = uniform_pair_default(layer)
    uniform_pair_chain(layer, 10, np.uint64(1))
    benchmark.pedantic(uniform_pair_chain, args=(layer, steps, np.uint64(1)), rounds=1)
    benchmark.extra_info["n_steps"] = steps


# ----------------------------------------------------------------------------- mixing
def _hamming(w: np.ndarray, w0: np.ndarray) -> float:
    support = w0 != 0
    return float(np.count_nonzero((np.sign(w) != np.sign(w0)) & support) / support.sum())


def _quadrant(w: np.ndarray) -> int:
    h = w.shape[0] // 2
    return int(np.count_nonzero(w[:h, :h] > 0))


def _run(chain: str, w0: np.ndarray, steps: int, seed: int) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    if chain == "direct":
        out = signed_swap(w0, np.int64(steps), np.array([seed], dtype=np.uint64), False)[0][0]
    else:
        out = uniform_pair_chain(w0, np.int64(steps), np.uint64(seed))
    return out, time.perf_counter() - t


def mixing_table(n: int, n_chains: int = 3, fractions=(0.25, 0.5, 1.0)) -> list[dict]:
    """Rows of (layer, chain, fraction of its default, steps, seconds, statistic)."""
    rows = []
    for name, w0 in (("random", random_layer(n)), ("structured", structured_layer(n))):
        defaults = {
            "direct": _m.default_n_steps(w0, G_LEFT),
            "uniform-pair": uniform_pair_default(w0),
        }
        long_run, _ = _run("direct", w0, 4 * defaults["direct"], 99)
        q0, q_inf = _quadrant(w0), _quadrant(long_run)
        for chain, default in defaults.items():
            for f in fractions:
                steps = int(default * f)
                stats, secs = [], []
                for c in range(n_chains):
                    out, dt = _run(chain, w0, steps, 1000 + c)
                    secs.append(dt)
                    if name == "random":
                        stats.append(_hamming(out, w0))
                    else:
                        stats.append((_quadrant(out) - q_inf) / (q0 - q_inf))
                rows.append({"layer": name, "chain": chain, "fraction": f, "steps": steps,
                             "seconds": float(np.median(secs)), "stat": float(np.mean(stats)),
                             "stat_sd": float(np.std(stats))})  # fmt: skip
        rows.append({"layer": name, "chain": "direct x4 (reference)", "fraction": 4.0,
                     "steps": 4 * defaults["direct"], "seconds": float("nan"),
                     "stat": _hamming(long_run, w0) if name == "random" else 0.0, "stat_sd": 0.0})  # fmt: skip
    return rows


def print_mixing(rows: list[dict], n: int) -> None:
    print(f"\nG-left mixing on {n}x{n} at 10 %: Hamming from the start (random layer; plateau is")
    print("the x4 reference) and quadrant relaxation (structured layer; 0 = mixed, 1 = start)")
    print(
        f"{'layer':11s} {'chain':22s} {'x default':>9s} {'steps':>12s} {'s':>8s} {'stat':>8s} {'sd':>7s}"
    )
    for r in rows:
        print(f"{r['layer']:11s} {r['chain']:22s} {r['fraction']:9.2f} {r['steps']:12d} "
              f"{r['seconds']:8.3f} {r['stat']:8.4f} {r['stat_sd']:7.4f}")  # fmt: skip


def test_mixing_at_the_default_lengths(benchmark):
    n = min(N, 1024)
    rows = benchmark.pedantic(mixing_table, args=(n,), rounds=1)
    print_mixing(rows, n)


if __name__ == "__main__":
    numba.set_num_threads(1)
    size = min(N, 1024)
    print_mixing(mixing_table(size), size)

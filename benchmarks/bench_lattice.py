"""Benchmarks for netstruct.lattice (``pytest benchmarks/bench_lattice.py --benchmark-only``).

* irreducibles of a 4096 x 4096 context at 10 % density (target: well under a second);
* concept lattice (concepts + covers) against the ``concepts`` package (Lindig's algorithm in
  pure Python) on 40-80-attribute contexts: identical concept sets, and the speed ratio is
  stored in ``extra_info["ratio_vs_concepts"]`` (goal >= 100x).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from netstruct.lattice import FormalContext, concept_lattice, join_irreducibles, meet_irreducibles


@pytest.fixture(scope="module")
def big_context() -> FormalContext:
    rng = np.random.default_rng(0)
    K = FormalContext(rng.random((4096, 4096)) < 0.10)
    meet_irreducibles(K)  # compile / load the cached kernel outside the timing
    return K


def test_meet_irreducibles_4096_at_10_percent(benchmark, big_context):
    res = benchmark(meet_irreducibles, big_context)
    benchmark.extra_info["n_irreducible"] = res.n_irreducible
    assert res.mask.shape == (4096,)


def test_join_irreducibles_4096_at_10_percent(benchmark, big_context):
    res = benchmark(join_irreducibles, big_context)
    assert res.mask.shape == (4096,)


def _concepts_package_lattice(inc: np.ndarray) -> tuple[set, float]:
    import concepts

    ctx = concepts.Context(
        [f"g{i}" for i in range(inc.shape[0])],
        [f"m{j}" for j in range(inc.shape[1])],
        [tuple(bool(x) for x in row) for row in inc],
    )
    t0 = time.perf_counter()
    lat = ctx.lattice
    n_cov = sum(len(c.upper_neighbors) for c in lat)
    elapsed = time.perf_counter() - t0
    got = {frozenset(int(g[1:]) for g in c.extent) for c in lat}
    return got, elapsed, n_cov


@pytest.mark.parametrize(
    ("n_objects", "n_attributes", "density"),
    [(60, 40, 0.3), (100, 60, 0.2), (120, 80, 0.15)],
)
def test_concept_lattice_vs_concepts_package(benchmark, n_objects, n_attributes, density):
    pytest.importorskip("concepts")
    rng = np.random.default_rng(n_attributes)
    inc = rng.random((n_objects, n_attributes)) < density
    K = FormalContext(inc)
    concept_lattice(K, max_concepts=10**6)  # warm-up (JIT cache)
    L = benchmark(concept_lattice, K, max_concepts=10**6)
    want, t_ref, n_cov = _concepts_package_lattice(inc)
    got = {frozenset(np.flatnonzero(e).tolist()) for e in L.extents}
    assert got == want
    assert L.covers.shape[0] == n_cov
    best, median = benchmark.stats.stats.min, benchmark.stats.stats.median
    benchmark.extra_info.update(
        n_concepts=len(L),
        concepts_package_s=t_ref,
        ratio_vs_concepts=t_ref / best,
        ratio_vs_concepts_median=t_ref / median,
    )
    print(
        f"\n{n_objects}x{n_attributes} d={density}: {len(L)} concepts, concepts package {t_ref:.3f} s, "
        f"netstruct {best * 1e3:.2f} ms min / {median * 1e3:.2f} ms median, "
        f"ratio {t_ref / best:.0f}x (min) / {t_ref / median:.0f}x (median)"
    )

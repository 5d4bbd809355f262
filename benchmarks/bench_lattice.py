"""Benchmarks for netstruct.lattice (``pytest benchmarks/bench_lattice.py --benchmark-only``).

* irreducibles of a 4096 x 4096 context at 10 % density (target: well under a second);
* concept lattice (concepts + covers) against the ``concepts`` package (Lindig's algorithm in
  pure Python) on 40-80-attribute contexts: identical concept sets, and the speed ratio is
  stored in ``extra_info["ratio_vs_concepts"]`` (goal >= 100x);
* the same contexts and two larger ones against PyFIM (Borgelt's C closed-item-set miner,
  ``fim.fim(target="c", supp=-1, zmin=0)``), the strongest installable enumeration peer: identical
  intents, ratios (min and median over the same number of rounds) for concept enumeration alone and
  for the whole ``concept_lattice`` (enumeration + covers; PyFIM computes no covers, so that ratio
  is a lower bound on netstruct's advantage).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from netstruct.backends import dispatch
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


def _pyfim_intents(inc: np.ndarray) -> set[frozenset[int]]:
    """Intents of all concepts: PyFIM's closed sets of support >= 1, plus top and bottom.

    PyFIM leaves out the empty item set even with ``zmin=0``, so the top intent (the attributes
    every object has) and the bottom (all attributes, possibly of empty extent) are added.
    """
    import fim

    tracts = [np.flatnonzero(row).tolist() for row in inc]
    got = {frozenset(s) for s, _ in fim.fim(tracts, target="c", supp=-1, zmin=0)}
    got.add(frozenset(np.flatnonzero(inc.all(axis=0)).tolist()))
    got.add(frozenset(range(inc.shape[1])))
    return got


def _min_median(f, rounds: int) -> tuple[float, float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


@pytest.mark.parametrize(
    ("n_objects", "n_attributes", "density"),
    [(60, 40, 0.3), (100, 60, 0.2), (120, 80, 0.15), (400, 64, 0.2), (1000, 100, 0.12)],
)
def test_concept_enumeration_vs_pyfim(benchmark, n_objects, n_attributes, density):
    fim = pytest.importorskip("fim", reason="PyFIM (pip install pyfim) is the C peer")
    rng = np.random.default_rng(n_attributes + n_objects)
    inc = rng.random((n_objects, n_attributes)) < density
    K = FormalContext(inc)
    L = concept_lattice(K, max_concepts=10**7)  # warm-up (JIT cache) and the check
    got = {frozenset(np.flatnonzero(i).tolist()) for i in L.intents}
    assert got == _pyfim_intents(inc)
    tracts = [np.flatnonzero(row).tolist() for row in inc]
    enum = dispatch("lattice.concepts_cbo", "numba")
    rounds = 7
    # alternate the three timings round by round so load on the machine hits them alike
    t_fim, t_enum, t_full = [], [], []
    for _ in range(rounds):
        t_fim.append(_min_median(lambda: fim.fim(tracts, target="c", supp=-1, zmin=0), 1)[0])
        t_enum.append(_min_median(lambda: enum(K.column_bits, K.all_objects_bits, 10**7), 1)[0])
        t_full.append(_min_median(lambda: concept_lattice(K, max_concepts=10**7), 1)[0])
    benchmark(lambda: None)
    fmin, fmed = min(t_fim), statistics.median(t_fim)
    rows = {
        "enumeration": (min(t_enum), statistics.median(t_enum)),
        "concept_lattice": (min(t_full), statistics.median(t_full)),
    }
    print(
        f"\n{n_objects}x{n_attributes} d={density}: {len(L)} concepts, PyFIM "
        f"{fmin * 1e3:.2f} ms min / {fmed * 1e3:.2f} ms median"
    )
    for what, (tmin, tmed) in rows.items():
        benchmark.extra_info[f"pyfim_over_{what}"] = fmin / tmin
        benchmark.extra_info[f"pyfim_over_{what}_median"] = fmed / tmed
        print(
            f"  netstruct {what:<16} {tmin * 1e3:8.2f} ms min / {tmed * 1e3:8.2f} ms median: "
            f"{fmin / tmin:6.1f}x (min) / {fmed / tmed:6.1f}x (median) PyFIM time / netstruct time"
        )

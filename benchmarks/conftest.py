"""Benchmark helpers: print netstruct-vs-peer ratios per group at the end of the run.

Within a group, the test whose name ends in ``_netstruct`` is compared with every other test
of the group (the peers): ratio = netstruct time / peer time (< 1: netstruct faster), once by
the minimum and once by the median of the rounds (the mean is skewed by other load).
Run with ``python -m pytest benchmarks --benchmark-only``.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.benchmark_suite)


def pytest_configure(config):
    config.addinivalue_line("markers", "benchmark_suite: benchmarks (not part of the test suite)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or not bs.benchmarks:
        return
    groups: dict[str, dict[str, tuple[float, float]]] = {}
    for b in bs.benchmarks:
        if b.stats is None or not b.stats.data:  # a benchmark that failed
            continue
        groups.setdefault(b.group or "", {})[b.name.split("[")[0]] = (b.stats.min, b.stats.median)
    terminalreporter.section("netstruct vs peers (netstruct time / peer time, by min and median)")
    for g, res in sorted(groups.items()):
        ours = [n for n in res if n.endswith("_netstruct")]
        if not ours:
            continue
        t0, m0 = res[ours[0]]
        for name, (t, m) in sorted(res.items()):
            if name == ours[0]:
                continue
            terminalreporter.write_line(
                f"{g:28s} {name:45s} min {t0 / t:6.2f}x  median {m0 / m:6.2f}x   "
                f"(netstruct {t0 * 1e3:.2f} ms, peer {t * 1e3:.2f} ms, by min)"
            )

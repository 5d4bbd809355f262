"""Benchmark helpers: print netstruct-vs-peer ratios per group at the end of the run.

Within a group, the test whose name ends in ``_netstruct`` is compared with every other test
of the group (the peers): ratio = peer mean time / netstruct mean time (> 1: netstruct faster).
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
    groups: dict[str, dict[str, float]] = {}
    for b in bs.benchmarks:
        if b.stats is None:
            continue
        groups.setdefault(b.group or "", {})[b.name.split("[")[0]] = b.stats.mean
    terminalreporter.section("netstruct vs peers (peer time / netstruct time)")
    for g, res in sorted(groups.items()):
        ours = [n for n in res if n.endswith("_netstruct")]
        if not ours:
            continue
        t0 = res[ours[0]]
        for name, t in sorted(res.items()):
            if name == ours[0]:
                continue
            terminalreporter.write_line(f"{g:28s} {name:45s} {t / t0:8.2f}x   (netstruct {t0 * 1e3:.2f} ms, peer {t * 1e3:.2f} ms)")

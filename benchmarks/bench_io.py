"""``ns.save``/``ns.load`` (and ``save_model``/``load_model``) against ``torch.save``/``torch.load``.

The state is a ~50M-parameter MLP (784 -> 4096 x 4 -> 10, float32, ~214 MB).
``torch.save`` writes the model's ``state_dict``; ``ns.save`` writes the graph exported from
the same model (the same weight bytes plus node tables), ``ns.save_model`` the model file.
netstruct checks a sha256 of every byte on load; torch checks nothing by default.
netstruct's writes are atomic: the file is ``fsync``'d before it is moved into place, so a
crash never leaves a renamed but empty file. ``torch.save`` does not sync; the row
``torch.save+fsync`` is torch with the same durability, so the ratios show what the sync costs
(it varies with the disk's write-back, which makes the save medians noisy).

Run as a script for ratios (min and median of several rounds) and peak memory per operation
(each measured in a fresh process: RSS sampled every millisecond during the call, minus the
RSS before it; a load's peak includes the loaded state it returns)::

    python benchmarks/bench_io.py [--rounds 5] [--compress]

or with pytest-benchmark (``python -m pytest benchmarks/bench_io.py --benchmark-only``; ratios
per group are printed by ``benchmarks/conftest.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import pytest

SIZES = (784, 4096, 4096, 4096, 4096, 10)


def _model():
    import torch

    torch.manual_seed(0)
    layers = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1]).eval()


def _ops(folder: str):
    import torch

    import netstruct as ns

    m = _model()
    G = ns.from_torch(m)
    sd = m.state_dict()
    pt, nsg, nsm = (os.path.join(folder, n) for n in ("m.pt", "g.nsg", "m.nsm"))
    torch.save(sd, pt)
    ns.save(G, nsg)
    ns.save_model(m, nsm)

    def durable_torch_save() -> None:  # what netstruct's atomic write adds: fsync before use
        torch.save(sd, pt)
        fd = os.open(pt, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    return {
        "torch.save": lambda: torch.save(sd, pt),
        "torch.save+fsync": durable_torch_save,
        "ns.save": lambda: ns.save(G, nsg),
        "ns.save(compress)": lambda: ns.save(G, nsg + ".z", compress=True),
        "ns.save_model": lambda: ns.save_model(m, nsm),
        "torch.load": lambda: torch.load(pt),
        "ns.load": lambda: ns.load(nsg),
        "ns.load_model": lambda: ns.load_model(nsm),
    }


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_child(op: str) -> None:
    import gc
    import threading

    with tempfile.TemporaryDirectory() as d:
        ops = _ops(d)
        gc.collect()
        base = _rss_now()
        peak = [base]
        stop = threading.Event()

        def sample() -> None:  # RSS sampled every millisecond while the call runs
            while not stop.is_set():
                peak[0] = max(peak[0], _rss_now())
                time.sleep(0.001)

        t = threading.Thread(target=sample)
        t.start()
        result = ops[op]()
        stop.set()
        t.join()
        peak[0] = max(peak[0], _rss_now())
        del result
        print((peak[0] - base) / 2**20)


def _peak_mb(op: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--peak", op], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--compress", action="store_true", help="also time ns.save(compress=True)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--peak", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peak:
        _peak_child(args.peak)
        return
    with tempfile.TemporaryDirectory() as d:
        ops = _ops(d)
        if not args.compress:
            ops.pop("ns.save(compress)")
        times: dict[str, list[float]] = {k: [] for k in ops}
        for _ in range(args.rounds):
            for k, f in ops.items():  # interleaved, so machine load hits all alike
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        sizes = {
            k: os.path.getsize(os.path.join(d, n)) / 2**20
            for k, n in (("torch.save", "m.pt"), ("ns.save", "g.nsg"), ("ns.save_model", "m.nsm"))
        }
    n_params = sum(p.numel() for p in _model().parameters())
    print(
        f"state: MLP {SIZES}, {n_params / 1e6:.1f}M parameters; files (MiB): "
        + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items())
    )
    print(
        f"{'operation':<20}{'min s':>9}{'median s':>10}{'ratio min':>11}{'ratio med':>11}{'peak MiB':>10}"
    )
    for k, ts in times.items():
        ref = times["torch.save" if "save" in k else "torch.load"]
        peak = float("nan") if args.no_memory else _peak_mb(k)
        print(
            f"{k:<20}{min(ts):>9.3f}{statistics.median(ts):>10.3f}{min(ts) / min(ref):>11.2f}"
            f"{statistics.median(ts) / statistics.median(ref):>11.2f}{peak:>10.0f}"
        )
    print("ratio = time / torch's time for the same state (goal: <= 2)")


# ----------------------------------------------------------------------------- pytest-benchmark
@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    return _ops(str(tmp_path_factory.mktemp("io")))


@pytest.mark.benchmark(group="io-save")
def test_save_netstruct(benchmark, ops):
    benchmark.pedantic(ops["ns.save"], rounds=3)


@pytest.mark.benchmark(group="io-save")
def test_save_torch(benchmark, ops):
    benchmark.pedantic(ops["torch.save"], rounds=3)


@pytest.mark.benchmark(group="io-load")
def test_load_netstruct(benchmark, ops):
    benchmark.pedantic(ops["ns.load"], rounds=3)


@pytest.mark.benchmark(group="io-load")
def test_load_torch(benchmark, ops):
    benchmark.pedantic(ops["torch.load"], rounds=3)


if __name__ == "__main__":
    main()

"""Shrunk CNN inference speed-up against the MAC ratio, with and without batch-norm folding.

Goal of issue 12: a physically shrunk model's inference speed-up >= 0.8 x its MAC ratio at
batch 64 on CPU. Three architectures on 28x28 images: ``pool``, ``make_cnn(width)`` of
``bench_torch_pruning.py`` (conv(width)-BN-ReLU-maxpool-conv(2 width)-BN-ReLU-maxpool-linear),
whose MaxPool2d and BatchNorm are most of the time at these widths and only halve with the
channels; ``vgg`` (two convs per stage, as the usual Fashion-MNIST CNNs have), whose
convolutions weigh more; and ``allconv`` (conv(width)-BN-ReLU, then two stride-2
conv(2 width)-BN-ReLU, linear), whose time is in its convolutions. 50 % of every conv's
channels (the smallest incoming L2 norm, with their BN channels) are removed with
``ns.prune(G, plan, shrink=True)``. The MAC ratio is that of the dense and shrunk models as
exported, counted by ``torch_pruning.utils.count_ops_and_params`` exactly as
``bench_torch_pruning.py`` counts it (the folded models' counts are printed beside it, not used).
:func:`measure_pair` times any (dense, shrunk) pair this way; ``bench_reconstruct.py --speed``
uses it on a trained, reconstructed model.

Timed variants, each applied to the dense and the shrunk model alike:

* ``eager``: the models as rebuilt (BN kept), ``torch.no_grad``, NCHW (the figure
  ``bench_torch_pruning.py`` prints);
* ``folded``: both models exported again with ``from_torch(..., fold_batchnorm=True)`` and
  rebuilt, so each conv carries its BN (what one deploys); ``torch.no_grad``;
* ``folded+inf``: folded, under ``torch.inference_mode``;
* ``folded+inf+cl``: folded, ``torch.inference_mode``, ``channels_last`` weights and input;
* ``folded+jit``: folded, ``torch.jit.optimize_for_inference(torch.jit.freeze(trace))``
  (conv+ReLU fusion, MKL-DNN layout), for comparison with a compiled deployment.

Beside the table: the eager shrunk model against ``make_cnn(width // 2)``, the same shape
written by hand with the same weights (time ratio; ~1 means the rebuilt module costs nothing
of its own and the gap to the MAC ratio belongs to the architecture).

One torch thread; dense and shrunk alternate within each round and the variants alternate in
slices, so load changes hit both alike; the speed-up is dense time / shrunk time by the minimum
and by the median of the rounds.

The allocator matters as much as the model at these sizes: glibc's dynamic mmap threshold
makes some runs page-fault on every large activation (a dense width-16 model then takes 9 ms
instead of 1.7 ms, run to run). The script therefore re-executes itself with
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` fixed (the same for both models, as
jemalloc/tcmalloc, which PyTorch recommends for CPU inference, would give); pass
``--system-malloc`` to measure with the allocator as it is.

Run: ``nice -n 10 python benchmarks/bench_shrunk_inference.py [--system-malloc] [widths...]``
(about four minutes for widths 16 32 64 128 and the three architectures on a quiet core;
torch-pruning, a benchmark oracle only, counts the MACs).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_torch_pruning import make_cnn, run_netstruct  # noqa: E402

BATCH = 64
RATIO = 0.5
VARIANTS = ("eager", "folded", "folded+inf", "folded+inf+cl", "folded+jit")
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"}


def _prepare(model: Any, x: Any, mode: str) -> tuple[Any, Any]:
    """``(model, input)`` as the variant runs them (a copy: the caller's model is kept)."""
    import copy

    import torch

    model = copy.deepcopy(model)
    if mode.endswith("cl"):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if mode.endswith("jit"):
        with torch.no_grad():
            model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
    return model, x


def _time_pair(dense: Any, small: Any, x: Any, rounds: int, mode: str) -> dict[str, list[float]]:
    """Alternated timings (seconds) of the dense and the shrunk model on ``x``."""
    import torch

    ctx = torch.inference_mode if ("+inf" in mode or mode.endswith("jit")) else torch.no_grad
    (dense, xd), (small, xs) = _prepare(dense, x, mode), _prepare(small, x, mode)
    t: dict[str, list[float]] = {"dense": [], "shrunk": []}
    with ctx():
        for m, xx in ((dense, xd), (small, xs), (dense, xd), (small, xs)):  # warm-up
            m(xx)
        for _ in range(rounds):
            for key, m, xx in (("dense", dense, xd), ("shrunk", small, xs)):
                s = time.perf_counter()
                m(xx)
                t[key].append(time.perf_counter() - s)
    return t


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[Any]:
    import torch

    nn = torch.nn
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


def _classifier(features: list[Any], channels: int, side: int, randomize_bn: bool) -> Any:
    """``features``, then flatten and a linear head of 10 classes (``side // 4`` maps left)."""
    import torch
    from bench_torch_pruning import _randomize_bn

    nn = torch.nn
    m = nn.Sequential(*features, nn.Flatten(), nn.Linear(channels * (side // 4) ** 2, 10))
    if randomize_bn:
        _randomize_bn(m)
    return m


def make_allconv(width: int, side: int = 28, *, randomize_bn: bool = True) -> Any:
    """conv(width)-BN-ReLU, conv(2 width, stride 2)-BN-ReLU twice, linear (no pooling)."""
    w2 = 2 * width
    features = [*_conv_bn_relu(1, width), *_conv_bn_relu(width, w2, 2), *_conv_bn_relu(w2, w2, 2)]
    return _classifier(features, w2, side, randomize_bn)


def make_vgg(width: int, side: int = 28, *, randomize_bn: bool = True) -> Any:
    """Two conv(width)-BN-ReLU, pool, two conv(2 width)-BN-ReLU, pool, linear (VGG-style)."""
    import torch

    pool = torch.nn.MaxPool2d
    w2 = 2 * width
    features = [
        *_conv_bn_relu(1, width), *_conv_bn_relu(width, width), pool(2),
        *_conv_bn_relu(width, w2), *_conv_bn_relu(w2, w2), pool(2),
    ]  # fmt: skip
    return _classifier(features, w2, side, randomize_bn)


#: architecture -> (factory, the (conv, BN) pairs whose channels are removed)
ARCHS: dict[str, tuple[Any, list[tuple[str, str]]]] = {
    "pool": (make_cnn, [("0", "1"), ("4", "5")]),
    "allconv": (make_allconv, [("0", "1"), ("3", "4"), ("6", "7")]),
    "vgg": (make_vgg, [("0", "1"), ("3", "4"), ("7", "8"), ("10", "11")]),
}


def _hand_built(small: Any, width: int, arch: str = "pool") -> Any:
    """The architecture at ``width // 2``, the shrunk model's shape written by hand, with its
    weights.

    The peer for the claim that the rebuilt module adds no time of its own: the same layers
    as a user would write them for the smaller widths.
    """
    hand = ARCHS[arch][0](width // 2).eval()
    hand.load_state_dict(small.state_dict())  # same keys and shapes, or this raises
    return hand


#: torch.profiler op names -> the group the op-time line reports them in
_OP_GROUPS = {
    "max_pool": "max-pool",
    "convolution": "conv+linear",
    "addmm": "conv+linear",
    "batch_norm": "channel-wise",
    "relu": "channel-wise",
    "add_": "channel-wise",
}


def _op_times(model: Any, x: Any, calls: int = 16) -> dict[str, float]:
    """Self CPU time (seconds per call) of each op group of ``model(x)`` (eager, one thread).

    Three unprofiled warm-up calls first: the profiler's first calls carry allocator and
    dispatcher set-up that would otherwise land in the small "other" group.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        for _ in range(3):
            model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                model(x)
    out: dict[str, float] = dict.fromkeys(("max-pool", "conv+linear", "channel-wise", "other"), 0.0)
    for ev in prof.key_averages():
        group = next((g for k, g in _OP_GROUPS.items() if k in ev.key), "other")
        out[group] += ev.self_cpu_time_total * 1e-6 / calls
    return out


def _op_bound(dense: Any, small: Any, x: Any) -> dict[str, Any]:
    """Where the eager time goes, op group by op group.

    Each op group's share of the dense model's time and its own dense/shrunk time ratio. A
    max-pool's (and batch norm's, ReLU's) work is its channels, which halve, whatever the
    MACs do; and torch's conv kernels need not speed up by the MAC ratio either. The whole
    speed-up is ``1 / sum(share_g / speedup_g)`` (the measured one, up to profiler
    overhead), printed so the gap to the MAC ratio is seen op by op.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        td, ts = _op_times(dense, x), _op_times(small, x)
    finally:
        torch.set_num_threads(threads)
    total = sum(td.values())
    return {g: (td[g] / total, td[g] / ts[g] if ts[g] > 0 else float("inf")) for g in td}


def _fold(model: Any, x: Any) -> Any:
    import netstruct as ns

    return ns.to_torch(ns.from_torch(model, x[:2], fold_batchnorm=True))


def measure(width: int, rounds: int = 24, arch: str = "pool") -> dict[str, Any]:
    """Speed-ups of every variant at ``width`` (see the module docstring)."""
    import torch

    import netstruct as ns

    torch.manual_seed(0)
    factory, layers = ARCHS[arch]
    dense = factory(width).eval()
    x = torch.randn(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    _, small = run_netstruct(dense, x, layers, RATIO)
    dense = ns.to_torch(ns.from_torch(dense, x[:2]))  # both sides rebuilt by netstruct
    out = measure_pair(dense, small, x, rounds)
    hand = _hand_built(small, width, arch)
    th = _alternated({"eager": (hand, small)}, x, rounds)["eager"]  # "dense": the hand-built
    out["width"] = width
    out["vs_hand_min"] = min(th["shrunk"]) / min(th["dense"])
    out["vs_hand_med"] = statistics.median(th["shrunk"]) / statistics.median(th["dense"])
    out["eager_ops"] = _op_bound(dense, small, x)
    return out


def _alternated(
    pairs: dict[str, tuple[Any, Any]], x: Any, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Each variant's alternated timings on one torch thread, the variants alternating in
    three slices of the rounds."""
    import torch

    times: dict[str, dict[str, list[float]]] = {v: {"dense": [], "shrunk": []} for v in pairs}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(3):
            for v, (d, s) in pairs.items():
                t = _time_pair(d, s, x, max(1, rounds // 3), v)
                for k in t:
                    times[v][k] += t[k]
    finally:
        torch.set_num_threads(threads)
    return times


def measure_pair(dense: Any, small: Any, x: Any, rounds: int = 24) -> dict[str, Any]:
    """Every variant's speed-up of ``small`` over ``dense`` on the batch ``x``, with the MAC
    ratio (``torch_pruning``'s count, as in ``bench_torch_pruning.py``).

    ``dense`` and ``small`` are eval-mode models of one architecture (the shrunk one from
    ``ns.to_torch(..., shrink=True)``); the folded variants export and rebuild both with
    ``fold_batchnorm=True``.
    """
    import torch
    import torch_pruning as tp

    macs_d, _ = tp.utils.count_ops_and_params(dense, x[:1])
    macs_s, _ = tp.utils.count_ops_and_params(small, x[:1])
    fd, fs = _fold(dense, x), _fold(small, x)
    fmacs_d, _ = tp.utils.count_ops_and_params(fd, x[:1])
    fmacs_s, _ = tp.utils.count_ops_and_params(fs, x[:1])
    with torch.no_grad():
        err = max(float((fd(x) - dense(x)).abs().max()), float((fs(x) - small(x)).abs().max()))
    pairs = {v: (dense, small) if v == "eager" else (fd, fs) for v in VARIANTS}
    times = _alternated(pairs, x, rounds)
    mac_ratio = macs_d / macs_s
    out: dict[str, Any] = {
        "mac_ratio": mac_ratio,
        "folded_mac_ratio": fmacs_d / fmacs_s,
        "fold_error": err,
    }
    for v, t in times.items():
        sp_min = min(t["dense"]) / min(t["shrunk"])
        sp_med = statistics.median(t["dense"]) / statistics.median(t["shrunk"])
        out[v] = {
            "dense_ms": 1e3 * min(t["dense"]),
            "shrunk_ms": 1e3 * min(t["shrunk"]),
            "speedup_min": sp_min,
            "speedup_med": sp_med,
            "of_mac_min": sp_min / mac_ratio,
            "of_mac_med": sp_med / mac_ratio,
        }
    return out


def main(
    widths: tuple[int, ...] = (16, 32, 64, 128), archs: tuple[str, ...] = tuple(ARCHS)
) -> list[dict[str, Any]]:
    fixed = all(os.environ.get(k) == v for k, v in _MALLOC.items())
    malloc = "fixed mmap/trim thresholds" if fixed else "system"
    rows = []
    for arch in archs:
        print(
            f"\nShrunk CNN inference ({arch}: {ARCHS[arch][0].__doc__.splitlines()[0].rstrip('.')}), "
            f"{RATIO:.0%} of every conv's channels removed, batch {BATCH}, CPU 1 thread, "
            f"malloc: {malloc} (goal: speed-up >= 0.8 x MAC ratio)"
        )
        print(HEADER)
        for w in widths:
            r = measure(w, rounds=24 if w <= 64 else 12, arch=arch)
            r["arch"] = arch
            rows.append(r)
            _print_rows(r, w)
    return rows


HEADER = (
    f"{'width':>8} {'variant':<14}{'dense ms':>9}{'shrunk ms':>10}{'sp min':>8}"
    f"{'sp med':>8}{'MACx':>6}{'/MAC min':>9}{'/MAC med':>9}  goal"
)


def print_variants(r: dict[str, Any], label: str) -> None:
    """One line per variant of a :func:`measure_pair` result (under :data:`HEADER`)."""
    for v in VARIANTS:
        s = r[v]
        ok = "met" if min(s["of_mac_min"], s["of_mac_med"]) >= 0.8 else "not met"
        print(
            f"{label:>8} {v:<14}{s['dense_ms']:>9.2f}{s['shrunk_ms']:>10.2f}"
            f"{s['speedup_min']:>8.2f}{s['speedup_med']:>8.2f}{r['mac_ratio']:>6.2f}"
            f"{s['of_mac_min']:>9.2f}{s['of_mac_med']:>9.2f}  {ok}"
        )


def _print_rows(r: dict[str, Any], w: int) -> None:
    print_variants(r, f"{w}/{2 * w}")
    print(
        f"{'':>8} (MAC ratio of the folded models {r['folded_mac_ratio']:.2f}; folded vs "
        f"unfolded outputs differ by {r['fold_error']:.1e}; eager shrunk / the same shape "
        f"built by hand: {r['vs_hand_min']:.2f} min, {r['vs_hand_med']:.2f} median)"
    )
    ops = {g: v for g, v in r["eager_ops"].items() if v[0] > 0}
    parts = ", ".join(
        f"{g} {share:.0%} of the dense time, {sp:.2f}x faster shrunk"
        for g, (share, sp) in ops.items()
    )
    whole = 1.0 / sum(share / sp for share, sp in ops.values())
    print(
        f"{'':>8} (eager, op by op, torch.profiler: {parts}; together {whole:.2f}x = "
        f"{whole / r['mac_ratio']:.2f} x MAC ratio: an op group faster by less than the MAC "
        "ratio is where the gap lies)"
    )


def test_shrunk_inference_table():
    import pytest

    pytest.importorskip("torch_pruning")
    main((16, 64), ("pool",))
    main((16,), ("allconv", "vgg"))


if __name__ == "__main__":
    args = sys.argv[1:]
    system = "--system-malloc" in args
    if not system and any(os.environ.get(k) != v for k, v in _MALLOC.items()):
        # glibc reads these at start-up: run again with them set
        os.execvpe(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_MALLOC})
    main(tuple(int(a) for a in args if a != "--system-malloc") or (16, 32, 64, 128))

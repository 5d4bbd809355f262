"""Export of Hugging Face models (tiny configs, or BERT-base) against ``torch.export``.

``torch.fx`` cannot trace these models, so :func:`netstruct.from_torch` records one run (the
tape tracer) and builds the graph. The peer is ``torch.export.export(strict=False)`` of the same
model on the same input, the other way to capture such a model (it yields ATen operations
and no graph). Both are timed in one process, alternating, ``--rounds`` times; the table
gives min and median seconds and the ratio netstruct / peer (< 1: netstruct faster).
``from_torch`` is timed with ``check=False`` (capture + graph) and with the default
``check=True`` (plus the rebuild and the round-trip comparison).

Run: ``python benchmarks/bench_hf_export.py [--base] [--rounds 5]`` (``--base``: a
BERT-base-sized ``BertModel``, ~110 M parameters, random weights, sequence of 16 tokens).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import netstruct as ns


def _models(base: bool):
    import tests.integration.test_hf_models as corpus

    if base:
        import transformers as tf

        torch.manual_seed(0)
        m = tf.BertModel(tf.BertConfig()).eval()
        return {"bert-base": (m, torch.randint(0, 30522, (1, 16)))}
    return {name: corpus._build(name) for name in sorted(corpus.MODELS)}


def _time(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, (m, x) in _models(a.base).items():
        args = x if isinstance(x, tuple) else (x,)
        peer = _time(lambda m=m, args=args: torch.export.export(m, args, strict=False), a.rounds)
        fast = _time(lambda m=m, x=x: ns.from_torch(m, x, check=False), a.rounds)
        full = _time(lambda m=m, x=x: ns.from_torch(m, x), a.rounds)
        rows.append((name, fast, full, peer))
    print(
        f"{'model':14s} {'ns check=False':>22s} {'ns check=True':>22s} {'torch.export':>22s}"
        f" {'ratio min/med (check=False)':>28s}"
    )
    for name, fast, full, peer in rows:

        def mm(v):
            return f"{min(v):.3f}/{statistics.median(v):.3f} s"

        r = (min(fast) / min(peer), statistics.median(fast) / statistics.median(peer))
        print(
            f"{name:14s} {mm(fast):>22s} {mm(full):>22s} {mm(peer):>22s} {r[0]:>13.2f}/{r[1]:.2f}"
        )


if __name__ == "__main__":
    main()

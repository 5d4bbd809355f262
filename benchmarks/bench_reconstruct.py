"""Accuracy recovered by ``ns.reconstruct`` after removing CNN channels, without fine-tuning.

A CNN with BatchNorm (two conv stages, a linear head) is trained, then a fraction of each conv
layer's channels (smallest kernel L1 norm, each with its norm channel) is removed. The table
gives the test accuracy of the original, of plain removal and of removal followed by
reconstruction (ridge re-fit of the next layers on calibration images), and the share of the
lost accuracy that reconstruction recovers: ``(rec - cut) / (orig - cut)``.

Goal (issue 12): >= 50 % recovered at 50 % of the channels removed.

Run: ``python benchmarks/bench_reconstruct.py`` (digits, ~20 s) or
``python benchmarks/bench_reconstruct.py --dataset fashion-mnist`` (full run, ~2 min);
``--arch vgg --width 32`` or ``--arch allconv --width 64`` for the larger CNNs (~3 min), and
``--speed`` for the 50 % shrunk model's inference speed-up against its MAC ratio.
Under pytest (``pytest benchmarks/bench_reconstruct.py``) the digits curve is printed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def make_cnn(side: int, width: int = 16, arch: str = "pool"):
    """The ``arch`` CNN of ``bench_shrunk_inference.py`` for ``side`` x ``side`` images
    (``side`` divisible by 4), with untrained (identity) norms.

    ``pool``: conv-BN-ReLU-pool x 2, then a linear head; ``vgg``: two convs per stage;
    ``allconv``: strided convs instead of pooling.
    """
    return _archs()[arch][0](width, side, randomize_bn=False)


def _archs():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_shrunk_inference import ARCHS

    return ARCHS


def load(dataset: str, n_train: int | None, seed: int = 0):
    """``(X_train, y_train, X_test, y_test)`` as image tensors ``(n, 1, side, side)``."""
    import torch

    import netstruct as ns

    ds = ns.datasets.load_dataset(dataset)
    if n_train is not None:
        ds = ds.subsample(n_train, None, seed=seed)
    side = int(round(np.sqrt(ds.n_features)))

    def img(X):
        return torch.tensor(np.asarray(X, dtype=np.float32).reshape(-1, 1, side, side))

    return img(ds.X_train), torch.tensor(ds.y_train), img(ds.X_test), torch.tensor(ds.y_test)


def train(model, X, y, *, epochs: int, seed: int = 0, batch: int = 128, lr: float = 3e-3):
    """Adam on cross-entropy, seeded."""
    import torch

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(X.shape[0], generator=g)
        for i in range(0, X.shape[0], batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def accuracy(model, X, y) -> float:
    import torch

    with torch.no_grad():
        pred = torch.cat([model(X[i : i + 1024]).argmax(1) for i in range(0, X.shape[0], 1024)])
    return float((pred == y).float().mean())


def channel_plan(G, fraction: float, pairs=(("0", "1"), ("4", "5"))):
    """Remove ``fraction`` of each conv's channels (smallest kernel L1), each with its norm
    (``pairs``: the ``(conv, norm)`` module names)."""
    from netstruct.pruning import PruningPlan

    nodes = G.nodes()
    drop = np.zeros(G.n_nodes, dtype=bool)
    for conv, norm in pairs:
        b = G.block(f"{conv}.weight")
        score = np.abs(b.kernel).reshape(b.kernel.shape[0], -1).sum(1)
        k = int(round(fraction * score.size))
        gone = np.argsort(score, kind="stable")[:k]
        for mod in (conv, norm):
            drop |= ((nodes.module == mod) & nodes["index"].isin(gone)).to_numpy()
    return PruningPlan.for_graph(G).remove_units(
        G, drop, reason=f"{fraction:.0%} channels by L1", meta={"fraction": fraction}
    )


def recovery_curve(
    dataset: str = "digits",
    *,
    n_train: int | None = None,
    epochs: int = 12,
    n_calib: int = 512,
    ridge: float = 1e-3,
    fractions=FRACTIONS,
    seed: int = 0,
    arch: str = "pool",
    width: int = 16,
    speed_at: float | None = None,
):
    """Rows ``{fraction, acc_orig, acc_cut, acc_rec, recovered, params, seconds}``.

    At the fraction ``speed_at`` the row also holds ``speed``: the shrunk, reconstructed
    model's inference speed-ups over the trained one on 64 test images
    (``bench_shrunk_inference.measure_pair``: every variant, with the MAC ratio).
    """
    import torch

    import netstruct as ns

    torch.manual_seed(seed)
    Xtr, ytr, Xte, yte = load(dataset, n_train, seed)
    model = train(make_cnn(Xtr.shape[-1], width, arch), Xtr, ytr, epochs=epochs, seed=seed)
    pairs = _archs()[arch][1]
    G = ns.from_torch(model, Xtr[:2])
    calib = Xtr[
        torch.randperm(Xtr.shape[0], generator=torch.Generator().manual_seed(seed + 1))[:n_calib]
    ]
    a0 = accuracy(model, Xte, yte)
    rows = []
    for f in fractions:
        plan = channel_plan(G, f, pairs)
        H = plan.apply(G)
        t = time.perf_counter()
        R = ns.reconstruct(H, G, calib, ridge=ridge, batch_size=256)
        dt = time.perf_counter() - t
        a_cut = accuracy(ns.to_torch(H), Xte, yte)
        small = ns.to_torch(R, shrink=True)
        a_rec = accuracy(small, Xte, yte)
        lost = a0 - a_cut
        rows.append({
            "fraction": f, "acc_orig": a0, "acc_cut": a_cut, "acc_rec": a_rec,
            "recovered": (a_rec - a_cut) / lost if lost > 0 else float("nan"),
            "params": sum(p.numel() for p in small.parameters()), "seconds": dt,
        })  # fmt: skip
        if speed_at is not None and np.isclose(f, speed_at):
            from bench_shrunk_inference import measure_pair

            rows[-1]["speed"] = measure_pair(ns.to_torch(G), small.eval(), Xte[:64])
            rows[-1]["speed"]["width"] = width
    return rows


def _share(recovered: float) -> str:
    """The recovered share, or ``no loss`` where plain removal lost no accuracy."""
    return f"{recovered:.1%}" if np.isfinite(recovered) else "no loss"


def print_table(rows, title: str) -> None:
    print(f"\n{title}")
    print("removed  acc_orig  acc_cut  acc_rec  recovered  params  reconstruct_s")
    for r in rows:
        print(
            f"{r['fraction']:6.0%}  {r['acc_orig']:8.4f}  {r['acc_cut']:7.4f}  {r['acc_rec']:7.4f}  "
            f"{_share(r['recovered']):>9}  {r['params']:6d}  {r['seconds']:8.3f}"
        )


def test_recovery_curve_digits():
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    rows = recovery_curve("digits")
    print_table(rows, "digits (8x8), CNN 16/32 channels + BN, calibration 512 images, ridge 1e-3")
    half = next(r for r in rows if r["fraction"] == 0.5)
    assert np.isfinite(half["acc_rec"])


def print_speed(rows) -> None:
    """The inference speed-up lines of the row that has them (``speed_at``)."""
    from bench_shrunk_inference import HEADER, print_variants

    for r in rows:
        if "speed" in r:
            print(
                f"\nShrunk, reconstructed model ({r['fraction']:.0%} removed) against the trained "
                "one, 64 test images, CPU 1 thread (goal: speed-up >= 0.8 x MAC ratio)"
            )
            print(HEADER)
            w = r["speed"]["width"]
            print_variants(r["speed"], f"{w}/{2 * w}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits", choices=["digits", "fashion-mnist"])
    p.add_argument("--arch", default="pool", choices=sorted(_archs()))
    p.add_argument("--width", type=int, default=16, help="first stage's channels (16)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-calib", type=int, default=None)
    p.add_argument("--ridge", type=float, default=1e-3)
    p.add_argument(
        "--speed", action="store_true", help="time the 50 %% shrunk model (needs torch-pruning)"
    )
    a = p.parse_args(argv)
    fm = a.dataset == "fashion-mnist"
    n_train = a.n_train if a.n_train is not None else (20000 if fm else None)
    epochs = a.epochs if a.epochs is not None else (2 if fm else 12)
    n_calib = a.n_calib if a.n_calib is not None else (2048 if fm else 512)
    rows = recovery_curve(
        a.dataset, n_train=n_train, epochs=epochs, n_calib=n_calib, ridge=a.ridge,
        arch=a.arch, width=a.width, speed_at=0.5 if a.speed else None,
    )  # fmt: skip
    print_table(
        rows,
        f"{a.dataset}: {a.arch} CNN {a.width}/{2 * a.width} channels + BN, {n_train or 'all'} "
        f"training images x {epochs} epochs, calibration {n_calib} images, ridge {a.ridge:g}",
    )
    print_speed(rows)


if __name__ == "__main__":
    main()

"""The ``netstruct`` command: ``run`` (the main job), ``export`` and ``info``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._version import __version__
from .exceptions import InvalidParameterError, NetstructError

__all__ = ["main"]


def _cmd_run(args: argparse.Namespace) -> int:
    from .report.job import STEPS, JobOptions, run_job

    steps = tuple(s for s in (args.steps or "").split(",") if s)
    opts = JobOptions(
        out=args.out,
        dataset=args.dataset,
        data=args.data,
        model=args.model,
        steps=steps,
        epochs=args.epochs,
        hidden=args.hidden,
        seed=args.seed,
        quick=args.quick,
        progress=not args.no_progress,
        runs=args.runs,
        scheduler=args.scheduler,
        factory=args.factory,
    )
    report = run_job(opts)
    print(f"report: {report}")
    print(f"steps available: {', '.join(STEPS)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .convert.from_torch import from_torch
    from .io._atomic import check_in_path, check_not_input, check_out_path
    from .io.export import write_edgelist_csv, write_gexf, write_graphml
    from .io.model import load_user_model
    from .io.native import save

    src = check_in_path(args.model, "netstruct export", name="model")
    outs = {
        "--output": args.output,
        "--graphml": args.graphml,
        "--gexf": args.gexf,
        "--csv": args.csv,
    }
    paths: dict[str, Path] = {}
    for opt, path in outs.items():
        if path is None:
            continue
        p = check_out_path(path, "netstruct export", name=opt)
        check_not_input(p, [src], "netstruct export", opt)
        if p.resolve() in paths.values():
            raise InvalidParameterError(
                f"netstruct export: {opt} names the same file as another output ({str(p)!r})."
            )
        paths[opt] = p.resolve()
    G = from_torch(load_user_model(src, args.factory))
    out = Path(args.output)
    save(G, out)
    written = [out]
    if args.graphml:
        write_graphml(G, args.graphml)
        written.append(Path(args.graphml))
    if args.gexf:
        write_gexf(G, args.gexf)
        written.append(Path(args.gexf))
    if args.csv:
        write_edgelist_csv(G, args.csv)
        written.append(Path(args.csv))
    print(G)
    for p in written:
        print(f"wrote {p}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import pandas as pd

    from .io.native import load

    G = load(args.graph)
    print(G)
    prov = dict(G.provenance)
    for k in ("model_class", "netstruct_version", "torch_version", "dtype"):
        if k in prov:
            print(f"{k}: {prov[k]}")
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(G.summary().to_string(index=False))
        print(G.nodes()["kind"].value_counts().to_string())
    return 0


def _cmd_warmup(args: argparse.Namespace) -> int:
    from .warmup import warmup

    for name, seconds in warmup(args.modules or None).items():
        print(f"{name}: {seconds:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``netstruct`` command."""
    p = argparse.ArgumentParser(prog="netstruct", description="Neural networks as signed graphs.")
    p.add_argument("--version", action="version", version=f"netstruct {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "run", help="train, export, analyse, prune and write a report (the main job)"
    )
    r.add_argument(
        "--out", default="netstruct-report", help="output folder (default: netstruct-report)"
    )
    r.add_argument(
        "--dataset",
        default="digits",
        choices=["digits", "breast_cancer", "wine", "iris", "fashion-mnist"],
        help="embedded dataset (default: digits); fashion-mnist needs Debian's dataset-fashion-mnist",
    )
    r.add_argument("--data", help="your data: .npz with X_train, y_train, X_test, y_test")
    r.add_argument(
        "--model",
        help="your model: a .nsm file written by netstruct.save_model, or a "
        "torch.save'd state_dict (.pt) with --factory",
    )
    r.add_argument(
        "--factory",
        help="for a state_dict --model: 'module:function' that builds the "
        "untrained model (imported from the current folder)",
    )
    r.add_argument(
        "--steps",
        help="comma-separated steps to run, from: train, export, nulls, probes, lattice, "
        "causal, netsci, prune (default: all; train and export are added when a step needs them)",
    )
    r.add_argument(
        "--epochs", type=int, default=10, help="training epochs (default: 10; halved with --quick)"
    )
    r.add_argument("--hidden", type=int, default=64, help="MLP hidden width (default: 64)")
    r.add_argument(
        "--seed", type=int, default=0, help="root seed of training and probes (default: 0)"
    )
    r.add_argument(
        "--runs",
        type=int,
        default=10,
        help="trained runs (seeds) per task for the probe sweeps and complexity gaps (default: 10; 3 with --quick)",
    )
    r.add_argument(
        "--scheduler",
        default="local",
        help="where probe sweeps and training runs go: 'local' (default: a Dask cluster on this "
        "machine), 'serial' (this process) or a Dask scheduler address such as tcp://10.0.0.5:8786",
    )
    r.add_argument("--quick", action="store_true", help="fewer epochs, runs, levels and samples")
    r.add_argument("--no-progress", action="store_true", help="hide progress bars")
    r.set_defaults(func=_cmd_run)

    e = sub.add_parser("export", help="a saved model (.nsm) -> graph files")
    e.add_argument(
        "model",
        help="model file written by netstruct.save_model, or a torch.save'd "
        "state_dict (.pt) with --factory",
    )
    e.add_argument(
        "--factory", help="for a state_dict: 'module:function' that builds the untrained model"
    )
    e.add_argument("-o", "--output", required=True, help="native graph file to write (.nsg)")
    e.add_argument("--graphml", help="also write GraphML here")
    e.add_argument("--gexf", help="also write GEXF here")
    e.add_argument("--csv", help="also write a CSV edge list here")
    e.set_defaults(func=_cmd_export)

    i = sub.add_parser("info", help="summary of a graph file (.nsg)")
    i.add_argument("graph")
    i.set_defaults(func=_cmd_info)

    w = sub.add_parser(
        "warmup",
        help="compile the numba kernels into the on-disk cache (done by scripts/setup.sh), so "
        "first calls load them instead of compiling",
    )
    w.add_argument(
        "modules", nargs="*", help="kernel modules (randomize, causal, lattice; default: all)"
    )
    w.set_defaults(func=_cmd_warmup)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``netstruct`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (NetstructError, FileNotFoundError) as exc:
        print(f"netstruct {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, a full disk, a path below a file: the user's to fix
        where = f" ({exc.filename!r})" if getattr(exc, "filename", None) else ""
        print(
            f"netstruct {args.command}: error: {exc.strerror or exc}{where}; check the path and its "
            "permissions.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"netstruct {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

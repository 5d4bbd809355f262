"""``netstruct run``: train, export, analyse, prune, re-import, and write one report folder.

The job is a list of steps; each takes the shared :class:`JobContext` and returns a
:class:`~netstruct.report.html.Section` (prose, tables, figures, numbers). Options choose the
steps. Every number in the report is also written to ``numbers.json`` and CSV files.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import datasets
from .._version import __version__
from ..exceptions import (
    BackendUnavailableError,
    DatasetNotFoundError,
    InvalidParameterError,
)
from ..io._atomic import atomic_write
from .html import Section, render_report

__all__ = ["JobOptions", "JobContext", "run_job", "prepare", "resolve_steps", "STEPS", "NEEDS"]

logger = logging.getLogger(__name__)


@dataclass
class JobOptions:
    """Settings of the main job (the CLI's flags)."""

    out: str = "netstruct-report"
    dataset: str = "digits"
    data: str | None = None  # user's .npz with X_train, y_train, X_test, y_test
    model: str | None = None  # user's .nsm model file, or a torch.save'd state_dict with factory
    factory: str | None = None  # "module:function" building the model of a state_dict
    steps: tuple[str, ...] = ()
    epochs: int = 10
    hidden: int = 64
    seed: int = 0
    quick: bool = False
    progress: bool = True
    runs: int = 10  # trained runs (seeds) per task for the probe sweeps and the complexity gap
    scheduler: str = (
        "local"  # "local": a Dask cluster on this machine; "serial": in this process; or an address
    )


@dataclass
class JobContext:
    """State shared by the steps."""

    options: JobOptions
    out: Path
    dataset: Any = None
    models: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict
    )
    graphs: dict[str, Any] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Training epochs of the job's models (halved, at least 2, with ``--quick``)."""
        o = self.options
        return max(2, o.epochs // 2) if o.quick else o.epochs

    @property
    def scheduler(self) -> str | None:
        """The ``scheduler`` argument for :mod:`netstruct.probes` (sweeps, training runs).

        ``None`` (the shared local Dask cluster) for ``"local"``, ``"serial"`` for this process,
        or a running cluster's address.
        """
        s = self.options.scheduler
        return None if s == "local" else s

    def figure(self, section: Section, fig: Any, stem: str, caption: str) -> None:
        """Save a figure as PDF/SVG under ``figures/`` and embed its PNG in the section.

        Every format is cropped to the drawn content (``bbox_inches="tight"``), so labels and
        legends placed outside the axes are never cut off.
        """
        import io

        import matplotlib.pyplot as plt

        for fmt in ("pdf", "svg"):
            with atomic_write(self.out / "figures" / f"{stem}.{fmt}", "wb") as fh:
                fig.savefig(fh, format=fmt, bbox_inches="tight", pad_inches=0.03)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150, bbox_inches="tight", pad_inches=0.03)
        section.figures.append((caption, buf.getvalue(), stem))
        plt.close(fig)

    def table(
        self,
        section: Section,
        df: pd.DataFrame,
        stem: str,
        caption: str,
        *,
        collapsed: bool = False,
    ) -> None:
        """Add a table to the section and write it as ``tables/<stem>.csv``.

        ``collapsed=True`` renders it folded (``<details>``) in the HTML, for long tables.
        """
        with atomic_write(
            self.out / "tables" / f"{stem}.csv", "w", encoding="utf-8", newline=""
        ) as fh:
            df.to_csv(fh, index=False)
        section.tables.append((caption, df))
        if collapsed:
            section.collapsed.add(caption)


# ------------------------------------------------------------------------------ set-up
_FUNC = "netstruct run"


def _load_user_data(path: str) -> datasets.Dataset:
    """Read and check the user's ``.npz`` (shapes, labels, finite values) before any work."""
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(
            f"--data: no file at {path!r}; give an .npz with X_train, y_train, X_test, y_test."
        )
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = {"X_train", "y_train", "X_test", "y_test"} - set(z.files)
            if missing:
                raise InvalidParameterError(
                    f"--data: {path!r} lacks arrays {sorted(missing)} (needs X_train, y_train, X_test, y_test)."
                )
            arrs = {k: z[k] for k in ("X_train", "y_train", "X_test", "y_test")}
    except (OSError, ValueError) as exc:
        if isinstance(exc, InvalidParameterError):
            raise
        raise InvalidParameterError(
            f"--data: {path!r} is not a readable .npz without pickled objects ({exc})."
        ) from None
    for split in ("train", "test"):
        X, y = arrs[f"X_{split}"], arrs[f"y_{split}"]
        if X.ndim < 2 or X.shape[0] == 0 or not np.issubdtype(X.dtype, np.number):
            raise InvalidParameterError(
                f"--data: X_{split} must be a non-empty numeric array of shape "
                f"(n_samples, n_features) or (n_samples, steps, features); got shape {X.shape}, dtype {X.dtype}."
            )
        if not np.isfinite(X).all():
            raise InvalidParameterError(f"--data: X_{split} contains NaN or infinite values.")
        if y.ndim != 1 or len(y) != len(X):
            raise InvalidParameterError(
                f"--data: y_{split} must be 1-D with one label per row of X_{split} "
                f"({len(X)}); got shape {y.shape}."
            )
        if (
            not np.issubdtype(y.dtype, np.number)
            or not np.array_equal(y, np.round(y))
            or y.min() < 0
        ):
            raise InvalidParameterError(
                f"--data: y_{split} must hold integer class labels 0, 1, 2, ...; got dtype {y.dtype}."
            )
    if arrs["X_train"].shape[1:] != arrs["X_test"].shape[1:]:
        raise InvalidParameterError(
            f"--data: X_train rows have shape {arrs['X_train'].shape[1:]} but X_test rows "
            f"{arrs['X_test'].shape[1:]}; they must match."
        )
    n_classes = int(max(arrs["y_train"].max(), arrs["y_test"].max())) + 1
    if n_classes < 2:
        raise InvalidParameterError(
            f"--data: the labels of {path!r} name a single class; a classifier needs at least 2."
        )
    return datasets.Dataset(
        p.stem,
        arrs["X_train"].astype(np.float32),
        arrs["y_train"].astype(np.int64),
        arrs["X_test"].astype(np.float32),
        arrs["y_test"].astype(np.int64),
        tuple(str(i) for i in range(n_classes)),
    )


def _check_options(options: JobOptions) -> None:
    """Check the scalar options (each error names its flag)."""
    from ..utils.validation import check_scalar

    check_scalar(options.epochs, "epochs", _FUNC, kind=int, min_value=1)
    check_scalar(options.hidden, "hidden", _FUNC, kind=int, min_value=1)
    check_scalar(options.seed, "seed", _FUNC, kind=int, min_value=0)
    check_scalar(options.runs, "runs", _FUNC, kind=int, min_value=1)
    unknown = set(options.steps) - set(STEPS)
    if unknown:
        raise InvalidParameterError(
            f"--steps: unknown step(s) {sorted(unknown)}; choose from {list(STEPS)}."
        )
    if options.scheduler != "local":  # "local" is the job's name for the shared local cluster
        from ..utils.cluster import check_scheduler

        check_scheduler(options.scheduler, _FUNC)


def _model_inputs(model: Any, G: Any, ds: datasets.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The train/test inputs the user's model takes: flat rows, or sequences for recurrent models."""
    recurrent = any(b.delay > 0 for b in G.blocks)
    if not recurrent:
        return ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)
    if ds.X_train.ndim == 3:
        return ds.X_train, ds.X_test
    if ds.image_shape is not None:
        return datasets.as_sequences(ds.X_train, ds.image_shape), datasets.as_sequences(
            ds.X_test, ds.image_shape
        )
    raise InvalidParameterError(
        f"--model: {type(model).__name__} is recurrent and needs sequences, but the data are flat rows of "
        f"{ds.n_features} features; give --data with X_train/X_test of shape (n_samples, steps, features)."
    )


def _check_user_model(
    model: Any, G: Any, ds: datasets.Dataset, path: str
) -> tuple[np.ndarray, np.ndarray]:
    """Run the user's model on two samples now, so a model that does not fit the data fails at once."""
    import torch

    Xtr, Xte = _model_inputs(model, G, ds)
    try:
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(Xte[:2], dtype=np.float32)))
    except Exception as exc:  # any torch shape error: say which files do not fit
        raise InvalidParameterError(
            f"--model: {path!r} cannot run on the data ({ds.name}: rows of shape {tuple(Xte.shape[1:])}): "
            f"{type(exc).__name__}: {exc}. Give --data that fits the model (X_train, y_train, X_test, y_test)."
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise InvalidParameterError(
            f"--model: {path!r} must return logits of shape (batch, n_classes); "
            f"got {getattr(out, 'shape', type(out).__name__)}."
        )
    if out.shape[1] < ds.n_classes:
        raise InvalidParameterError(
            f"--model: {path!r} has {out.shape[1]} outputs but the data ({ds.name}) "
            f"have {ds.n_classes} classes."
        )
    return Xtr, Xte


def _check_step_support(ctx: JobContext) -> None:
    """Steps the user asked for by name must support the user's model (checked before any work)."""
    if "user" not in ctx.models or not ctx.options.steps:
        return
    from .probes_step import probe_support

    if "probes" in ctx.options.steps:
        why = probe_support(ctx.graphs["user"])
        if why:
            raise InvalidParameterError(
                f"--steps probes: the probes need a feed-forward classifier; {why}. "
                "Drop 'probes' from --steps (the default run skips it for this model)."
            )


def prepare(options: JobOptions) -> JobContext:
    """Validate everything that can fail early (options, data, model file, output folder, steps).

    Parameters
    ----------
    options : JobOptions

    Returns
    -------
    JobContext
        With the dataset loaded, and the user's model (if any) loaded, exported and run once
        on the data; a scheduler address has been reached once.

    Raises
    ------
    InvalidParameterError
        Bad option, data file, or a model that does not fit the data or the chosen steps.
    DatasetNotFoundError, FileFormatError, UnsupportedModuleError
        Missing data, an unreadable model file, a model netstruct cannot export.
    """
    _check_options(options)
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"--out: {options.out!r} exists and is not a folder.")
    ctx = JobContext(options=options, out=out)
    if options.data is not None:
        ctx.dataset = _load_user_data(options.data)
    else:
        ds = datasets.load_dataset(options.dataset)
        if options.dataset == "fashion-mnist":
            n = (2000, 1000) if options.quick else (12000, 2000)
            ds = ds.subsample(*n, seed=options.seed)
        ctx.dataset = ds
    if options.model is not None:
        from ..convert.from_torch import from_torch
        from ..io.model import load_user_model

        model = load_user_model(options.model, options.factory)
        G = from_torch(model)  # fails now, not after minutes, if the model cannot be exported
        Xtr, Xte = _check_user_model(model, G, ctx.dataset, options.model)
        ctx.models["user"] = model
        ctx.graphs["user"] = G
        ctx.inputs["user"] = (Xtr, ctx.dataset.y_train, Xte, ctx.dataset.y_test)
        _check_step_support(ctx)
    if options.scheduler not in ("local", "serial"):
        from ..utils.cluster import get_client

        try:
            get_client(options.scheduler, func=_FUNC).close()  # unreachable scheduler: fail now
        except BackendUnavailableError as exc:
            raise BackendUnavailableError(
                f"--scheduler: {exc} (On the command line: leave --scheduler out for a "
                "local Dask cluster, or pass --scheduler serial to run in this process.)"
            ) from None
    _clear_previous_run(out)
    for sub in ("", "figures", "tables", "graphs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    return ctx


_OUTPUT_FILES = ("report.html", "numbers.json")
_OUTPUT_DIRS = ("figures", "tables", "graphs")


def _clear_previous_run(out: Path) -> None:
    """Remove the files of an earlier run in ``out``, so the report never mixes two runs.

    Only a folder that an earlier run marked as its own (a ``numbers.json`` written by
    netstruct) is cleared, and only the files the job writes; a folder holding other files in
    ``figures/``, ``tables/`` or ``graphs/`` is refused.
    """
    import shutil

    if not out.is_dir():
        return
    marker = out / "numbers.json"
    ours = False
    if marker.is_file():
        try:
            ours = "netstruct_version" in json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            ours = False
    busy = [d for d in _OUTPUT_DIRS if (out / d).is_dir() and any((out / d).iterdir())]
    if not ours:
        if busy:
            raise InvalidParameterError(
                f"--out: {str(out)!r} already holds files in {busy} that no netstruct run wrote; "
                "choose an empty or new folder so the report does not mix them with this run."
            )
        return
    for d in _OUTPUT_DIRS:
        if (out / d).is_dir():
            shutil.rmtree(out / d)
    for f in _OUTPUT_FILES:
        (out / f).unlink(missing_ok=True)


# ------------------------------------------------------------------------------ steps
def step_train(ctx: JobContext) -> Section:
    """Train an MLP and an LSTM classifier on the dataset (or take the user's model)."""
    from ..training import evaluate, mlp, recurrent_classifier, train

    ds, o = ctx.dataset, ctx.options
    sec = Section("train", "Models")
    Xtr, Xte = ds.X_train.reshape(len(ds.X_train), -1), ds.X_test.reshape(len(ds.X_test), -1)
    rows = []
    if "user" in ctx.models:
        m = ctx.models["user"]
        ctx.accuracy["user"] = evaluate(m, ctx.inputs["user"][2], ds.y_test)
        rows.append(
            {
                "model": "user",
                "architecture": type(m).__name__,
                "epochs": 0,
                "test accuracy (%)": 100 * ctx.accuracy["user"],
            }
        )
    else:
        epochs = ctx.epochs
        m = mlp([ds.n_features, o.hidden, ds.n_classes], seed=o.seed)
        t0 = time.perf_counter()
        hist = train(
            m,
            Xtr,
            ds.y_train,
            epochs=epochs,
            seed=o.seed,
            X_test=Xte,
            y_test=ds.y_test,
            progress=o.progress,
        )
        ctx.models["mlp"], ctx.inputs["mlp"] = m, (Xtr, ds.y_train, Xte, ds.y_test)
        ctx.accuracy["mlp"] = hist.test_accuracy[-1]
        rows.append(
            {
                "model": "mlp",
                "architecture": f"{ds.n_features}-{o.hidden}-{ds.n_classes} ReLU",
                "epochs": epochs,
                "test accuracy (%)": 100 * ctx.accuracy["mlp"],
                "seconds": time.perf_counter() - t0,
            }
        )
        if ds.image_shape is not None:
            Str, Ste = (
                datasets.as_sequences(Xtr, ds.image_shape),
                datasets.as_sequences(Xte, ds.image_shape),
            )
            r = recurrent_classifier("LSTM", ds.image_shape[1], 32, ds.n_classes, seed=o.seed)
            t0 = time.perf_counter()
            hist = train(
                r,
                Str,
                ds.y_train,
                epochs=epochs,
                seed=o.seed,
                X_test=Ste,
                y_test=ds.y_test,
                progress=o.progress,
            )
            ctx.models["lstm"], ctx.inputs["lstm"] = r, (Str, ds.y_train, Ste, ds.y_test)
            ctx.accuracy["lstm"] = hist.test_accuracy[-1]
            rows.append(
                {
                    "model": "lstm",
                    "architecture": f"LSTM({ds.image_shape[1]}→32, rows as steps) + Linear",
                    "epochs": epochs,
                    "test accuracy (%)": 100 * ctx.accuracy["lstm"],
                    "seconds": time.perf_counter() - t0,
                }
            )
    data = (
        f"Dataset <b>{ds.name}</b>: {len(ds.y_train)} training and {len(ds.y_test)} test samples, "
        f"{ds.n_features} features, {ds.n_classes} classes."
    )
    if "user" in ctx.models:  # the user's own model: evaluated as given, never trained here
        sec.paragraphs.append(
            f"{data} Your model (<code>{o.model}</code>) is used as you supplied it; netstruct did "
            "not train it."
        )
    else:
        sec.paragraphs.append(f"{data} Adam (lr 0.01), batch 128, cosine schedule, seed {o.seed}.")
    df = pd.DataFrame(rows)
    ctx.table(sec, df, "models", "Your model" if "user" in ctx.models else "Trained models")
    sec.numbers = {"accuracy (%)": {k: 100 * v for k, v in ctx.accuracy.items()}}
    return sec


def step_export(ctx: JobContext) -> Section:
    """Export each model to a signed graph and write native, GraphML, GEXF and CSV files."""
    from ..convert.from_torch import from_torch
    from ..figures import plot_weight_histograms, plot_weight_matrix
    from ..io.export import write_edgelist_csv, write_gexf, write_graphml
    from ..io.native import save

    sec = Section("export", "Signed graphs")
    tables = []
    for name, m in ctx.models.items():
        Xte = ctx.inputs[name][2]
        G = from_torch(m, example_input=__import__("torch").from_numpy(Xte[:4]))
        ctx.graphs[name] = G
        gdir = ctx.out / "graphs"
        save(G, gdir / f"{name}.nsg")
        write_graphml(G, gdir / f"{name}.graphml")
        write_gexf(G, gdir / f"{name}.gexf")
        write_edgelist_csv(G, gdir / f"{name}_edges.csv", nodes_path=gdir / f"{name}_nodes.csv")
        s = G.summary()
        s.insert(0, "model", name)
        tables.append(s)
        ctx.figure(
            sec,
            plot_weight_histograms(G),
            f"{name}_weight_histograms",
            f"{name}: weight distribution per block",
        )
        big = max(range(len(G.blocks)), key=lambda i: G.blocks[i].weight.size)
        ctx.figure(
            sec,
            plot_weight_matrix(G, big),
            f"{name}_weights",
            f"{name}: signed weights of {G.blocks[big].name}",
        )
        sec.numbers[name] = {
            "nodes": G.n_nodes,
            "edges": G.n_edges,
            "positive_fraction": float((G.edge_arrays()["sign"] > 0).mean()),
        }
    sec.paragraphs.append(
        "Each weight parameter is one block of the graph (rows = targets, columns = sources); "
        "LSTM gate rows are separate nodes that belong to their unit. Files in <code>graphs/</code>: "
        "native <code>.nsg</code> (lossless), GraphML, GEXF and CSV edge/node lists."
    )
    ctx.table(sec, pd.concat(tables, ignore_index=True), "blocks", "Blocks of the exported graphs")
    return sec


def step_prune(ctx: JobContext) -> Section:
    """Prune by a magnitude query at several levels, re-import masked and shrunk, evaluate."""
    from ..convert.to_torch import to_torch
    from ..figures import plot_curves
    from ..pruning import prune, smallest
    from ..training import evaluate

    sec = Section("prune", "Pruning by graph query")
    levels = [0.0, 0.5, 0.7, 0.8, 0.9, 0.95] if not ctx.options.quick else [0.0, 0.5, 0.8, 0.95]
    rows = []
    for name, G in ctx.graphs.items():
        _, _, Xte, yte = ctx.inputs[name]
        for q in levels:
            # layer-wise magnitude pruning: the same fraction of every block, so no layer is emptied
            H = prune(G, edges=smallest("abs(weight)", fraction=q, per="layer")) if q > 0 else G
            masked, small = to_torch(H), to_torch(H, shrink=True)
            n_masked = sum(int(p.numel()) for p in masked.parameters())
            n_small = sum(int(p.numel()) for p in small.parameters())
            rows.append(
                {
                    "model": name,
                    "removed fraction": q,
                    "edges": H.n_edges,
                    "accuracy masked (%)": 100 * evaluate(masked, Xte, yte),
                    "accuracy shrunk (%)": 100 * evaluate(small, Xte, yte),
                    "parameters (dense)": n_masked,
                    "parameters (shrunk)": n_small,
                }
            )
    df = pd.DataFrame(rows)
    ctx.table(sec, df, "pruning", "Magnitude pruning by query, re-imported and evaluated")
    curves = {
        str(m): (g["accuracy masked (%)"].to_numpy(), None, None) for m, g in df.groupby("model")
    }
    ctx.figure(
        sec,
        plot_curves(levels, curves, xlabel="fraction of edges removed", ylabel="test accuracy (%)"),
        "pruning_accuracy",
        "Test accuracy after removing the smallest-magnitude edges",
    )
    sec.paragraphs.append(
        'Query: <code>smallest("abs(weight)", fraction=q, per="layer")</code>, the q smallest-magnitude '
        "edges of every layer (layer-wise, so no layer is ever emptied). The pruned graph is "
        "re-imported as a torch module twice: masked (zeros in place) and shrunk (units without inputs or "
        "outputs physically removed, constants folded into biases); both give the same accuracy."
    )
    structured = _structured_rows(ctx)
    if structured:
        st = pd.DataFrame(structured)
        ctx.table(
            sec,
            st,
            "structured_pruning",
            "Structured pruning: whole units removed, shrunk, with and without reconstruction",
        )
        sec.paragraphs.append(
            "Structured pruning: <code>ns.structured_prune(G, amount=a)</code> removes the fraction "
            "a of every layer's coupled groups (a hidden unit with its gate rows; smallest L2 norm "
            "first), <code>ns.prune(G, plan, shrink=True)</code> makes the layers physically "
            "smaller, and <code>ns.reconstruct</code> re-fits the layers that lost inputs by ridge "
            "least squares on 512 training samples, without any fine-tuning."
        )
    sec.numbers = {"pruning": rows, "structured_pruning": structured}
    return sec


def _structured_rows(ctx: JobContext) -> list[dict[str, Any]]:
    """Structured pruning of each graph at a few amounts: shrunk and reconstructed accuracy."""
    from ..convert.to_torch import to_torch
    from ..exceptions import GraphError
    from ..pruning import prune
    from ..pruning.reconstruct import reconstruct
    from ..pruning.structured import structured_prune
    from ..training import evaluate

    amounts = [0.5] if ctx.options.quick else [0.25, 0.5, 0.75]
    rows = []
    for name, G in ctx.graphs.items():
        Xtr, _, Xte, yte = ctx.inputs[name]
        n_dense = sum(int(p.numel()) for p in to_torch(G).parameters())
        for a in amounts:
            try:
                plan = structured_prune(G, amount=a)
            except GraphError:  # nothing structured to remove in this graph
                break
            H = prune(G, plan, shrink=True)
            small = to_torch(H)
            R = reconstruct(H, G, Xtr[:512])
            rows.append(
                {
                    "model": name,
                    "groups removed (fraction)": a,
                    "parameters (dense)": n_dense,
                    "parameters (shrunk)": sum(int(p.numel()) for p in small.parameters()),
                    "accuracy shrunk (%)": 100 * evaluate(small, Xte, yte),
                    "accuracy reconstructed (%)": 100 * evaluate(to_torch(R), Xte, yte),
                }
            )
    return rows


def _violins(
    data: dict[str, np.ndarray], reference: float, ylabel: str, label: str = "trained"
) -> Any:
    import matplotlib.pyplot as plt

    from ..figures import COLUMN_WIDTH, PALETTE, paper_style

    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH * 1.6, COLUMN_WIDTH * 0.7))
        names = list(data)
        parts = ax.violinplot([data[n] for n in names], showmedians=True)
        for body in parts["bodies"]:  # type: ignore[attr-defined]  # a list of PolyCollections
            body.set_facecolor(PALETTE[0])
            body.set_alpha(0.5)
        ax.axhline(reference, color=PALETTE[1], ls="--", lw=1, label=label)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False)
    return fig


def step_nulls(ctx: JobContext) -> Section:
    """Accuracy of sign-preserving null models of the MLP or the user's model (ensembles)."""
    from ..algorithms.randomize import NULL_MODELS, randomize_ensemble
    from ..training import evaluate
    from ._wording import model_phrase

    sec = Section("nulls", "Null models")
    name = "mlp" if "mlp" in ctx.graphs else next(iter(ctx.graphs))
    G = ctx.graphs[name]
    _, _, Xte, yte = ctx.inputs[name]
    k = 8 if ctx.options.quick else 20
    rows, data = [], {}
    for model in ("A", "B", "C", "D", "E", "F", "G-left", "curveball"):
        ens = randomize_ensemble(G, model, k, seed=ctx.options.seed)
        accs = 100 * np.array([evaluate(ens.graph(i), Xte, yte) for i in range(k)])
        data[model] = accs
        q25, q50, q75 = np.percentile(accs, [25, 50, 75])
        rows.append(
            {
                "null model": model,
                "keeps": ", ".join(sorted(NULL_MODELS[model].preserves)),
                "median accuracy (%)": q50,
                "q25 (%)": q25,
                "q75 (%)": q75,
                "samples": k,
            }
        )
    df = pd.DataFrame(rows)
    whose = model_phrase(name)
    ctx.table(
        sec,
        df,
        "null_models",
        f"Test accuracy (%) of {k} samples per null model ({name}; {whose}: "
        f"{100 * ctx.accuracy[name]:.1f} %)",
    )
    ctx.figure(
        sec,
        _violins(data, 100 * ctx.accuracy[name], "test accuracy (%)", label=whose),
        "null_models",
        f"{name}: test accuracy of null-model samples (dashed: {whose}, unrandomized)",
    )
    keep_sign = [r for r in rows if "sign_pattern" in NULL_MODELS[r["null model"]].preserves]
    other = [r for r in rows if r not in keep_sign]
    fmt = lambda rs: ", ".join(f"{r['null model']} {r['median accuracy (%)']:.1f} %" for r in rs)  # noqa: E731
    sec.paragraphs.append(
        "Each null model randomizes every layer separately, keeps pruned entries and biases, and keeps exactly the "
        f"quantities listed. Median accuracy of the models that keep the sign pattern: {fmt(keep_sign)}; of the "
        f"others: {fmt(other)} (chance: {100 / ctx.dataset.n_classes:.1f} %)."
    )
    sec.numbers = {
        "model": name,
        "accuracy (%)": 100 * ctx.accuracy[name],
        "null_models (%)": {
            r["null model"]: {
                "median": r["median accuracy (%)"],
                "q25": r["q25 (%)"],
                "q75": r["q75 (%)"],
            }
            for r in rows
        },
    }
    return sec


def _influence_figure(G: Any, image_shape: tuple[int, int] | None) -> Any:
    import matplotlib.pyplot as plt

    from ..figures import COLUMN_WIDTH, paper_style

    nodes = G.nodes()
    inp = nodes[nodes.kind == "input"]
    cols = [c for c in nodes.columns if c.startswith("influence_o")]
    signed = inp[cols].to_numpy()
    with paper_style():
        if image_shape is not None and len(inp) == image_shape[0] * image_shape[1]:
            fig, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH * 1.6, COLUMN_WIDTH * 0.75))
            a = axes[0].imshow(inp["influence_abs"].to_numpy().reshape(image_shape), cmap="viridis")
            axes[0].set_title("mean |influence| per input pixel")
            fig.colorbar(a, ax=axes[0], fraction=0.046)
            v = signed[:, 0].reshape(image_shape)
            from ..figures import SIGNED_CMAP, signed_norm

            b = axes[1].imshow(v, cmap=SIGNED_CMAP, norm=signed_norm(v))
            axes[1].set_title(f"signed influence on output 0 ({cols[0]})")
            fig.colorbar(b, ax=axes[1], fraction=0.046)
            for ax in axes:
                ax.set_xticks([])
                ax.set_yticks([])
        else:
            fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, COLUMN_WIDTH * 0.7))
            ax.bar(range(len(inp)), inp["influence_abs"].to_numpy())
            ax.set_xlabel("input feature")
            ax.set_ylabel("mean |influence|")
    return fig


def step_causal(ctx: JobContext) -> Section:
    """Signed path influence on data, and LEGCNet pruning from a short recorded training run."""
    import torch

    from ..causal import (
        LEGCNetConfig,
        decide,
        legcnet_prune,
        magnitude_mask,
        null_calibration,
        path_influence,
        random_mask,
        retrain,
    )

    sec = Section("causal", "Causal influence")
    o = ctx.options
    name = "mlp" if "mlp" in ctx.graphs else next(iter(ctx.graphs))
    G = ctx.graphs[name]
    Xte = ctx.inputs[name][2]
    if G.spec and all(b.delay == 0 for b in G.blocks):
        GI, _ = path_influence(G, Xte[:500])
        ctx.graphs[name] = GI
        ctx.figure(
            sec,
            _influence_figure(GI, ctx.dataset.image_shape),
            f"{name}_influence",
            f"{name}: input influence on the outputs (Jacobian averaged over 500 test samples)",
        )
        top = (
            GI.nodes()
            .sort_values("influence_abs", ascending=False)
            .head(8)[["name", "kind", "influence_abs"]]
        )
        ctx.table(
            sec, top, "influence_top", "Nodes with the largest mean |influence| on the outputs"
        )
    ds = ctx.dataset
    # the trajectory stores every weight after every sample: cap the training set so that it stays small
    n_tr = min(len(ds.X_train), 3000)
    n_te = min(len(ds.X_test), 2000)
    flat = datasets.Dataset(
        ds.name,
        ds.X_train[:n_tr].reshape(n_tr, -1),
        ds.y_train[:n_tr],
        ds.X_test[:n_te].reshape(n_te, -1),
        ds.y_test[:n_te],
        ds.classes,
    )
    torch.manual_seed(o.seed)
    hidden = 16
    net = torch.nn.Sequential(
        torch.nn.Linear(flat.n_features, hidden),
        torch.nn.Sigmoid(),
        torch.nn.Linear(hidden, flat.n_classes),
    )
    init = {k: v.clone() for k, v in net.state_dict().items()}
    epochs, pt = (4, 2) if o.quick else (10, 4)
    # enough recorded rows (one per sample) for 20 Lyapunov windows of 200 rows at stride 180
    pt = max(pt, -(-(200 + 19 * 180) // n_tr))
    epochs = max(epochs, pt)
    common: dict[str, Any] = dict(lr=0.2, benchmark=0.95, output="softmax")
    # one recorded run; both rules read the same Lyapunov series, so the calibrated (default) rule
    # and the authors' rule differ only in the decision, and each is shown beside its permutation null
    res = legcnet_prune(
        net,
        flat,
        mode="PT",
        epochs=epochs,
        pt_epochs=pt,
        config=LEGCNetConfig.authors(200),
        extra_epochs=0,
        **common,
    )
    lam, eff = res.scores.lyap, res.scores.effect
    frac = float(res.prune_mask.mean())
    rules = {"recommended": LEGCNetConfig.recommended(200), "authors": LEGCNetConfig.authors(200)}
    null = null_calibration(lam, eff, rules, n_shuffles=20, seed=o.seed)
    bh = decide(lam, eff, rules["recommended"]).prune
    ranked = decide(lam, eff, LEGCNetConfig.recommended(200, amount=frac)).prune
    from ..convert.to_torch import to_torch

    trained = to_torch(res.graph.without_attrs())
    masks = {
        "recommended: F-test + BH q=0.05 (default)": (bh, null["recommended"]),
        "LEGCNet-PT, authors' rule (min p over lags)": (res.prune_mask, null["authors"]),
        "recommended, lowest influence at the authors' sparsity": (ranked, None),
        "magnitude (matched sparsity)": (magnitude_mask(trained, res.prune_mask), None),
        "random (matched sparsity)": (random_mask(net, res.prune_mask, seed=o.seed), None),
    }
    rows = [
        {
            "rule": "dense",
            "pruned": 0,
            "kept as causal": None,
            "kept under permuted effect": None,
            "test accuracy (%)": 100 * res.dense.test_accuracy,
        }
    ]
    for rule, (mask, nul) in masks.items():
        acc = (
            res.sparse
            if mask is res.prune_mask
            else retrain(net, init, flat, prune_mask=mask, max_epochs=epochs, **common)
        ).test_accuracy
        rows.append(
            {
                "rule": rule,
                "pruned": int(mask.sum()),
                "kept as causal": float(1.0 - mask.mean()),
                "kept under permuted effect": None if nul is None else float(nul.mean()),
                "test accuracy (%)": 100 * acc,
            }
        )
    for r in rows:
        r["weights"] = int(res.prune_mask.size)
    df = pd.DataFrame(rows)
    ctx.table(
        sec,
        df,
        "legcnet",
        f"LEGCNet on a {flat.n_features}-{hidden}-{flat.n_classes} sigmoid MLP "
        f"({res.n_windows} Lyapunov windows from {pt} recorded epochs; retrained from the same initialisation). "
        "'kept under permuted effect': fraction of weights the rule calls causal when the error series is "
        "shuffled (mean of 20 permutations, the null); a calibrated rule keeps about q = 0.05 there",
    )
    sec.paragraphs.append(
        "Path influence sums, over all paths from a node to an output, the products of weights and activation "
        "slopes (the input–output Jacobian averaged over test samples); it is attached to the graph as node and "
        "edge attributes (<code>influence_o*</code>, <code>influence_abs</code>) that pruning queries can use. "
        "LEGCNet records every weight during training, computes the largest Lyapunov exponent of each weight's "
        "trajectory in windows, and prunes weights whose exponent series does not Granger-cause the error. The "
        "authors' decision rule (min p-value over lags) calls most weights causal even for unrelated series (see its "
        "permutation null in the table); the default, calibrated rule is a single-lag F-test with false-discovery-rate "
        "control, and when it finds no evidence it prunes every weight rather than inventing causes."
    )
    sec.numbers = {
        "legcnet": rows,
        "windows": res.n_windows,
        "null": {k: v.tolist() for k, v in null.items()},
    }
    return sec


def step_probes(ctx: JobContext) -> Section:
    """Probe sweeps over levels and seeds, and the task-complexity gap (see :mod:`.probes_step`)."""
    from .probes_step import step_probes as run

    return run(ctx)


def step_lattice(ctx: JobContext) -> Section:
    """Meet-irreducible units and lattice vs magnitude pruning (see :mod:`.lattice_step`)."""
    from .lattice_step import step_lattice as run

    return run(ctx)


def step_netsci(ctx: JobContext) -> Section:
    """Network picture, signed communities, lesions and spectra (see :mod:`.netsci_step`)."""
    from .netsci_step import step_netsci as run

    return run(ctx)


STEPS: dict[str, Callable[[JobContext], Section]] = {
    "train": step_train,
    "export": step_export,
    "nulls": step_nulls,
    "probes": step_probes,
    "lattice": step_lattice,
    "causal": step_causal,
    "netsci": step_netsci,
    "prune": step_prune,
}
#: what each step needs to have run before it (pulled in automatically)
NEEDS: dict[str, tuple[str, ...]] = {
    "train": (),
    "export": ("train",),
    **{
        name: ("train", "export")
        for name in ("nulls", "probes", "lattice", "causal", "netsci", "prune")
    },
}


def resolve_steps(requested: tuple[str, ...] | list[str]) -> list[str]:
    """The steps to run, in job order: the requested ones (all when empty) and what they need.

    Examples
    --------
    >>> from netstruct.report.job import resolve_steps
    >>> resolve_steps(["lattice"])
    ['train', 'export', 'lattice']
    >>> resolve_steps([]) == list(STEPS)
    True
    """
    if not requested:
        return list(STEPS)
    unknown = set(requested) - set(STEPS)
    if unknown:
        raise InvalidParameterError(
            f"--steps: unknown step(s) {sorted(unknown)}; choose from {list(STEPS)}."
        )
    chosen: set[str] = set()
    todo = list(requested)
    while todo:
        name = todo.pop()
        if name not in chosen:
            chosen.add(name)
            todo.extend(NEEDS[name])
    return [s for s in STEPS if s in chosen]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # JSON has no NaN; tables show it as an empty cell
    return obj


def _close_client(ctx: JobContext) -> None:
    if ctx.options.scheduler == "local":
        from ..utils.cluster import close_local_cluster

        close_local_cluster()


def run_job(options: JobOptions) -> Path:
    """Run the main job and return the path of ``report.html``.

    Examples
    --------
    >>> import tempfile
    >>> from netstruct.report import JobOptions, run_job
    >>> p = run_job(JobOptions(out=tempfile.mkdtemp(), dataset="iris", steps=("train", "export"), epochs=2, progress=False))
    >>> p.name
    'report.html'
    """
    from tqdm.auto import tqdm

    ctx = prepare(options)
    chosen = resolve_steps(options.steps)
    sections: list[Section] = []
    timings = {}
    try:
        bar = tqdm(chosen, desc="netstruct run", disable=not options.progress)
        for name in bar:
            bar.set_postfix(step=name)
            t0 = time.perf_counter()
            sections.append(STEPS[name](ctx))
            timings[name] = time.perf_counter() - t0
            logger.info("step %s took %.1fs", name, timings[name])
    finally:
        _close_client(ctx)
    numbers = {
        "netstruct_version": __version__,
        "options": asdict(options),
        "seconds": timings,
        **{s.key: s.numbers for s in sections},
    }
    with atomic_write(ctx.out / "numbers.json", "w", encoding="utf-8") as fh:
        json.dump(_jsonable(numbers), fh, indent=2)
    import html

    used = html.escape(
        ", ".join(f"{k}={v}" for k, v in asdict(options).items() if k not in ("out", "progress"))
    )
    intro = [
        f"netstruct {__version__}; dataset {ctx.dataset.name}; steps {', '.join(chosen)}; "
        f"{'quick run (--quick: fewer epochs, runs, levels and samples); ' if options.quick else ''}"
        f"options used: {used}; "
        f"total {sum(timings.values()):.1f} s. Every number below is also in <code>numbers.json</code> "
        "and <code>tables/*.csv</code>; figures as PDF/SVG in <code>figures/</code>."
    ]
    page = render_report("netstruct report", intro, sections)
    report = ctx.out / "report.html"
    with atomic_write(report, "w", encoding="utf-8") as fh:
        fh.write(page)
    return report

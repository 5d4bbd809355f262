"""Record weight trajectories during training, streamed to disk in bounded memory.

:class:`TrajectoryRecorder` copies chosen weights of a torch model (all weight matrices, some
parameters, or a boolean edge selection per parameter) every ``every`` optimizer steps into a
fixed-size buffer. Full buffers are written as ``.npy`` chunks, and a JSON manifest is
rewritten atomically (temporary file + ``os.replace``) after every chunk, so a crash leaves a
readable prefix. Metrics (loss, error rate, ...) are stored alongside each row.
:class:`TrajectoryReader` reads the result back as arrays per edge.

Edge columns follow netstruct's canonical edge order: parameters in ``named_parameters``
order, each row-major (PyTorch ``(out, in)`` layout), i.e. the order of
``SignedGraph.edges()`` for a graph from :func:`netstruct.from_torch` whose blocks are named
``"<module path>.weight"``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..exceptions import FileFormatError, InvalidParameterError, param_error
from ..utils.validation import check_scalar

__all__ = ["TrajectoryRecorder", "TrajectoryReader", "MANIFEST"]

MANIFEST = "manifest.json"
_FORMAT = "netstruct.trajectory"


def _save_rows(array: np.ndarray, n_rows: int, fh: Any) -> None:
    np.save(fh, array[:n_rows])


def _write_atomic(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _select(model, params) -> list[tuple[str, Any, NDArray[np.int64], tuple[int, ...]]]:
    """(name, parameter, flat indices, shape) for each recorded parameter."""
    named = dict(model.named_parameters())
    if params is None:
        chosen = {
            n: None
            for n, p in named.items()
            if p.ndim == 2 and n.split(".")[-1].startswith("weight")
        }
    elif isinstance(params, str):
        chosen = {params: None}
    elif isinstance(params, Mapping):
        chosen = dict(params)
    elif isinstance(params, Sequence):
        chosen = {n: None for n in params}
    else:
        raise param_error(
            "params",
            "TrajectoryRecorder",
            "None, a parameter name, a list of names or a dict name -> bool mask",
            type(params).__name__,
        )
    out = []
    for name, mask in chosen.items():
        if name not in named and f"{name}.weight" in named:
            name = f"{name}.weight"  # a module path names its weight
        if name not in named:
            raise param_error(
                "params",
                "TrajectoryRecorder",
                f"parameter or module names of the model ({sorted(named)})",
                name,
            )
        p = named[name]
        shape = tuple(p.shape)
        if mask is None:
            idx = np.arange(p.numel(), dtype=np.int64)
        else:
            m = np.asarray(mask)
            if m.dtype != np.bool_ or m.shape != shape:
                raise param_error(
                    "params",
                    "TrajectoryRecorder",
                    f"a boolean mask of shape {shape} for {name!r}",
                    f"dtype {m.dtype}, shape {m.shape}",
                )
            idx = np.flatnonzero(m).astype(np.int64)
        out.append((name, p, idx, shape))
    if not out or sum(len(o[2]) for o in out) == 0:
        raise param_error(
            "params", "TrajectoryRecorder", "a selection with at least one weight", params
        )
    return out


class TrajectoryRecorder:
    """Stream weight trajectories and metrics of a torch model to a directory.

    Parameters
    ----------
    model : torch.nn.Module
    path : str or Path
        Output directory (created). Holds ``manifest.json``, ``weights_000000.npy``, ...
    params : None, str, list of str or dict of str to bool ndarray, optional
        ``None``: every 2-D weight parameter (biases are never recorded). A parameter name
        (``"0.weight"``) or module path (``"0"``), a list of them, or a dict mapping each name
        to a boolean mask of the parameter's shape (an edge selection).
    every : int, default=1
        Record every ``every``-th call of :meth:`record` (one call per optimizer step).
    metrics : sequence of str, default=("loss", "error_rate")
        Names of the per-row metrics accepted by :meth:`record` (missing values are NaN).
    metrics_fn : callable, optional
        ``metrics_fn() -> dict`` evaluated at every recorded row (e.g. test error rate),
        merged with the values passed to :meth:`record`.
    max_memory : int, default=64 MiB
        Budget in bytes for the in-memory buffer; rows per chunk = budget // row size.
    dtype : {"float32", "float64"}, default="float32"
    record_initial : bool, default=True
        Record the weights at construction as row 0 (step 0), as the authors do.
    overwrite : bool, default=False
        Allow writing into a directory that already has a manifest.

    Examples
    --------
    >>> import tempfile, torch
    >>> from netstruct.causal import TrajectoryRecorder, TrajectoryReader
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Sigmoid(), torch.nn.Linear(2, 1))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> d = tempfile.mkdtemp()
    >>> with TrajectoryRecorder(model, d, max_memory=256) as rec:
    ...     for step in range(10):
    ...         opt.zero_grad(); loss = model(torch.ones(1, 3)).pow(2).sum(); loss.backward(); opt.step()
    ...         _ = rec.record(loss=loss.item())
    >>> tr = TrajectoryReader(d)
    >>> tr.n_rows, tr.n_edges, tr.weights().shape, tr.metric("loss").shape
    (11, 8, (11, 8), (11,))
    """

    def __init__(
        self,
        model,
        path: str | os.PathLike,
        *,
        params=None,
        every: int = 1,
        metrics: Sequence[str] = ("loss", "error_rate"),
        metrics_fn: Callable[[], Mapping[str, float]] | None = None,
        max_memory: int = 64 * 2**20,
        dtype: str = "float32",
        record_initial: bool = True,
        overwrite: bool = False,
    ) -> None:
        func = "TrajectoryRecorder"
        check_scalar(every, "every", func, kind=int, min_value=1)
        check_scalar(max_memory, "max_memory", func, kind=int, min_value=1)
        if dtype not in ("float32", "float64"):
            raise param_error("dtype", func, "'float32' or 'float64'", dtype)
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / MANIFEST).exists() and not overwrite:
            raise InvalidParameterError(
                f"The 'path' parameter of {func} points to {str(self.path)!r}, which already holds a "
                "trajectory; choose a new directory or pass overwrite=True."
            )
        self._sel = _select(model, params)
        self._metric_names = tuple(str(m) for m in metrics)
        self._metrics_fn = metrics_fn
        self._every = int(every)
        self._dtype = np.dtype(dtype)
        self.n_edges = int(sum(len(s[2]) for s in self._sel))
        row_bytes = self.n_edges * self._dtype.itemsize + 8 * (len(self._metric_names) + 1)
        self.chunk_rows = max(1, int(max_memory) // row_bytes)
        self._buf = np.empty((self.chunk_rows, self.n_edges), dtype=self._dtype)
        self._mbuf = np.full((self.chunk_rows, len(self._metric_names)), np.nan)
        self._steps = np.empty(self.chunk_rows, dtype=np.int64)
        self._fill = 0
        self._chunks: list[dict[str, Any]] = []
        self._calls = 0
        self._hook = None
        self._closed = False
        self._write_manifest(complete=False)
        if record_initial:
            self._append(0, {})

    # ------------------------------------------------------------------ public
    @property
    def buffer_nbytes(self) -> int:
        """Bytes held by the in-memory buffers (bounded by ``max_memory`` unless one row is larger)."""
        return int(self._buf.nbytes + self._mbuf.nbytes + self._steps.nbytes)

    def record(self, **metrics: float) -> bool:
        """Count one optimizer step; record a row when the step is a multiple of ``every``.

        Returns True when a row was recorded.
        """
        if self._closed:
            raise InvalidParameterError(
                "This TrajectoryRecorder is closed; create a new one to record again."
            )
        unknown = set(metrics) - set(self._metric_names)
        if unknown:
            raise param_error(
                "metrics",
                "TrajectoryRecorder.record",
                f"keyword(s) among {list(self._metric_names)}",
                sorted(unknown),
            )
        self._calls += 1
        if self._calls % self._every:
            return False
        self._append(self._calls, metrics)
        return True

    def attach(self, optimizer) -> TrajectoryRecorder:
        """Call :meth:`record` after every ``optimizer.step()`` (metrics come from ``metrics_fn``)."""
        self._hook = optimizer.register_step_post_hook(lambda *_args, **_kw: self.record())
        return self

    def close(self, *, complete: bool = True) -> None:
        """Write the last partial chunk, mark the manifest complete and detach hooks.

        Parameters
        ----------
        complete : bool, default=True
            False records that the run stopped early: the rows written so far stay readable
            and :attr:`TrajectoryReader.complete` is False.
        """
        if self._closed:
            return
        self._flush()
        if self._hook is not None:
            self._hook.remove()
        self._closed = True
        self._write_manifest(complete=bool(complete))

    def __enter__(self) -> TrajectoryRecorder:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # a ``with`` block left by an exception (KeyboardInterrupt included) is not a complete run
        self.close(complete=exc_type is None)

    # ------------------------------------------------------------------ internals
    def _append(self, step: int, metrics: Mapping[str, float]) -> None:
        import torch

        vals = dict(self._metrics_fn() if self._metrics_fn is not None else {})
        vals.update(metrics)
        row = self._buf[self._fill]
        col = 0
        with torch.no_grad():
            for _name, p, idx, _shape in self._sel:
                flat = p.detach().reshape(-1).cpu().numpy()
                row[col : col + len(idx)] = flat[idx]
                col += len(idx)
        for j, m in enumerate(self._metric_names):
            self._mbuf[self._fill, j] = float(vals[m]) if m in vals else np.nan
        self._steps[self._fill] = step
        self._fill += 1
        if self._fill == self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self._fill == 0:
            return
        i = len(self._chunks)
        names = {
            "weights": f"weights_{i:06d}.npy",
            "metrics": f"metrics_{i:06d}.npy",
            "steps": f"steps_{i:06d}.npy",
        }
        for key, arr in (("weights", self._buf), ("metrics", self._mbuf), ("steps", self._steps)):
            _write_atomic(self.path / names[key], functools.partial(_save_rows, arr, self._fill))
        self._chunks.append({**names, "rows": self._fill})
        self._fill = 0
        self._mbuf[:] = np.nan
        self._write_manifest(complete=False)

    def _write_manifest(self, *, complete: bool) -> None:
        cols: dict[str, list[Any]] = {"param": [], "index": [], "row": [], "col": []}
        for name, _p, idx, shape in self._sel:
            cols["param"] += [name] * len(idx)
            cols["index"] += idx.tolist()
            ncol = shape[1] if len(shape) == 2 else 1
            cols["row"] += (idx // ncol).tolist()
            cols["col"] += (idx % ncol).tolist()
        man = {
            "format": _FORMAT,
            "version": 1,
            "dtype": self._dtype.name,
            "every": self._every,
            "params": [
                {"name": n, "shape": list(s), "n_selected": len(i)} for n, _p, i, s in self._sel
            ],
            "columns": cols,
            "metrics": list(self._metric_names),
            "chunks": self._chunks,
            "n_rows": int(sum(c["rows"] for c in self._chunks)),
            "complete": complete,
        }
        _write_atomic(self.path / MANIFEST, lambda fh: fh.write(json.dumps(man)), mode="w")


class TrajectoryReader:
    """Read a trajectory written by :class:`TrajectoryRecorder`.

    Chunks are memory-mapped; :meth:`weights` loads only the requested edge columns, so
    reading a few edges of a long run needs memory for those columns only.

    Parameters
    ----------
    path : str or Path
        The recorder's directory.

    Raises
    ------
    FileFormatError
        When the manifest is missing, not a netstruct trajectory, or names missing chunks.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            man = json.loads((self.path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FileFormatError(
                f"{str(self.path)!r} has no readable {MANIFEST} ({exc}); point to a directory written by TrajectoryRecorder."
            ) from None
        if man.get("format") != _FORMAT:
            raise FileFormatError(
                f"{str(self.path / MANIFEST)!r} is not a netstruct trajectory manifest."
            )
        for c in man["chunks"]:
            if not (self.path / c["weights"]).exists():
                raise FileFormatError(
                    f"Chunk {c['weights']!r} listed in the manifest is missing from {str(self.path)!r}."
                )
        self.manifest = man

    @property
    def n_rows(self) -> int:
        """Number of recorded rows."""
        return int(self.manifest["n_rows"])

    @property
    def n_edges(self) -> int:
        """Number of recorded edge columns."""
        return len(self.manifest["columns"]["index"])

    @property
    def complete(self) -> bool:
        """False when the recorder was not closed (the data is a valid prefix)."""
        return bool(self.manifest["complete"])

    def edge_table(self) -> dict[str, NDArray]:
        """Per column: ``param`` name, flat ``index``, ``row`` and ``col`` in the weight matrix."""
        c = self.manifest["columns"]
        return {
            "param": np.asarray(c["param"], dtype=object),
            **{k: np.asarray(c[k], dtype=np.int64) for k in ("index", "row", "col")},
        }

    def iter_chunks(self) -> Iterator[NDArray]:
        """Yield the weight chunks (memory-mapped arrays of shape (rows, n_edges)) in order."""
        for c in self.manifest["chunks"]:
            yield np.load(self.path / c["weights"], mmap_mode="r")

    def weights(self, edges: NDArray | Sequence[int] | slice | None = None) -> NDArray:
        """Trajectories of the selected edge columns, shape (n_rows, n_selected)."""
        sel = slice(None) if edges is None else edges
        parts = [np.asarray(ch[:, sel]) for ch in self.iter_chunks()]
        if not parts:
            return np.zeros((0, self.n_edges), dtype=self.manifest["dtype"])[:, sel]
        return np.concatenate(parts, axis=0)

    def edge(self, i: int) -> NDArray:
        """The trajectory of one edge column, shape (n_rows,)."""
        check_scalar(
            i, "i", "TrajectoryReader.edge", kind=int, min_value=0, max_value=self.n_edges - 1
        )
        return self.weights([int(i)])[:, 0]

    def steps(self) -> NDArray[np.int64]:
        """Optimizer step of each row (0 = initial weights)."""
        parts = [np.load(self.path / c["steps"]) for c in self.manifest["chunks"]]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def metric(self, name: str) -> NDArray[np.float64]:
        """One metric per row (NaN where it was not given)."""
        names = self.manifest["metrics"]
        if name not in names:
            raise param_error("name", "TrajectoryReader.metric", f"one of {names}", name)
        j = names.index(name)
        parts = [np.load(self.path / c["metrics"])[:, j] for c in self.manifest["chunks"]]
        return np.concatenate(parts) if parts else np.zeros(0)

"""Small, seeded model builders and train/evaluate loops used by notebooks and the CLI."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._config import config
from .exceptions import InvalidParameterError, param_error
from .utils.validation import check_scalar

__all__ = [
    "mlp",
    "recurrent_classifier",
    "train",
    "evaluate",
    "predict",
    "TrainResult",
    "torch_seed",
]

logger = logging.getLogger(__name__)

_ACTS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "gelu": "GELU",
    "leaky_relu": "LeakyReLU",
}


def torch_seed(seed: int) -> None:
    """Seed torch's global generator (model initialisation) reproducibly."""
    import torch

    torch.manual_seed(int(seed))


#: model construction draws from torch's global generator; tasks running in threads (a local
#: Dask cluster) take this lock so that seed-then-initialise is atomic and reproducible.
_INIT_LOCK = threading.Lock()


@contextmanager
def _seeded(seed: int | None):
    """Build a model from ``seed`` without racing other threads or leaking the global state."""
    import torch

    if seed is None:
        yield
        return
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def mlp(
    sizes: list[int] | tuple[int, ...], *, activation: str = "relu", seed: int | None = None
) -> Any:
    """An ``nn.Sequential`` MLP ``Linear -> act -> ... -> Linear``.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, e.g. ``[64, 32, 10]``.
    activation : {"relu", "tanh", "sigmoid", "gelu", "leaky_relu"}
    seed : int, optional
        Seeds the initialisation.

    Examples
    --------
    >>> m = mlp([4, 3, 2], seed=0)
    >>> [type(l).__name__ for l in m]
    ['Linear', 'ReLU', 'Linear']
    """
    import torch

    if (
        not isinstance(sizes, (list, tuple))
        or len(sizes) < 2
        or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sizes
        )
    ):
        raise param_error("sizes", "mlp", "a sequence of at least two positive ints", sizes)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise param_error("seed", "mlp", "an int or None", seed)
    if not isinstance(activation, str) or activation not in _ACTS:
        raise param_error("activation", "mlp", f"one of {sorted(_ACTS)}", activation)
    layers: list[Any] = []
    with _seeded(seed):
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(int(a), int(b)))
            if i < len(sizes) - 2:
                layers.append(getattr(torch.nn, _ACTS[activation])())
    return torch.nn.Sequential(*layers)


def recurrent_classifier(
    kind: str,
    input_size: int,
    hidden_size: int,
    n_classes: int,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    seed: int | None = None,
) -> Any:
    """An ``RNN``/``LSTM``/``GRU`` (batch first) with a Linear head on the last time step.

    Examples
    --------
    >>> m = recurrent_classifier("LSTM", 8, 16, 10, seed=0)
    >>> type(m.rnn).__name__, m.head.in_features
    ('LSTM', 16)
    """
    if kind not in ("RNN", "LSTM", "GRU"):
        raise param_error("kind", "recurrent_classifier", "one of ['RNN', 'LSTM', 'GRU']", kind)
    from .models import RecurrentClassifier

    with _seeded(seed):
        return RecurrentClassifier(
            kind, input_size, hidden_size, n_classes, num_layers, bidirectional
        )


@dataclass
class TrainResult:
    """Per-epoch history of a :func:`train` run."""

    loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)


def _features(X: Any, func: str, name: str = "X"):
    import torch

    try:
        Xa = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise param_error(
            name, func, "a numeric array of shape (n_samples, ...)", f"{type(X).__name__} ({exc})"
        ) from None
    if Xa.ndim < 2 or Xa.shape[0] == 0:
        raise param_error(
            name, func, "an array of shape (n_samples > 0, n_features, ...)", f"shape {Xa.shape}"
        )
    if not np.isfinite(Xa).all():
        raise InvalidParameterError(
            f"{func}: {name} holds NaN or infinite values; clean the data first."
        )
    return torch.from_numpy(Xa)


def _labels(y: Any, n: int, func: str, name: str = "y"):
    import torch

    ya = np.asarray(y)
    if ya.ndim != 1 or ya.shape[0] != n:
        raise InvalidParameterError(
            f"The {name!r} parameter of {func} must be a 1-D array of {n} class labels (one per "
            f"sample of X). Got shape {ya.shape} instead."
        )
    if ya.dtype.kind == "f":
        if not np.isfinite(ya).all() or not np.array_equal(ya, np.round(ya)):
            bad = ya[~np.isfinite(ya) | (ya != np.round(ya))][:3].tolist()
            raise InvalidParameterError(
                f"The {name!r} parameter of {func} must hold integer class labels 0, 1, ... Got "
                f"non-integer values such as {bad} instead; map them to class indices first."
            )
    elif ya.dtype.kind not in "iu":
        raise param_error(name, func, "integer class labels 0, 1, ...", f"dtype {ya.dtype}")
    if ya.size and ya.min() < 0:
        raise param_error(name, func, "class labels >= 0", int(ya.min()))
    return torch.from_numpy(ya.astype(np.int64))


def _tensors(X: Any, y: Any, func: str):
    Xt = _features(X, func)
    return Xt, _labels(y, Xt.shape[0], func)


def _check_fits(model: Any, Xt: Any, yt: Any, func: str) -> None:
    """Run one sample through ``model``: X must fit its input, y its number of outputs."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(Xt[:1])
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise InvalidParameterError(
            f"The 'X' parameter of {func} does not fit the model: samples of shape "
            f"{tuple(Xt.shape[1:])} gave {type(exc).__name__}: {exc}. Give X the model's input width."
        ) from None
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise InvalidParameterError(
            f"{func} needs a model that returns logits of shape (batch, n_classes); this one returned "
            f"{type(out).__name__}{'' if not isinstance(out, torch.Tensor) else ' of shape ' + str(tuple(out.shape))}."
        )
    if yt is not None and len(yt) and int(yt.max()) >= out.shape[1]:
        raise InvalidParameterError(
            f"The 'y' parameter of {func} holds label {int(yt.max())}, but the model has only "
            f"{out.shape[1]} outputs (labels 0..{out.shape[1] - 1}); widen the last layer or remap the labels."
        )


def train(
    model: Any,
    X: Any,
    y: Any,
    *,
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 128,
    optimizer: str = "adam",
    schedule: str | None = "cosine",
    weight_decay: float = 0.0,
    seed: int = 0,
    X_test: Any = None,
    y_test: Any = None,
    progress: bool | None = None,
    callback: Any = None,
) -> TrainResult:
    """Train a classifier with cross-entropy (in place), seeded and with a progress bar.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits of shape (batch, n_classes).
    X, y : array-like
        Features (float) and integer labels.
    epochs, lr, batch_size : training settings (defaults: the task-complexity protocol).
    optimizer : {"adam", "sgd"}
    schedule : {"cosine", None}
        ``CosineAnnealingLR(T_max=epochs)`` stepped once per epoch, or a constant rate.
    seed : int
        Seeds the batch order.
    X_test, y_test : array-like, optional
        Evaluated after every epoch into :attr:`TrainResult.test_accuracy`.
    progress : bool, optional
        Show a tqdm bar (default: ``netstruct.config.progress``).
    callback : callable, optional
        ``callback(model, step, loss)`` after every optimiser step (e.g. a trajectory recorder).

    Examples
    --------
    >>> from netstruct import datasets
    >>> ds = datasets.load_iris()
    >>> m = mlp([4, 8, 3], seed=0)
    >>> r = train(m, ds.X_train, ds.y_train, epochs=5, progress=False)
    >>> len(r.loss)
    5
    """
    import torch
    from tqdm.auto import tqdm

    epochs = int(check_scalar(epochs, "epochs", "train", kind=int, min_value=1))
    batch_size = int(check_scalar(batch_size, "batch_size", "train", kind=int, min_value=1))
    check_scalar(lr, "lr", "train", min_value=0.0, include_min=False)
    if optimizer not in ("adam", "sgd"):
        raise param_error("optimizer", "train", "one of ['adam', 'sgd']", optimizer)
    if schedule not in ("cosine", None):
        raise param_error("schedule", "train", "'cosine' or None", schedule)
    check_scalar(weight_decay, "weight_decay", "train", min_value=0.0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise param_error("seed", "train", "an int", seed)
    if callback is not None and not callable(callback):
        raise param_error("callback", "train", "a callable or None", callback)
    if (X_test is None) != (y_test is None):
        raise InvalidParameterError("train: give both X_test and y_test, or neither.")
    Xt, yt = _tensors(X, y, "train")
    _check_fits(model, Xt, yt, "train")
    if X_test is not None:
        Xs, ys = _tensors(X_test, y_test, "train")
        _check_fits(model, Xs, ys, "train")
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        if schedule == "cosine"
        else None
    )
    gen = torch.Generator().manual_seed(int(seed))
    loss_fn = torch.nn.CrossEntropyLoss()
    res = TrainResult()
    show = config.progress if progress is None else progress
    step = 0
    bar = tqdm(range(epochs), desc=f"train {type(model).__name__}", disable=not show, leave=False)
    for _ in bar:
        model.train()
        perm = torch.randperm(len(yt), generator=gen)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, len(yt), batch_size):
            idx = perm[start : start + batch_size]
            xb, yb = Xt[idx], yt[idx]
            opt.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            step += 1
            loss_value = loss.item()
            total += loss_value * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            seen += len(idx)
            if callback is not None:
                callback(model, step, loss_value)
        if sched is not None:
            sched.step()
        res.loss.append(total / seen)
        res.train_accuracy.append(correct / seen)
        if X_test is not None:
            res.test_accuracy.append(evaluate(model, X_test, y_test))
        bar.set_postfix(loss=f"{res.loss[-1]:.4f}")
        logger.debug("epoch loss %.4f", res.loss[-1])
    model.eval()
    return res


def predict(model: Any, X: Any, *, batch_size: int = 4096) -> np.ndarray:
    """Logits of ``model`` on ``X`` (eval mode, no gradients), as a numpy array."""
    import torch

    Xt = _features(X, "predict")
    _check_fits(model, Xt, None, "predict")
    was = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(Xt), batch_size):
            outs.append(model(Xt[start : start + batch_size]).numpy())
    model.train(was)
    return np.concatenate(outs) if outs else np.zeros((0,))


def evaluate(model: Any, X: Any, y: Any) -> float:
    """Accuracy (fraction in [0, 1]) of ``model`` on ``(X, y)``.

    ``model`` may also be a :class:`~netstruct.SignedGraph`, which is re-imported first.
    """
    from .graphs.signed import SignedGraph

    if isinstance(model, SignedGraph):
        from .convert.to_torch import to_torch

        model = to_torch(model)
    Xt, yt = _tensors(X, y, "evaluate")
    _check_fits(model, Xt, yt, "evaluate")
    logits = predict(model, X)
    return float((logits.argmax(1) == yt.numpy()).mean())

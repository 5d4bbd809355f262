"""The study's tasks, training protocol and reference numbers (spec §3 and §6).

* :data:`TASKS` — easy and hard class pairs per data set;
* :func:`train_protocol` — one run of the 784-64-2 ReLU MLP (Adam 0.01, batch 128, 10 epochs,
  cosine schedule, pixels in [-1, 1]); trained biases are kept, and the authors' lost biases
  are available only as ``bias="reinit"``;
* :func:`train_runs` — several seeded runs (through joblib);
* :data:`PAPER` — the authors' numbers read off their notebooks, for side-by-side tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.random import check_random_state
from ..utils.validation import check_choice, check_graph, check_scalar

__all__ = [
    "TASKS",
    "PAPER",
    "BIAS_POLICIES",
    "HEADLINE_RUNS",
    "COLLAPSE_CONTROLS",
    "TrainedRun",
    "train_protocol",
    "train_runs",
    "set_biases",
    "to_unit_interval",
]

#: Runs per task behind a headline median. About a third of hard-task runs collapse to a
#: constant class when binarized, so a 5-run median lands in that group one time in five
#: (issue 15: 5 runs gave 50.1 %, 60 runs 58.6 % for the hard pair's binarized median).
HEADLINE_RUNS = 60

#: The two protocol changes that remove the collapse (controls, not the study's protocol):
#: train_protocol keyword arguments, and whether pixels are mapped to [0, 1].
COLLAPSE_CONTROLS = {
    "lr 1e-3": {"train": {"lr": 1e-3}, "unit_interval": False},
    "inputs in [0, 1]": {"train": {}, "unit_interval": True},
}

#: Easy and hard class pairs (labels re-indexed in this order), spec §3.1.
TASKS = {
    "fashion-mnist": {"easy": (3, 2), "hard": (3, 1)},  # Dress vs Pullover, Dress vs Trouser
    "mnist": {"easy": (0, 7), "hard": (7, 9)},
}

#: Bias handling after training: keep the trained biases (default), redraw them from
#: PyTorch's default init U(+-1/sqrt(fan_in)) as the authors' evaluation did (G3), or zero them.
BIAS_POLICIES = ("keep", "reinit", "zero")

#: Medians (accuracy in %) read off the authors' notebook figures (spec §6; approximate,
#: +-1-2 points; produced with re-initialised biases, see G3).
PAPER = {
    "fashion-mnist": {
        "easy": {
            "full": 97.4,
            "binarized": 93.0,
            "A": 58.0,
            "B": 92.0,
            "C": 50.0,
            "D": 53.0,
            "E": 94.0,
            "F": 96.0,
            "G": 53.0,
            "binarized_prune_peak": 97.0,
            "binarized_prune_peak_p": 0.4,
            "noise_gain": 3.0,
            "sigma_w": 0.084,
        },
        "hard": {
            "full": 98.1,
            "binarized": 67.0,
            "A": 52.0,
            "B": 68.0,
            "C": 50.0,
            "D": 50.0,
            "E": 83.0,
            "F": 86.0,
            "G": 52.0,
            "binarized_prune_peak": 96.0,
            "binarized_prune_peak_p": 0.475,
            "noise_gain": 19.0,
            "sigma_w": 0.078,
        },
    },
    "mnist": {
        "easy": {
            "full": 99.7,
            "binarized": 95.0,
            "A": 51.0,
            "B": 93.5,
            "C": 51.0,
            "D": 51.5,
            "E": 98.7,
            "F": 99.0,
            "G": 61.0,
            "gap_binarize": 3.69,
            "gap_B": 5.40,
        },
        "hard": {
            "full": 98.8,
            "binarized": 50.0,
            "A": 50.5,
            "B": 50.5,
            "C": 50.5,
            "D": 50.5,
            "E": 57.0,
            "F": 72.0,
            "G": 53.0,
            "gap_binarize": 48.23,
            "gap_B": 48.67,
        },
    },
}


@dataclass(frozen=True, eq=False)
class TrainedRun:
    """One trained network of a task.

    Attributes
    ----------
    graph : SignedGraph
        The exported network (biases per ``bias``).
    accuracy : float
        Test accuracy (%) of the trained model, with its trained biases.
    seed : int
        Seed of initialisation, batch order and (for ``bias="reinit"``) the redrawn biases.
    bias : str
        The bias policy applied to ``graph``.
    history : Any
        The :class:`netstruct.training.TrainResult`.
    """

    graph: SignedGraph
    accuracy: float
    seed: int
    bias: str
    history: Any


def set_biases(
    G: SignedGraph, policy: str, *, seed: int | np.random.Generator | None = None
) -> SignedGraph:
    """Apply a bias policy: ``"keep"`` (unchanged), ``"reinit"`` (U(+-1/sqrt(n_in)), the
    authors' evaluation, spec G3) or ``"zero"``.

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.probes import set_biases
    >>> G = ns.from_torch(ns.training.mlp([4, 3, 2], seed=0))
    >>> [b.bias.tolist() for b in set_biases(G, "zero").blocks]
    [[0.0, 0.0, 0.0], [0.0, 0.0]]
    """
    func = "set_biases"
    check_graph(G, func)
    policy = check_choice(policy, "policy", func, BIAS_POLICIES)
    if policy == "keep":
        return G
    rng = check_random_state(seed, func=func)
    upd = {}
    for i, b in enumerate(G.blocks):
        if b.bias is None:
            continue
        bound = 1.0 / np.sqrt(b.shape[1])
        upd[i] = {
            "bias": np.zeros(b.shape[0])
            if policy == "zero"
            else rng.uniform(-bound, bound, b.shape[0])
        }
    return G.replace_blocks(upd)


def train_protocol(
    data: Any,
    *,
    seed: int = 0,
    hidden: int = 64,
    activation: str = "relu",
    epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 128,
    bias: str = "keep",
) -> TrainedRun:
    """Train one network with the study's protocol and export it.

    ``n_features -> hidden -> n_classes`` MLP (PyTorch default init), cross-entropy, Adam
    (lr 0.01, no weight decay), batch 128, 10 epochs, ``CosineAnnealingLR(T_max=epochs)``
    stepped per epoch; the final weights are kept (no model selection on the test set).

    Parameters
    ----------
    data : netstruct.datasets.Dataset
        A two-class task, e.g. ``class_pair(load_fashion_mnist(), 3, 1)`` (pixels in [-1, 1]).
    seed : int, default=0
        Seeds initialisation and batch order (the study did not fix seeds, G11).
    hidden : int, default=64
    activation : {"relu", "tanh", "sigmoid", "gelu", "leaky_relu"}, default="relu"
    epochs, lr, batch_size : training settings (defaults: the study's).
    bias : {"keep", "reinit", "zero"}, default="keep"
        Bias policy of the exported graph; ``"reinit"`` reproduces the authors' lost biases.

    Returns
    -------
    TrainedRun

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.probes import train_protocol
    >>> ds = ns.datasets.class_pair(ns.datasets.load_digits(), 0, 7)
    >>> run = train_protocol(ds, seed=0, hidden=8, epochs=2)
    >>> run.graph.blocks[0].shape, run.accuracy > 50
    ((8, 64), True)
    """
    from ..convert.from_torch import from_torch
    from ..training import evaluate, mlp, train

    func = "train_protocol"
    for name in ("X_train", "y_train", "X_test", "y_test", "n_classes"):
        if not hasattr(data, name):
            raise param_error("data", func, "a netstruct.datasets.Dataset", type(data).__name__)
    seed = int(check_scalar(seed, "seed", func, kind=int, min_value=0))
    hidden = int(check_scalar(hidden, "hidden", func, kind=int, min_value=1))
    bias = check_choice(bias, "bias", func, BIAS_POLICIES)
    Xtr = np.asarray(data.X_train, dtype=np.float32).reshape(len(data.X_train), -1)
    Xte = np.asarray(data.X_test, dtype=np.float32).reshape(len(data.X_test), -1)
    model = mlp([Xtr.shape[1], hidden, data.n_classes], activation=activation, seed=seed)
    hist = train(
        model,
        Xtr,
        data.y_train,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        schedule="cosine",
        seed=seed,
        progress=False,
    )
    acc = 100.0 * evaluate(model, Xte, data.y_test)
    G = set_biases(from_torch(model), bias, seed=np.random.default_rng([seed, 1]))
    return TrainedRun(G, acc, seed, bias, hist)


def to_unit_interval(data: Any) -> Any:
    """The same task with pixels mapped from [-1, 1] to [0, 1] (a collapse control).

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.probes import to_unit_interval
    >>> ds = to_unit_interval(ns.datasets.class_pair(ns.datasets.load_digits(), 0, 7))
    >>> bool(ds.X_train.min() >= 0.0 and ds.X_train.max() <= 1.0)
    True
    """
    from dataclasses import replace

    def scale(X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        lo, hi = float(X.min()), float(X.max())
        if lo >= 0.0 and hi <= 1.0:
            return X
        if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise param_error(
                "data",
                "to_unit_interval",
                "features in [-1, 1] or [0, 1]",
                f"range [{lo:g}, {hi:g}]",
            )
        return (X + 1.0) / 2.0

    return replace(data, X_train=scale(data.X_train), X_test=scale(data.X_test))


def _train_one(data: Any, seed: int, kwargs: dict[str, Any]) -> TrainedRun:
    return train_protocol(data, seed=seed, **kwargs)


def train_runs(
    data: Any,
    n_runs: int,
    *,
    seed: int = 0,
    scheduler: str | None = None,
    n_jobs: int | None = None,
    **kwargs: Any,
) -> list[TrainedRun]:
    """Train ``n_runs`` networks with :func:`train_protocol`; run ``i`` uses seed ``seed + i``.

    ``kwargs`` go to :func:`train_protocol`; runs go to Dask like the cells of
    :func:`~netstruct.probes.sweep` (``scheduler``, ``n_jobs``), and results do not depend on
    where they ran.
    """
    from ..utils.cluster import run_tasks

    n_runs = int(check_scalar(n_runs, "n_runs", "train_runs", kind=int, min_value=1))
    seed = int(check_scalar(seed, "seed", "train_runs", kind=int, min_value=0))
    return run_tasks(
        _train_one,
        [(data, seed + i, kwargs) for i in range(n_runs)],
        scheduler=scheduler,
        n_jobs=n_jobs,
        caller="train_runs",
    )

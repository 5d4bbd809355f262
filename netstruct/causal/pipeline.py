"""LEGCNet end to end: record a dense run, score weights, prune, retrain from the init, evaluate.

:func:`legcnet_prune` follows spec §2.10 for small sigmoid MLPs (``nn.Sequential`` of
``Linear`` layers): online SGD (batch 1, fixed sample order), squared error on sigmoid
outputs, weights recorded after every step, the effect (misclassification) evaluated at
window ends, then :func:`~netstruct.causal.legcnet.causal_scores`. The prune mask is attached
to ``netstruct.from_torch(model)`` as edge attributes, and the sparse net is retrained from
the original initialisation with the mask re-applied after every step (:func:`retrain`).
Baselines: :func:`magnitude_mask` and :func:`random_mask`, count-matched per layer.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..exceptions import param_error
from ..utils.random import check_random_state
from ..utils.validation import check_choice, check_scalar
from .legcnet import CausalScores, LEGCNetConfig, causal_scores
from .lyapunov import window_bounds
from .recorder import TrajectoryReader, TrajectoryRecorder

__all__ = [
    "legcnet_prune",
    "retrain",
    "RetrainResult",
    "LEGCNetResult",
    "magnitude_mask",
    "random_mask",
]


@dataclass(frozen=True)
class RetrainResult:
    """Outcome of :func:`retrain`.

    ``epochs`` is the first (0-based) epoch whose training accuracy reaches the benchmark,
    -1 if it never did; accuracies and macro-F1 are measured at that epoch (or at the end).
    """

    epochs: int
    test_accuracy: float
    macro_f1: float
    train_accuracy: float
    nnz_weights: int
    n_weights: int

    @property
    def pct_pruned(self) -> float:
        """Pruned weights as a percentage of all weights (biases excluded)."""
        return 100.0 * (self.n_weights - self.nnz_weights) / self.n_weights


@dataclass(frozen=True)
class LEGCNetResult:
    """Outcome of :func:`legcnet_prune`: mask, scores, graph with attributes, retraining.

    ``prune_mask`` is LEGCNet's flat vector over the weights in canonical edge order where
    True means *prune* (the paper's convention, kept for :func:`retrain` and the baselines).
    Everywhere else netstruct uses per-block keep masks: :attr:`keep_masks` (True = keep =
    called causal) and :attr:`plan`, which ``netstruct.prune(G, result)`` applies.
    """

    prune_mask: NDArray[np.bool_]
    scores: CausalScores
    graph: Any
    dense: RetrainResult
    sparse: RetrainResult
    config: LEGCNetConfig
    n_windows: int
    info: dict = field(default_factory=dict)

    @property
    def keep_masks(self) -> dict[str, NDArray[np.bool_]]:
        """Block name -> bool array of the block's shape, True = keep (the weights called causal)."""
        return _keep_masks(self.graph, self.prune_mask)

    @property
    def plan(self) -> Any:
        """A :class:`~netstruct.pruning.PruningPlan` removing the weights the rule calls non-causal.

        Replays on ``graph`` or on any graph of the same architecture (e.g. the model's
        initialisation: ``netstruct.prune(netstruct.from_torch(model), result)``).
        """
        import json

        from ..pruning.plan import PruningPlan

        cfg = json.loads(json.dumps(self.config.as_dict(), default=str))
        reason = (
            f"legcnet: {int(self.prune_mask.sum())} of {self.prune_mask.size} weights not Granger-causal "
            f"({cfg['rule']} rule, mode {self.info.get('mode', '?')})"
        )
        return PruningPlan.for_graph(self.graph).remove_masked(
            self.graph, self.keep_masks, reason=reason, meta={"method": "legcnet", "config": cfg}
        )


def _keep_masks(G: Any, prune_mask: NDArray[np.bool_]) -> dict[str, NDArray[np.bool_]]:
    """Split LEGCNet's flat True = prune vector into per-block keep masks (inputs validated)."""
    flat = np.asarray(prune_mask, dtype=bool).ravel()
    sizes = [int(np.prod(b.shape)) for b in G.blocks]
    if sum(sizes) != flat.size:
        raise param_error(
            "prune_mask",
            "LEGCNetResult.keep_masks",
            f"a flat vector over the graph's {sum(sizes)} weights (blocks {[b.name for b in G.blocks]})",
            f"length {flat.size}",
        )
    out, start = {}, 0
    for b, k in zip(G.blocks, sizes):
        out[b.name] = ~flat[start : start + k].reshape(b.shape)
        start += k
    return out


@contextlib.contextmanager
def _torch_threads(n: int = 1):
    """Tiny per-sample steps run far faster on one torch thread (no pool wake-ups)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _weights(model) -> list[tuple[str, Any]]:
    return [
        (n, p)
        for n, p in model.named_parameters()
        if p.ndim == 2 and n.split(".")[-1].startswith("weight")
    ]


def _masks(model, prune_mask: NDArray[np.bool_] | None):
    import torch

    if prune_mask is None:
        return None
    out, start = [], 0
    for _n, p in _weights(model):
        k = p.numel()
        out.append(
            (p, torch.as_tensor(~prune_mask[start : start + k].reshape(p.shape), dtype=p.dtype))
        )
        start += k
    if start != prune_mask.size:
        raise param_error(
            "prune_mask",
            "retrain",
            f"a boolean array of length {start} (the model's weights)",
            f"length {prune_mask.size}",
        )
    return out


def _predict(model, X, output: str):
    import torch

    with torch.no_grad():
        z = model(torch.as_tensor(X))
        return (z[:, 0] > 0).long().numpy() if z.shape[1] == 1 else z.argmax(1).numpy()


def _target(y, n_out: int):
    import torch

    y = torch.as_tensor(y)
    if n_out == 1:
        return y.float()[:, None]
    return torch.nn.functional.one_hot(y, n_out).float()


def _loss(z, t, output: str):
    import torch

    a = torch.sigmoid(z) if output == "sigmoid" else torch.softmax(z, dim=1)
    return ((a - t) ** 2).sum() / t.shape[1]


def _numpy_layers(model) -> list[list] | None:
    """``[[W, b, act], ...]`` numpy views of an ``nn.Sequential`` of Linear/activation modules.

    The arrays share memory with the parameters, so in-place updates change the model. None
    when the model is anything else (then :func:`_online_epochs` uses the torch loop).
    """
    import torch

    from ..convert.elementwise import ElementwiseHandler
    from ..convert.handlers import get_handler

    if not isinstance(model, torch.nn.Sequential):
        return None
    layers: list[list] = []
    for mod in model:
        handler = get_handler(mod)
        if type(mod) is torch.nn.Linear:
            params = [mod.weight] + ([] if mod.bias is None else [mod.bias])
            if any(p.device.type != "cpu" or not p.requires_grad for p in params):
                return None
            b = None if mod.bias is None else mod.bias.detach().numpy()
            layers.append([mod.weight.detach().numpy(), b, None])
        elif isinstance(handler, ElementwiseHandler) and layers:
            fast = handler.numpy_map(handler.config(mod))  # the layer's semantics, in numpy
            if fast is None or layers[-1][2] is not None:
                return None
            layers[-1][2] = None if handler.name == "Identity" else fast
        else:
            return None
    if not layers or layers[-1][2] is not None:  # the loss applies the output non-linearity
        return None
    return layers


def _numpy_step(layers: list[list], x: np.ndarray, t: np.ndarray, lr, output: str) -> None:
    """One SGD step on one sample, in place; the same update as the torch loop's.

    Loss ``sum((a - t)^2) / n_out`` with ``a`` the sigmoid or softmax of the last layer.
    """
    hs = [x]
    for W, b, act in layers:
        z = W @ hs[-1]
        if b is not None:
            z += b
        hs.append(z if act is None else act[0](z))
    z = hs[-1]
    if output == "sigmoid":
        a = 1.0 / (1.0 + np.exp(-z))
        g = (a - t) * (2.0 / t.size)
        dz = g * a * (1 - a)
    else:
        e = np.exp(z - z.max())
        a = e / e.sum()
        g = (a - t) * (2.0 / t.size)
        dz = a * (g - np.dot(g, a))
    dz = dz.astype(x.dtype, copy=False)
    for li in range(len(layers) - 1, -1, -1):
        W, b, _act = layers[li]
        h = hs[li]
        dh = W.T @ dz if li > 0 else None
        W -= lr * np.outer(dz, h)
        if b is not None:
            b -= lr * dz
        if dh is not None:
            act = layers[li - 1][2]
            dz = dh if act is None else dh * act[1](h)


def _online_epochs(model, X, y, *, lr, n_epochs, output, masks=None, on_step=None, on_epoch=None):
    """Online SGD over X in fixed order; ``on_step(step)`` after each update, ``on_epoch(e)`` may stop.

    Linear/activation ``nn.Sequential`` models take a numpy path (:func:`_numpy_step`, about
    ten times faster than autograd for one sample at a time; the trajectory agrees with the
    torch loop to float32 rounding); any other model runs the torch loop.
    """
    layers = _numpy_layers(model)
    if layers is not None:
        return _numpy_epochs(
            layers,
            model,
            X,
            y,
            lr=lr,
            n_epochs=n_epochs,
            output=output,
            masks=masks,
            on_step=on_step,
            on_epoch=on_epoch,
        )
    return _torch_epochs(
        model,
        X,
        y,
        lr=lr,
        n_epochs=n_epochs,
        output=output,
        masks=masks,
        on_step=on_step,
        on_epoch=on_epoch,
    )


def _numpy_epochs(layers, model, X, y, *, lr, n_epochs, output, masks, on_step, on_epoch):
    dtype = layers[0][0].dtype
    Xn = np.ascontiguousarray(np.asarray(X).reshape(len(X), -1), dtype=dtype)
    T = _target(y, layers[-1][0].shape[0]).numpy().astype(dtype)
    lr_ = dtype.type(lr)
    # masked weights: numpy views of the parameters and their 0/1 masks, applied after each step
    pairs = [(p.detach().numpy(), m.numpy().astype(dtype)) for p, m in (masks or [])]
    step = 0
    with np.errstate(over="ignore"):  # exp overflow saturates the sigmoid at 0, as in torch
        for epoch in range(n_epochs):
            for i in range(Xn.shape[0]):
                _numpy_step(layers, Xn[i], T[i], lr_, output)
                for W, m in pairs:
                    W *= m
                step += 1
                if on_step is not None:
                    on_step(step)
            if on_epoch is not None and on_epoch(epoch):
                return epoch
    return -1


def _torch_epochs(model, X, y, *, lr, n_epochs, output, masks=None, on_step=None, on_epoch=None):
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    n_out = next(p for n, p in reversed(_weights(model))).shape[0]
    Xt = torch.as_tensor(X)
    T = _target(y, n_out)
    step = 0
    for epoch in range(n_epochs):
        for i in range(Xt.shape[0]):
            opt.zero_grad()
            _loss(model(Xt[i : i + 1]), T[i : i + 1], output).backward()
            opt.step()
            if masks is not None:
                with torch.no_grad():
                    for p, m in masks:
                        p.mul_(m)
            step += 1
            if on_step is not None:
                on_step(step)
        if on_epoch is not None and on_epoch(epoch):
            return epoch
    return -1


def retrain(
    model,
    init_state: dict,
    data,
    *,
    prune_mask=None,
    lr: float,
    max_epochs: int,
    benchmark: float,
    output: str = "sigmoid",
) -> RetrainResult:
    """Reload ``init_state``, zero the pruned weights and train until train accuracy >= benchmark.

    The mask is re-applied after every optimizer step, so pruned weights stay exactly 0.
    Returns epochs-to-benchmark (-1 if never reached within ``max_epochs``), test accuracy and
    macro-F1 at that epoch, and the number of nonzero weights (the paper's "Flops").
    """
    from sklearn.metrics import f1_score

    model.load_state_dict(init_state)
    masks = _masks(model, None if prune_mask is None else np.asarray(prune_mask, dtype=bool))
    if masks is not None:
        import torch

        with torch.no_grad():
            for p, m in masks:
                p.mul_(m)

    def reached(epoch):
        return float(np.mean(_predict(model, data.X_train, output) == data.y_train)) >= benchmark

    with _torch_threads(1):
        epoch = _online_epochs(
            model,
            data.X_train,
            data.y_train,
            lr=lr,
            n_epochs=max_epochs,
            output=output,
            masks=masks,
            on_epoch=reached,
        )
    pred = _predict(model, data.X_test, output)
    n_w = int(sum(p.numel() for _n, p in _weights(model)))
    nnz = int(sum(int((p != 0).sum()) for _n, p in _weights(model)))
    return RetrainResult(
        epochs=int(epoch),
        test_accuracy=float(np.mean(pred == data.y_test)),
        macro_f1=float(f1_score(data.y_test, pred, average="macro")),
        train_accuracy=float(np.mean(_predict(model, data.X_train, output) == data.y_train)),
        nnz_weights=nnz,
        n_weights=n_w,
    )


def legcnet_prune(
    model,
    data,
    *,
    mode: str = "FT",
    epochs: int,
    pt_epochs: int | None = None,
    lr: float,
    benchmark: float,
    config: LEGCNetConfig | None = None,
    effect: str = "test",
    extra_epochs: int = 50,
    output: str = "sigmoid",
    workdir: str | Path | None = None,
) -> LEGCNetResult:
    """Run LEGCNet-FT or -PT on a small MLP (spec §2.10).

    Parameters
    ----------
    model : torch.nn.Sequential
        A ``Linear``/activation MLP at its initialisation (kept; a copy is trained).
    data : netstruct.datasets.Dataset
        Train/test split; samples are visited in the stored order every epoch.
    mode : {"FT", "PT"}
        Record the full dense run (``epochs``) or only its first ``pt_epochs`` epochs.
    epochs, pt_epochs : int
    lr : float
    benchmark : float
        Training accuracy that defines "epochs" in the paper's tables.
    config : LEGCNetConfig, default=LEGCNetConfig.recommended()
    effect : {"test", "train"}, default="test"
        Which accuracy gives the misclassification series (the authors used test).
    extra_epochs : int, default=50
        Retraining budget beyond ``epochs``.
    output : {"sigmoid", "softmax"}
        Output non-linearity in the squared-error loss.
    workdir : path, optional
        Where the trajectory is written (a temporary directory by default).

    Returns
    -------
    LEGCNetResult
        ``plan`` (apply with ``netstruct.prune(G, result)``; keeps the weights called
        causal), ``keep_masks`` (True = keep), ``prune_mask`` (flat, True = prune, the
        paper's convention) over the model's weights in canonical edge order, ``scores``,
        ``graph`` (``netstruct.from_torch`` of the trained dense net with the scores as edge
        attributes), and the dense and sparse :class:`RetrainResult` from the same init.

    Notes
    -----
    With the recommended rule and no edge showing evidence, BH rejects nothing and every
    weight is pruned; use ``LEGCNetConfig.recommended(amount=...)`` to prune the
    least influential fraction instead.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct.causal import LEGCNetConfig, legcnet_prune
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Sigmoid(), torch.nn.Linear(6, 3))
    >>> data = ns.datasets.load_iris(test_size=0.2, seed=0)
    >>> res = legcnet_prune(model, data, mode="PT", epochs=3, pt_epochs=3, lr=0.05, benchmark=0.9,
    ...                     config=LEGCNetConfig.authors(40), extra_epochs=0)
    >>> res.n_windows, res.prune_mask.shape, res.sparse.nnz_weights == 42 - int(res.prune_mask.sum())
    (9, (42,), True)
    """
    from ..convert.from_torch import from_torch

    func = "legcnet_prune"
    check_choice(mode, "mode", func, ["FT", "PT"])
    check_choice(effect, "effect", func, ["test", "train"])
    check_choice(output, "output", func, ["sigmoid", "softmax"])
    check_scalar(epochs, "epochs", func, kind=int, min_value=1)
    check_scalar(lr, "lr", func, min_value=0.0, include_min=False)
    config = LEGCNetConfig.recommended() if config is None else config
    n_rec = epochs if mode == "FT" else pt_epochs
    if n_rec is None:
        raise param_error("pt_epochs", func, "an int >= 1 when mode='PT'", None)
    check_scalar(n_rec, "pt_epochs", func, kind=int, min_value=1)
    init_state = copy.deepcopy(model.state_dict())
    dense = copy.deepcopy(model)
    n_rows = 1 + n_rec * len(data.y_train)
    _, last = window_bounds(n_rows, config.window, config.stride)
    ends = set(last.tolist())
    Xe, ye = (data.X_test, data.y_test) if effect == "test" else (data.X_train, data.y_train)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="legcnet_")
        workdir = tmp.name
    try:
        rec = TrajectoryRecorder(dense, Path(workdir) / f"trajectory_{mode}", overwrite=True)

        def on_step(step):
            err = 1.0 - float(np.mean(_predict(dense, Xe, output) == ye)) if step in ends else None
            rec.record(**({} if err is None else {"error_rate": err}))

        if 0 in ends:  # only when the window is a single row
            raise param_error("config", func, "a window longer than 1 row", config.window)
        with _torch_threads(1):
            _online_epochs(
                dense,
                data.X_train,
                data.y_train,
                lr=lr,
                n_epochs=n_rec,
                output=output,
                on_step=on_step,
            )
        rec.close()
        reader = TrajectoryReader(rec.path)
        scores = causal_scores(reader.weights(), reader.metric("error_rate"), config)
    finally:
        if tmp is not None:
            tmp.cleanup()
    G = from_torch(dense).with_edge_attrs(**scores.edge_attrs())
    budget = epochs + extra_epochs
    work = copy.deepcopy(model)
    dense_res = retrain(
        work, init_state, data, lr=lr, max_epochs=budget, benchmark=benchmark, output=output
    )
    sparse_res = retrain(
        work,
        init_state,
        data,
        prune_mask=scores.prune,
        lr=lr,
        max_epochs=budget,
        benchmark=benchmark,
        output=output,
    )
    return LEGCNetResult(
        prune_mask=scores.prune.copy(),
        scores=scores,
        graph=G,
        dense=dense_res,
        sparse=sparse_res,
        config=config,
        n_windows=int(last.size),
        info={
            "mode": mode,
            "recorded_epochs": int(n_rec),
            "n_rows": n_rows,
            "effect": effect,
            "lr": lr,
        },
    )


def _per_layer_counts(model, prune_mask):
    counts, start = [], 0
    for _n, p in _weights(model):
        k = p.numel()
        counts.append((start, k, int(np.count_nonzero(prune_mask[start : start + k]))))
        start += k
    return counts


def magnitude_mask(trained_model, like_mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Prune, in each layer, as many weights as ``like_mask`` does: those smallest in |w| (trained).

    Examples
    --------
    >>> import numpy as np, torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.copy_(torch.tensor([[0.5, -0.1], [2.0, 0.3]]))
    >>> magnitude_mask(model, np.array([True, True, False, False])).tolist()
    [False, True, False, True]
    """
    w = np.concatenate([p.detach().numpy().ravel() for _n, p in _weights(trained_model)])
    out = np.zeros_like(like_mask)
    for start, k, c in _per_layer_counts(trained_model, like_mask):
        idx = np.argsort(np.abs(w[start : start + k]), kind="stable")[:c]
        out[start + idx] = True
    return out


def random_mask(model, like_mask: NDArray[np.bool_], *, seed=None) -> NDArray[np.bool_]:
    """Prune, in each layer, as many weights as ``like_mask`` does, chosen uniformly at random.

    Examples
    --------
    >>> import numpy as np, torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> int(random_mask(model, np.array([True, False, True, False, False, False]), seed=0).sum())
    2
    """
    rng = check_random_state(seed, func="random_mask")
    out = np.zeros_like(like_mask)
    for start, k, c in _per_layer_counts(model, like_mask):
        out[start + rng.choice(k, size=c, replace=False)] = True
    return out

"""Batched evaluation: the accuracy of many weight variants of one small network at once.

A graph exported from a feed-forward classifier (a chain of ``Linear`` layers and
elementwise modules: activations, dropout, identity, flatten, softmax) is compiled into a
list of steps. ``K`` variants of its weights, stacked as ``(K, n_out, n_in)`` per block, are
then evaluated together: the first layer is one GEMM ``X @ [W_1 … W_K]``, the next ones
``torch.bmm`` over the stack, chunked so the hidden activations stay within a memory budget.
No module is rebuilt and there is no Python loop over the variants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import InvalidParameterError, param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph, check_scalar

__all__ = ["evaluate_batch", "predict_batch", "check_classifier"]

#: Row-wise monotone maps: as the *last* step they never change the arg-max, so they are skipped.
_MONOTONE_ROWWISE = {"Softmax", "LogSoftmax"}
#: Default budget for one chunk of hidden activations (bytes).
_CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class _Plan:
    """Compiled forward pass: ``("linear", block index)`` or ``("act", handler, config)``."""

    steps: tuple[tuple[Any, ...], ...]
    n_features: int
    n_classes: int
    width: int
    #: input shape (without batch) when the graph is not a Linear chain: variants then run
    #: through the rebuilt module (to_torch), one at a time
    module_input: tuple[int, ...] | None = None


def _not_classifier(func: str, why: str) -> InvalidParameterError:
    return param_error(
        "G",
        func,
        "a feed-forward classifier graph (from netstruct.from_torch of a chain of Linear layers "
        f"and elementwise activations); {why}",
        "an unsupported graph",
    )


def _compile(G: SignedGraph, func: str) -> _Plan:
    """Compile the graph into batched steps, or a module plan for any other re-importable graph."""
    try:
        return _compile_chain(G, func)
    except InvalidParameterError:
        spec = G.spec
        if (
            spec is None
            or "input_shape" not in spec
            or spec.get("input_dtype", "float32").startswith("int")
        ):
            raise
    shape = tuple(int(d) for d in spec["input_shape"][1:])
    n_classes = int(np.count_nonzero(G.node_column("kind") == "output"))
    return _Plan((("module",),), int(np.prod(shape)), n_classes, 1, module_input=shape)


def _module_logits(G: SignedGraph, Xt, W: dict, B: dict, lo: int, hi: int, shape: tuple[int, ...]):
    """Logits of variants ``lo:hi`` of a non-chain graph, each through its rebuilt module."""
    import torch

    from ..convert.to_torch import to_torch

    out = []
    x = Xt.reshape(len(Xt), *shape)
    for k in range(lo, hi):
        upd = {i: {"weight": W[i][k].numpy()} for i in W}
        for i in B:
            upd.setdefault(i, {})["bias"] = B[i][k].numpy()
        variant = G.replace_blocks(upd) if upd else G
        out.append(to_torch(variant)(x))
    return torch.stack(out)


def _compile_chain(G: SignedGraph, func: str) -> _Plan:
    """Compile the graph's architecture spec into a chain of steps (or raise)."""
    from ..convert.elementwise import ElementwiseHandler
    from ..convert.handlers import handler_for_name

    spec = G.spec
    if spec is None or "ops" not in spec:
        raise _not_classifier(func, "this graph has no architecture spec")
    by_module = {b.module: i for i, b in enumerate(G.blocks) if b.param == "weight"}
    steps: list[tuple[Any, ...]] = []
    prev = None
    for pos, rec in enumerate(spec["ops"]):
        op = rec["op"]
        args = rec.get("args", [])
        if op == "placeholder":
            if pos != 0:
                raise _not_classifier(func, "it takes more than one input")
            prev = pos
            continue
        if op == "output":
            if args != [{"$node": prev}]:
                raise _not_classifier(func, "its output is not the last operation")
            break
        if op != "call_module" or args != [{"$node": prev}] or rec.get("kwargs"):
            raise _not_classifier(
                func, f"operation {rec.get('target')!r} ({op}) is not a plain chain step"
            )
        path = rec["target"]
        handler = spec["modules"][path]["handler"]
        config = spec["modules"][path].get("config", {})
        semantics = handler_for_name(handler)
        if handler == "Linear":
            steps.append(("linear", by_module[path]))
        elif handler == "Flatten":
            if steps and config.get("start_dim", 1) != 1:
                raise _not_classifier(
                    func, f"module {path!r} flattens dims other than the features"
                )
        elif isinstance(semantics, ElementwiseHandler):
            if semantics.neutral:
                pass
            elif not semantics.elementwise and config.get("dim") not in (None, 1, -1):
                raise _not_classifier(
                    func, f"module {path!r} normalises over dim {config.get('dim')}"
                )
            else:
                steps.append(("act", handler, dict(config)))
        else:
            raise _not_classifier(func, f"module {path!r} is a {handler}")
        prev = pos
    while steps and steps[-1][0] == "act" and steps[-1][1] in _MONOTONE_ROWWISE:
        steps.pop()  # a softmax on the logits does not change the predicted class
    linear = [s[1] for s in steps if s[0] == "linear"]
    if not linear:
        raise _not_classifier(func, "it has no Linear layer")
    for a, b in zip(linear, linear[1:]):
        if G.blocks[a].shape[0] != G.blocks[b].shape[1]:
            raise _not_classifier(func, "consecutive Linear layers do not chain")
    if steps[0][0] != "linear":
        raise _not_classifier(func, "it applies a module before its first Linear layer")
    width = max(G.blocks[i].shape[0] for i in linear)
    return _Plan(tuple(steps), G.blocks[linear[0]].shape[1], G.blocks[linear[-1]].shape[0], width)


def check_classifier(
    G: SignedGraph, X: Any = None, y: Any = None, *, func: str = "check_classifier"
):
    """Check that ``G`` is a classifier the batched evaluator runs, and that ``X, y`` fit it.

    Returns the compiled plan and the validated ``(X, y)`` arrays (``X`` flattened to
    ``(n_samples, n_features)`` float32, ``y`` int64).

    Raises
    ------
    InvalidParameterError
        When the graph is not a chain of Linear layers and elementwise modules, when ``X``
        does not have the input width, or when a label is not an output class.
    """
    check_graph(G, func)
    plan = _compile(G, func)
    if X is None:
        return plan, None, None
    Xa = np.asarray(X, dtype=np.float32)
    Xa = Xa.reshape(len(Xa), -1) if Xa.ndim >= 2 else Xa
    if Xa.ndim != 2 or Xa.shape[1] != plan.n_features or len(Xa) == 0:
        raise param_error(
            "X",
            func,
            f"an array of shape (n_samples > 0, {plan.n_features})",
            f"shape {np.shape(X)}",
        )
    if not np.isfinite(Xa).all():
        raise param_error("X", func, "finite", "an array holding NaN or infinite values")
    ya = np.asarray(y)
    if ya.shape != (len(Xa),) or not np.issubdtype(ya.dtype, np.integer):
        raise param_error(
            "y", func, f"an int array of shape ({len(Xa)},)", f"dtype {ya.dtype}, shape {ya.shape}"
        )
    if ya.min() < 0 or ya.max() >= plan.n_classes:
        raise param_error(
            "y",
            func,
            f"labels in 0..{plan.n_classes - 1} (the classifier has {plan.n_classes} outputs)",
            f"labels in {int(ya.min())}..{int(ya.max())}",
        )
    return plan, np.ascontiguousarray(Xa), ya.astype(np.int64)


def _stacks(
    G: SignedGraph, arrays: Mapping[Any, np.ndarray] | None, what: str, func: str
) -> tuple[dict[int, np.ndarray], int | None]:
    out: dict[int, np.ndarray] = {}
    k = None
    for key, arr in (arrays or {}).items():
        i = G.block_index(key)
        a = np.asarray(arr, dtype=np.float32)
        n_out, n_in = G.blocks[i].shape
        shape = (n_out, n_in) if what == "weights" else (n_out,)
        if a.ndim != len(shape) + 1 or a.shape[1:] != shape:
            raise param_error(
                what,
                func,
                f"stacks of shape (K, {', '.join(map(str, shape))}) for block {G.blocks[i].name!r}",
                f"shape {a.shape}",
            )
        if k is not None and a.shape[0] != k:
            raise param_error(
                what,
                func,
                "stacks with the same number K of variants",
                f"K = {k} and K = {a.shape[0]}",
            )
        k = a.shape[0]
        out[i] = a
    return out, k


def _tensor(a: np.ndarray):
    """A torch view of a (possibly read-only) array; the evaluator never writes to it."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


def _forward(plan: _Plan, G: SignedGraph, Xt, W: dict, B: dict, lo: int, hi: int):
    """Logits of variants ``lo:hi`` (torch tensors in, tensor (k, n, C) out)."""
    import torch

    from ..convert.elementwise import ElementwiseHandler
    from ..convert.handlers import handler_for_name

    if plan.module_input is not None:
        return _module_logits(G, Xt, W, B, lo, hi, plan.module_input)
    k = hi - lo
    h = None
    for step in plan.steps:
        if step[0] == "act":  # the handler's semantics, features on the last axis
            handler = handler_for_name(step[1])
            assert isinstance(handler, ElementwiseHandler)  # plans only hold element-wise steps
            h = handler.forward_torch(step[2], h)
            continue
        i = step[1]
        blk = G.blocks[i]
        n_out, n_in = blk.shape
        w = W[i][lo:hi] if i in W else _tensor(blk.weight).expand(k, n_out, n_in)
        if h is None:  # one GEMM over all variants: (n, in) @ (in, k*out)
            h = (Xt @ w.reshape(k * n_out, n_in).T).reshape(len(Xt), k, n_out).transpose(0, 1)
        else:
            h = torch.bmm(h, w.transpose(1, 2))
        if i in B:
            h = h + B[i][lo:hi, None, :]
        elif blk.bias is not None:
            h = h + _tensor(blk.bias)
    return h


def predict_batch(
    G: SignedGraph,
    X: Any,
    *,
    weights: Mapping[int | str, np.ndarray] | None = None,
    biases: Mapping[int | str, np.ndarray] | None = None,
    func: str = "predict_batch",
) -> np.ndarray:
    """Logits of ``K`` weight variants of ``G`` on ``X``, shape ``(K, n_samples, n_classes)``.

    Parameters and stacking rules as :func:`evaluate_batch` (blocks not given keep ``G``'s
    arrays). Meant for small data; :func:`evaluate_batch` streams over the variants.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import predict_batch
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.from_torch(ns.training.mlp([3, 2], seed=0))
    >>> G = G.replace_blocks({0: {"weight": W, "bias": [0.1, -0.2]}})
    >>> predict_batch(G, [[1.0, -1.0, 0.5]], weights={0: np.stack([W, np.sign(W)])},
    ...               biases={0: [[0.1, -0.2], [1.0, -1.0]]}).astype(float).round(3).tolist()
    [[[0.85, -0.925]], [[3.5, -3.5]]]
    """
    import torch

    plan = _compile(check_graph(G, func), func)
    Xa = np.asarray(X, dtype=np.float32)
    Xa = Xa.reshape(len(Xa), -1)
    if Xa.shape[1] != plan.n_features:
        raise param_error(
            "X", func, f"an array with {plan.n_features} features", f"shape {np.shape(X)}"
        )
    Wn, kw = _stacks(G, weights, "weights", func)
    Bn, kb = _stacks(G, biases, "biases", func)
    if kw is not None and kb is not None and kw != kb:
        raise param_error("biases", func, f"K = {kw} variants, as the weights", kb)
    k = kw or kb or 1
    W = {i: _tensor(a) for i, a in Wn.items()}
    B = {i: _tensor(a) for i, a in Bn.items()}
    with torch.no_grad():
        return _forward(plan, G, torch.from_numpy(np.ascontiguousarray(Xa)), W, B, 0, k).numpy()


def evaluate_batch(
    G: SignedGraph,
    X: Any,
    y: Any,
    *,
    weights: Mapping[int | str, np.ndarray] | None = None,
    biases: Mapping[int | str, np.ndarray] | None = None,
    chunk_bytes: int = _CHUNK_BYTES,
) -> np.ndarray:
    """Accuracy of ``K`` weight variants of the classifier ``G`` on ``(X, y)``, all at once.

    Parameters
    ----------
    G : SignedGraph
        A feed-forward classifier graph (chain of Linear layers and elementwise modules).
    X : array-like of shape (n_samples, n_features) or (n_samples, *image_shape)
    y : array-like of int, shape (n_samples,)
        Class labels in ``0..n_classes-1``.
    weights : mapping of block index or name to ndarray of shape (K, n_out, n_in), optional
        Weight stacks (e.g. ``randomize_ensemble(...).weights``); other blocks keep ``G``'s.
    biases : mapping of block index or name to ndarray of shape (K, n_out), optional
        Bias stacks; other blocks keep ``G``'s biases.
    chunk_bytes : int, default=256 MiB
        Memory budget for one chunk of hidden activations; the variants are evaluated in
        chunks of ``chunk_bytes // (4 n_samples width)``.

    Returns
    -------
    ndarray of float64, shape (K,)
        Accuracies as fractions in [0, 1] (K = 1 when no stack is given).

    Raises
    ------
    InvalidParameterError
        ``G`` is not a classifier the evaluator understands, ``X``/``y`` do not fit it, or the
        stacks disagree in shape or ``K``.

    Notes
    -----
    Ties in the logits go to the lowest class index, as ``argmax`` in
    :func:`netstruct.training.evaluate`. Results equal a loop of ``to_torch`` + ``evaluate`` up
    to float32 rounding order (which may flip an exact tie of a binarized network).

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import evaluate_batch
    >>> G = ns.from_torch(ns.training.mlp([3, 2], seed=0))
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> X, y = np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, 0.0]]), np.array([0, 1])
    >>> evaluate_batch(G, X, y, weights={0: np.stack([W, -W])}, biases={0: np.zeros((2, 2))}).tolist()
    [1.0, 0.0]
    """
    import torch

    func = "evaluate_batch"
    plan, Xa, ya = check_classifier(G, X, y, func=func)
    chunk_bytes = int(check_scalar(chunk_bytes, "chunk_bytes", func, kind=int, min_value=1))
    Wn, kw = _stacks(G, weights, "weights", func)
    Bn, kb = _stacks(G, biases, "biases", func)
    if kw is not None and kb is not None and kw != kb:
        raise param_error("biases", func, f"K = {kw} variants, as the weights", kb)
    k = kw or kb or 1
    per = max(1, chunk_bytes // (4 * len(Xa) * max(plan.width, 1)))
    W = {i: _tensor(a) for i, a in Wn.items()}
    B = {i: _tensor(a) for i, a in Bn.items()}
    Xt, yt = torch.from_numpy(Xa), torch.from_numpy(ya)
    acc = np.empty(k, dtype=np.float64)
    with torch.no_grad():
        for lo in range(0, k, per):
            hi = min(k, lo + per)
            logits = _forward(plan, G, Xt, W, B, lo, hi)
            acc[lo:hi] = (logits.argmax(-1) == yt).double().mean(1).numpy()
    return acc

"""Reconstruction after a structural cut: re-fit the next layers' weights by ridge least squares.

Removing units (channels, hidden units) leaves the layers that read them with missing inputs.
:func:`reconstruct` re-fits, for every such layer, the weights on the inputs that remain (and
the bias) so that the layer's pre-activation output on calibration data matches the original
model's::

    min_{W', b'}  (1/n) ||X_kept W'^T + b' - Y_orig||^2 + ridge * s * ||W'||^2

with ``s = mean(X_kept^2)`` over the row's kept features (the mean diagonal of the Gram
matrix ``X^T X / n``): the ridge is relative to the features' scale, as GPTQ's and SparseGPT's
damping is, so one value serves activations of any magnitude (an absolute ``1e-3`` would
outweigh the fit of a layer whose inputs are ``~1e-2``, as in a freshly initialised LLM).
``X_kept`` is the layer's input in the *pruned* model (earlier reconstructions already applied,
so they propagate), ``Y_orig`` its output in the *original* model. The sums ``X^T X``,
``X^T Y``, ``X^T 1`` and ``Y^T 1`` are accumulated batch by batch, so memory is bounded by the
Gram matrix (``d x d`` for ``d`` input features), never the activation matrix.

Supported layers: ``nn.Linear`` (also one reading a flattened feature map, or one inside a
composite layer such as a transformer's feed-forward), ``nn.Conv1d`` and
``nn.Conv2d`` with ``groups=1`` and zero padding (the features are the ``in_channels x kernel
taps`` patches, ``torch.nn.functional.unfold`` per batch), and the input blocks ``W_ih`` of
``nn.RNN``/``nn.LSTM``/``nn.GRU`` (the features are the layer's input sequence, the targets
its gate pre-activations from the input, ``W_ih x_t + b_ih``). Other blocks are left as they are
and listed in ``provenance["reconstruct"]["skipped"]`` with the reason.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import GraphError, param_error
from ..graphs.block import Block
from ..graphs.signed import NODE_COLUMNS, SignedGraph

__all__ = ["reconstruct"]

_FUNC = "reconstruct"


# ---------------------------------------------------------------------- streaming normal equations
@dataclass
class _Normal:
    """Streamed sums of one layer's least-squares problem (float64)."""

    gram: np.ndarray  # (d, d)  X^T X
    cross: np.ndarray  # (d, m)  X^T Y
    xsum: np.ndarray  # (d,)    X^T 1
    ysum: np.ndarray  # (m,)    Y^T 1
    ysq: np.ndarray  # (m,)    sum of Y^2
    n: int = 0

    @classmethod
    def zeros(cls, d: int, m: int) -> _Normal:
        return cls(np.zeros((d, d)), np.zeros((d, m)), np.zeros(d), np.zeros(m), np.zeros(m))

    def add(self, X: Any, Y: Any) -> None:
        """Add a batch: ``X`` (rows, d) and ``Y`` (rows, m) float64 torch tensors."""
        self.gram += (X.T @ X).numpy()
        self.cross += (X.T @ Y).numpy()
        self.xsum += X.sum(0).numpy()
        self.ysum += Y.sum(0).numpy()
        self.ysq += (Y * Y).sum(0).numpy()
        self.n += int(X.shape[0])


def _solve_rows(
    nrm: _Normal, support: np.ndarray, cols: np.ndarray, ridge: float, fit_bias: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Ridge solution on the features ``support`` for target columns ``cols``.

    Inputs already validated. Returns ``W`` (len(cols), len(support)) and ``b`` (len(cols),).
    """
    n = float(nrm.n)
    k = support.size
    A = nrm.gram[np.ix_(support, support)] / n
    scale = float(np.mean(np.diagonal(A))) if k else 0.0  # the features' mean square
    A = A + ridge * scale * np.eye(k)
    B = nrm.cross[np.ix_(support, cols)] / n
    if fit_bias:
        s = nrm.xsum[support] / n
        A = np.block([[A, s[:, None]], [s[None, :], np.ones((1, 1))]])
        B = np.vstack([B, nrm.ysum[cols][None, :] / n])
    if ridge > 0:
        try:
            import scipy.linalg

            Z = scipy.linalg.solve(A, B, assume_a="pos")
        except (np.linalg.LinAlgError, ValueError):
            Z = np.linalg.lstsq(A, B, rcond=None)[0]
    else:
        Z = np.linalg.lstsq(A, B, rcond=None)[0]
    if fit_bias:
        return Z[:k].T, Z[k]
    return Z.T, None


def _row_sse(nrm: _Normal, W: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row, the summed squared error of ``X W^T + b`` against target column ``rows[r]``."""
    n = float(nrm.n)
    G = nrm.gram
    C = nrm.cross[:, rows]
    quad = np.einsum("rd,de,re->r", W, G, W)
    total = quad + 2 * b * (W @ nrm.xsum) + n * b * b - 2 * (np.einsum("rd,dr->r", W, C))
    total = total - 2 * b * nrm.ysum[rows] + nrm.ysq[rows]
    return np.maximum(total, 0.0)


def _mse(nrm: _Normal, W: np.ndarray, b: np.ndarray, rows: np.ndarray) -> float:
    """Mean squared error of ``X W^T + b`` against the target columns ``rows`` (from the sums)."""
    total = _row_sse(nrm, W, b, rows)
    return float(total.sum() / (float(nrm.n) * max(rows.size, 1)))


# ---------------------------------------------------------------------- layers
@dataclass
class _Layer:
    """How to read one block's features and targets from a torch module (inputs validated)."""

    block: Block
    kind: str  # "linear", "conv", "rnn"
    module: Any  # module in the pruned model
    orig_module: Any
    layer: int = 0  # recurrent layer index
    suffix: str = ""  # recurrent direction suffix ("" or "_reverse")
    taps: int = 1
    param: str = "weight"  # the parameter's name inside ``module``
    bias_param: str | None = None


def _local(module_path: str, name: str | None) -> tuple[str, str | None]:
    """``(owner module path, name inside it)`` of a parameter ``module_path.name``."""
    if not name:
        return module_path, None
    full = f"{module_path}.{name}" if module_path else name
    owner, _, local = full.rpartition(".")
    return owner, local


def _classify(block: Block, module: Any, param: str) -> tuple[str | None, str]:
    """``(kind, reason)``: the layer kind of a block, or None and why it is not supported."""
    import torch

    if block.kind != "weight" or not block.has_parameter:
        return None, f"a {block.kind} block, not a weight"
    if "@" in block.module:
        return None, "a shared module used more than once"
    if isinstance(module, torch.nn.Linear) and param == "weight":
        return "linear", ""
    if isinstance(module, (torch.nn.Conv1d, torch.nn.Conv2d)) and param == "weight":
        if isinstance(module, (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d)):
            return None, "transposed convolutions are not supported"
        if module.groups != 1:
            return None, f"grouped convolution (groups={module.groups})"
        if module.padding_mode != "zeros":
            return None, f"padding_mode={module.padding_mode!r} (only 'zeros')"
        if isinstance(module.padding, str) and module.padding == "same":
            k = np.asarray(module.kernel_size) * 1
            d = np.asarray(module.dilation)
            if np.any((d * (k - 1)) % 2):
                return None, "padding='same' with an even effective kernel"
        return "conv", ""
    if isinstance(module, (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU)):
        if re.fullmatch(r"weight_ih_l\d+(_reverse)?", param):
            if getattr(module, "proj_size", 0):
                return None, "LSTM with proj_size"
            return "rnn", ""
        return None, "a recurrent (hidden-to-hidden) block"
    return None, f"layer type {type(module).__name__} is not supported"


def _conv_padding(module: Any) -> tuple[int, ...]:
    pad = module.padding
    if isinstance(pad, str):
        if pad == "valid":
            return (0,) * len(module.kernel_size)
        return tuple(
            d * (k - 1) // 2 for k, d in zip(module.kernel_size, module.dilation, strict=True)
        )
    return tuple(pad)


def _conv_features(module: Any, x: Any) -> Any:
    """Patches ``(N * L, C * taps)`` of a conv's input, ordered like ``weight.reshape(out, -1)``."""
    import torch

    F = torch.nn.functional
    pad = _conv_padding(module)
    if x.dim() == 3:  # Conv1d: a height-1 image
        cols = F.unfold(
            x.unsqueeze(2),
            (1, module.kernel_size[0]),
            dilation=(1, module.dilation[0]),
            padding=(0, pad[0]),
            stride=(1, module.stride[0]),
        )
    else:
        cols = F.unfold(
            x, module.kernel_size, dilation=module.dilation, padding=pad, stride=module.stride
        )
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _channels_last(y: Any) -> Any:
    """``(N, C, *S) -> (N * prod(S), C)``."""
    return y.movedim(1, -1).reshape(-1, y.shape[1])


def _rnn_prefix(module: Any, layers: int) -> Any:
    """A copy of the first ``layers`` layers of a recurrent module (same weights)."""
    import torch

    base = next(c for c in (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN) if isinstance(module, c))
    kw: dict[str, Any] = {
        "input_size": module.input_size,
        "hidden_size": module.hidden_size,
        "num_layers": layers,
        "bias": module.bias,
        "batch_first": module.batch_first,
        "bidirectional": module.bidirectional,
    }
    if base is torch.nn.RNN:
        kw["nonlinearity"] = module.nonlinearity
    prefix = base(**kw)
    sd = {
        k: v
        for k, v in module.state_dict().items()
        if int(re.search(r"_l(\d+)", k).group(1)) < layers  # type: ignore[union-attr]
    }
    prefix.load_state_dict(sd)
    return prefix.to(next(module.parameters()).dtype).eval()


def _rnn_input(module: Any, x: Any, layer: int) -> Any:
    """Input sequence of recurrent layer ``layer``, as rows ``(N * T, features)``."""
    if layer > 0:
        x = _rnn_prefix(module, layer)(x)[0]
    return x.reshape(-1, x.shape[-1])


@contextlib.contextmanager
def _module_calls() -> Iterator[None]:
    """Turn off torch's fused attention/encoder fast path, which skips submodule calls (hooks)."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


class _Stop(BaseException):  # not Exception: a model's own `except Exception` must not catch it
    """Raised by a capture hook to end a forward pass early."""


def _capture(model: Any, module: Any, x: Any, *, output: bool) -> tuple[Any, Any]:
    """Run ``model(x)`` up to ``module``; return its first positional input and its output."""
    import torch

    seen: dict[str, Any] = {}

    def pre(_m: Any, args: tuple) -> None:
        seen["args"] = args
        if not output:
            raise _Stop

    def post(_m: Any, _args: tuple, out: Any) -> None:
        seen["out"] = out
        raise _Stop

    h1 = module.register_forward_pre_hook(pre)
    h2 = module.register_forward_hook(post)
    try:
        with torch.no_grad():
            model(x)
    except _Stop:
        pass
    finally:
        h1.remove()
        h2.remove()
    if "args" not in seen:
        raise GraphError(
            f"reconstruct: module {type(module).__name__} was not called by the model's forward "
            "pass on the calibration data."
        )
    args = seen["args"]
    if not args or not isinstance(args[0], torch.Tensor):
        raise GraphError(
            f"reconstruct: module {type(module).__name__} is called without a tensor input "
            "(e.g. a PackedSequence); it cannot be re-fitted."
        )
    return args[0], seen.get("out")


# ---------------------------------------------------------------------- per-block re-fit
def _features(lay: _Layer, model: Any, x: Any) -> Any:
    import torch

    inp, _ = _capture(model, lay.module, x, output=False)
    if lay.kind == "linear":
        feats = inp.reshape(-1, inp.shape[-1])
    elif lay.kind == "conv":
        feats = _conv_features(lay.module, inp)
    else:
        feats = _rnn_input(lay.module, inp, lay.layer)
    return feats.to(torch.float64)


def _targets(lay: _Layer, model: Any, x: Any) -> Any:
    import torch

    inp, out = _capture(model, lay.orig_module, x, output=lay.kind != "rnn")
    if lay.kind == "linear":
        y = out.reshape(-1, out.shape[-1])
    elif lay.kind == "conv":
        y = _channels_last(out)
    else:
        m = lay.orig_module
        seq = _rnn_input(m, inp, lay.layer)
        W = getattr(m, lay.param)
        y = seq @ W.T
        bias = getattr(m, f"bias_ih_l{lay.layer}{lay.suffix}", None)
        if bias is not None:
            y = y + bias
    return y.to(torch.float64)


def _raw_support(block: Block, lay: _Layer) -> np.ndarray:
    """Boolean ``(n_out, d)``: which raw input features each row reads."""
    lt = block.layout.get("type")
    if lay.kind == "conv":
        return np.repeat(block.mask, lay.taps, axis=1)
    if lt == "expand":
        return block.mask[:, np.asarray(block.layout["columns"], dtype=np.int64)]
    return block.mask.copy()


def _current_param(module: Any, lay: _Layer) -> tuple[np.ndarray, np.ndarray | None]:
    W = getattr(module, lay.param).detach().double().numpy()
    bname = lay.bias_param
    b = getattr(module, bname, None) if bname else None
    return W.reshape(W.shape[0], -1).copy(), None if b is None else b.detach().double().numpy()


def _refit(
    lay: _Layer,
    pruned: Any,
    orig: Any,
    batches: list[Any],
    orig_rows: np.ndarray,
    ridge: float,
) -> dict[str, Any]:
    """Stream the sums, solve by support pattern, write the weights into the pruned module."""
    import torch

    block = lay.block
    support = _raw_support(block, lay)
    live = np.flatnonzero(support.any(axis=1))
    W, b = _current_param(lay.module, lay)
    if W.shape[1] != support.shape[1]:
        raise GraphError(
            f"reconstruct: block {block.name!r} has {support.shape[1]} input features but its module "
            f"reads {W.shape[1]}; the graph and its module disagree."
        )
    nrm: _Normal | None = None
    for xb in batches:
        with torch.no_grad():
            X = _features(lay, pruned, xb)
            Y = _targets(lay, orig, xb)[:, orig_rows[live]]
        if X.shape[0] != Y.shape[0] or X.shape[1] != W.shape[1]:
            raise GraphError(
                f"reconstruct: block {block.name!r}: features {tuple(X.shape)} and targets "
                f"{tuple(Y.shape)} do not line up (did the pruned model change the layer's "
                "spatial size?)."
            )
        if nrm is None:
            nrm = _Normal.zeros(X.shape[1], Y.shape[1])
        nrm.add(X, Y)
    assert nrm is not None  # batches is non-empty (validated)
    bias = np.zeros(W.shape[0]) if b is None else b
    idx = np.arange(live.size)
    before = _mse(nrm, W[live], bias[live], idx)
    Wn, bn = W.copy(), bias.copy()
    patterns, inverse = np.unique(support[live], axis=0, return_inverse=True)
    for p in range(patterns.shape[0]):
        cols = np.flatnonzero(inverse.reshape(-1) == p)
        feat = np.flatnonzero(patterns[p])
        w, bb = _solve_rows(nrm, feat, cols, ridge, b is not None)
        rows = live[cols]
        Wn[rows] = 0.0
        Wn[np.ix_(rows, feat)] = w
        if bb is not None:
            bn[rows] = bb
    after = _mse(nrm, Wn[live], bn[live], idx)
    param = getattr(lay.module, lay.param)
    with torch.no_grad():
        param.copy_(torch.from_numpy(Wn.reshape(param.shape)).to(param.dtype))
        if b is not None and lay.bias_param is not None:
            bp = getattr(lay.module, lay.bias_param)
            bp.copy_(torch.from_numpy(bn).to(bp.dtype))
    return {
        "block": block.name,
        "n_rows": int(live.size),
        "n_features": int(W.shape[1]),
        "n_samples": int(nrm.n),
        "mse_before": before,
        "mse_after": after,
        "_W": Wn.reshape(param.shape).astype(np.float32),
        "_b": None if b is None else bn.astype(np.float32),
    }


def _write_block(block: Block, W: np.ndarray, b: np.ndarray | None) -> Block:
    """The block with the re-fitted parameter (kernel and reduced weight alike)."""
    from ..graphs._kernels import conv_block_arrays, expand_block_arrays

    lt = block.layout.get("type")
    red = block.layout.get("reduction", "sum")
    bias = block.bias if b is None else b
    if block.kernel is None:
        return block.replace(weight=W, bias=bias)
    if lt == "conv":
        weight, _ = conv_block_arrays(W, 1, red)
        return block.replace(kernel=W, weight=weight, bias=bias)
    cols = np.asarray(block.layout["columns"], dtype=np.int64)
    weight = expand_block_arrays(W, cols, block.shape[1], red)
    return block.replace(kernel=W, weight=weight, bias=bias)


# ---------------------------------------------------------------------- which blocks lost inputs
def _unit_in_degree(G: SignedGraph) -> np.ndarray:
    a = G.edge_arrays()
    return np.bincount(G.node_column("unit")[a["target"]], minlength=G.n_nodes)


def _lost_inputs(Gp: SignedGraph, Go: SignedGraph, bp: Block, bo: Block) -> bool:
    """True when a kept row of ``bp`` reads fewer (or dead) sources than the same row of ``bo``."""
    np_names = Gp.node_column("name")
    no_names = Go.node_column("name")
    col_of = {str(n): j for j, n in enumerate(no_names[bo.sources])}
    row_of = {str(n): i for i, n in enumerate(no_names[bo.targets])}
    pc = np.array([col_of.get(str(n), -1) for n in np_names[bp.sources]])
    pr = np.array([row_of.get(str(n), -1) for n in np_names[bp.targets]])
    live = bp.mask.any(axis=1) & (pr >= 0)
    if not live.any():
        return False
    have = np.zeros((int(live.sum()), bo.shape[1]), dtype=bool)
    sub = bp.mask[live][:, pc >= 0]
    have[:, pc[pc >= 0]] = sub
    if np.any(bo.mask[pr[live]] & ~have):
        return True
    # a source that had inputs in the original and has none now reads a constant
    deg_p = _unit_in_degree(Gp)[Gp.node_column("unit")[bp.sources]]
    deg_o = _unit_in_degree(Go)[Go.node_column("unit")[bo.sources]]
    ok = pc >= 0
    used = bp.mask[live].any(axis=0)
    return bool(np.any(used & ok & (deg_p == 0) & (deg_o[np.maximum(pc, 0)] > 0)))


def _calibration_batches(X: Any, batch_size: int, graphs: tuple[Any, ...]) -> list[Any]:
    """``X`` in batches of ``batch_size``; of the export's batch where a graph is specialised.

    A graph recorded by running the model once (a tape: its forward is not traceable by
    torch.fx, e.g. a transformers LLM) rebuilds to a module that runs on inputs of the
    example's shape only, so the calibration runs in batches of the example's size.
    """
    fixed = set()
    for g in graphs:
        shapes = ((g.spec or {}).get("specialised") or {}).get("input_shapes") or []
        if len(shapes) == 1 and shapes[0]:
            fixed.add(tuple(int(d) for d in shapes[0]))
    if not fixed:
        return [X[i : i + batch_size] for i in range(0, X.shape[0], batch_size)]
    if len(fixed) > 1:
        raise GraphError(
            f"reconstruct: the pruned and the original graph are specialised to different input "
            f"shapes {sorted(fixed)}; export both from the same example_input."
        )
    want = fixed.pop()
    B, per_sample = want[0], want[1:]
    if tuple(X.shape[1:]) != per_sample:
        raise param_error(
            "X_calib",
            _FUNC,
            f"samples of shape {per_sample}: the graph was recorded on an example of shape "
            f"{want} and rebuilds to a module specialised to it (export with an example of "
            "X_calib's sample shape)",
            f"samples of shape {tuple(X.shape[1:])}",
        )
    usable = X.shape[0] - X.shape[0] % B
    if usable == 0:
        raise param_error(
            "X_calib",
            _FUNC,
            f"at least {B} samples (the batch of the example the graph is specialised to)",
            f"{X.shape[0]} samples",
        )
    if usable < X.shape[0]:
        warnings.warn(
            f"reconstruct: the graph is specialised to batches of {B} (its example input), so "
            f"{usable} of the {X.shape[0]} calibration samples are used; pass a multiple of "
            f"{B} to use them all.",
            stacklevel=3,
        )
    return [X[i : i + B] for i in range(0, usable, B)]


# ---------------------------------------------------------------------- validation
def _check_inputs(
    G: Any, original: Any, X_calib: Any, ridge: Any, batch_size: Any, blocks: Any
) -> tuple[SignedGraph, SignedGraph, Any, Any, Any]:
    import torch

    from ..convert.from_torch import from_torch
    from ..convert.to_torch import to_torch
    from .plan import PruningPlan

    if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not np.isfinite(ridge):
        raise param_error("ridge", _FUNC, "a finite float >= 0", ridge)
    if ridge < 0:
        raise param_error("ridge", _FUNC, "a finite float >= 0", ridge)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise param_error("batch_size", _FUNC, "an int >= 1", batch_size)
    if batch_size < 1:
        raise param_error("batch_size", _FUNC, "an int >= 1", batch_size)
    if blocks is not None and not (isinstance(blocks, str) and blocks == "all"):
        if not isinstance(blocks, (list, tuple)) or not all(isinstance(k, str) for k in blocks):
            raise param_error("blocks", _FUNC, "None, 'all' or a list of block names", blocks)
    if isinstance(original, torch.nn.Module):
        orig_model = original
        Go = None
    elif isinstance(original, SignedGraph):
        Go = original
        if Go.spec is None:
            raise param_error(
                "original",
                _FUNC,
                "a graph exported by netstruct.from_torch (with a spec)",
                "a graph without a spec",
            )
        orig_model = to_torch(Go)
    else:
        raise param_error(
            "original", _FUNC, "the original SignedGraph or torch module", type(original).__name__
        )
    # eval mode is set by reconstruct for the duration of the call and restored afterwards
    X = _as_tensor(X_calib, Go if Go is not None else G)
    if Go is None:
        Go = from_torch(orig_model, X[:1])
    if isinstance(G, PruningPlan):
        G = G.apply(Go)
    if not isinstance(G, SignedGraph):
        raise param_error("G", _FUNC, "a pruned SignedGraph or a PruningPlan", type(G).__name__)
    if G.spec is None:
        raise param_error(
            "G", _FUNC, "a graph exported by netstruct.from_torch", "a graph without a spec"
        )
    known = {b.name for b in Go.blocks}
    missing = [b.name for b in G.blocks if b.name not in known]
    if missing:
        raise GraphError(
            f"reconstruct: the pruned graph has blocks {missing[:5]} that the original lacks; pass "
            "the model (or graph) the pruned graph was made from."
        )
    if blocks not in (None, "all"):
        names = {b.name for b in G.blocks}
        unknown = [k for k in blocks if k not in names]
        if unknown:
            raise param_error(
                "blocks", _FUNC, f"names of blocks of G (e.g. {sorted(names)[:3]})", unknown
            )
    return G, Go, orig_model, to_torch(G), X


def _as_tensor(X_calib: Any, G: Any) -> Any:
    import torch

    if isinstance(X_calib, torch.Tensor):
        X = X_calib.detach()
    else:
        try:
            X = torch.as_tensor(np.asarray(X_calib))
        except (TypeError, ValueError):
            raise param_error(
                "X_calib", _FUNC, "an array or tensor of calibration inputs", type(X_calib).__name__
            ) from None
    if X.dim() < 1 or X.shape[0] < 1:
        raise param_error("X_calib", _FUNC, "a non-empty batch (n_samples, ...)", tuple(X.shape))
    spec = getattr(G, "spec", None) or {}
    want = spec.get("input_dtype", "float32")
    if X.is_floating_point() or X.is_complex():
        if not torch.isfinite(X).all():
            raise param_error("X_calib", _FUNC, "finite (no NaN or inf)", "non-finite values")
        X = X.to(getattr(torch, want) if "float" in want else torch.float32)
    shape = spec.get("input_shape")
    if shape is not None and tuple(X.shape[1:]) != tuple(shape[1:]):
        raise param_error(
            "X_calib",
            _FUNC,
            f"of shape (n_samples, {', '.join(map(str, shape[1:]))}) like the exported input",
            tuple(X.shape),
        )
    return X


def _refit_all(
    G: SignedGraph,
    Go: SignedGraph,
    orig_model: Any,
    pruned: Any,
    batches: list[Any],
    ridge: float,
    blocks: Any,
) -> tuple[list[Block], list[dict[str, Any]], list[dict[str, str]]]:
    """Re-fit the chosen blocks in forward order (inputs validated)."""
    names_p = G.node_column("name")
    names_o = Go.node_column("name")
    done: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    new_blocks = list(G.blocks)
    for i, bp in enumerate(G.blocks):
        bo = Go.block(bp.name)
        if blocks is None:
            if not _lost_inputs(G, Go, bp, bo):
                continue
        elif blocks != "all" and bp.name not in blocks:
            continue
        owner, param = _local(bp.module, bp.param)
        _, bias_param = _local(bp.module, bp.bias_param)
        try:
            mod = pruned.get_submodule(owner) if owner else pruned
            omod = orig_model.get_submodule(owner) if owner else orig_model
        except AttributeError:
            skipped.append({"block": bp.name, "reason": "module not found in the rebuilt model"})
            continue
        kind, why = _classify(bp, mod, param or "")
        if kind is None:
            if blocks is not None and blocks != "all":
                raise param_error(
                    "blocks", _FUNC, "names of supported blocks", f"{bp.name!r} ({why})"
                )
            if blocks is None:
                skipped.append({"block": bp.name, "reason": why})
            continue
        lay = _Layer(bp, kind, mod, omod, param=param or "weight", bias_param=bias_param)
        if kind == "conv":
            lay.taps = int(np.prod(mod.kernel_size))
        elif kind == "rnn":
            m = re.fullmatch(r"weight_ih_l(\d+)(_reverse)?", lay.param)
            lay.layer, lay.suffix = int(m.group(1)), m.group(2) or ""  # type: ignore[union-attr]
        row_of = {str(n): j for j, n in enumerate(names_o[bo.targets])}
        orig_rows = np.array([row_of.get(str(n), -1) for n in names_p[bp.targets]])
        if np.any(orig_rows < 0):
            raise GraphError(
                f"reconstruct: block {bp.name!r} has units the original lacks; pass the model the "
                "pruned graph was made from."
            )
        rec = _refit(lay, pruned, orig_model, batches, orig_rows, ridge)
        new_blocks[i] = _write_block(bp, rec.pop("_W"), rec.pop("_b"))
        done.append(rec)
    return new_blocks, done, skipped


# ---------------------------------------------------------------------- public
def reconstruct(
    G: Any,
    original: Any,
    X_calib: Any,
    *,
    ridge: float = 1e-3,
    batch_size: int = 256,
    blocks: Any = None,
) -> SignedGraph:
    """Re-fit the layers that lost inputs to a structural cut by streamed ridge least squares.

    For each weight block (in forward order) whose kept rows lost inputs, the weights on the
    remaining inputs and the bias are chosen to minimise
    ``(1/n) ||X_kept W'^T + b' - Y_orig||^2 + ridge s ||W'||^2`` on the calibration data, where
    ``Y_orig`` is the layer's pre-activation output in the original model, ``X_kept`` its
    input in the pruned model with the earlier re-fits applied and ``s`` the mean square of
    the row's kept input features. ``n`` is the number of rows (samples x positions x time
    steps), so ``ridge`` depends neither on the calibration size nor on the features' scale.

    Parameters
    ----------
    G : SignedGraph or PruningPlan
        The pruned graph (masked, from :meth:`PruningPlan.apply`, or shrunk by
        :func:`netstruct.shrink`), or a plan, which is applied to ``original`` first.
    original : SignedGraph or torch.nn.Module
        The model before pruning (a graph from :func:`netstruct.from_torch`, or the module
        itself). Rows and columns are matched by node name.
    X_calib : array-like or torch.Tensor of shape (n_samples, ...)
        Calibration inputs (no labels needed), the model's input shape per sample.
    ridge : float, default=1e-3
        Ridge penalty ``>= 0`` on the weights (not on the bias), relative to the mean square
        of the kept input features (a damping like GPTQ's ``percdamp``: ``1e-3`` adds 0.1 % of
        the Gram matrix's mean diagonal); 0 gives the least-squares (minimum-norm) solution.
        Until 2026-12-04 the penalty was absolute (``ridge ||W'||^2``).
    batch_size : int, default=256
        Calibration samples per forward pass; memory is bounded by the batch's activations and
        one ``d x d`` Gram matrix per layer. A graph recorded by running the model once (a
        tape, e.g. a transformers LLM; ``spec["specialised"]``) rebuilds to a module that runs
        on the example's input shape only: its calibration runs in batches of the example's
        size (samples beyond a multiple of it are left out, with a warning).
    blocks : None, "all" or list of str, default=None
        Which blocks to re-fit: ``None`` those whose kept rows lost an input (an edge removed
        or a source left without inputs), ``"all"`` every supported block, or block names.

    Returns
    -------
    SignedGraph
        ``G`` with the re-fitted weights and biases (same masks and shapes);
        ``provenance["reconstruct"]`` lists, per re-fitted block, the rows, features,
        samples and the output mean squared error before and after, and the skipped blocks
        with the reason.

    Raises
    ------
    InvalidParameterError
        A parameter has the wrong type or value (the message names it).
    GraphError
        The pruned graph does not come from ``original``, or a module's input cannot be read.

    See Also
    --------
    netstruct.pruning.PruningPlan.remove_units, netstruct.shrink

    Notes
    -----
    One forward pass of each model per re-fitted block and batch (stopped at the block);
    ``O(d^2)`` memory per block and ``O(n d^2)`` time for ``d`` input features (``in_channels
    x kernel taps`` for a convolution). Rows that share a support (a structured cut) share
    one Cholesky solve. Deterministic.

    Examples
    --------
    >>> import numpy as np, torch, netstruct as ns
    >>> from netstruct.pruning import PruningPlan
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 2))
    >>> X = torch.randn(64, 4)
    >>> G = ns.from_torch(model)
    >>> plan = PruningPlan.for_graph(G).remove_units(G, "module == '0' and index < 2")
    >>> H = ns.reconstruct(plan, G, X, ridge=0.0)
    >>> err = lambda g: float((ns.to_torch(g)(X) - model(X)).abs().max().detach())
    >>> err(plan.apply(G)) > 0.1, err(H) < 1e-4
    (True, True)
    """
    G, Go, orig_model, pruned, X = _check_inputs(G, original, X_calib, ridge, batch_size, blocks)
    batches = _calibration_batches(X, int(batch_size), (G, Go))
    was_training = orig_model.training
    orig_model.eval()
    try:
        new_blocks, done, skipped = _refit_all(
            G, Go, orig_model, pruned, batches, float(ridge), blocks
        )
    finally:
        orig_model.train(was_training)
    prov = dict(G.provenance)
    prov["reconstruct"] = {"ridge": float(ridge), "blocks": done, "skipped": skipped}
    a = G.edge_arrays()
    return SignedGraph(
        {c: G.node_column(c) for c in NODE_COLUMNS},
        new_blocks,
        spec=G.spec,
        provenance=prov,
        node_attrs={k: G.node_column(k) for k in G.node_attr_names},
        edge_attrs={k: a[k] for k in G.edge_attr_names},
    )

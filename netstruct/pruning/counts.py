"""Parameter and MAC counts per block of a graph, and of the graph with coupling groups removed.

Every block's counts are ``a * rows * cols + b * rows`` for the rows (target units) and columns
(source units) it keeps, with coefficients read off the block (kernel taps, groups, bias, norm
parameters), and MACs are those counts times the positions the block's layer is applied at
(output pixels for a convolution, tokens for a sequence layer, ``batch`` for a plain Linear;
measured once on the model). So the counts of any set of removed groups follow without
building the smaller graph, which is what budgeted pruning searches over.

MACs follow ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2): multiply-accumulates of
matrix products and convolutions, and of attention's ``Q K^T`` and ``A V``; norms,
activations, bias additions and embedding lookups count 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import GraphError, param_error
from ..graphs.block import elementwise_operator
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph

__all__ = ["block_counts", "count_macs", "graph_params"]


def _coefficients(G: SignedGraph) -> np.ndarray:
    """``(n_blocks, 6)``: parameter ``a, b``, per-position MAC ``a, b``, an attention flag and
    parameters held while any row stays (a per-head norm's one shared gain)."""
    tied = set((G._spec or {}).get("tied", {}))  # read only
    out = np.zeros((len(G.blocks), 6), dtype=np.float64)
    for i, b in enumerate(G.blocks):
        bias = float(b.bias is not None and bool(b.bias_param))
        shared = "@" in b.module or (f"{b.module}.{b.param}" if b.module else b.param) in tied
        if b.kind in ("skip", "identity") or elementwise_operator(b) is not None:
            continue  # element-wise (a sum, a copy, x * y): no parameters, no MACs
        if b.kind == "operator":
            out[i, 3:5] = (2.0, 1.0)  # Q K^T and A V: 2 T MACs per context unit and token
            continue
        if b.layout.get("shared"):  # one gain (and shift) for every group: a constant
            out[i, 5] = (float(b.has_parameter) + bias) * int(b.layout["group_width"])
        elif b.kind == "norm" or b.layout.get("type") == "diag":
            # one scale per unit (a norm's, ConvNeXt's layer scale): an elementwise product,
            # no MACs
            out[i, 1] = float(b.has_parameter) + bias
        elif b.kernel is not None:
            per_row = float(np.prod(b.kernel.shape[1:]))
            if int(b.layout.get("groups", 1)) != 1:  # each row reads its own group's inputs
                out[i, :4] = (0.0, per_row + bias, 0.0, per_row)
            else:
                tap = per_row / max(b.shape[1], 1)
                out[i, :4] = (tap, bias, tap, 0.0)
        elif _is_lookup(b):  # an embedding table: lookups, no MACs
            out[i, 0] = 1.0
        else:
            out[i, :4] = (1.0, bias, 1.0, 0.0)
        if shared:
            out[i, :2] = 0.0
            out[i, 5] = 0.0
    return out


def _is_lookup(b: Any) -> bool:
    """An embedding table or a directly read parameter (transposed, read row by row).

    GPT-2's ``Conv1D`` is stored transposed too, but it is a product (``"linear"`` layout).
    """
    return b.layout.get("type") == "transpose" and not b.layout.get("linear", False)


def _hook_paths(b: Any) -> list[str]:
    """Submodules whose output positions the block's layer runs at, most specific first."""
    if b.kind == "operator":
        return [b.name[: -len(".attention")] if b.name.endswith(".attention") else b.module]
    cands = []
    if b.layout.get("part") in (1, 2):  # cross-attention's K or V rows: at the keys' positions
        owner = b.param.rpartition(".")[0]  # the attention inside a composite layer
        base = b.module.split("@", 1)[0]
        cands.append(f"{'.'.join(p for p in (base, owner) if p)}#keys")
    if b.param and "." in b.param:  # the parameter's own submodule, then its parents
        parts = b.param.split(".")[:-1]
        for k in range(len(parts), 0, -1):
            inner = ".".join(parts[:k])
            cands.append(f"{b.module}.{inner}" if b.module else inner)
    cands.append(b.module.split("@", 1)[0])
    return cands


def _op_observer(G: SignedGraph, seen: dict[str, tuple[int, int]]) -> Any:
    """A replay observer recording positions of recorded attention ops (None when none).

    The context of ``scaled_dot_product_attention(q, k, v)`` or ``scores @ v`` has one value
    per query position and context unit; the keys are ``args[1].shape[-2]`` (k or v).
    """
    width = {
        b.name[: -len(".attention")]: b.shape[0]
        for b in G.blocks
        if b.kind == "operator" and b.name.endswith(".attention")
    }
    if not width:
        return None

    def observe(rec: dict[str, Any], args: Any, val: Any) -> None:
        path = rec.get("path")
        if path not in width or path in seen or not hasattr(val, "numel") or len(args) < 2:
            return
        keys = args[1].shape[-2] if hasattr(args[1], "shape") and args[1].dim() >= 2 else 1
        seen[path] = (int(val.numel() // max(width[path], 1)), int(keys))

    return observe


def _positions(G: SignedGraph, input_shape: Any, func: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions (and sequence lengths, for attention) of every block on one forward pass."""
    import torch

    from ..convert.to_torch import to_torch

    spec = G._spec or {}  # read only: no copy of the spec
    shape = spec.get("input_shape") if input_shape is None else input_shape
    if shape is None:
        raise param_error(
            "input_shape", func, "the shape of one input batch (the graph records none)", None
        )
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise param_error("input_shape", func, "a sequence of ints", input_shape) from None
    model = to_torch(G)
    modules = dict(model.named_modules())
    seen: dict[str, tuple[int, int]] = {}

    def hook(name: str, mod: Any) -> Any:
        def run(_m: Any, args: Any, out: Any) -> None:
            y = out[0] if isinstance(out, tuple) else out
            if not isinstance(y, torch.Tensor) or y.dim() == 0:
                return
            conv = isinstance(
                mod, (torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._BatchNorm)
            )
            n_feat = y.shape[1] if conv and y.dim() > 1 else y.shape[-1]
            q = args[0] if args else None
            if hasattr(mod, "num_heads") and len(args) > 1:  # attention: scores over the keys
                q = args[1]
            t = 1
            if isinstance(q, torch.Tensor) and q.dim() == 3:
                t = q.shape[1] if getattr(mod, "batch_first", False) else q.shape[0]
            seen.setdefault(name, (int(y.numel() // max(int(n_feat), 1)), int(t)))
            if hasattr(mod, "num_heads") and isinstance(q, torch.Tensor) and q.dim() >= 2:
                # cross-attention's key/value projections run at the keys' positions
                seen.setdefault(f"{name}#keys", (int(q.numel() // max(q.shape[-1], 1)), int(t)))

        return run

    handles = [m.register_forward_hook(hook(n, m)) for n, m in modules.items()]
    ops = _op_observer(G, seen)
    if ops is not None:  # attention written as functions: its operator block sits at the op
        model.__dict__["_ns_observer"] = ops
    dtype = getattr(torch, spec.get("input_dtype", "float32"))
    try:
        # gradients on: torch's fused inference paths would skip the submodules' hooks
        with torch.enable_grad():
            model(torch.zeros(shape, dtype=dtype))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise param_error(
            "input_shape", func, f"a shape the model accepts ({exc})", shape
        ) from None
    finally:
        for h in handles:
            h.remove()
        model.__dict__.pop("_ns_observer", None)
    pos = np.full(len(G.blocks), np.nan)
    seq = np.ones(len(G.blocks))
    for i, b in enumerate(G.blocks):
        if (
            b.kind in ("skip", "identity", "norm")
            or elementwise_operator(b) is not None
            or _is_lookup(b)
            or b.layout.get("type") == "diag"
        ):
            pos[i] = 0.0  # no MACs (a per-unit scale runs outside any module: ConvNeXt's)
            continue
        path = next((c for c in _hook_paths(b) if c in seen), None)
        if path is not None:
            pos[i], seq[i] = seen[path]
    return pos, seq


def _kept(G: SignedGraph) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array([b.shape[0] for b in G.blocks], dtype=np.float64)
    cols = np.array([b.shape[1] for b in G.blocks], dtype=np.float64)
    return rows, cols


def _totals(coef: np.ndarray, pos: np.ndarray, seq: np.ndarray, r: np.ndarray, c: np.ndarray):
    """Per-block parameters and MACs for ``r`` rows and ``c`` columns kept (inputs validated)."""
    params = coef[..., 0] * r * c + coef[..., 1] * r + coef[..., 5] * (r > 0)
    per = np.where(coef[..., 4] > 0, seq, 1.0)
    macs = (coef[..., 2] * r * c + coef[..., 3] * r * per) * pos
    return params, macs


def block_counts(G: SignedGraph, *, input_shape: Any = None, macs: bool = True) -> pd.DataFrame:
    """Parameters and MACs of every block, as the re-imported module stores and runs them.

    Parameters
    ----------
    G : SignedGraph
        A graph exported with :func:`netstruct.from_torch` (masked entries count: torch keeps
        them as zeros; physically removed units do not).
    input_shape : sequence of int, optional
        Shape of the input batch the MACs are counted for (default: the example input the
        graph was exported with, ``spec["input_shape"]``).
    macs : bool, default=True
        Also count MACs (runs the module once to measure output positions).

    Returns
    -------
    DataFrame
        One row per block: ``block, module, kind, rows, cols, params, macs`` (``macs`` is NaN
        for a block whose layer could not be measured, e.g. attention written as functions).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
    ...                         torch.nn.Linear(4 * 4 * 4, 2))
    >>> t = ns.block_counts(ns.from_torch(m, torch.zeros(1, 1, 6, 6)))
    >>> t[["block", "params", "macs"]].values.tolist()
    [['0.weight', 40, 576], ['3.weight', 130, 128]]
    """
    check_graph(G, "block_counts")
    if not isinstance(macs, bool):
        raise param_error("macs", "block_counts", "a bool", macs)
    coef = _coefficients(G)
    r, c = _kept(G)
    if macs:
        pos, seq = _positions(G, input_shape, "block_counts")
    else:
        pos, seq = np.full(len(G.blocks), np.nan), np.ones(len(G.blocks))
    p, m = _totals(coef, pos, seq, r, c)
    return pd.DataFrame(
        {
            "block": [b.name for b in G.blocks],
            "module": [b.module for b in G.blocks],
            "kind": [b.kind for b in G.blocks],
            "rows": r.astype(np.int64),
            "cols": c.astype(np.int64),
            "params": np.round(p).astype(np.int64),
            "macs": pd.array(np.round(m), dtype="Int64"),
        }
    )


def graph_params(G: SignedGraph) -> int:
    """Parameters of the module ``G`` re-imports to (kernels, biases and norm scales counted).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    >>> ns.graph_params(ns.from_torch(m, torch.zeros(1, 1, 5, 5))) == sum(p.numel() for p in m.parameters())
    True
    """
    check_graph(G, "graph_params")
    r, c = _kept(G)
    coef = _coefficients(G)
    params, _ = _totals(coef, np.zeros(len(G.blocks)), np.ones(len(G.blocks)), r, c)
    return int(round(float(np.sum(params))))


def count_macs(G: SignedGraph, *, input_shape: Any = None) -> int:
    """Multiply-accumulates of one forward pass of the re-imported module.

    Parameters
    ----------
    G : SignedGraph
    input_shape : sequence of int, optional
        Input batch shape (default: the export's example input).

    Raises
    ------
    GraphError
        A block's layer could not be measured (attention written out as functions).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> ns.count_macs(ns.from_torch(m, torch.zeros(5, 3)))  # 5 x (3*4 + 4*2)
    100
    """
    t = block_counts(G, input_shape=input_shape)
    if t["macs"].isna().any():
        bad = t.loc[t["macs"].isna(), "block"].tolist()
        raise GraphError(
            f"count_macs could not measure the positions of block(s) {bad[:5]} (no module runs "
            "them); MACs are counted for layers that are modules."
        )
    return int(t["macs"].sum())

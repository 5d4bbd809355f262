"""Blocks whose 2-D weight is a reduction of a larger parameter (conv kernels, flattened inputs).

A convolution ``(out, in/groups, *k)`` or a Linear that reads a flattened ``C x H x W`` map has
several *taps* per pair of units. netstruct keeps one edge per pair of units, whose weight is a
documented reduction of the pair's taps, and keeps the full parameter as the block's
``kernel`` so re-import is exact. This module is the one place that maps between the two.

Layouts (``block.layout["type"]``):

* ``"conv"``: kernel ``(out, in_g, *k)`` with ``groups``; row ``r`` reads input channels
  ``(r // out_g) * in_g + l`` for ``l < in_g``. Entries outside a row's group are structural
  zeros (never edges).
* ``"expand"``: kernel ``(out, n_raw)``; raw column ``j`` belongs to block column
  ``columns[j]`` (every block column owns the same number of raw columns).
* ``"transpose"``: the parameter is ``weight.T`` (embedding tables, ``(vocab, dim)``).
* ``"diag"``: the parameter is the diagonal of a square block (norm scales).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import GraphError

__all__ = [
    "REDUCTIONS",
    "reduce_taps",
    "conv_block_arrays",
    "expand_block_arrays",
    "parameter_of",
    "take",
]

#: Kernel reductions that give an edge its signed weight.
REDUCTIONS = ("sum", "l1", "l2", "center", "max")


def reduce_taps(K3: np.ndarray, reduction: str) -> np.ndarray:
    """Reduce taps ``(out, L, T)`` to edge weights ``(out, L)`` (float64).

    ``sum``: the response to a constant unit input (DC gain), signed. ``l1``/``l2``: the taps'
    norm, signed by their sum. ``center``: the centre tap. ``max``: the tap of largest
    magnitude, with its sign.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.array([[[1.0, -3.0, 1.0]]])
    >>> [float(reduce_taps(K, r)[0, 0]) for r in ("sum", "l1", "center", "max")]
    [-1.0, -5.0, -3.0, -3.0]
    """
    K3 = np.asarray(K3, dtype=np.float64)
    if reduction == "sum":
        return K3.sum(axis=2)
    if reduction in ("l1", "l2"):
        mag = np.abs(K3).sum(axis=2) if reduction == "l1" else np.sqrt((K3 * K3).sum(axis=2))
        return np.where(K3.sum(axis=2) < 0, -mag, mag)
    if reduction == "center":
        return K3[:, :, K3.shape[2] // 2]
    if reduction == "max":
        idx = np.abs(K3).argmax(axis=2)
        return np.take_along_axis(K3, idx[..., None], axis=2)[..., 0]
    raise GraphError(f"Unknown kernel reduction {reduction!r}; choose one of {REDUCTIONS}.")


def _uniform(W: np.ndarray, T: int, reduction: str) -> np.ndarray:
    """Per-tap value of a uniform kernel whose reduction equals ``W`` (shape of W)."""
    if reduction == "sum" or reduction == "l1":
        return W / T
    if reduction == "l2":
        return W / np.sqrt(T)
    return W  # center / max: every tap W (the centre or largest tap is W)


def _conv_geometry(kernel: np.ndarray, groups: int) -> tuple[np.ndarray, int]:
    out, in_g = kernel.shape[:2]
    out_g = out // groups
    offsets = (np.arange(out) // out_g) * in_g
    return offsets, in_g * groups


def conv_block_arrays(
    kernel: np.ndarray, groups: int, reduction: str
) -> tuple[np.ndarray, np.ndarray]:
    """Channel-level ``(weight, mask)`` of a conv kernel ``(out, in/groups, *k)``.

    Examples
    --------
    >>> import numpy as np
    >>> W, M = conv_block_arrays(np.ones((2, 1, 3, 3)), 2, "sum")
    >>> W.tolist(), M.tolist()
    ([[9.0, 0.0], [0.0, 9.0]], [[True, False], [False, True]])
    """
    out, in_g = kernel.shape[:2]
    offsets, n_in = _conv_geometry(kernel, groups)
    R = reduce_taps(kernel.reshape(out, in_g, -1), reduction)
    W = np.zeros((out, n_in))
    M = np.zeros((out, n_in), dtype=bool)
    cols = offsets[:, None] + np.arange(in_g)[None, :]
    rows = np.arange(out)[:, None]
    W[rows, cols] = R
    M[rows, cols] = True
    return W, M


def expand_block_arrays(
    weight: np.ndarray, columns: np.ndarray, n_cols: int, reduction: str
) -> np.ndarray:
    """Reduce a ``(out, n_raw)`` weight whose raw columns map to ``n_cols`` block columns."""
    K3, _ = _expand_taps(weight, columns, n_cols)
    return reduce_taps(K3, reduction)


def _expand_taps(
    weight: np.ndarray, columns: np.ndarray, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(columns, minlength=n_cols)
    if counts.size and not (counts == counts[0]).all():
        raise GraphError(
            "A layer reads its source units a different number of times each; netstruct "
            "reduces flattened inputs only when every unit contributes the same number of values."
        )
    perm = np.argsort(columns, kind="stable")
    T = int(counts[0]) if counts.size else 0
    return np.asarray(weight, dtype=np.float64)[:, perm].reshape(weight.shape[0], n_cols, T), perm


def _taps(block: Any) -> tuple[np.ndarray, np.ndarray, Any]:
    """``(K3 (out, L, T), column offsets per row (out,), how to undo)`` of a kernel block."""
    lay = block.layout
    kernel = block.kernel
    if lay.get("type") == "conv":
        out, in_g = kernel.shape[:2]
        offsets, _ = _conv_geometry(kernel, int(lay.get("groups", 1)))
        return kernel.reshape(out, in_g, -1).astype(np.float64), offsets, ("conv", kernel.shape)
    cols = np.asarray(lay["columns"], dtype=np.int64)
    K3, perm = _expand_taps(kernel, cols, block.shape[1])
    return K3, np.zeros(kernel.shape[0], dtype=np.int64), ("expand", perm)


def fold_shared(block: Any, values: Any, what: str = "weight") -> np.ndarray:
    """One group's entries of a diagonal repeated per group (``layout["shared"]``: a norm
    applied to each head, its ``group_width`` entries the same in every head).

    Entries whose edge is pruned are ignored (a removed head); the kept groups must agree.

    Raises
    ------
    GraphError
        Two kept groups hold different values for one entry: the module has one parameter
        for every group, so an edit of one head's copy only cannot be re-imported.
    """
    w = int(block.layout["group_width"])
    v = np.asarray(values).reshape(-1, w)
    kept = np.diagonal(block.mask).reshape(-1, w)
    first = np.argmax(kept, axis=0)
    out = np.where(kept.any(axis=0), v[first, np.arange(w)], 0).astype(v.dtype)
    if not bool(((v == out[None, :]) | ~kept).all()):
        raise GraphError(
            f"Block {block.name!r} applies one {what} of {w} entries to each of its "
            f"{v.shape[0]} groups (a per-head norm), but the kept groups hold different "
            "values; edit every group's copy alike (or none) before re-importing."
        )
    return out


def parameter_of(block: Any) -> np.ndarray:
    """See :meth:`netstruct.Block.parameter`."""
    kind = block.layout.get("type")
    if block.kernel is None:
        if kind == "transpose":
            return np.ascontiguousarray(block.weight.T)
        if kind == "diag" and block.layout.get("shared"):
            return np.ascontiguousarray(fold_shared(block, np.diagonal(block.weight)))
        if kind == "diag":
            return np.ascontiguousarray(np.diagonal(block.weight))
        return block.weight
    K3, offsets, undo = _taps(block)
    reduction = block.layout.get("reduction", "sum")
    out, L, T = K3.shape
    cols = offsets[:, None] + np.arange(L)[None, :]
    rows = np.arange(out)[:, None]
    inside = np.zeros(block.shape, dtype=bool)
    inside[rows, cols] = True
    if np.any(block.mask & ~inside):
        r, c = np.argwhere(block.mask & ~inside)[0]
        raise GraphError(
            f"Block {block.name!r} has an edge ({r}, {c}) outside its convolution's groups; a grouped "
            "convolution cannot hold it (null models and rewiring must keep a grouped conv's "
            "structural zeros, e.g. randomize per group)."
        )
    W = block.weight[rows, cols].astype(np.float64)
    M = block.mask[rows, cols]
    R = reduce_taps(K3, reduction).astype(np.float32).astype(np.float64)
    changed = M & (W != R)
    if changed.any():
        scale = np.divide(W, R, out=np.ones_like(W), where=changed & (R != 0))
        K3 = K3 * scale[..., None]
        flat = changed & (R == 0)
        if flat.any():
            K3[flat] = _uniform(W, T, reduction)[flat][:, None]
    K3[~M] = 0.0
    if undo[0] == "conv":
        full = K3.reshape(undo[1]).astype(np.float32)
        return np.ascontiguousarray(full.swapaxes(0, 1)) if block.layout.get("transposed") else full
    flatK = K3.reshape(out, L * T)
    res = np.empty_like(flatK)
    res[:, undo[1]] = flatK
    return res.astype(np.float32)


def take(block: Any, rows: np.ndarray, cols: np.ndarray) -> dict[str, Any]:
    """Fields of ``block`` restricted to boolean ``rows`` and ``cols`` (for shrink)."""
    ri, ci = np.flatnonzero(rows), np.flatnonzero(cols)

    def cut(a: np.ndarray) -> np.ndarray:  # np.take on ids: ~10x faster than a[np.ix_(rows, cols)]
        out = np.ascontiguousarray(a.take(ri, axis=0).take(ci, axis=1))
        out.setflags(write=False)  # fresh and frozen: make_block keeps it without a copy
        return out

    ch: dict[str, Any] = {
        "weight": cut(block.weight),
        "mask": None if block.is_dense else cut(block.mask),
        "sources": block.sources[cols],
        "targets": block.targets[rows],
        "bias": None if block.bias is None else block.bias[rows],
        "state": {
            k: (v[rows] if np.ndim(v) == 1 and len(v) == rows.size else v)
            for k, v in block.state.items()
        },
    }
    lay = dict(block.layout)
    kind = lay.get("type")
    if kind == "diag" and not np.array_equal(rows, cols):
        raise GraphError(
            f"Block {block.name!r}: a diagonal block keeps the same units on both sides."
        )
    if block.kernel is not None:
        if kind == "conv":
            groups = int(lay.get("groups", 1))
            if groups == 1:
                slice_kernel = cut
            elif block.kernel.shape[1] == 1 and groups == block.shape[0] == block.shape[1]:
                if not np.array_equal(rows, cols):
                    raise GraphError(
                        f"Depthwise conv {block.name!r} keeps the same channels in and out."
                    )
                lay["groups"] = int(rows.sum())

                def slice_kernel(a: np.ndarray) -> np.ndarray:
                    return a.take(ri, axis=0)
            else:
                raise GraphError(
                    f"Grouped conv {block.name!r} (groups={groups}) cannot be shrunk yet."
                )
        else:
            columns = np.asarray(lay["columns"], dtype=np.int64)
            keep_raw = cols[columns]
            new_col = np.cumsum(cols) - 1
            raw = np.flatnonzero(keep_raw)

            def slice_kernel(a: np.ndarray) -> np.ndarray:
                return a.take(ri, axis=0).take(raw, axis=1)

            lay["columns"] = new_col[columns[keep_raw]].tolist()
        ch["kernel"] = slice_kernel(block.kernel)
        done = block.computed_parameter()
        if done is not None and not lay.get("transposed"):
            # parameter_of works pair by pair of units (its taps, weight and mask): the
            # parameter of the sliced block is the same slice of this block's parameter
            # (laid out like the kernel, but for a transposed conv's (in, out, *k))
            ch["parameter"] = ch["kernel"] if done is block.kernel else slice_kernel(done)
    ch["layout"] = lay
    return ch

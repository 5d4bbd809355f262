"""Blocks whose weight pattern netstruct generates itself: identities and diagonals.

The structural blocks of an export (residual ``skip`` edges, ``identity`` copies, attention's
``operator`` edges) have weight 1 on side-by-side identity matrices, and a norm's block is a
diagonal matrix of the norm's scale. These arrays are made here, so what :func:`make_block`
checks of a weight given from outside holds by construction: the identities are finite and
zero outside their mask, and a diagonal is zero off its diagonal. Only the values that come
from the user's model (a diagonal's scale, a bias) are checked. A BERT-base-sized export has
~150 such blocks of up to 768 x 2,304 entries; :func:`make_block`'s scans of them cost more
than all the rest of the export but the parameter copies.

:func:`make_block` with the same arrays builds the same :class:`~netstruct.graphs.block.Block`
(the tests check it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._dtypes import INDEX_DTYPE
from ..exceptions import GraphError
from ..utils.validation import check_finite
from .block import Block, _finish_block, dense_mask

__all__ = [
    "identity_arrays",
    "diagonal_weight",
    "identity_block",
    "diagonal_block",
    "attention_pattern",
]

#: the kinds of block whose weights are the identity pattern
IDENTITY_KINDS = ("skip", "identity", "operator")


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=32)
def identity_arrays(n: int, copies: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float32 weight and bool mask of ``copies`` side-by-side ``n x n`` identities.

    Shared by every structural block of that size (skip, copy and attention-operator edges):
    blocks never write their arrays, so one copy per size serves them all.

    Examples
    --------
    >>> w, m = identity_arrays(2, 3)
    >>> w.shape, w.dtype, bool(m.sum() == 6), w.flags.writeable
    ((2, 6), dtype('float32'), True, False)
    >>> identity_arrays(2, 3)[0] is w
    True
    """
    eye = np.eye(n, dtype=np.float32)
    w = np.concatenate([eye] * copies, axis=1) if copies > 1 else eye
    return _read_only(w), _read_only(w.astype(bool))


def diagonal_weight(d: np.ndarray) -> np.ndarray:
    """A read-only float32 diagonal matrix with diagonal ``d`` (a norm block's weight).

    Examples
    --------
    >>> diagonal_weight(np.array([1.5, -2.0])).tolist()
    [[1.5, 0.0], [0.0, -2.0]]
    """
    n = d.size
    w = np.zeros((n, n), dtype=np.float32)
    w.reshape(-1)[:: n + 1] = d.reshape(
        -1
    )  # the diagonal (np.fill_diagonal's flat walk, ~10x slower)
    return _read_only(w)


def _ids(name: str, sources: ArrayLike, targets: ArrayLike, n_in: int, n_out: int):
    src = np.asarray(sources, dtype=INDEX_DTYPE)
    tgt = np.asarray(targets, dtype=INDEX_DTYPE)
    if src.shape != (n_in,) or tgt.shape != (n_out,):
        raise GraphError(
            f"Block {name!r}: weight has shape {(n_out, n_in)} but there are {src.size} source "
            f"and {tgt.size} target nodes; a weight must be (n_targets, n_sources)."
        )
    return src, tgt


def _identity_mask(m: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """The block's mask of an identity pattern of width ``n`` and whether it is dense.

    Every row holds one edge per copy, so the mask is all True only for ``n <= 1``; a dense
    block gets :func:`make_block`'s all-True broadcast mask.
    """
    if n <= 1:
        return dense_mask(m.shape), True
    return m, False


def identity_block(
    *,
    name: str,
    kind: str,
    sources: ArrayLike,
    targets: ArrayLike,
    module: str = "",
    copies: int = 1,
    layout: Mapping[str, Any] | None = None,
) -> Block:
    """A structural block: ``copies`` side-by-side identities from ``sources`` to ``targets``.

    Source ``j * len(targets) + i`` feeds target ``i`` with weight 1 for each copy ``j`` (a
    residual sum's operand, a copy, or attention's query, key and value units feeding their
    context unit). The same block as :func:`make_block` with :func:`identity_arrays`.
    ``layout``: what the operator is when it is not attention (``{"operator": "product"}``,
    see :func:`~netstruct.graphs.block.elementwise_operator`).

    Raises
    ------
    GraphError
        When ``kind`` is not a structural kind or the ids do not fit the pattern.

    Examples
    --------
    >>> b = identity_block(name="s", kind="skip", sources=[0, 1], targets=[2, 3])
    >>> b.weight.tolist(), b.n_edges
    ([[1.0, 0.0], [0.0, 1.0]], 2)
    """
    if kind not in IDENTITY_KINDS:
        raise GraphError(
            f"Block {name!r}: an identity block's kind must be one of {IDENTITY_KINDS}, "
            f"got {kind!r}."
        )
    n = int(np.size(targets))
    src, tgt = _ids(name, sources, targets, n * copies, n)
    w, m = identity_arrays(n, copies)
    mask, dense = _identity_mask(m, n)
    return _finish_block(
        name=name,
        weight=w,
        mask=mask,
        dense=dense,
        sources=src,
        targets=tgt,
        bias=None,
        module=module,
        param="",
        bias_param=None,
        delay=0,
        kind=kind,
        kernel=None,
        layout=layout,
        state=None,
    )


def diagonal_block(
    *,
    name: str,
    kind: str,
    diagonal: ArrayLike,
    sources: ArrayLike,
    targets: ArrayLike,
    bias: np.ndarray | None = None,
    module: str = "",
    param: str = "weight",
    bias_param: str | None = None,
    layout: Mapping[str, Any] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
) -> Block:
    """A diagonal block: ``sources[i]`` feeds ``targets[i]`` with weight ``diagonal[i]``.

    A norm's per-unit scale (``kind="norm"``) or a per-unit factor (``kind="weight"``). The weight is
    :func:`diagonal_weight` of ``diagonal`` with an identity mask, checked finite on the
    diagonal (the values given; off the diagonal it is zero); ``bias`` is checked as in
    :func:`make_block`, which builds the same block from the same arrays.

    Raises
    ------
    GraphError
        On a diagonal that is not 1-D real numbers, non-finite values, or ids that do not fit.

    Examples
    --------
    >>> b = diagonal_block(
    ...     name="n.weight", kind="norm", diagonal=[2.0, 3.0], sources=[0, 1], targets=[2, 3]
    ... )
    >>> b.weight.tolist(), b.kind
    ([[2.0, 0.0], [0.0, 3.0]], 'norm')
    """
    d = np.asarray(diagonal)
    if d.ndim != 1:
        raise GraphError(f"Block {name!r}: a diagonal must be 1-D, got shape {d.shape}.")
    if not np.issubdtype(d.dtype, np.number) or np.iscomplexobj(d):
        raise GraphError(f"Block {name!r}: weight must hold real numbers, got dtype {d.dtype}.")
    n = d.size
    src, tgt = _ids(name, sources, targets, n, n)
    w = diagonal_weight(d)
    if not np.isfinite(np.diagonal(w)).all():  # the float32 values (a float64 may overflow)
        check_finite(w, f"Block {name!r} weight")  # raises, naming the entry as make_block does
    mask, dense = _identity_mask(identity_arrays(n)[1], n)
    return _finish_block(
        name=name,
        weight=w,
        mask=mask,
        dense=dense,
        sources=src,
        targets=tgt,
        bias=bias,
        module=module,
        param=param,
        bias_param=bias_param,
        delay=0,
        kind=kind,
        kernel=None,
        layout=layout,
        state=state,
    )


def attention_pattern(shape: tuple[int, ...], rep: int) -> np.ndarray:
    """Operator weights ``[I | R | R]``: context unit ``(h, j)`` reads query unit ``(h, j)`` and
    key and value unit ``(h // rep, j)`` (``R = I`` without grouped-query attention).

    Examples
    --------
    >>> attention_pattern((2, 1), 2).astype(int).tolist()
    [[1, 0, 1, 1], [0, 1, 1, 1]]
    """
    n = int(np.prod(shape))
    eye = np.eye(n, dtype=np.float32)
    if rep == 1:
        return np.concatenate([eye] * 3, axis=1)
    heads, dim = shape[0], int(np.prod(shape[1:]))
    R = np.kron(np.kron(np.eye(heads // rep), np.ones((rep, 1))), np.eye(dim)).astype(np.float32)
    return np.concatenate([eye, R, R], axis=1)

"""Values followed through a traced model: which graph nodes sit along which tensor axis.

A traced tensor that carries network units is a :class:`Feat`: the node ids along its feature
axis (channels for ``N, C, ...`` maps, the last axis otherwise). Shape operations (view,
flatten, permute, cat, split, pooling, indexing, means over non-feature axes) are followed
exactly by running the operation itself on a *code tensor*: every feature position holds a
random integer code of its node, broadcast over the other axes; the result is decoded back to
node ids. An operation that mixes features (a mean over channels, a zero-padded average) yields
values that are no code, and is reported instead of being followed wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Feat", "Opaque", "ExtraInput", "Broken", "encode", "decode"]


@dataclass(frozen=True)
class Feat:
    """Node ids carried by a traced value.

    ``ids`` has one entry per position of the feature axis (a node may repeat, e.g. a channel
    read at every position of a flattened map); ``axis`` is that axis (``-1``: the last one)
    and ``ndim`` the tensor's number of dims when known.
    """

    ids: np.ndarray
    ndim: int | None = None
    axis: int = -1
    #: several feature axes (e.g. ``(heads, head_dim)`` after a view): ``ids`` is N-D over them
    axes: tuple[int, ...] | None = None

    @property
    def pos_axis(self) -> int | None:
        """The feature axis as a non-negative index (None when ``ndim`` is unknown)."""
        if self.ndim is None:
            return None if self.axis < 0 else self.axis
        return self.axis % self.ndim


class Opaque:
    """A traced value that carries no units (sizes, masks, initial states, ...)."""


@dataclass(frozen=True)
class ExtraInput(Opaque):
    """A model input after the first (``forward(tgt, memory)``): no units until a layer reads it.

    Operations on it stay opaque (a mask passed as an input); a module that reads it as
    features (a decoder's memory, an encoder-decoder's target) makes its input nodes, named
    after the argument (``input.memory[0]``, ...), with
    :meth:`~netstruct.convert.builder.GraphBuilder.resolve_features`.
    """

    #: position among the model's inputs (1 for the second)
    index: int
    #: the forward argument's name
    name: str


class Broken:
    """The result of an operation already reported as unsupported (its consumers stay quiet)."""


def encode(
    feat: Feat, shape: tuple[int, ...], rng: np.random.Generator
) -> tuple[Any, dict[float, int]]:
    """A float64 code tensor of ``shape`` for ``feat``, and the code -> node id table."""
    import torch

    uniq = np.unique(feat.ids)
    # distinct random integers: means of equal codes are exact in float64 (sums stay < 2**53),
    # while a mixture of different codes is another code only with probability ~ n / 2**31
    codes = (2.0**31 + rng.choice(2**31, size=uniq.size, replace=False)).astype(np.float64)
    lookup = dict(zip(codes.tolist(), uniq.tolist()))
    per_pos = codes[np.searchsorted(uniq, feat.ids)]
    axes = feat.axes if feat.axes is not None else (feat.axis % len(shape),)
    view = [1] * len(shape)
    for a in axes:
        view[a] = shape[a]
    t = torch.from_numpy(per_pos.reshape(view)).expand(*shape).contiguous()
    return t, lookup


def decode(
    t: Any, lookup: dict[float, int], keep_axes: tuple[int, ...] | None = None
) -> Feat | None:
    """Node ids of a code tensor: the single axis the codes vary along (None when mixed).

    ``keep_axes``: feature axes the operation kept in place (a slice or concatenation of a
    head-split value). A kept axis of size 0 or 1 shows no variation in the codes; it is
    taken as a feature axis all the same, so the slice ``q[..., :1]`` of a ``(heads,
    head_dim)`` value keeps both axes and ``q[..., 4:]`` of a 4-wide head dimension is an
    empty value on them (a partial rotary embedding's pass-through part).
    """
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    if a.dtype != np.float64 or a.ndim == 0:
        return None
    node = _node_ids(a, lookup)
    if node is None:
        return None
    kept = {k % a.ndim for k in keep_axes} if keep_axes is not None else set()
    varying = [
        k
        for k in range(a.ndim)
        if (k in kept and a.shape[k] <= 1) or (a.shape[k] > 1 and not _constant_along(node, k))
    ]
    if not a.size:  # an empty slice: a value on the kept axes with no unit in it
        if not kept:
            return None
        varying = sorted(kept)
        ids = np.empty(tuple(a.shape[k] for k in varying), dtype=np.int64)
        if len(varying) == 1:
            return Feat(ids.reshape(-1), a.ndim, varying[0])
        return Feat(ids, a.ndim, varying[0], tuple(varying))
    if len(varying) > 1:  # features split over several axes, e.g. (heads, head_dim)
        sub = node[tuple(slice(None) if k in varying else 0 for k in range(a.ndim))]
        # the ids must depend on the varying axes only (a product layout); heads may repeat
        # whole and in order (grouped-query attention's repeat_kv: head h is head h // r)
        if np.unique(sub).size != sub.size and interleaved_repeats(sub) is None:
            return None
        return Feat(np.ascontiguousarray(sub), a.ndim, varying[0], tuple(varying))
    if not varying:  # one position on every axis, or one node everywhere
        sizes = [k for k in range(a.ndim) if a.shape[k] == 1]
        if np.unique(node).size != 1 or not sizes:
            return None
        axis = sizes[-1]
    else:
        axis = varying[0]
    index: list[int | slice] = [0] * a.ndim
    index[axis] = slice(None)
    return Feat(np.ascontiguousarray(node[tuple(index)]).reshape(-1), a.ndim, axis)


def interleaved_repeats(ids: np.ndarray) -> int | None:
    """``r`` when ``ids`` (heads first) repeats each of its distinct heads ``r`` times in a
    row, as ``repeat_interleave(x, r, dim=heads)`` does; None for any other repetition.

    Examples
    --------
    >>> interleaved_repeats(np.array([[0, 1], [0, 1], [2, 3], [2, 3]]))
    2
    >>> interleaved_repeats(np.array([[0, 1], [2, 3], [0, 1], [2, 3]])) is None
    True
    """
    if ids.ndim < 2 or not ids.size:
        return None
    n_unique = np.unique(ids).size
    r, rest = divmod(ids.size, n_unique)
    heads = ids.shape[0]
    if rest or heads % r:
        return None
    g = ids.reshape(heads // r, r, -1)
    if not (g == g[:, :1]).all() or np.unique(g[:, 0]).size != g[:, 0].size:
        return None
    return r


def _node_ids(a: np.ndarray, lookup: dict[float, int]) -> np.ndarray | None:
    """The node id of every entry of the code array ``a`` (None when some entry is no code).

    One sorted search of the code table: a mixture of codes (a mean over features, a
    zero-padded average), zero padding and non-finite values match no code.
    """
    codes = np.fromiter(lookup.keys(), dtype=np.float64, count=len(lookup))
    ids = np.fromiter(lookup.values(), dtype=np.int64, count=len(lookup))
    flat = a.reshape(-1)
    if not codes.size:
        return np.empty(a.shape, dtype=np.int64) if not flat.size else None
    order = np.argsort(codes)
    codes, ids = codes[order], ids[order]
    pos = np.minimum(np.searchsorted(codes, flat), codes.size - 1)
    if not np.array_equal(codes[pos], flat):
        return None
    return ids[pos].reshape(a.shape)


def _constant_along(node: np.ndarray, axis: int) -> bool:
    """Whether ``node`` holds the same id at every position of ``axis`` (the others fixed)."""
    first = node[(slice(None),) * axis + (slice(0, 1),)]
    return bool((node == first).all())

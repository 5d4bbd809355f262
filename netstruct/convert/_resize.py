"""Shape arguments of recorded operations that follow the units (rewritten when units go).

A traced model replays its recorded operations (``spec["ops"]``). Some take sizes along the
feature axes: ``q.view(B, T, 2, 8)`` splits 16 query units into 2 heads of 8, GPT-2's
``qkv.split(16, dim=2)`` cuts the 48 outputs of ``c_attn`` into query, key and value. After
:func:`netstruct.shrink` removes a head those sizes are wrong (1 head, ``split(8)``).

At export, an operation whose size arguments along a feature axis are not ``-1`` (a number,
or a symbolic size such as ``C // heads``) keeps ``rec["units"]``: the axes and the node ids
along them of the value it sizes (its output for ``view``/``reshape``/``expand``, its input for
``split``/``chunk``). :func:`resize_ops` then rewrites, per kept unit mask, the feature sizes
to the number of kept positions (the kept units must form a product over the feature axes:
whole heads, every dimension of each) and maps the ids to the shrunk graph's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..exceptions import GraphError
from ..graphs.signed import _copy_json

__all__ = ["units_record", "resize_ops"]

#: operations whose arguments give the sizes of their output's axes
_SHAPED = frozenset({"view", "reshape", "expand"})
#: operations that cut their input along one axis
_SECTIONED = frozenset({"split", "chunk"})


def _base(rec: dict[str, Any]) -> str:
    return str(rec.get("target", "")).rsplit(".", 1)[-1]


def _shape_slots(rec: dict[str, Any]) -> list[Any] | None:
    """The encoded list holding a view/reshape/expand's sizes (mutable, in place), or None."""
    args = rec.get("args", [])
    if len(args) < 2:
        return None
    if len(args) == 2 and isinstance(args[1], (dict, list)):
        a = args[1]
        if isinstance(a, list):
            return a
        if "$tuple" in a:
            return a["$tuple"]
        if "$size" in a:
            a["$tuple"] = a.pop("$size")
            return a["$tuple"]
        return None  # a node holding the whole shape: symbolic, left alone
    return args  # view(x, 2, 5, -1, 8): sizes from position 1 on (offset handled by callers)


def _sizes(rec: dict[str, Any]) -> tuple[list[Any], int] | None:
    """``(slots, offset)``: the sizes sit at ``slots[offset:]``."""
    slots = _shape_slots(rec)
    if slots is None:
        return None
    return slots, (1 if slots is rec.get("args") else 0)


def _section_dim(rec: dict[str, Any], ndim: int | None) -> int | None:
    args, kw = rec.get("args", []), rec.get("kwargs", {})
    dim = args[2] if len(args) > 2 else kw.get("dim", 0)
    if not isinstance(dim, int):
        return None
    return dim % ndim if ndim else dim


def units_record(rec: dict[str, Any], out: Any, inp: Any) -> dict[str, Any] | None:
    """What :func:`resize_ops` needs for this operation, or None when no size follows units.

    ``out`` and ``inp`` are the traced values (:class:`~netstruct.convert._values.Feat` or
    other) of the operation's result and first operand.
    """
    from ._values import Feat

    base = _base(rec)
    if base in _SHAPED and isinstance(out, Feat) and out.ndim is not None:
        got = _sizes(rec)
        if got is None:
            return None
        slots, off = got
        if len(slots) - off != out.ndim:
            return None
        axes = list(out.axes) if out.axes is not None else [out.axis % out.ndim]
        if all(slots[off + a] == -1 for a in axes):
            return None  # sizes inferred at run time
        return {"axes": axes, "ids": np.asarray(out.ids).tolist()}
    if base == "getitem" and isinstance(inp, Feat) and isinstance(out, Feat):
        return _slice_record(rec, out, inp)
    if base in _SECTIONED and isinstance(inp, Feat) and inp.axes is None:
        dim = _section_dim(rec, inp.ndim)
        parts = out if isinstance(out, tuple) else ()
        if (
            dim is not None
            and dim == inp.pos_axis
            and parts
            and all(isinstance(p, Feat) and p.axes is None for p in parts)
        ):
            # the section sizes as run (the recorded argument may be symbolic, e.g. x.size(2))
            sections = [int(np.asarray(p.ids).size) for p in parts]
            if sum(sections) == np.asarray(inp.ids).size:
                return {"axes": [dim], "ids": np.asarray(inp.ids).tolist(), "sections": sections}
    return None


def _index_entries(rec: dict[str, Any]) -> list[Any] | None:
    """The encoded entries of a getitem's index (mutable, in place), or None."""
    args = rec.get("args", [])
    if len(args) != 2:
        return None
    index = args[1]
    if isinstance(index, dict) and "$tuple" in index:
        return index["$tuple"]
    if isinstance(index, dict) and "$slice" in index:
        args[1] = {"$tuple": [index]}  # x[a:b] is x[(a:b,)]
        return args[1]["$tuple"]
    return None


def _slice_record(rec: dict[str, Any], out: Any, inp: Any) -> dict[str, Any] | None:
    """``qkv[..., a:b]`` along the feature axis with constant bounds (Phi-3's fused q/k/v,
    a rotary embedding's rotated part): the bounds in feature positions, refitted when units
    go. Bounds computed at run time (``x[..., : x.size(-1) // 2]``) follow by themselves."""
    if inp.axes is not None or out.axes is not None or inp.ndim is None:
        return None
    entries = _index_entries(rec)
    if entries is None or not all(
        isinstance(e, dict) and ("$slice" in e or "$ellipsis" in e) for e in entries
    ):
        return None
    dims = _indexed_dims(entries, inp.ndim)
    return _slice_at(rec, entries, dims, inp) if dims is not None else None


def _indexed_dims(entries: list[Any], ndim: int) -> list[int] | None:
    """The input dim each index entry indexes (-1 for the ellipsis); None for two ellipses."""
    ell = [k for k, e in enumerate(entries) if "$ellipsis" in e]
    if len(ell) > 1:
        return None
    if not ell:
        return list(range(len(entries)))
    k = ell[0]
    after = len(entries) - k - 1
    return [*range(k), -1, *range(ndim - after, ndim)]


def _slice_at(
    rec: dict[str, Any], entries: list[Any], dims: list[int], inp: Any
) -> dict[str, Any] | None:
    axis = inp.pos_axis
    if axis not in dims:
        return None
    k = dims.index(axis)
    start, stop, step = entries[k]["$slice"]
    if not all(v is None or isinstance(v, int) for v in (start, stop, step)) or step not in (
        None,
        1,
    ):
        return None
    n = int(np.asarray(inp.ids).size)
    lo, hi, _ = slice(start, stop).indices(n)
    if (lo, hi) == (0, n):
        return None  # the whole feature axis: nothing to refit
    return {"axes": [axis], "ids": np.asarray(inp.ids).tolist(), "entry": k, "bounds": [lo, hi]}


def _resize_slice(rec: dict[str, Any], kept: np.ndarray) -> None:
    lo, hi = rec["units"]["bounds"]
    new = [int(kept[:lo].sum()), int(kept[:hi].sum())]
    rec["units"]["bounds"] = new
    entries = _index_entries(rec)
    assert entries is not None  # recorded by _slice_record
    entries[rec["units"]["entry"]] = {"$slice": [new[0], new[1], None]}


def _kept_extents(ids: np.ndarray, kept: np.ndarray, where: str) -> list[np.ndarray]:
    """Per feature axis, which positions stay; refuses kept units that are no product."""
    masks: list[np.ndarray] = []
    for k in range(ids.ndim):
        other = tuple(a for a in range(ids.ndim) if a != k)
        masks.append(np.asarray(kept.any(axis=other)) if other else kept)
    prod = masks[0]
    for m in masks[1:]:
        prod = np.asarray(np.multiply.outer(prod, m))
    if not np.array_equal(prod, kept):
        raise GraphError(
            f"{where} splits units over several axes (e.g. heads x head_dim) and the kept units "
            "are not whole slices of them; remove whole heads (netstruct.structured_prune)."
        )
    return masks


def _resize_shaped(rec: dict[str, Any], masks: list[np.ndarray]) -> None:
    slots, off = _sizes(rec)  # type: ignore[misc]
    for a, m in zip(rec["units"]["axes"], masks):
        if slots[off + a] != -1 and int(m.sum()) != m.size:
            slots[off + a] = int(m.sum())


def _resize_sections(rec: dict[str, Any], kept: np.ndarray) -> None:
    args, kw = rec["args"], rec.setdefault("kwargs", {})
    ends = np.cumsum(rec["units"]["sections"])
    sizes = [int(kept[a:b].sum()) for a, b in zip([0, *ends[:-1].tolist()], ends.tolist())]
    rec["units"]["sections"] = sizes
    if len(args) > 2:
        dim = args[2]
    else:
        dim = kw.pop("dim", 0)
    kw.pop("split_size", None)
    kw.pop("split_size_or_sections", None)
    kw.pop("chunks", None)
    kw["dim"] = dim
    head, dot, _ = str(rec["target"]).rpartition(".")
    rec["target"] = f"{head}{dot}split"  # torch.chunk -> torch.split, chunk -> split
    rec["args"] = [args[0], sizes]


def resize_ops(spec: dict[str, Any], keep: np.ndarray, new_id: np.ndarray) -> dict[str, Any]:
    """``spec`` with the sizes of unit-following operations fitted to the kept units.

    Returns ``spec`` itself when no operation records units; else a copy whose recorded ids
    are those of the shrunk graph.

    Raises
    ------
    GraphError
        An operation's kept units are no product over its feature axes (part of a head).
    """
    ops = spec.get("ops") or []
    if not any("units" in r for r in ops):
        return spec
    out = dict(spec)
    out["ops"] = new_ops = []
    for rec in ops:
        if "units" not in rec:
            new_ops.append(rec)
            continue
        rec = _copy_json(rec)
        ids = np.asarray(rec["units"]["ids"], dtype=np.int64)
        kept = keep[ids]
        where = f"operation {rec.get('target')!r} in {rec.get('path', '')!r}"
        if not kept.all():
            if _base(rec) in _SHAPED:
                masks = _kept_extents(ids, kept, where)
                _resize_shaped(rec, masks)
                ids = ids[np.ix_(*masks)] if ids.ndim > 1 else ids[masks[0]]
            elif _base(rec) == "getitem":
                _resize_slice(rec, kept)
                ids = ids[kept]
            else:
                _resize_sections(rec, kept)
                ids = ids[kept]
        rec["units"]["ids"] = new_id[ids].tolist()
        new_ops.append(rec)
    return out

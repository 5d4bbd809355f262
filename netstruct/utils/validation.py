"""Checks shared by public functions; each raises a netstruct error with the standard message."""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..exceptions import GraphError, param_error

if TYPE_CHECKING:  # for the annotation only: graphs imports this module
    from ..graphs.signed import SignedGraph

__all__ = ["check_scalar", "check_choice", "check_graph", "check_finite", "check_fraction"]


def check_scalar(
    value: object,
    name: str,
    func: str,
    *,
    kind: type | tuple[type, ...] = numbers.Real,
    min_value: float | None = None,
    max_value: float | None = None,
    include_min: bool = True,
    include_max: bool = True,
) -> Any:
    """Check that ``value`` is a scalar of ``kind`` inside the given bounds.

    Examples
    --------
    >>> check_scalar(3, "n_steps", "randomize", kind=int, min_value=0)
    3
    """
    kinds = kind if isinstance(kind, tuple) else (kind,)
    int_like = any(k in (int, numbers.Integral) for k in kinds)
    ok_type = isinstance(value, kinds) and not isinstance(value, bool)
    if int_like and isinstance(value, np.integer):
        ok_type = True
    lo = "" if min_value is None else (">= " if include_min else "> ") + str(min_value)
    hi = "" if max_value is None else ("<= " if include_max else "< ") + str(max_value)
    bounds = " and ".join(b for b in (lo, hi) if b)
    what = ("an int" if int_like else "a real number") + (f" {bounds}" if bounds else "")
    if not ok_type:
        raise param_error(name, func, what, value)
    if isinstance(value, numbers.Real) and not np.isfinite(float(value)):
        raise param_error(name, func, what, value)
    num: Any = value  # a real number from here on
    if min_value is not None and (num < min_value or (not include_min and num == min_value)):
        raise param_error(name, func, what, value)
    if max_value is not None and (num > max_value or (not include_max and num == max_value)):
        raise param_error(name, func, what, value)
    return value


def check_fraction(value: object, name: str, func: str) -> float:
    """Check that ``value`` is a real number in [0, 1]."""
    return float(check_scalar(value, name, func, min_value=0.0, max_value=1.0))


def check_choice(value: object, name: str, func: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``.

    Examples
    --------
    >>> check_choice("sum", "aggregate", "unroll", ["sum", "max"])
    'sum'
    """
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise param_error(name, func, f"one of {choices}", value)
    return value


def check_graph(G: Any, func: str, name: str = "G") -> SignedGraph:
    """Check that ``G`` is a :class:`netstruct.SignedGraph`.

    The class says so itself (``_is_signed_graph``), so this base layer needs no import of
    the graphs package (which imports it).
    """
    if not getattr(type(G), "_is_signed_graph", False):
        raise param_error(
            name,
            func,
            "a netstruct.SignedGraph (build one with netstruct.from_torch)",
            type(G).__name__,
        )
    return G


#: arrays up to this size are tested entry by entry (``isfinite(a).all()``: a temporary of
#: at most 64 KiB, and no ``np.errstate``, whose entry and exit cost more than the test)
_SMALL = 65536


def _finite_by_reduction(a: np.ndarray) -> bool:
    """True when one reduction of ``a`` is finite, which proves every entry finite.

    NaN and +/-inf make any sum (or sum of squares) non-finite, so a finite result proves the
    array finite; a non-finite one may also be an overflow of large finite values, which the
    caller then tells apart. For float32/float64 the sum of squares runs as one BLAS dot
    product (vectorised, 2-3x faster than ``ndarray.sum``'s pairwise sum at export sizes);
    other float dtypes use ``sum``.
    """
    if a.dtype.kind != "f":
        return False
    if a.size <= _SMALL:  # small: the exact test is cheaper than the context manager below
        return bool(np.isfinite(a).all())
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow only sends us the slow way
        if a.dtype in (np.float32, np.float64) and (a.flags.c_contiguous or a.flags.f_contiguous):
            flat = a.reshape(-1, order="C" if a.flags.c_contiguous else "F")
            return bool(np.isfinite(np.dot(flat, flat)))
        return bool(np.isfinite(a.sum()))


def check_finite(array: np.ndarray, what: str) -> None:
    """Raise :class:`GraphError` when ``array`` holds NaN or infinite values."""
    a = np.asarray(array)
    if a.dtype.kind in "biu" or a.size == 0:
        return
    if _finite_by_reduction(a):
        return
    # a non-finite reduction: some value is not finite, or finite values overflowed (below)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GraphError(
            f"{what} holds {int(bad.sum())} non-finite value(s) (first at index {idx}: "
            f"{a[idx]!r}); netstruct needs finite weights. Fix the model (e.g. retrain or "
            "replace NaN/inf with torch.nan_to_num) before exporting."
        )

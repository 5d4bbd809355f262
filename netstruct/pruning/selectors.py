"""Composable selectors over the node and edge tables of a graph.

A selector turns a table (:meth:`SignedGraph.edges` or :meth:`SignedGraph.nodes`) into a
boolean mask. Selectors compose with ``&`` (and), ``|`` (or), ``^`` (xor) and ``~`` (not);
plain query strings, callables and boolean masks mix with them freely::

    where("layer == 0") & smallest("abs(weight)", fraction=0.2, per="layer")

Ranking selectors (:func:`largest`, :func:`smallest`, :func:`quantile`) rank rows by a column
or an expression over columns, globally or within groups (``per="layer"`` ranks each layer
separately, ``per="target"`` ranks the edges into each node). Ties are broken by row order,
so every selector is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError, param_error

__all__ = [
    "Selection",
    "where",
    "largest",
    "smallest",
    "quantile",
    "evaluate_selector",
    "SelectorLike",
]

#: Anything that selects rows: a query string, a callable ``table -> mask``, a boolean mask or a Selection.
SelectorLike = Union[str, Callable[[pd.DataFrame], Any], np.ndarray, pd.Series, "Selection"]


def _eval_expr(table: pd.DataFrame, expr: str, func: str) -> np.ndarray:
    """Evaluate a pandas expression over ``table`` (inputs already validated)."""
    if len(table) == 0:
        return np.zeros(0)
    try:
        out = table.eval(expr, engine="python")
    except Exception as exc:  # pandas raises many kinds for a bad expression
        raise InvalidParameterError(
            f"The expression {expr!r} given to {func} could not be evaluated ({type(exc).__name__}: {exc}). "
            f'Use pandas query syntax over the columns {list(table.columns)}, e.g. "abs(weight) < 0.01".'
        ) from None
    return np.asarray(out)


def evaluate_selector(table: pd.DataFrame, sel: SelectorLike, func: str = "select") -> np.ndarray:
    """Boolean mask (one entry per row of ``table``) for any selector-like object.

    Parameters
    ----------
    table : DataFrame
        A node or edge table.
    sel : str, callable, boolean array, Series or Selection
        What to select.
    func : str
        Name of the public function, used in error messages.

    Returns
    -------
    ndarray of bool, shape (len(table),)

    Raises
    ------
    InvalidParameterError
        The expression names a column that does not exist (the message lists the columns), or
        the result is not one boolean per row.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"weight": [0.5, -0.01, 0.002]})
    >>> evaluate_selector(t, "abs(weight) < 0.1").tolist()
    [False, True, True]
    """
    n = len(table)
    if isinstance(sel, str):
        arr = _eval_expr(table, sel, func) if n else np.zeros(0, dtype=bool)
    elif isinstance(sel, Selection):
        arr = sel.mask(table, func)
    elif callable(sel):
        out = sel(table)
        arr = _aligned(table, out, func) if isinstance(out, pd.Series) else np.asarray(out)
    elif isinstance(sel, pd.Series):
        arr = _aligned(table, sel, func)
    else:
        arr = np.asarray(sel)
    return checked_mask(arr, n, func)


def checked_mask(arr: np.ndarray, n: int, func: str) -> np.ndarray:
    """``arr`` when it is one boolean per row of an ``n``-row table, else a clear error."""
    if arr.dtype != np.bool_ or arr.shape != (n,):
        if n == 0 and arr.size == 0:
            return np.zeros(0, dtype=bool)
        raise InvalidParameterError(
            f"A selection given to {func} must give one boolean per row ({n}); got dtype {arr.dtype} and "
            f'shape {arr.shape}. Write a comparison such as "weight < 0".'
        )
    return arr


def _aligned(table: pd.DataFrame, sel: pd.Series, func: str) -> np.ndarray:
    """A boolean Series aligned to ``table`` by index labels, never by position.

    A Series taken from a sorted or filtered copy of the table (``e.sort_values(...)``) keeps
    its row labels; reading it by position would select the wrong rows.
    """
    idx = table.index
    if sel.index.has_duplicates or len(sel) != len(idx) or not sel.index.isin(idx).all():
        extra = sel.index.difference(idx)[:5].tolist()
        missing = idx.difference(sel.index)[:5].tolist()
        raise InvalidParameterError(
            f"A boolean Series given to {func} must have the table's index (one entry per row, "
            f"{len(idx)} rows, labels {idx.min() if len(idx) else 0}..{idx.max() if len(idx) else -1}); "
            f"got {len(sel)} entries"
            + (f", labels not in the table {extra}" if extra else "")
            + (f", rows missing {missing}" if missing else "")
            + (", duplicate labels" if sel.index.has_duplicates else "")
            + ". Build it from G.edges() / G.nodes() (sorting is fine: rows are matched by label), "
            "or pass .to_numpy() of a mask in table order."
        )
    return np.asarray(sel.reindex(idx))


class Selection:
    """A composable row selector (base class).

    Subclasses implement :meth:`mask`. Combine selections with ``&``, ``|``, ``^`` and ``~``;
    the other operand may be a query string, a callable or a boolean mask.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"layer": [0, 0, 1, 1], "weight": [0.1, -0.9, 0.3, 0.0]})
    >>> sel = where("layer == 1") | smallest("abs(weight)", k=1)
    >>> sel.mask(t).tolist()
    [False, False, True, True]
    >>> (~sel).mask(t).tolist()
    [True, True, False, False]
    """

    def mask(self, table: pd.DataFrame, func: str = "Selection.mask") -> np.ndarray:
        """Boolean mask over the rows of ``table``."""
        raise NotImplementedError(f"{type(self).__name__} must implement mask()")

    def __call__(self, table: pd.DataFrame) -> np.ndarray:
        return self.mask(table)

    def __and__(self, other: SelectorLike) -> Selection:
        return _Combined("and", (self, _as_selection(other)))

    def __rand__(self, other: SelectorLike) -> Selection:
        return _Combined("and", (_as_selection(other), self))

    def __or__(self, other: SelectorLike) -> Selection:
        return _Combined("or", (self, _as_selection(other)))

    def __ror__(self, other: SelectorLike) -> Selection:
        return _Combined("or", (_as_selection(other), self))

    def __xor__(self, other: SelectorLike) -> Selection:
        return _Combined("xor", (self, _as_selection(other)))

    def __rxor__(self, other: SelectorLike) -> Selection:
        return _Combined("xor", (_as_selection(other), self))

    def __invert__(self) -> Selection:
        return _Not(self)


class _Where(Selection):
    def __init__(self, sel: Any) -> None:
        self.sel = sel

    def mask(self, table: pd.DataFrame, func: str = "where") -> np.ndarray:
        return evaluate_selector(table, self.sel, func)

    def __repr__(self) -> str:
        return f"where({self.sel!r})" if isinstance(self.sel, str) else "where(<mask>)"


class _Combined(Selection):
    _OPS = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}

    def __init__(self, op: str, parts: tuple[Selection, ...]) -> None:
        self.op, self.parts = op, parts

    def mask(self, table: pd.DataFrame, func: str = "Selection.mask") -> np.ndarray:
        a, b = (p.mask(table, func) for p in self.parts)
        return self._OPS[self.op](a, b)

    def __repr__(self) -> str:
        sym = {"and": "&", "or": "|", "xor": "^"}[self.op]
        return f"({self.parts[0]!r} {sym} {self.parts[1]!r})"


class _Not(Selection):
    def __init__(self, inner: Selection) -> None:
        self.inner = inner

    def mask(self, table: pd.DataFrame, func: str = "Selection.mask") -> np.ndarray:
        return ~self.inner.mask(table, func)

    def __repr__(self) -> str:
        return f"~{self.inner!r}"


def _as_selection(sel: SelectorLike) -> Selection:
    if isinstance(sel, Selection):
        return sel
    if sel is None:
        raise InvalidParameterError(
            "A selector cannot be combined with None; give a query, callable or mask."
        )
    return _Where(sel)


def where(sel: SelectorLike) -> Selection:
    """Wrap a query string, callable or boolean mask as a composable :class:`Selection`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"sign": [1, -1, 1]})
    >>> (where("sign < 0") | [True, False, False]).mask(t).tolist()
    [True, True, False]
    """
    return _as_selection(sel)


def _values(table: pd.DataFrame, by: str, func: str) -> np.ndarray:
    if by in table.columns:
        vals = table[by].to_numpy()
    else:
        vals = _eval_expr(table, by, func)
    vals = np.asarray(vals)
    if vals.shape != (len(table),) or not np.issubdtype(vals.dtype, np.number):
        raise InvalidParameterError(
            f"The 'by' expression {by!r} of {func} must give one number per row; got dtype {vals.dtype} "
            f"and shape {vals.shape}."
        )
    return vals.astype(np.float64)


def _groups(table: pd.DataFrame, per: str | Sequence[str] | None, func: str) -> np.ndarray:
    if per is None:
        return np.zeros(len(table), dtype=np.int64)
    cols = [per] if isinstance(per, str) else list(per)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise InvalidParameterError(
            f"The 'per' parameter of {func} names column(s) {missing} that do not exist; the columns are "
            f"{list(table.columns)}."
        )
    if len(table) == 0:
        return np.zeros(0, dtype=np.int64)
    return table.groupby(cols, sort=True, observed=True).ngroup().to_numpy()


class _Rank(Selection):
    def __init__(
        self,
        func: str,
        by: str,
        *,
        k: int | None,
        fraction: float | None,
        q: float | None,
        per: Any,
        within: SelectorLike | None,
        largest_first: bool,
    ) -> None:
        if not isinstance(by, str):
            raise param_error("by", func, "a column name or an expression string", by)
        n_given = sum(x is not None for x in (k, fraction, q))
        if func != "quantile" and n_given != 1:
            raise InvalidParameterError(
                f"{func} needs exactly one of 'k' and 'fraction'; got k={k!r}, fraction={fraction!r}."
            )
        if k is not None and (not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0):
            raise param_error("k", func, "an int >= 0", k)
        for name, v in (("fraction", fraction), ("q", q)):
            if v is not None and (
                isinstance(v, bool)
                or not isinstance(v, (int, float, np.floating))
                or not 0.0 <= float(v) <= 1.0
            ):
                raise param_error(name, func, "a real number in [0, 1]", v)
        self.func, self.by, self.k, self.fraction, self.q = func, by, k, fraction, q
        self.per, self.within, self.largest_first = per, within, largest_first

    def mask(self, table: pd.DataFrame, func: str | None = None) -> np.ndarray:
        func = self.func
        n = len(table)
        out = np.zeros(n, dtype=bool)
        if n == 0:
            return out
        vals = _values(table, self.by, func)
        if np.isnan(vals).any():
            raise InvalidParameterError(
                f"The 'by' expression {self.by!r} of {func} gives NaN values."
            )
        groups = _groups(table, self.per, func)
        eligible = (
            np.ones(n, dtype=bool)
            if self.within is None
            else evaluate_selector(table, self.within, func)
        )
        idx = np.flatnonzero(eligible)
        if idx.size == 0:
            return out
        g = groups[idx]
        key = -vals[idx] if self.largest_first else vals[idx]
        order = idx[np.lexsort((idx, key, g))]  # by group, then value, then row order
        g_sorted = groups[order]
        starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
        ends = np.r_[starts[1:], order.size]
        for s, e in zip(starts, ends):
            size = e - s
            if self.q is not None:
                v = vals[order[s:e]]
                thr = np.quantile(v, self.q if not self.largest_first else 1.0 - self.q)
                out[order[s:e]] = v >= thr if self.largest_first else v <= thr
                continue
            take = (
                min(int(self.k), size)
                if self.k is not None
                else int(round(float(self.fraction or 0.0) * size))
            )
            out[order[s : s + take]] = True
        return out

    def __repr__(self) -> str:
        amount = (
            f"k={self.k}"
            if self.k is not None
            else (f"fraction={self.fraction}" if self.fraction is not None else f"q={self.q}")
        )
        return f"{self.func}({self.by!r}, {amount}, per={self.per!r})"


def largest(
    by: str,
    *,
    k: int | None = None,
    fraction: float | None = None,
    per: str | Sequence[str] | None = None,
    within: SelectorLike | None = None,
) -> Selection:
    """Select the ``k`` rows (or a ``fraction`` of the rows) with the largest ``by`` values.

    Parameters
    ----------
    by : str
        A column name or an expression over columns (``"abs(weight)"``).
    k : int, optional
        Number of rows to select in each group.
    fraction : float in [0, 1], optional
        Share of each group's rows to select (rounded to the nearest integer).
    per : str or list of str, optional
        Rank separately within groups of these columns (``"layer"``, ``"target"``, ``"group"``);
        ``None`` ranks globally.
    within : selector, optional
        Rank only among these rows; the others are never selected.

    Returns
    -------
    Selection

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"layer": [0, 0, 1, 1], "weight": [0.1, -0.9, 0.3, 0.2]})
    >>> largest("abs(weight)", k=1, per="layer").mask(t).tolist()
    [False, True, True, False]
    """
    return _Rank(
        "largest", by, k=k, fraction=fraction, q=None, per=per, within=within, largest_first=True
    )


def smallest(
    by: str,
    *,
    k: int | None = None,
    fraction: float | None = None,
    per: str | Sequence[str] | None = None,
    within: SelectorLike | None = None,
) -> Selection:
    """Select the ``k`` rows (or a ``fraction``) with the smallest ``by`` values; see :func:`largest`.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"weight": [0.1, -0.9, 0.3, 0.2, -0.05]})
    >>> smallest("abs(weight)", fraction=0.4).mask(t).tolist()
    [True, False, False, False, True]
    """
    return _Rank(
        "smallest", by, k=k, fraction=fraction, q=None, per=per, within=within, largest_first=False
    )


def quantile(
    by: str,
    q: float,
    *,
    side: str = "below",
    per: str | Sequence[str] | None = None,
    within: SelectorLike | None = None,
) -> Selection:
    """Select rows whose ``by`` value is at most the ``q``-quantile (``side="below"``) or at least
    the ``(1 - q)``-quantile (``side="above"``), per group.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"score": [1.0, 2.0, 3.0, 4.0, 5.0]})
    >>> quantile("score", 0.4).mask(t).tolist()
    [True, True, False, False, False]
    >>> quantile("score", 0.2, side="above").mask(t).tolist()
    [False, False, False, False, True]
    """
    if side not in ("below", "above"):
        raise param_error("side", "quantile", "one of ['below', 'above']", side)
    return _Rank(
        "quantile",
        by,
        k=None,
        fraction=None,
        q=q,
        per=per,
        within=within,
        largest_first=side == "above",
    )

"""Node names described per run of nodes, made into strings only when someone reads them.

An exporter names its nodes ``<base>[i]`` (a layer's units, a model input's features) or
``<base>[h.d]`` (an attention projection's units, by head and dimension): a BERT-sized model
has ~10^5 such names, and building them is a large part of an export that nobody may read.
:class:`NodeNames` keeps the runs (base, count, head width) and builds the strings on first
use. Their uniqueness follows from the runs alone (:meth:`NodeNames.proven_unique`), so the
graph refuses duplicates when it is made, as it does for a list of names.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["NameRange", "NodeNames"]


@dataclass(frozen=True)
class NameRange:
    """``count`` consecutive node names ``<base>[i]``, or ``<base>[h.d]`` with ``head_dim`` D.

    With ``head_dim`` D > 0, name ``j`` is ``<base>[{j // D}.{j % D}]`` (``count`` a multiple
    of D is not required). ``gate`` labels the nodes' ``gate`` column: that label for every
    node, or with ``head_dim``, ``<gate><h>`` for head ``h``.
    """

    base: str
    count: int
    head_dim: int = 0
    gate: str = ""

    def __post_init__(self) -> None:
        if type(self.base) is not str or type(self.gate) is not str:
            raise TypeError("NameRange base and gate must be str")
        if self.count < 0 or self.head_dim < 0:
            raise ValueError("NameRange count and head_dim must be >= 0")

    def names(self) -> list[str]:
        """The names as a list of ``str``."""
        return list(map(self.base.__add__, _suffixes(self.count, self.head_dim)))

    def gates(self) -> np.ndarray | str:
        """The gate labels: one ``str`` for every node, or an object array (one per node, by head)."""
        if not self.head_dim or not self.gate:
            return self.gate
        D = self.head_dim
        heads = -(-self.count // D)
        labels = np.empty(heads, dtype=object)
        labels[:] = [f"{self.gate}{h}" for h in range(heads)]
        return np.repeat(labels, D)[: self.count]


@functools.lru_cache(maxsize=64)
def _suffix_tuple(count: int, head_dim: int) -> tuple[str, ...]:
    if head_dim:
        return tuple(f"[{j // head_dim}.{j % head_dim}]" for j in range(count))
    return tuple(f"[{i}]" for i in range(count))


def _suffixes(count: int, head_dim: int) -> Sequence[str]:
    """``"[i]"`` (or ``"[h.d]"``) for ``i < count``: cached, shared by every run of that size."""
    return _suffix_tuple(count, head_dim)


class NodeNames:
    """The name column of a graph's nodes as runs: :class:`NameRange` s and lists of names.

    Parameters
    ----------
    parts : sequence of NameRange or list of str
        The runs in node order; a list gives its names as they are.

    Examples
    --------
    >>> names = NodeNames([NameRange("input", 2), NameRange("attn.q", 4, head_dim=2)])
    >>> len(names), names.proven_unique()
    (6, True)
    >>> names.materialise().tolist()
    ['input[0]', 'input[1]', 'attn.q[0.0]', 'attn.q[0.1]', 'attn.q[1.0]', 'attn.q[1.1]']
    """

    __slots__ = ("_parts", "_n")

    def __init__(self, parts: Sequence[NameRange | list[str]]) -> None:
        self._parts = tuple(p if isinstance(p, NameRange) else list(p) for p in parts)
        self._n = sum(p.count if isinstance(p, NameRange) else len(p) for p in self._parts)

    def __len__(self) -> int:
        return self._n

    @property
    def parts(self) -> tuple[NameRange | list[str], ...]:
        """The runs, in node order."""
        return self._parts

    @property
    def has_lists(self) -> bool:
        """True when some run is a list of names (not described by a :class:`NameRange`)."""
        return any(not isinstance(p, NameRange) for p in self._parts)

    def proven_unique(self) -> bool:
        """True when the runs alone prove every name distinct (False: not proven, check them).

        A name of a :class:`NameRange` is ``base + "[" + index + "]"``, where the index holds
        digits and at most one dot and no bracket: the last ``[`` of the name splits it back
        into its base and index, so names of ranges with different bases differ. Within one
        base, ``[i]`` indices (no dot) and ``[h.d]`` indices (one dot) never meet, and within
        one range the indices differ; two non-empty ranges of one base and one index form
        share the name of index 0. So the names are distinct exactly when every (base, index
        form) of a non-empty range occurs once. Runs given as lists are not covered.
        """
        if self.has_lists:
            return False
        seen: set[tuple[str, bool]] = set()
        for p in self._parts:
            assert isinstance(p, NameRange)
            if not p.count:
                continue
            key = (p.base, p.head_dim > 0)
            if key in seen:
                return False
            seen.add(key)
        return True

    def materialise(self) -> np.ndarray:
        """The names as an object array of ``str`` (a new, writeable array)."""
        out = np.empty(self._n, dtype=object)
        start = 0
        for p in self._parts:
            names = p.names() if isinstance(p, NameRange) else p
            out[start : start + len(names)] = names
            start += len(names)
        return out

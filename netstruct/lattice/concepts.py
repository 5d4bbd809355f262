"""Enumerating a concept lattice and its cover relation (small contexts, tests, figures).

The number of concepts can be exponential in min(|G|, |M|), so enumeration runs under a
budget ``max_concepts`` and stops with :class:`~netstruct.GraphError` when it is exceeded.
For irreducibles of real networks use :func:`meet_irreducibles`, which never enumerates.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..backends import dispatch
from ..exceptions import GraphError, param_error
from ..utils.validation import check_scalar
from ._bits import pack_rows, unpack_rows
from .context import FormalContext

__all__ = ["ConceptLattice", "concept_lattice"]


class ConceptLattice:
    """The concept lattice B(G, M, I) of a formal context, with its cover relation.

    Concepts are numbered by (extent size, extent bits): concept 0 is the bottom (smallest
    extent) and the last concept is the top. Build it with :func:`concept_lattice`.

    Attributes
    ----------
    context : FormalContext
    extents : ndarray of bool, shape (n_concepts, n_objects)
    intents : ndarray of bool, shape (n_concepts, n_attributes)
    covers : ndarray of int64, shape (n_covers, 2)
        Pairs ``(lower, upper)`` with ``upper`` covering ``lower``.

    Examples
    --------
    >>> import netstruct as ns
    >>> L = ns.lattice.concept_lattice(ns.lattice.FormalContext([[1, 0], [0, 1]]))
    >>> len(L), L.covers.tolist()
    (4, [[0, 1], [0, 2], [1, 3], [2, 3]])
    """

    def __init__(
        self,
        context: FormalContext,
        extent_bits: NDArray[np.uint64],
        intent_bits: NDArray[np.uint64],
        covers: NDArray[np.int64],
    ) -> None:
        self.context = context
        self._extent_bits = extent_bits
        self._intent_bits = intent_bits
        self.covers = covers
        for a in (extent_bits, intent_bits, covers):
            a.setflags(write=False)

    # ------------------------------------------------------------------ arrays
    def __len__(self) -> int:
        return int(self._extent_bits.shape[0])

    @property
    def n_concepts(self) -> int:
        """Number of concepts."""
        return len(self)

    @cached_property
    def extents(self) -> NDArray[np.bool_]:
        """Extents as a bool matrix (n_concepts, n_objects)."""
        out = unpack_rows(self._extent_bits, self.context.n_objects)
        out.setflags(write=False)
        return out

    @cached_property
    def intents(self) -> NDArray[np.bool_]:
        """Intents as a bool matrix (n_concepts, n_attributes)."""
        out = unpack_rows(self._intent_bits, self.context.n_attributes)
        out.setflags(write=False)
        return out

    @property
    def bottom(self) -> int:
        """Id of the least concept (G'', ... smallest extent)."""
        return 0

    @property
    def top(self) -> int:
        """Id of the greatest concept (extent G)."""
        return len(self) - 1

    @cached_property
    def _by_extent(self) -> dict[bytes, int]:
        return {row.tobytes(): i for i, row in enumerate(self._extent_bits)}

    @cached_property
    def _by_intent(self) -> dict[bytes, int]:
        return {row.tobytes(): i for i, row in enumerate(self._intent_bits)}

    def _check_id(self, i: Any, name: str, func: str) -> int:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < len(self):
            raise param_error(name, func, f"a concept id in 0..{len(self) - 1}", i)
        return int(i)

    # ------------------------------------------------------------------ order
    def upper_covers(self, i: int) -> NDArray[np.int64]:
        """Ids of the concepts covering concept ``i``."""
        i = self._check_id(i, "i", "ConceptLattice.upper_covers")
        return self.covers[self.covers[:, 0] == i, 1]

    def lower_covers(self, i: int) -> NDArray[np.int64]:
        """Ids of the concepts covered by concept ``i``."""
        i = self._check_id(i, "i", "ConceptLattice.lower_covers")
        return self.covers[self.covers[:, 1] == i, 0]

    def leq(self, i: int, j: int) -> bool:
        """True iff concept ``i`` <= concept ``j`` (extent inclusion)."""
        i = self._check_id(i, "i", "ConceptLattice.leq")
        j = self._check_id(j, "j", "ConceptLattice.leq")
        a, b = self._extent_bits[i], self._extent_bits[j]
        return bool(np.all((a & ~b) == 0))

    def meet(self, i: int, j: int) -> int:
        """Id of the meet: extent ``A_i ∩ A_j``.

        Examples
        --------
        >>> import netstruct as ns
        >>> L = ns.lattice.concept_lattice(ns.lattice.FormalContext([[1, 0], [0, 1]]))
        >>> L.meet(1, 2), L.join(1, 2)
        (0, 3)
        """
        i = self._check_id(i, "i", "ConceptLattice.meet")
        j = self._check_id(j, "j", "ConceptLattice.meet")
        return self._by_extent[(self._extent_bits[i] & self._extent_bits[j]).tobytes()]

    def join(self, i: int, j: int) -> int:
        """Id of the join: intent ``B_i ∩ B_j``."""
        i = self._check_id(i, "i", "ConceptLattice.join")
        j = self._check_id(j, "j", "ConceptLattice.join")
        return self._by_intent[(self._intent_bits[i] & self._intent_bits[j]).tobytes()]

    def find(self, extent: Any) -> int:
        """Id of the concept with the given extent (bool mask over objects); -1 if none."""
        ext = np.asarray(extent, dtype=bool)
        if ext.shape != (self.context.n_objects,):
            raise param_error(
                "extent",
                "ConceptLattice.find",
                f"a bool mask of length {self.context.n_objects}",
                ext.shape,
            )
        return self._by_extent.get(pack_rows(ext[None, :])[0].tobytes(), -1)

    @cached_property
    def attribute_concepts(self) -> NDArray[np.int64]:
        """Id of the attribute concept (m', m'') of every attribute."""
        return np.array(
            [self._by_extent[c.tobytes()] for c in self.context.column_bits], dtype=np.int64
        )

    @cached_property
    def object_concepts(self) -> NDArray[np.int64]:
        """Id of the object concept (g'', g') of every object (for a poset: its embedding)."""
        return np.array(
            [self._by_intent[r.tobytes()] for r in self.context.row_bits], dtype=np.int64
        )

    @cached_property
    def n_upper_covers(self) -> NDArray[np.int64]:
        """Number of upper covers of each concept."""
        return np.bincount(self.covers[:, 0], minlength=len(self)).astype(np.int64)

    @cached_property
    def n_lower_covers(self) -> NDArray[np.int64]:
        """Number of lower covers of each concept."""
        return np.bincount(self.covers[:, 1], minlength=len(self)).astype(np.int64)

    def meet_irreducible_concepts(self) -> NDArray[np.int64]:
        """Ids of the concepts with exactly one upper cover."""
        return np.flatnonzero(self.n_upper_covers == 1).astype(np.int64)

    def join_irreducible_concepts(self) -> NDArray[np.int64]:
        """Ids of the concepts with exactly one lower cover."""
        return np.flatnonzero(self.n_lower_covers == 1).astype(np.int64)

    # ------------------------------------------------------------------ export
    def concepts(self) -> list[tuple[tuple[Any, ...], tuple[Any, ...]]]:
        """All concepts as ``(object labels, attribute labels)`` pairs, in id order."""
        obj, att = self.context.objects, self.context.attributes
        return [
            (tuple(o for o, x in zip(obj, e) if x), tuple(a for a, x in zip(att, t) if x))
            for e, t in zip(self.extents, self.intents)
        ]

    def to_networkx(self) -> Any:
        """The Hasse diagram as a :class:`networkx.DiGraph` (edges lower -> upper).

        Nodes carry ``extent`` and ``intent`` label tuples.
        """
        import networkx as nx

        H = nx.DiGraph()
        for i, (e, t) in enumerate(self.concepts()):
            H.add_node(i, extent=e, intent=t)
        H.add_edges_from(map(tuple, self.covers.tolist()))
        return H

    def __repr__(self) -> str:
        return f"<ConceptLattice: {len(self)} concepts, {self.covers.shape[0]} covers, context {self.context.shape}>"


def concept_lattice(context: FormalContext, *, max_concepts: int = 10_000) -> ConceptLattice:
    """Enumerate every concept of a context and the cover relation.

    Parameters
    ----------
    context : FormalContext or Poset
        A poset stands for its context (P, P, <=); see also :func:`dedekind_macneille`.
    max_concepts : int, default=10_000
        Budget. Enumeration stops, and :class:`~netstruct.GraphError` is raised, as soon as
        more concepts than this are found, so memory stays bounded.

    Returns
    -------
    ConceptLattice

    Raises
    ------
    GraphError
        When the lattice has more than ``max_concepts`` concepts.
    InvalidParameterError
        On a wrong ``context`` type or a ``max_concepts`` < 1.

    See Also
    --------
    meet_irreducibles : the irreducibles without enumeration.

    Notes
    -----
    Concepts come from Close-by-One with In-Close-style partial closures on uint64 bitsets
    (serial, O(|L| |M|^2 |G| / 64)); covers from Lindig's neighbour search, parallel over
    concepts (O(|L| |G|^2 |M| / 64)). The numbering is deterministic: by extent size, then
    extent bits. Backend: numba.

    References
    ----------
    S. O. Kuznetsov, "A fast algorithm for computing all intersections of objects in a
    finite semi-lattice", 1993. C. Lindig, "Fast concept analysis", 2000.

    Examples
    --------
    The spec's C1 (diamond): four concepts forming the 2 x 2 Boolean lattice.

    >>> import netstruct as ns
    >>> K = ns.lattice.FormalContext([[1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1]],
    ...                              objects=["x1", "x2", "x3"], attributes=["y1", "y2", "y3", "y4"])
    >>> L = ns.lattice.concept_lattice(K)
    >>> L.concepts()[0], L.concepts()[-1]
    ((('x2',), ('y1', 'y2', 'y3', 'y4')), (('x1', 'x2', 'x3'), ('y4',)))
    >>> L.covers.tolist()
    [[0, 1], [0, 2], [1, 3], [2, 3]]
    """
    func = "concept_lattice"
    if not isinstance(context, FormalContext):
        from .poset import Poset

        if not isinstance(context, Poset):
            raise param_error(
                "context",
                func,
                "a netstruct.lattice.FormalContext or Poset",
                type(context).__name__,
            )
        context = context.context()
    budget = int(check_scalar(max_concepts, "max_concepts", func, kind=int, min_value=1))
    return _enumerate(context, budget)


def _enumerate(K: FormalContext, budget: int) -> ConceptLattice:
    """Enumeration for a validated context and budget."""
    enum = dispatch("lattice.concepts_cbo", "numba")
    ext, inten, n = enum(K.column_bits, K.all_objects_bits, budget)
    if n < 0:
        raise GraphError(
            f"The concept lattice of this {K.n_objects} x {K.n_attributes} context has more than "
            f"max_concepts={budget} concepts; enumeration was stopped. Raise max_concepts if the "
            "memory allows, or use meet_irreducibles/join_irreducibles, which need no enumeration."
        )
    ext = np.ascontiguousarray(ext[:n])
    inten = np.ascontiguousarray(inten[:n])
    sizes = np.bitwise_count(ext).sum(axis=1, dtype=np.int64)
    keys = [ext[:, k] for k in range(ext.shape[1] - 1, -1, -1)] + [sizes]
    order = np.lexsort(keys)
    ext, inten, sizes = (np.ascontiguousarray(a[order]) for a in (ext, inten, sizes))
    cov = dispatch("lattice.concept_covers", "numba")
    lower, upper = cov(ext, inten, sizes, K.row_bits, K.column_bits, K.all_objects_bits)
    pairs = np.stack([lower, upper], axis=1).astype(np.int64)
    return ConceptLattice(K, ext, inten, pairs)

"""Formal contexts: the binary relation behind a concept lattice.

A formal context ``(G, M, I)`` is a bit matrix whose rows are *objects* and whose columns
are *attributes*. For a weight block (post x pre) the objects are the presynaptic units and
the attributes the postsynaptic units, so ``g I m`` iff the edge ``g -> m`` is present: the
column of ``m`` is its *receptive field* ``m'`` and the row of ``g`` its *projective field*.

Weights become a context by a strict threshold ``A > tau`` (:func:`binarize`) or, for the
continuous variant, by a family of level cuts (:func:`~netstruct.lattice.level_cuts`); both live
in :mod:`netstruct.lattice.thresholds`.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..exceptions import param_error
from ._bits import full_bits, pack_rows

if TYPE_CHECKING:
    from .poset import Poset

__all__ = ["FormalContext"]


def _labels(labels: ArrayLike | None, n: int, name: str, func: str) -> tuple[Any, ...]:
    if labels is None:
        return tuple(range(n))
    out = tuple(labels.tolist()) if isinstance(labels, np.ndarray) else tuple(labels)  # type: ignore[arg-type]
    if len(out) != n:
        raise param_error(name, func, f"a sequence of {n} labels", f"{len(out)} labels")
    return out


class FormalContext:
    """A formal context: an immutable bit matrix with object and attribute labels.

    Parameters
    ----------
    incidence : array-like of bool or 0/1, shape (n_objects, n_attributes)
        ``incidence[g, m]`` is True iff object ``g`` has attribute ``m``.
    objects, attributes : sequence, optional
        Labels (default ``0..n-1``).

    Raises
    ------
    InvalidParameterError
        When ``incidence`` is not a 2-D 0/1 matrix or has no objects or no attributes.

    See Also
    --------
    concept_lattice, meet_irreducibles, join_irreducibles

    Examples
    --------
    >>> import netstruct as ns
    >>> K = ns.lattice.FormalContext([[1, 0], [1, 1]], objects=["g1", "g2"], attributes="ab")
    >>> K
    <FormalContext: 2 objects x 2 attributes, 3 crosses>
    >>> K.extent("b")
    ('g2',)
    """

    __slots__ = ("_incidence", "_objects", "_attributes", "__dict__")

    def __init__(
        self,
        incidence: ArrayLike,
        *,
        objects: ArrayLike | None = None,
        attributes: ArrayLike | None = None,
    ) -> None:
        func = "FormalContext"
        a = np.asarray(incidence)
        if a.ndim != 2 or not (a.dtype == np.bool_ or np.issubdtype(a.dtype, np.number)):
            raise param_error(
                "incidence",
                func,
                "a 2-D boolean (or 0/1) matrix",
                f"shape {a.shape}, dtype {a.dtype}",
            )
        if a.dtype != np.bool_:
            if not np.isin(a, (0, 1)).all():
                raise param_error(
                    "incidence", func, "a 2-D boolean (or 0/1) matrix", "values other than 0 and 1"
                )
            a = a.astype(bool)
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise param_error(
                "incidence",
                func,
                "a matrix with at least one object and one attribute (the context is empty)",
                f"shape {a.shape}",
            )
        inc = np.array(a, dtype=bool, order="C", copy=True)
        inc.setflags(write=False)
        self._incidence = inc
        self._objects = _labels(objects, inc.shape[0], "objects", func)
        self._attributes = _labels(attributes, inc.shape[1], "attributes", func)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_weights(
        cls,
        weights: ArrayLike,
        *,
        threshold: float | None = None,
        quantile: float | None = None,
        objects: ArrayLike | None = None,
        attributes: ArrayLike | None = None,
    ) -> FormalContext:
        """Context of a post x pre strength matrix thresholded with :func:`binarize`.

        Objects are the columns (presynaptic), attributes the rows (postsynaptic).

        Examples
        --------
        >>> import numpy as np, netstruct as ns
        >>> W = np.array([[0.9, 0.8, 0.1], [0.2, 0.7, 0.6]])
        >>> ns.lattice.FormalContext.from_weights(W, threshold=0.5).incidence.astype(int).tolist()
        [[1, 0], [1, 1], [0, 1]]
        """
        from .thresholds import binarize

        B = binarize(weights, threshold=threshold, quantile=quantile)
        return cls(B.T, objects=objects, attributes=attributes)

    @classmethod
    def from_block(
        cls,
        G: Any,
        block: int | str,
        *,
        threshold: float | None = None,
        quantile: float | None = None,
        aggregate: str = "max",
    ) -> FormalContext:
        """Context of one block of a :class:`~netstruct.SignedGraph` at unit level.

        Gate rows are aggregated to their unit first (:func:`unit_adjacency`), then the
        strengths are thresholded (strict ``>``). Labels are the unit node ids.

        Examples
        --------
        >>> import numpy as np, netstruct as ns
        >>> b = ns.make_block(name="w", weight=np.array([[0.9, -0.1]]), sources=[0, 1], targets=[2])
        >>> G = ns.SignedGraph({"name": ["x0", "x1", "y"], "kind": ["input", "input", "output"]}, [b])
        >>> K = ns.lattice.FormalContext.from_block(G, "w", threshold=0.5)
        >>> K.objects, K.attributes, K.incidence.tolist()
        ((0, 1), (2,), [[True], [False]])
        """
        from .adjacency import unit_adjacency

        A, pre, post = unit_adjacency(G, block, aggregate=aggregate)
        return cls.from_weights(
            A, threshold=threshold, quantile=quantile, objects=pre, attributes=post
        )

    @classmethod
    def from_poset(cls, P: Poset) -> FormalContext:
        """The context ``(P, P, <=)`` whose concept lattice is the Dedekind–MacNeille completion.

        The column of ``y`` is its down-set and the row of ``x`` its up-set.

        Examples
        --------
        >>> import networkx as nx, netstruct as ns
        >>> P = ns.lattice.poset_from_dag(nx.DiGraph([("a", "b")]))
        >>> ns.lattice.FormalContext.from_poset(P).incidence.tolist()
        [[True, True], [False, True]]
        """
        return cls(P.leq_matrix(), objects=P.labels, attributes=P.labels)

    # ------------------------------------------------------------------ facts
    @property
    def incidence(self) -> NDArray[np.bool_]:
        """Read-only bool matrix of shape (n_objects, n_attributes)."""
        return self._incidence

    @property
    def objects(self) -> tuple[Any, ...]:
        """Object labels."""
        return self._objects

    @property
    def attributes(self) -> tuple[Any, ...]:
        """Attribute labels."""
        return self._attributes

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_objects, n_attributes)``."""
        return self._incidence.shape

    @property
    def n_objects(self) -> int:
        """Number of objects |G|."""
        return self._incidence.shape[0]

    @property
    def n_attributes(self) -> int:
        """Number of attributes |M|."""
        return self._incidence.shape[1]

    @property
    def density(self) -> float:
        """Fraction of crosses."""
        return float(self._incidence.mean())

    @cached_property
    def column_bits(self) -> NDArray[np.uint64]:
        """Attribute extents m' as bitsets over objects, uint64 (n_attributes, ceil(|G|/64))."""
        bits = pack_rows(self._incidence.T)
        bits.setflags(write=False)
        return bits

    @cached_property
    def row_bits(self) -> NDArray[np.uint64]:
        """Object intents g' as bitsets over attributes, uint64 (n_objects, ceil(|M|/64))."""
        bits = pack_rows(self._incidence)
        bits.setflags(write=False)
        return bits

    @cached_property
    def all_objects_bits(self) -> NDArray[np.uint64]:
        """The bitset of all objects, uint64 (ceil(|G|/64),)."""
        return full_bits(self.n_objects)

    def _attr_index(self, m: Any) -> int:
        try:
            return self._attributes.index(m)
        except ValueError:
            raise param_error(
                "attribute",
                "FormalContext",
                f"one of the attribute labels {list(self._attributes)[:10]}",
                m,
            ) from None

    def extent(self, attribute: Any) -> tuple[Any, ...]:
        """The objects having ``attribute`` (its receptive field m')."""
        col = self._incidence[:, self._attr_index(attribute)]
        return tuple(o for o, x in zip(self._objects, col) if x)

    # ------------------------------------------------------------------ derived contexts
    def transpose(self) -> FormalContext:
        """The dual context (objects and attributes swapped); its lattice is the order dual.

        Examples
        --------
        >>> import netstruct as ns
        >>> ns.lattice.FormalContext([[1, 0]]).transpose().shape
        (2, 1)
        """
        return FormalContext(self._incidence.T, objects=self._attributes, attributes=self._objects)

    def clarify(self) -> tuple[FormalContext, NDArray[np.int64], NDArray[np.int64]]:
        """Merge duplicate rows and duplicate columns (the lattice does not change).

        Returns
        -------
        clarified : FormalContext
            One object per distinct row and one attribute per distinct column, labelled by
            the first original label of each group.
        object_groups, attribute_groups : ndarray of int64
            For each original object (attribute), the index of its representative in
            ``clarified``; group sizes are the multiplicities.

        Examples
        --------
        >>> import netstruct as ns
        >>> K = ns.lattice.FormalContext([[1, 1, 0], [1, 1, 1]])
        >>> Kc, og, ag = K.clarify()
        >>> Kc.shape, ag.tolist()
        ((2, 2), [0, 0, 1])
        """
        inc = self._incidence
        _, first_c, inv_c = np.unique(inc.T, axis=0, return_index=True, return_inverse=True)
        order_c = np.argsort(first_c, kind="stable")
        rank_c = np.empty_like(order_c)
        rank_c[order_c] = np.arange(order_c.size)
        cols = np.sort(first_c)
        sub = inc[:, cols]
        _, first_r, inv_r = np.unique(sub, axis=0, return_index=True, return_inverse=True)
        order_r = np.argsort(first_r, kind="stable")
        rank_r = np.empty_like(order_r)
        rank_r[order_r] = np.arange(order_r.size)
        rows = np.sort(first_r)
        clarified = FormalContext(
            sub[rows],
            objects=[self._objects[i] for i in rows],
            attributes=[self._attributes[j] for j in cols],
        )
        return (
            clarified,
            rank_r[inv_r.ravel()].astype(np.int64),
            rank_c[inv_c.ravel()].astype(np.int64),
        )

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FormalContext):
            return NotImplemented
        return (
            self._objects == other._objects
            and self._attributes == other._attributes
            and np.array_equal(self._incidence, other._incidence)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"<FormalContext: {self.n_objects} objects x {self.n_attributes} attributes, "
            f"{int(self._incidence.sum())} crosses>"
        )

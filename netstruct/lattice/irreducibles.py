"""Meet- and join-irreducible elements computed from the context, without the lattice.

Theorem (Ganter & Wille): every meet-irreducible concept of B(G, M, I) is an attribute
concept, and the attribute concept of ``m`` is meet-irreducible iff

    m' != E(m) = ∩ { n' : n' ⊋ m' }      (∩ of nothing = G),

in which case its unique upper cover has extent ``E(m)``. Join-irreducibility is the dual
test on object intents. For a poset P the context (P, P, <=) gives the irreducibles of the
Dedekind–MacNeille completion (the column of ``y`` is its down-set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..backends import dispatch
from ..exceptions import param_error
from ._bits import full_bits, unpack_rows
from .context import FormalContext

__all__ = ["Irreducibles", "meet_irreducibles", "join_irreducibles", "persistence"]


@dataclass(frozen=True)
class Irreducibles:
    """Meet- (or join-) irreducible attributes (objects) of a formal context.

    Attributes
    ----------
    kind : {"meet", "join"}
        ``"meet"``: one entry per attribute, covers are upper covers given by their extent.
        ``"join"``: one entry per object, covers are lower covers given by their intent.
    labels : tuple
        Attribute (meet) or object (join) labels.
    mask : ndarray of bool, shape (n,)
        True where the element's concept is irreducible.
    cover : ndarray of bool, shape (n, n_other)
        For irreducible elements, the extent (meet) or intent (join) of the unique cover;
        for reducible ones the element's own extent (intent).
    groups : ndarray of int64, shape (n,)
        Elements with identical columns (rows) generate the same concept and share a group
        id (the index of the first element of the group).

    Examples
    --------
    >>> import netstruct as ns
    >>> K = ns.lattice.FormalContext([[1, 1], [0, 1]], attributes=["a", "b"])
    >>> ns.lattice.meet_irreducibles(K).elements
    ('a',)
    """

    kind: str
    labels: tuple[Any, ...]
    mask: NDArray[np.bool_]
    cover: NDArray[np.bool_]
    groups: NDArray[np.int64]

    @property
    def elements(self) -> tuple[Any, ...]:
        """Labels of the irreducible elements."""
        return tuple(lab for lab, x in zip(self.labels, self.mask) if x)

    @property
    def n_irreducible(self) -> int:
        """Number of irreducible elements (duplicates counted separately)."""
        return int(self.mask.sum())

    def cover_of(self, label: Any) -> NDArray[np.bool_]:
        """The unique cover (extent for meet, intent for join) of an irreducible element."""
        try:
            i = self.labels.index(label)
        except ValueError:
            raise param_error(
                "label", "Irreducibles.cover_of", "one of the labels", label
            ) from None
        if not self.mask[i]:
            raise param_error(
                "label", "Irreducibles.cover_of", f"a {self.kind}-irreducible element", label
            )
        return self.cover[i]


def _check_context(context: Any, func: str) -> FormalContext:
    if isinstance(context, FormalContext):
        return context
    from .poset import Poset

    if isinstance(context, Poset):
        return context.context()
    raise param_error(
        "context", func, "a netstruct.lattice.FormalContext or Poset", type(context).__name__
    )


def _duplicate_groups(bits: NDArray[np.uint64]) -> NDArray[np.int64]:
    _, first, inv = np.unique(bits, axis=0, return_index=True, return_inverse=True)
    return first[inv.ravel()].astype(np.int64)


def _irreducible_test(cols: NDArray[np.uint64], valid: NDArray[np.uint64], backend: str | None):
    impl = dispatch("lattice.irreducible_test", backend)
    irr, cover = impl(np.ascontiguousarray(cols), np.ascontiguousarray(valid))
    return np.asarray(irr, dtype=bool), np.asarray(cover, dtype=np.uint64)


def meet_irreducibles(context: FormalContext, *, backend: str | None = None) -> Irreducibles:
    """Meet-irreducible attribute concepts of a context, with their unique upper covers.

    Parameters
    ----------
    context : FormalContext or Poset
        A poset stands for its context (P, P, <=): the result is then the set of
        meet-irreducible elements of its Dedekind–MacNeille completion.
    backend : {"numba", "cuda", "auto"}, optional
        Kernel backend (default from ``netstruct.config``).

    Returns
    -------
    Irreducibles
        ``kind="meet"``, one entry per attribute; ``cover[m]`` is the extent E(m) of the
        unique upper cover when ``mask[m]``.

    Raises
    ------
    InvalidParameterError
        When ``context`` is neither a FormalContext nor a Poset.

    See Also
    --------
    join_irreducibles, concept_lattice

    Notes
    -----
    O(|M|^2 |G| / 64) word operations; columns are sorted by size so only larger columns
    are compared, and the scan stops as soon as E(m) = m'. A full column is the top concept
    and is never meet-irreducible; duplicate columns share their concept (see ``groups``).
    Backends: numba, cuda (bit-identical results).

    References
    ----------
    B. Ganter and R. Wille, *Formal Concept Analysis*, Springer 1999, Prop. 12 and 13.

    Examples
    --------
    The spec's C2 (pentagon N5): every attribute is meet-irreducible.

    >>> import netstruct as ns
    >>> K = ns.lattice.FormalContext([[1, 1, 0], [0, 1, 0], [0, 0, 1]],
    ...                              objects=["g1", "g2", "g3"], attributes=["m1", "m2", "m3"])
    >>> mi = ns.lattice.meet_irreducibles(K)
    >>> mi.elements
    ('m1', 'm2', 'm3')
    >>> mi.cover_of("m1").tolist()
    [True, True, False]
    """
    K = _check_context(context, "meet_irreducibles")
    irr, cover = _irreducible_test(K.column_bits, K.all_objects_bits, backend)
    return Irreducibles(
        kind="meet",
        labels=K.attributes,
        mask=irr,
        cover=unpack_rows(cover, K.n_objects),
        groups=_duplicate_groups(K.column_bits),
    )


def join_irreducibles(context: FormalContext, *, backend: str | None = None) -> Irreducibles:
    """Join-irreducible object concepts of a context, with their unique lower covers.

    The dual of :func:`meet_irreducibles`: object ``g`` is join-irreducible iff
    ``g' != ∩{h' : h' ⊋ g'}`` (∩ of nothing = M); the unique lower cover has that intent.

    Parameters
    ----------
    context : FormalContext or Poset
    backend : {"numba", "cuda", "auto"}, optional

    Returns
    -------
    Irreducibles
        ``kind="join"``, one entry per object; ``cover[g]`` is the intent of the lower cover.

    Examples
    --------
    The spec's C1 (diamond): x1 and x3 are join-irreducible, x2 sits in the bottom concept.

    >>> import netstruct as ns
    >>> K = ns.lattice.FormalContext([[1, 0, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1]],
    ...                              objects=["x1", "x2", "x3"], attributes=["y1", "y2", "y3", "y4"])
    >>> ns.lattice.join_irreducibles(K).elements
    ('x1', 'x3')
    """
    K = _check_context(context, "join_irreducibles")
    cols = K.row_bits
    irr, cover = _irreducible_test(cols, full_bits(K.n_attributes), backend)
    return Irreducibles(
        kind="join",
        labels=K.objects,
        mask=irr,
        cover=unpack_rows(cover, K.n_attributes),
        groups=_duplicate_groups(cols),
    )


def persistence(
    contexts: list[FormalContext], *, kind: str = "meet", backend: str | None = None
) -> NDArray[np.float64]:
    """Fraction of contexts (level cuts) in which each element is irreducible.

    Parameters
    ----------
    contexts : list of FormalContext
        Level cuts of one block (same labels), e.g. from :func:`level_cuts`.
    kind : {"meet", "join"}, default="meet"
        Meet-irreducible attributes or join-irreducible objects.
    backend : str, optional

    Returns
    -------
    ndarray of float64
        One value in [0, 1] per attribute (meet) or object (join).

    Examples
    --------
    The spec's C3 persistence over Θ = {0.15, 0.25, 0.5}:

    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[0.9, 0.8, 0.1], [0.2, 0.7, 0.6], [0.05, 0.75, 0.3]])
    >>> ns.lattice.persistence(ns.lattice.level_cuts(W, [0.15, 0.25, 0.5])).round(3).tolist()
    [1.0, 0.667, 0.667]
    """
    func = "persistence"
    if kind not in ("meet", "join"):
        raise param_error("kind", func, "one of ['meet', 'join']", kind)
    if not contexts or not all(isinstance(K, FormalContext) for K in contexts):
        raise param_error("contexts", func, "a non-empty list of FormalContext", contexts)
    shape = contexts[0].shape
    if any(K.shape != shape for K in contexts):
        raise param_error("contexts", func, "contexts of one shape", [K.shape for K in contexts])
    test = meet_irreducibles if kind == "meet" else join_irreducibles
    hits = sum(test(K, backend=backend).mask.astype(np.float64) for K in contexts)
    return np.asarray(hits, dtype=np.float64) / len(contexts)

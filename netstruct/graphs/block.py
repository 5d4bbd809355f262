"""One weight block of a signed graph: a bipartite layer ``sources -> targets``."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace_fields
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._dtypes import INDEX_DTYPE, MASK_DTYPE, WEIGHT_DTYPE
from ..exceptions import GraphError, InvalidParameterError
from ..utils.validation import check_finite

__all__ = ["Block", "make_block", "BLOCK_KINDS", "ELEMENTWISE_OPERATORS", "elementwise_operator"]

#: where a block keeps its computed :meth:`Block.parameter` (blocks are immutable)
_PARAMETER = "_parameter"

#: Kinds of block (see :class:`Block`).
BLOCK_KINDS = ("weight", "skip", "identity", "norm", "operator")


#: ``layout["operator"]`` of the operator blocks that act unit by unit: ``"product"`` (``x * y``
#: of two values with units: a gated MLP's SwiGLU, a squeeze-excitation gate) and ``"scale"``
#: (``x * t`` by a tensor without units: rotary position embeddings' ``cos``/``sin``)
ELEMENTWISE_OPERATORS = ("product", "scale")


def elementwise_operator(block: Any) -> str | None:
    """``"product"``/``"scale"`` for an element-wise operator block, else None.

    Attention's operator (token mixing) has no ``"operator"`` entry in its layout.

    Examples
    --------
    >>> from netstruct.graphs._generated import identity_block
    >>> b = identity_block(name="p", kind="operator", sources=[0, 1], targets=[2], copies=2,
    ...                    layout={"operator": "product"})
    >>> elementwise_operator(b)
    'product'
    """
    if block.kind != "operator":
        return None
    op = block.layout.get("operator")
    return op if op in ELEMENTWISE_OPERATORS else None


def _frozen(array: np.ndarray, dtype: type, *, copy: bool) -> np.ndarray:
    out: np.ndarray = np.array(array, dtype=dtype, copy=copy, order="C")
    out.setflags(write=False)
    return out


def _owned(array: np.ndarray, dtype: type) -> np.ndarray:
    """``array`` frozen in place when it already is a C-contiguous ``dtype`` array, else a frozen
    copy: for fresh arrays a block takes over (a slice made for it), never for shared ones."""
    out: np.ndarray = np.ascontiguousarray(array, dtype=dtype)
    out.setflags(write=False)
    return out


def _frozen_weight(w: np.ndarray) -> np.ndarray:
    """One read-only float32 copy of a 2-D weight, in its own memory order.

    A transposed table (an embedding's ``table.T``) is copied as the table and handed back as
    its transposed view: a plain copy instead of a strided transpose, and ``weight.T`` (the
    parameter in torch's layout) is then contiguous without another copy.
    """
    if w.flags.f_contiguous and not w.flags.c_contiguous:
        return _frozen(w.T, WEIGHT_DTYPE, copy=True).T
    return _frozen(w, WEIGHT_DTYPE, copy=True)


#: float32 entries per chunk of :func:`_checked_weight_copy` (512 KiB: in cache when checked)
_CHECK_CHUNK = 1 << 17


def _checked_weight_copy(w: np.ndarray, what: str) -> np.ndarray:
    """:func:`_frozen_weight` of a float32 ``w``, checked finite (:func:`check_finite`) as copied.

    The copy goes chunk by chunk, each chunk checked by one reduction (a finite sum of
    squares proves it finite) while it is still in cache, instead of a second pass over
    memory. A chunk whose reduction is not finite sends the whole copy to
    :func:`check_finite`, which raises for NaN/inf and tells an overflow of large finite
    values apart. A weight in neither memory order is copied and checked as a whole.
    """
    flip = w.flags.f_contiguous and not w.flags.c_contiguous  # an embedding's table.T
    src = w.T if flip else w
    if not src.flags.c_contiguous:
        out = _frozen_weight(w)
        check_finite(out, what)
        return out
    dst = np.empty(src.shape, dtype=WEIGHT_DTYPE)
    flat_src, flat_dst = src.reshape(-1), dst.reshape(-1)
    finite = True
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(0, flat_src.size, _CHECK_CHUNK):
            seg = flat_dst[i : i + _CHECK_CHUNK]
            np.copyto(seg, flat_src[i : i + _CHECK_CHUNK])
            finite = finite and bool(np.isfinite(np.dot(seg, seg)))
    dst.setflags(write=False)  # before the transposed view, which inherits the flag
    out = dst.T if flip else dst
    if not finite:
        check_finite(out, what)  # in w's own indexing
    return out


@dataclass(frozen=True, eq=False)
class Block:
    """A weight block (a bipartite layer) of a :class:`~netstruct.SignedGraph`.

    The block holds the parameter exactly as torch stores it: ``weight[r, c]`` is the weight
    of the edge ``sources[c] -> targets[r]``. Build blocks with :func:`make_block`, which
    validates and freezes the arrays.

    Attributes
    ----------
    name : str
        Unique key, the full parameter name (``"0.weight"``, ``"lstm.weight_hh_l0"``).
    module : str
        Path of the torch module that owns the parameter (``""`` for the root).
    param : str
        Name of the weight parameter inside that module.
    weight : ndarray of shape (n_out, n_in), float32, read-only
        Weights; entries outside ``mask`` are exactly zero. C-contiguous, except for a
        transposed table (an embedding), whose weight is the transposed view of its one
        contiguous copy.
    mask : ndarray of shape (n_out, n_in), bool, read-only
        ``True`` where an edge exists. Pruned edges are ``False``.
    sources, targets : ndarray of int64
        Global node ids of the columns and rows.
    bias : ndarray of shape (n_out,), float32, or None
        The bias added to the rows (``None`` when the parameter has no bias).
    bias_param : str or None
        Name of the bias parameter inside the module.
    delay : int
        0 for a feed-forward block, 1 for a recurrent block (state at t-1 feeds t).
    kind : {"weight", "skip", "identity", "norm", "operator"}
        ``"weight"``: a weight parameter. ``"skip"``: the identity edges of a residual sum
        (weight 1, no parameter). ``"identity"``: edges that copy values to fresh nodes (an
        activation applied to a value another layer already read). ``"norm"``: the per-unit
        scale of a normalisation layer (a diagonal block; the parameter is the diagonal).
        ``"operator"``: the dependencies of a data-dependent operator (attention's token
        mixing: weight 1 from each query, key and value unit to its context unit; an
        element-wise product ``x * y`` or scale ``x * t``, ``layout["operator"]``, see
        :func:`elementwise_operator`).
    kernel : ndarray or None, read-only
        The parameter as torch stores it when the block's 2-D ``weight`` is a view of it: a
        convolution's full kernel ``(out, in/groups, *k)``, a Linear read after a flatten
        (columns grouped by source channel), an embedding table (transposed). ``None`` when
        ``weight`` is the parameter itself. See :meth:`parameter`.
    layout : dict
        How ``weight`` relates to ``kernel`` (``{"type": "conv", "groups": g}``, ``{"type":
        "expand", "columns": [...]}``, ``{"type": "transpose"}``, ``{"type": "diag"}``, or
        ``{}``), with the kernel ``reduction`` used for the edge weights.
    state : dict of str to ndarray
        Non-parameter tensors of the layer the block belongs to (batch-norm running
        statistics), by their ``state_dict`` names inside the module.
    """

    name: str
    module: str
    param: str
    weight: np.ndarray
    mask: np.ndarray
    sources: np.ndarray
    targets: np.ndarray
    bias: np.ndarray | None = None
    bias_param: str | None = None
    delay: int = 0
    kind: str = "weight"
    kernel: np.ndarray | None = field(default=None, repr=False)
    layout: Mapping[str, Any] = field(default_factory=dict, repr=False)
    state: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    _dense: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        # cheap type checks only: make_block validates values; this stops garbage early
        for fname in ("weight", "mask", "sources", "targets"):
            value = getattr(self, fname)
            if not isinstance(value, np.ndarray):
                raise InvalidParameterError(
                    f"The {fname!r} field of Block must be a numpy array. Got "
                    f"{type(value).__name__} instead; build blocks with netstruct.make_block."
                )
        if not isinstance(self.name, str):
            raise InvalidParameterError(
                f"The 'name' field of Block must be a str. Got {type(self.name).__name__} instead."
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_out, n_in)``."""
        return self.weight.shape

    @property
    def is_dense(self) -> bool:
        """True when every entry is an edge (nothing pruned)."""
        return self._dense

    @property
    def n_edges(self) -> int:
        """Number of edges (``mask.sum()``)."""
        return int(self.weight.size if self._dense else np.count_nonzero(self.mask))

    def replace(self, **changes: Any) -> Block:
        """Return a validated copy with some fields replaced (arrays are shared when unchanged)."""
        fields_: dict[str, Any] = {
            "name": self.name,
            "module": self.module,
            "param": self.param,
            "weight": self.weight,
            "mask": self.mask,
            "sources": self.sources,
            "targets": self.targets,
            "bias": self.bias,
            "bias_param": self.bias_param,
            "delay": self.delay,
            "kind": self.kind,
            "kernel": self.kernel,
            "layout": self.layout,
            "state": self.state,
        }
        unknown = set(changes) - set(fields_)
        if unknown:
            raise GraphError(f"Block.replace got unknown field(s) {sorted(unknown)}.")
        fields_.update(changes)
        if "weight" in changes and "kernel" not in changes and self.kernel is not None:
            if np.shape(changes["weight"]) != self.shape:
                raise GraphError(f"Block {self.name!r}: reshape a kernel block with Block.take().")
        return make_block(**fields_)

    def _with_ids(self, sources: np.ndarray, targets: np.ndarray) -> Block:
        """The block wired to other node ids, values untouched (for :func:`netstruct.shrink`,
        whose renumbered ids are valid by construction): no re-validation of the values, and
        the computed :meth:`parameter` carries over."""
        src = np.asarray(sources, dtype=INDEX_DTYPE)
        tgt = np.asarray(targets, dtype=INDEX_DTYPE)
        if src.shape != self.sources.shape or tgt.shape != self.targets.shape:
            raise GraphError(f"Block {self.name!r}: new ids must keep the block's shape.")
        for a in (src, tgt):
            a.setflags(write=False)
        out = _replace_fields(self, sources=src, targets=tgt)
        done = self.computed_parameter()
        if done is not None:
            out.__dict__[_PARAMETER] = done
        return out

    def _sliced(self, cut: Mapping[str, Any], new_bias: np.ndarray | None = None) -> Block:
        """The block from :func:`~netstruct.graphs._kernels.take`'s fields ``cut`` (with new
        ``sources``/``targets`` ids), for :func:`netstruct.shrink`, without re-validating what
        was validated when this block was made.

        Rows and columns of a finite weight, kernel, bias and state are finite, a slice of a
        boolean mask is boolean, and slicing keeps the zeros outside the mask; only the dense
        flag is recomputed. ``new_bias`` (a folded bias, whose values are new) is checked for
        finiteness and replaces the sliced bias. :meth:`replace` with the same fields (which
        validates everything again) is the reference this equals.
        """
        weight = cut["weight"]
        src = _owned(cut["sources"], INDEX_DTYPE)
        tgt = _owned(cut["targets"], INDEX_DTYPE)
        if weight.shape != (tgt.size, src.size):
            raise GraphError(f"Block {self.name!r}: sliced weight and ids differ in shape.")
        mask = cut["mask"]
        dense = mask is None or bool(mask.all())
        if dense:
            mask = dense_mask(weight.shape)
        bias = cut.get("bias")
        if new_bias is not None:
            bias = _owned(new_bias, WEIGHT_DTYPE)
            check_finite(bias, f"Block {self.name!r} bias")
        elif bias is not None:
            bias = _owned(bias, WEIGHT_DTYPE)
        kernel = cut.get("kernel", self.kernel)
        if kernel is not None and kernel.flags.writeable:
            kernel = _owned(kernel, WEIGHT_DTYPE)
        state = _frozen_state(cut.get("state", self.state))
        out = _replace_fields(
            self,
            weight=weight,
            mask=mask,
            sources=src,
            targets=tgt,
            bias=bias,
            kernel=kernel,
            layout=MappingProxyType(dict(cut.get("layout", self.layout))),
            state=MappingProxyType(state),
            _dense=dense,
        )
        done = cut.get("parameter")
        if done is not None:  # this block's parameter, sliced (see _kernels.take)
            out.__dict__[_PARAMETER] = (
                kernel if done is cut.get("kernel") else _owned(done, done.dtype)
            )
        return out

    def take(self, rows: np.ndarray, cols: np.ndarray) -> Block:
        """The block restricted to boolean ``rows`` and ``cols`` (kernel and state alike)."""
        from ._kernels import take

        cut = take(self, np.asarray(rows, dtype=bool), np.asarray(cols, dtype=bool))
        cut.pop("parameter", None)  # replace validates and computes everything again
        return self.replace(**cut)

    @property
    def has_parameter(self) -> bool:
        """True when the block stands for a torch parameter (``param`` is set)."""
        return bool(self.param)

    def parameter(self) -> np.ndarray:
        """The block's parameter in torch's layout, with pruned edges and weight edits applied.

        For plain blocks this is ``weight``. For blocks with a ``kernel`` every edge's taps are
        zeroed when the edge is pruned, and scaled by ``new / old`` when its weight was
        edited (``old`` is the kernel reduction, so the reduced weight of the result equals
        the block's weight exactly for homogeneous reductions; an edited edge whose old
        reduction is 0 gets a uniform kernel with that reduction). Diagonal (norm) blocks give
        their diagonal. The array is read-only, like the block's fields (computed once per
        block; copy it to edit it).
        """
        cached = self.computed_parameter()
        if cached is None:  # blocks are immutable: computed once (read-only, like the fields)
            from ._kernels import parameter_of

            p = parameter_of(self)
            k = self.kernel
            if k is not None and p.shape == k.shape and p.dtype == k.dtype and np.array_equal(p, k):
                p = k  # an unedited, unpruned kernel: no second copy kept
            elif p.flags.writeable:
                p.setflags(write=False)
            cached = self.__dict__[_PARAMETER] = p
        return cached

    def computed_parameter(self) -> np.ndarray | None:
        """:meth:`parameter` when it was computed (or seeded) already, else None (no work)."""
        cached: np.ndarray | None = self.__dict__.get(_PARAMETER)
        return cached


def _frozen_state(state) -> dict[str, np.ndarray]:
    """A block's state arrays, read-only (writeable ones copied first), keyed by str."""
    out = {}
    for k, v in state.items():
        a = np.asarray(v)
        if a.flags.writeable:
            a = a.copy()
            a.setflags(write=False)
        out[str(k)] = a
    return out


def seed_kernel_parameter(block: Block) -> None:
    """Record a conv block's kernel as its :meth:`Block.parameter`, for a block just made from it.

    :func:`~netstruct.graphs._kernels.conv_block_arrays` gave the block its edge weights as the
    kernel's reductions and its mask as the groups' structure, so :meth:`Block.parameter` would
    rebuild the kernel exactly (``tests/unit/test_kernel_blocks.py`` checks it for every
    reduction and grouping); the first re-import of an export then skips that work. Blocks
    of other layouts or dtypes are left to compute theirs.
    """
    k = block.kernel
    lay = block.layout
    if (
        k is not None
        and k.dtype == WEIGHT_DTYPE
        and lay.get("type") == "conv"
        and not lay.get("transposed")
        and block.computed_parameter() is None
    ):
        block.__dict__[_PARAMETER] = k


_ONE = np.ones(1, dtype=MASK_DTYPE)
_ONE.flags.writeable = False


@functools.lru_cache(maxsize=1024)
def dense_mask(shape: tuple[int, ...]) -> np.ndarray:
    """The all-True mask of a dense block of ``shape``: a read-only broadcast of one ``True``
    (no memory), one per shape (blocks share it: nothing can write to it).

    Examples
    --------
    >>> m = dense_mask((2, 3))
    >>> m.shape, bool(m.all()), m.flags.writeable, dense_mask((2, 3)) is m
    ((2, 3), True, False, True)
    """
    return np.broadcast_to(_ONE, shape)


def make_block(
    *,
    name: str,
    weight: ArrayLike,
    sources: ArrayLike,
    targets: ArrayLike,
    mask: ArrayLike | None = None,
    bias: np.ndarray | None = None,
    module: str = "",
    param: str = "weight",
    bias_param: str | None = None,
    delay: int = 0,
    kind: str = "weight",
    kernel: np.ndarray | None = None,
    layout: Mapping[str, Any] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
) -> Block:
    """Validate arrays and build a frozen :class:`Block`.

    Weights outside ``mask`` are set to zero. Arrays that are already frozen with the right
    dtype are shared, not copied. ``weight`` may be a scipy.sparse matrix: its stored entries
    become the edges (the mask) unless ``mask`` is given. Blocks are stored densely (a float32
    weight and a boolean mask), which suits network layers of up to ~10^8 entries.

    Raises
    ------
    GraphError
        On shape mismatches, non-finite weights or biases, or non-binary masks.

    Examples
    --------
    >>> import numpy as np
    >>> b = make_block(name="w", weight=np.array([[1.0, -2.0]]), sources=[0, 1], targets=[2])
    >>> b.shape, b.n_edges
    ((1, 2), 2)
    """
    if hasattr(weight, "tocoo") and hasattr(weight, "nnz"):  # scipy.sparse
        coo = weight.tocoo()
        w = np.zeros(coo.shape, dtype=np.float64)
        w[coo.row, coo.col] = coo.data
        if mask is None:
            mask = np.zeros(coo.shape, dtype=bool)
            mask[coo.row, coo.col] = True
    else:
        w = np.asarray(weight)
    if w.ndim != 2:
        raise GraphError(
            f"Block {name!r}: weight must be a 2-D (n_out, n_in) array, got shape {w.shape}."
        )
    if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise GraphError(f"Block {name!r}: weight must hold real numbers, got dtype {w.dtype}.")
    # a float32 weight copied as it is (no mask) is checked in its copy, read while in cache;
    # any other weight (converted, or zeroed outside a mask) is checked as given
    check_copy = mask is None and w.dtype == WEIGHT_DTYPE and w.flags.writeable
    src = np.asarray(sources, dtype=INDEX_DTYPE)
    tgt = np.asarray(targets, dtype=INDEX_DTYPE)
    if src.shape != (w.shape[1],) or tgt.shape != (w.shape[0],):
        raise GraphError(
            f"Block {name!r}: weight has shape {w.shape} but there are {src.size} source and "
            f"{tgt.size} target nodes; a weight must be (n_targets, n_sources)."
        )
    if mask is None:
        m = None
    else:
        m = np.asarray(mask)
        if m.shape != w.shape:
            raise GraphError(
                f"Block {name!r}: mask shape {m.shape} differs from weight shape {w.shape}."
            )
        if m.dtype != np.bool_:
            if not np.isin(m, (0, 1)).all():
                raise GraphError(f"Block {name!r}: mask must be boolean (or 0/1).")
            m = m.astype(bool)
    reuse = (
        not w.flags.writeable
        and w.dtype == WEIGHT_DTYPE
        and (w.flags.c_contiguous or w.flags.f_contiguous)
    )
    if not check_copy:
        check_finite(w, f"Block {name!r} weight")
    dense = m is None or bool(m.all())
    if dense:
        if check_copy:  # a writeable float32 weight: never reused, copied and checked at once
            wf = _checked_weight_copy(w, f"Block {name!r} weight")
        else:
            wf = w if reuse else _frozen_weight(w)
        mf = dense_mask(w.shape)  # read-only, no memory
    else:
        assert m is not None  # a mask that is not all True
        mf = (
            m
            if (not m.flags.writeable and m.flags.c_contiguous)
            else _frozen(m, MASK_DTYPE, copy=True)
        )
        if reuse and not ((w != 0) > mf).any():  # no weight outside the mask
            wf = w
        else:
            wtmp = np.array(w, dtype=WEIGHT_DTYPE, copy=True, order="C")
            wtmp[~mf] = 0.0
            wtmp.setflags(write=False)
            wf = wtmp
    return _finish_block(
        name=name,
        weight=wf,
        mask=mf,
        dense=dense,
        sources=src,
        targets=tgt,
        bias=bias,
        module=module,
        param=param,
        bias_param=bias_param,
        delay=delay,
        kind=kind,
        kernel=kernel,
        layout=layout,
        state=state,
    )


def _finish_block(
    *,
    name: str,
    weight: np.ndarray,
    mask: np.ndarray,
    dense: bool,
    sources: np.ndarray,
    targets: np.ndarray,
    bias: np.ndarray | None,
    module: str,
    param: str,
    bias_param: str | None,
    delay: int,
    kind: str,
    kernel: np.ndarray | None,
    layout: Mapping[str, Any] | None,
    state: Mapping[str, np.ndarray] | None,
) -> Block:
    """The :class:`Block` of a frozen, validated ``weight`` and ``mask``.

    The part of :func:`make_block` after the weight and mask: ``sources``/``targets`` (int64,
    shapes already checked against the weight) are frozen, and the bias, delay, kind, kernel
    and state are validated and frozen here.
    """
    n_out = weight.shape[0]
    b = None
    if bias is not None:
        b = np.asarray(bias)
        if b.shape != (n_out,):
            raise GraphError(f"Block {name!r}: bias has shape {b.shape}, expected ({n_out},).")
        check_finite(b, f"Block {name!r} bias")
        if b.flags.writeable or b.dtype != WEIGHT_DTYPE:
            b = _frozen(b, WEIGHT_DTYPE, copy=True)
    src, tgt = sources, targets
    if src.flags.writeable:
        src = _frozen(src, INDEX_DTYPE, copy=True)
    if tgt.flags.writeable:
        tgt = _frozen(tgt, INDEX_DTYPE, copy=True)
    if delay not in (0, 1):
        raise GraphError(
            f"Block {name!r}: delay must be 0 (feed-forward) or 1 (recurrent), got {delay!r}."
        )
    if kind not in BLOCK_KINDS:
        raise GraphError(f"Block {name!r}: kind must be one of {BLOCK_KINDS}, got {kind!r}.")
    kf = None
    if kernel is not None:
        kf = np.asarray(kernel)
        check_finite(kf, f"Block {name!r} kernel")
        if kf.flags.writeable or kf.dtype != WEIGHT_DTYPE:
            kf = _frozen(kf, WEIGHT_DTYPE, copy=True)
    st = _frozen_state(state or {})
    return Block(
        name=str(name),
        module=str(module),
        param=str(param),
        weight=weight,
        mask=mask,
        sources=src,
        targets=tgt,
        bias=b,
        bias_param=bias_param,
        delay=int(delay),
        kind=str(kind),
        kernel=kf,
        layout=MappingProxyType(dict(layout or {})),
        state=MappingProxyType(st),
        _dense=dense,
    )

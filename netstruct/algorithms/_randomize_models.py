"""The null-model table behind :func:`netstruct.randomize` (private; inputs already validated).

Each :class:`NullModel` says which kernel runs it, in which orientation, and exactly which
quantities of a layer it preserves. The rest of this module turns one block into the arrays a
kernel needs (groups of cells for A–F, the orientation for G and the curveball), applies the
default chain length rule, and maps kernel output back to ``(n_out, n_in)`` weights.

Vocabulary (``W`` has shape ``(n_out, n_in)``; a column is an *input-side* node, a row an
*output-side* node; only non-zero cells take part, so zeros never move):

=========================  ===========================================================
``support``                the set of non-zero cells
``multiset``               the multiset of all non-zero weights of the layer
``sign_pattern``           ``sign(W)`` cell by cell
``input_signed_degrees``   ``k+`` and ``k-`` of every input-side node (column)
``output_signed_degrees``  ``k+`` and ``k-`` of every output-side node (row)
``input_sign_multisets``   per column, the multisets of its positive and its negative
                           weights (hence ``s+``, ``s-`` and ``k+-``)
``output_sign_multisets``  the same per row
``input_multisets``        per column, the multiset of its weights (hence ``s``)
``output_multisets``       the same per row
=========================  ===========================================================
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from .._dtypes import INDEX_DTYPE, WEIGHT_DTYPE
from ..backends import dispatch
from ..exceptions import param_error

__all__ = ["NullModel", "NULL_MODELS", "INVARIANTS", "lookup_model", "check_model", "run_block"]

#: Every invariant name used in :attr:`NullModel.preserves`.
INVARIANTS = (
    "support",
    "multiset",
    "sign_pattern",
    "input_signed_degrees",
    "output_signed_degrees",
    "input_sign_multisets",
    "output_sign_multisets",
    "input_multisets",
    "output_multisets",
)


@dataclass(frozen=True)
class NullModel:
    """One null model: how it runs and what it preserves.

    Attributes
    ----------
    name : str
        Canonical name (``"A"`` … ``"F"``, ``"G-left"``, ``"G-right"``, ``"G-shuffle"``,
        ``"curveball"``, ``"curveball-right"``).
    kind : {"permute", "swap", "curveball"}
        Exact segmented permutation, checkerboard swap chain, or signed global curveball.
    group : tuple of str
        For ``permute``: the group key, made of ``"input"``, ``"output"`` and ``"sign"``.
    keeps : {"input", "output", ""}
        For ``swap`` and ``curveball``: the side whose nodes keep their own weight values.
    reshuffle : bool
        Re-draw positive and negative values layer-wide after the chain (G-shuffle).
    preserves : frozenset of str
        Exactly the :data:`INVARIANTS` that hold for every sample.
    summary : str
        One line for docs and reprs.
    """

    name: str
    kind: str
    group: tuple[str, ...] = ()
    keeps: str = ""
    reshuffle: bool = False
    preserves: frozenset[str] = frozenset()
    summary: str = ""

    @property
    def is_mcmc(self) -> bool:
        """True for the chains (G family, curveball), which take ``n_steps``."""
        return self.kind != "permute"


_BASE = frozenset({"support", "multiset"})
_DEG = frozenset({"input_signed_degrees", "output_signed_degrees"})
_IN = frozenset({"input_multisets", "input_sign_multisets", "input_signed_degrees"})
_OUT = frozenset({"output_multisets", "output_sign_multisets", "output_signed_degrees"})

_TABLE = (
    NullModel(
        "A",
        "permute",
        (),
        preserves=_BASE,
        summary="all non-zero weights of the layer permuted over the non-zero cells",
    ),
    NullModel(
        "B",
        "permute",
        ("sign",),
        preserves=_BASE | _DEG | {"sign_pattern"},
        summary="positive weights permuted over positive cells, negative over negative",
    ),
    NullModel(
        "C",
        "permute",
        ("input",),
        preserves=_BASE | _IN,
        summary="each input node's weights permuted over its own non-zero cells",
    ),
    NullModel(
        "D",
        "permute",
        ("output",),
        preserves=_BASE | _OUT,
        summary="each output node's weights permuted over its own non-zero cells",
    ),
    NullModel(
        "E",
        "permute",
        ("input", "sign"),
        preserves=_BASE | _DEG | _IN | {"sign_pattern"},
        summary="per input node, positive and negative weights permuted within sign",
    ),
    NullModel(
        "F",
        "permute",
        ("output", "sign"),
        preserves=_BASE | _DEG | _OUT | {"sign_pattern"},
        summary="per output node, positive and negative weights permuted within sign",
    ),
    NullModel(
        "G-left",
        "swap",
        keeps="input",
        preserves=_BASE | _DEG | _IN,
        summary="checkerboard swaps of the sign pattern; weights stay with their input node",
    ),
    NullModel(
        "G-right",
        "swap",
        keeps="output",
        preserves=_BASE | _DEG | _OUT,
        summary="checkerboard swaps of the sign pattern; weights stay with their output node",
    ),
    NullModel(
        "G-shuffle",
        "swap",
        keeps="input",
        reshuffle=True,
        preserves=_BASE | _DEG,
        summary="G structure, then positive and negative weights re-drawn layer-wide (B)",
    ),
    NullModel(
        "curveball",
        "curveball",
        keeps="input",
        preserves=_BASE | _DEG | _IN,
        summary="signed global curveball trades between input nodes (keeps their weights)",
    ),
    NullModel(
        "curveball-right",
        "curveball",
        keeps="output",
        preserves=_BASE | _DEG | _OUT,
        summary="signed global curveball trades between output nodes (keeps their weights)",
    ),
)

#: Canonical name -> model.
NULL_MODELS: dict[str, NullModel] = {m.name: m for m in _TABLE}

# lower-case lookup names: canonical names plus the code names of the original study (A-F only,
# whose clean definitions match the authors' sparse versions; their G is not reproduced)
_ALIASES = {m.name.lower(): m.name for m in _TABLE}
_ALIASES.update(
    {
        "g": "G-left",
        "curveball-left": "curveball",
        "random": "A",
        "random_pos_neg": "B",
        "keep_total_strength_left": "C",
        "keep_total_strength_right": "D",
        "keep_pos_neg_strength_left": "E",
        "keep_pos_neg_strength_right": "F",
    }
)


def lookup_model(name: object) -> NullModel | None:
    """The model called ``name`` (case-insensitive, aliases allowed), or None."""
    if not isinstance(name, str):
        return None
    key = _ALIASES.get(name.strip().lower())
    return NULL_MODELS[key] if key else None


# ----------------------------------------------------------------------------- block -> kernel arrays
def permutation_groups(weight: np.ndarray, group: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, cell_ids)``: the non-zero cells of ``weight`` grouped by ``group``.

    Cells are flat row-major indices; groups are contiguous runs after a stable sort by key.
    """
    n_out, n_in = weight.shape
    cells = np.flatnonzero(weight).astype(INDEX_DTYPE, copy=False)
    if not group:  # model A: one group, already in row-major order (no key, no sort)
        return np.array([0, cells.size] if cells.size else [0], dtype=INDEX_DTYPE), cells
    key = np.zeros(cells.size, dtype=INDEX_DTYPE)
    for part in group:
        if part == "input":
            key = key * n_in + cells % n_in
        elif part == "output":
            key = key * n_out + cells // n_in
        else:  # "sign"
            key = key * 2 + (weight.reshape(-1)[cells] > 0)
    order = np.argsort(key, kind="stable")
    key = key[order]
    bounds = np.flatnonzero(np.diff(key)) + 1
    indptr = np.concatenate(([0], bounds, [cells.size])).astype(INDEX_DTYPE)
    if cells.size == 0:
        indptr = np.zeros(1, dtype=INDEX_DTYPE)
    return indptr, np.ascontiguousarray(cells[order])


#: Groups of read-only (block) weights are cached while the array lives, up to this many
#: cells per block (8 bytes each): repeated samples of one graph then skip the search for
#: non-zero cells and the sort. Keyed by (id, group); a weak reference checks identity.
_GROUP_CACHE_MAX_CELLS = 1 << 22
_GROUP_CACHE: dict[tuple[int, tuple[str, ...]], tuple[weakref.ref, np.ndarray, np.ndarray]] = {}


def cached_permutation_groups(
    weight: np.ndarray, group: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`permutation_groups`, cached for read-only arrays (the blocks' frozen weights)."""
    if weight.flags.writeable:
        return permutation_groups(weight, group)
    key = (id(weight), group)
    hit = _GROUP_CACHE.get(key)
    if hit is not None and hit[0]() is weight:
        return hit[1], hit[2]
    indptr, cells = permutation_groups(weight, group)
    if cells.size <= _GROUP_CACHE_MAX_CELLS:
        indptr.setflags(write=False)
        cells.setflags(write=False)
        ref = weakref.ref(weight, lambda _ref, k=key: _GROUP_CACHE.pop(k, None))  # type: ignore[misc]
        _GROUP_CACHE[key] = (ref, indptr, cells)
    return indptr, cells


def oriented(weight: np.ndarray, model: NullModel) -> np.ndarray:
    """The matrix a chain kernel works on (float32, C-contiguous).

    ``signed_swap`` keeps the values of *columns*; ``signed_curveball`` keeps those of *rows*.
    """
    if model.kind == "swap":
        w = weight if model.keeps == "input" else weight.T
    else:
        w = weight.T if model.keeps == "input" else weight
    return np.ascontiguousarray(w, dtype=WEIGHT_DTYPE)


def from_oriented(out: np.ndarray, model: NullModel) -> np.ndarray:
    """Map stacked kernel output ``(n_samples, ., .)`` back to ``(n_samples, n_out, n_in)``."""
    flip = (model.kind == "swap") != (model.keeps == "input")
    return np.ascontiguousarray(out.transpose(0, 2, 1)) if flip else out


def checkerboard_rate(weight: np.ndarray) -> float:
    """``r = 4 |E+| |E-| / (n_out n_in)**2``: 1 for a dense layer with balanced signs.

    It is the chance that two random cells, read as a 2x2 sub-pattern with two random partner
    cells, form a checkerboard, relative to a dense balanced layer; moves are rarer by ``r``.
    """
    size = weight.size
    if size == 0:
        return 0.0
    n_pos = int(np.count_nonzero(weight > 0))
    n_neg = int(np.count_nonzero(weight < 0))
    return 4.0 * n_pos * n_neg / float(size) ** 2


_MAX_SLOWDOWN = 1000.0


#: Proposals per positive edge of the direct swap chain (before the sparsity correction).
SWAP_PROPOSALS_PER_EDGE = 5


def direct_proposal_rate(weight: np.ndarray, model: NullModel) -> float:
    """``q = 1 - exp(-tau)``: roughly the share of direct proposals that find a checkerboard.

    ``tau = |E+| |E-| / (n_rows**2 n_cols)`` (kernel orientation) is the expected size of the
    set ``T`` of columns the proposal chooses its fourth corner from, for random signs; a
    proposal fails when ``T`` is empty, about ``exp(-tau)`` of the time.
    """
    if weight.size == 0:
        return 0.0
    n_rows, n_cols = weight.shape if model.keeps == "input" else weight.shape[::-1]
    n_pos = int(np.count_nonzero(weight > 0))
    n_neg = int(np.count_nonzero(weight < 0))
    tau = n_pos * n_neg / (float(n_rows) ** 2 * n_cols)
    return -math.expm1(-tau)


def default_n_steps(weight: np.ndarray, model: NullModel) -> int:
    """The default chain length (see the Notes of :func:`netstruct.randomize`).

    * swap chains: ``ceil(5 * |E+| / q)`` proposals, ``q`` = :func:`direct_proposal_rate`,
    * curveball: ``ceil(30 / sqrt(r))`` global rounds of ``n_nodes // 2`` trades, ``r`` =
      :func:`checkerboard_rate`,

    with ``q`` and ``r`` floored at ``1 / 1000``.
    """
    if model.kind == "swap":
        q = max(direct_proposal_rate(weight, model), 1.0 / _MAX_SLOWDOWN)
        n_pos = int(np.count_nonzero(weight > 0))
        return int(math.ceil(SWAP_PROPOSALS_PER_EDGE * n_pos / q))
    r = max(checkerboard_rate(weight), 1.0 / _MAX_SLOWDOWN)
    n_pairs = oriented(weight, model).shape[0] // 2
    return int(math.ceil(30.0 / math.sqrt(r))) * n_pairs


def too_small(weight: np.ndarray, model: NullModel) -> str | None:
    """Why a chain cannot move on ``weight`` (None when it can run)."""
    n_out, n_in = weight.shape
    n_pos = int(np.count_nonzero(weight > 0))
    n_neg = int(np.count_nonzero(weight < 0))
    if n_out < 2 or n_in < 2:
        return f"its shape {weight.shape} has fewer than 2 rows or columns"
    if n_pos < 2 or n_neg < 2:
        return f"it has {n_pos} positive and {n_neg} negative edges; a move needs 2 of each"
    return None


def n_rounds_for(n_steps: int, weight: np.ndarray, model: NullModel) -> int:
    """Curveball rounds covering ``n_steps`` trades (rounded up to whole rounds)."""
    n_pairs = max(oriented(weight, model).shape[0] // 2, 1)
    return -(-int(n_steps) // n_pairs)


def check_model(model: object, func: str) -> NullModel:
    """The model called ``model``; raise the standard InvalidParameterError otherwise."""
    found = lookup_model(model)
    if found is None:
        raise param_error("model", func, f"one of {list(NULL_MODELS)}", model)
    return found


# ----------------------------------------------------------------------------- run one block
def run_block(
    weight: np.ndarray,
    model: NullModel,
    n_steps: int | None,
    seeds: np.ndarray,
    backend: str | None,
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Sample one block (inputs already validated). Returns (stack, steps run, acceptance)."""
    if model.kind == "permute":
        kernel = dispatch("randomize.permute_segments", backend)
        indptr, cells = cached_permutation_groups(weight, model.group)
        return kernel(weight, indptr, cells, seeds), 0, None
    steps = default_n_steps(weight, model) if n_steps is None else n_steps
    w = oriented(weight, model)
    if model.kind == "swap":
        kernel = dispatch("randomize.signed_swap", backend)
        out, moved = kernel(w, np.int64(steps), seeds, model.reshuffle)
    else:
        kernel = dispatch("randomize.signed_curveball", backend)
        rounds = n_rounds_for(steps, weight, model)
        steps = rounds * (w.shape[0] // 2)
        out, moved = kernel(w, np.int64(rounds), seeds)
    acceptance = moved / steps if steps else np.zeros(seeds.size)
    return from_oriented(out, model), int(steps), acceptance

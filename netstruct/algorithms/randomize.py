"""Sign-preserving randomization of weight blocks: null models A–G and a signed curveball.

Every block (bipartite layer, ``W`` of shape ``(n_out, n_in)``; a column is an input-side
node, a row an output-side node) is randomized on its own. Only non-zero cells take part:
pruned cells (``mask`` False) and exact zeros never move, so the support is always kept and
the masks of the returned graph are the input's. Biases are never touched.

=================  ===============================================================  ==========
model              what moves                                                       sampler
=================  ===============================================================  ==========
``A``              all non-zero weights, over all non-zero cells                    exact
``B``              positive weights over positive cells, negative over negative     exact
``C`` / ``D``      each input / output node's weights over its own cells            exact
``E`` / ``F``      as C / D, but within sign                                        exact
``G-left``         the sign pattern, by checkerboard swaps; weights stay with       MCMC
                   their input node (``"G"`` is an alias)
``G-right``        as G-left, weights stay with their output node                   MCMC
``G-shuffle``      G structure, then B's re-draw of the values                      MCMC
``curveball``      the sign pattern, by signed global curveball trades between      MCMC
                   input nodes (weights stay with them); ``curveball-right`` trades
                   output nodes
=================  ===============================================================  ==========

``NULL_MODELS[name].preserves`` lists exactly the invariants each model keeps (see
:mod:`netstruct.algorithms._randomize_models` for the vocabulary). Kernels:
``randomize.permute_segments``, ``randomize.signed_swap`` and ``randomize.signed_curveball``
on the ``numba`` and ``cuda`` backends.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .._dtypes import WEIGHT_DTYPE
from ..exceptions import NetstructWarning, param_error
from ..graphs.signed import SignedGraph
from ..utils.deprecation import renamed_parameters
from ..utils.random import check_random_state, spawn_seeds
from ..utils.validation import check_graph, check_scalar
from . import _randomize_models as _m
from ._randomize_mixing import MixingTrace, mixing_diagnostic
from ._randomize_models import INVARIANTS, NULL_MODELS, NullModel

__all__ = [
    "randomize",
    "randomize_ensemble",
    "RandomizedEnsemble",
    "mixing_diagnostic",
    "MixingTrace",
    "NULL_MODELS",
    "NullModel",
    "INVARIANTS",
    "LayerTooSmallWarning",
]


class LayerTooSmallWarning(NetstructWarning):
    """A block is too small for a swap or curveball move and was returned unchanged."""


# ----------------------------------------------------------------------------- validation
def _check_layers(G: SignedGraph, layers: object, func: str, name: str = "blocks") -> list[int]:
    if layers is None:  # weight blocks; structure (skip, norm, operator) and grouped convs stay
        return [
            i
            for i, b in enumerate(G.blocks)
            if b.kind == "weight" and not (b.kernel is not None and b.layout.get("groups", 1) != 1)
        ]
    if isinstance(layers, (str, numbers.Integral)):
        keys: list[object] = [layers]
    elif isinstance(layers, Iterable):
        keys = list(layers)
    else:
        raise param_error(name, func, "None, a block index or name, or a list of them", layers)
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, (str, numbers.Integral)):
            raise param_error(name, func, "None, a block index or name, or a list of them", layers)
    idx = [G.block_index(k) for k in keys]  # type: ignore[arg-type]  # checked just above
    return sorted(set(idx))


def _check_n_steps(n_steps: object, model: NullModel, func: str) -> int | None:
    if n_steps is None:
        return None
    if not model.is_mcmc:
        raise param_error(
            "n_steps",
            func,
            f"None for the exact model {model.name!r} (only chains take steps)",
            n_steps,
        )
    return int(check_scalar(n_steps, "n_steps", func, kind=numbers.Integral, min_value=0))


# ----------------------------------------------------------------------------- ensembles
@dataclass(frozen=True, eq=False)
class RandomizedEnsemble:
    """Stacked samples of a null model, one weight stack per randomized block.

    Attributes
    ----------
    source : SignedGraph
        The graph that was randomized.
    model : NullModel
        The null model used.
    weights : mapping of str to ndarray of shape (n_samples, n_out, n_in), float32
        Read-only stacks keyed by block name (only the randomized blocks).
    n_steps : mapping of str to int
        Steps each chain ran per block (swap proposals or curveball trades; 0 for A–F).
    acceptance : mapping of str to ndarray of shape (n_samples,)
        Fraction of steps that changed the sign pattern (chains only).
    unchanged : tuple of str
        Blocks returned unchanged because they were too small to move.
    """

    source: SignedGraph
    model: NullModel
    weights: Mapping[str, np.ndarray]
    n_steps: Mapping[str, int]
    acceptance: Mapping[str, np.ndarray]
    unchanged: tuple[str, ...]
    n_samples: int

    def __len__(self) -> int:
        return self.n_samples

    def __iter__(self) -> Iterator[SignedGraph]:
        return (self.graph(k) for k in range(self.n_samples))

    def graph(self, k: int) -> SignedGraph:
        """Sample ``k`` as a :class:`~netstruct.SignedGraph` (masks and biases of the source).

        Examples
        --------
        >>> import numpy as np, netstruct as ns
        >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
        >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
        ...     name="fc", weight=W, sources=[0, 1, 2], targets=[3, 4])])
        >>> ens = ns.randomize_ensemble(G, "A", 3, seed=0)
        >>> ens.graph(2).blocks[0].shape
        (2, 3)
        """
        k = int(
            check_scalar(
                k,
                "k",
                "RandomizedEnsemble.graph",
                kind=numbers.Integral,
                min_value=0,
                max_value=self.n_samples - 1,
            )
        )
        return _with_weights(self.source, {name: w[k] for name, w in self.weights.items()})


def _with_weights(G: SignedGraph, weights: Mapping[str, np.ndarray]) -> SignedGraph:
    """``G.replace_blocks({name: {"weight": w}})`` for weights the samplers produced.

    Inputs already valid: every null model only moves the finite non-zero values of a block
    among its non-zero cells, so each ``w`` is a read-only, C-contiguous float32 array with
    the block's mask and zeros outside it. The blocks are therefore copied with the new
    weight as they are (no re-validation, no new mask), and the edge attributes stay.
    """
    blocks = list(G.blocks)
    for name, w in weights.items():
        i = G.block_index(name)
        blocks[i] = dataclasses.replace(blocks[i], weight=w)
    return G._derive(blocks=blocks)


@renamed_parameters("randomize_ensemble", layers="blocks")
def randomize_ensemble(
    G: SignedGraph,
    model: str,
    n_samples: int,
    *,
    blocks: int | str | Iterable[int | str] | None = None,
    seed: int | np.random.Generator | None = None,
    n_steps: int | None = None,
    backend: str | None = None,
) -> RandomizedEnsemble:
    """Draw ``n_samples`` independent samples of a null model, stacked per block.

    Samples run as parallel independent chains inside one kernel call per block, so an
    ensemble costs about one sample per core. Use :meth:`RandomizedEnsemble.graph` (or
    iterate) to get graphs, or feed ``ensemble.weights[name]`` to a batched evaluation.

    Parameters
    ----------
    G : SignedGraph
    model : str
        A name from :data:`NULL_MODELS` (case-insensitive; ``"G"`` means ``"G-left"``; the
        study's code names ``"random"``, ``"random_pos_neg"``, ``"keep_total_strength_left"``
        … are accepted for A–F).
    n_samples : int >= 1
    blocks : int, str or list of them, default=None
        Blocks to randomize (index or name); None means every ``kind="weight"`` block except
        grouped convolutions (skip, identity, norm and operator blocks are structure).
    seed : int, Generator or None, default=None
        Block ``b``, sample ``k`` depends only on ``(seed, b, k)``: the same seed gives the
        same samples whatever ``blocks``, ``n_samples``, the thread count or the backend.
    n_steps : int >= 0, default=None
        Chain length for G models (swap proposals, rejections included) and curveball models
        (trades, rounded up to whole global rounds). None applies the default rule (Notes).
        Must be None for A–F, which are exact.
    backend : {"numba", "cuda", "auto"}, default=None
        None uses ``netstruct.config.backend``.

    Returns
    -------
    RandomizedEnsemble

    Raises
    ------
    InvalidParameterError
        For an unknown model, bad ``blocks``, ``n_samples``, ``n_steps`` or ``seed``.

    Warns
    -----
    LayerTooSmallWarning
        When a chain cannot move on a block (fewer than 2 rows or columns, or fewer than 2
        positive or 2 negative edges); the block is returned unchanged and listed in
        ``unchanged``.

    See Also
    --------
    randomize : one sample as a graph.
    mixing_diagnostic : choose ``n_steps`` for the chains.

    Notes
    -----
    Default chain length. The swap chains build each checkerboard directly (a positive cell,
    a row negative in its column, a fourth corner from the bit-set intersection of two rows,
    then a Metropolis–Hastings test that keeps the uniform law) and run
    ``ceil(5 |E+| / q)`` proposals, with ``q = 1 - exp(-|E+| |E-| / (n_rows**2 n_cols))``
    (about the share of proposals that find a checkerboard; floored at 1/1000). The curveball
    runs ``ceil(30 / sqrt(r))`` global rounds, ``r = 4 |E+| |E-| / (n_out n_in)**2`` (1 for a
    dense layer with balanced signs; floored at 1/1000). On 512x512 and 1024x1024 layers at
    10 % density (``benchmarks/bench_swap_chain.py``) the swap chain at its default length
    is as far from its start (Hamming distance, and relaxation of a quadrant count from a
    structured start) as the uniform-pair chain it replaced was at its default
    ``ceil(10 |E+| / r)`` attempts, 10-40x sooner. The chains are uniform over the sign
    patterns they can reach; with pruned cells the moves need not connect every pattern with
    the same degrees.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
    ...     name="fc", weight=W, sources=[0, 1, 2], targets=[3, 4])])
    >>> ens = ns.randomize_ensemble(G, "E", 4, seed=0)
    >>> ens.weights["fc"].shape
    (4, 2, 3)
    >>> bool((np.sign(ens.weights["fc"]) == np.sign(W)).all())
    True
    """
    func = "randomize_ensemble"
    check_graph(G, func)
    spec = _m.check_model(model, func)
    n_samples = int(check_scalar(n_samples, "n_samples", func, kind=numbers.Integral, min_value=1))
    idx = _check_layers(G, blocks, func)
    steps = _check_n_steps(n_steps, spec, func)
    rng = check_random_state(seed, func=func)
    children = rng.spawn(len(G.blocks))
    weights: dict[str, np.ndarray] = {}
    used: dict[str, int] = {}
    acceptance: dict[str, np.ndarray] = {}
    unchanged: list[str] = []
    for b in idx:
        block = G.blocks[b]
        seeds = spawn_seeds(children[b], n_samples, func=func)
        w = np.ascontiguousarray(block.weight, dtype=WEIGHT_DTYPE)
        reason = _m.too_small(w, spec) if spec.is_mcmc else None
        if reason is not None:
            warnings.warn(
                f"Block {block.name!r} is too small for null model {spec.name!r}: {reason}. "
                "It is returned unchanged.",
                LayerTooSmallWarning,
                stacklevel=2,
            )
            stack = np.ascontiguousarray(np.broadcast_to(w, (n_samples, *w.shape)))
            unchanged.append(block.name)
            acc: np.ndarray | None = np.zeros(n_samples)
            used[block.name] = 0
        else:
            stack, used[block.name], acc = _m.run_block(w, spec, steps, seeds, backend)
        stack.setflags(write=False)
        weights[block.name] = stack
        if acc is not None:
            acceptance[block.name] = acc
    return RandomizedEnsemble(
        source=G,
        model=spec,
        weights=MappingProxyType(weights),
        n_steps=MappingProxyType(used),
        acceptance=MappingProxyType(acceptance),
        unchanged=tuple(unchanged),
        n_samples=n_samples,
    )


@renamed_parameters("randomize", layers="blocks")
def randomize(
    G: SignedGraph,
    model: str,
    *,
    blocks: int | str | Iterable[int | str] | None = None,
    seed: int | np.random.Generator | None = None,
    n_steps: int | None = None,
    backend: str | None = None,
) -> SignedGraph:
    """Return one sample of a sign-preserving null model of ``G``.

    Same parameters as :func:`randomize_ensemble` without ``n_samples``; the result equals
    ``randomize_ensemble(G, model, n, seed=seed, ...).graph(0)`` for any ``n``.

    Parameters
    ----------
    G : SignedGraph
    model : str
        One of :data:`NULL_MODELS` (``"A"`` … ``"F"``, ``"G-left"`` / ``"G"``, ``"G-right"``,
        ``"G-shuffle"``, ``"curveball"``, ``"curveball-right"``).
    blocks : int, str or list of them, default=None
    seed : int, Generator or None, default=None
    n_steps : int >= 0, default=None
    backend : {"numba", "cuda", "auto"}, default=None

    Returns
    -------
    SignedGraph
        Same nodes, masks and biases; new weights in the selected blocks.

    Raises
    ------
    InvalidParameterError
        See :func:`randomize_ensemble`.

    Notes
    -----
    What each model keeps is ``NULL_MODELS[model].preserves`` (module docstring). E.g. B, E
    and F keep the exact sign pattern, so a binarized network is unchanged; G-left keeps every
    node's signed degrees and each input node's weights but moves the sign pattern.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[0.5, -0.2], [-0.4, 0.3]])
    >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(
    ...     name="fc", weight=W, sources=[0, 1], targets=[2, 3])])
    >>> ns.randomize(G, "G-left", seed=1).blocks[0].weight.tolist()
    [[-0.4000000059604645, 0.30000001192092896], [0.5, -0.20000000298023224]]
    >>> ns.randomize(G, "E", seed=1).blocks[0].weight.tolist() == G.blocks[0].weight.tolist()
    True
    """
    ens = randomize_ensemble(
        G, model, 1, blocks=blocks, seed=seed, n_steps=n_steps, backend=backend
    )
    return ens.graph(0)

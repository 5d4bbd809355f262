"""Named probes and stacks of perturbed copies (the unit of work of a sweep).

A probe name (``"prune"``, ``"noise"``, ``"flip-random"``, ``"null-B"`` …) fixes the transform
and what its *level* means; :func:`perturb` draws ``n_samples`` perturbed copies of a graph at
one level as stacked arrays, ready for :func:`~netstruct.probes.evaluate_batch`. Copy ``k``
depends only on ``(seed, k)``, never on ``n_samples`` or on scheduling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .._dtypes import WEIGHT_DTYPE
from ..algorithms._randomize_models import lookup_model
from ..algorithms.randomize import randomize_ensemble
from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.validation import check_fraction, check_graph, check_scalar
from . import _layers as _k
from . import transforms as _t

__all__ = ["PROBES", "ProbeSpec", "ProbeStack", "perturb", "check_probe"]


@dataclass(frozen=True)
class ProbeSpec:
    """What a probe name means.

    Attributes
    ----------
    name : str
    family : {"none", "prune", "noise", "flip", "null"}
    option : str
        The rule (prune, flip), ``"dist/mode"`` (noise) or null-model name.
    stochastic : bool
        Whether repeated copies differ (random rules, noise, null models).
    level : str
        What the level is: a removed fraction, a noise scale, a flipped fraction, or (null
        models) the fraction pruned (smallest ``|w|``) before randomizing.
    """

    name: str
    family: str
    option: str
    stochastic: bool
    level: str


def _build() -> dict[str, ProbeSpec]:
    out = {"none": ProbeSpec("none", "none", "", False, "ignored")}
    for rule in _t.PRUNE_RULES:
        out[f"prune-{rule}"] = ProbeSpec(
            f"prune-{rule}", "prune", rule, rule == "random", "fraction removed"
        )
        out[f"flip-{rule}"] = ProbeSpec(
            f"flip-{rule}", "flip", rule, rule == "random", "fraction flipped"
        )
    for dist in _t.NOISE_DISTS:
        out[f"noise-{dist}"] = ProbeSpec(
            f"noise-{dist}", "noise", f"{dist}/additive", True, "noise scale"
        )
        out[f"noise-{dist}-mult"] = ProbeSpec(
            f"noise-{dist}-mult", "noise", f"{dist}/multiplicative", True, "noise scale"
        )
    for model in (
        "A",
        "B",
        "C",
        "D",
        "E",
        "F",
        "G-left",
        "G-right",
        "G-shuffle",
        "curveball",
        "curveball-right",
    ):
        out[f"null-{model}"] = ProbeSpec(
            f"null-{model}", "null", model, True, "fraction pruned before"
        )
    return out


#: Probe name -> :class:`ProbeSpec`. Aliases: ``"prune"`` = ``"prune-smallest"``, ``"flip"`` =
#: ``"flip-smallest"``, ``"noise"`` = ``"noise-uniform"``, ``"null-G"`` = ``"null-G-left"``.
PROBES: Mapping[str, ProbeSpec] = MappingProxyType(_build())
_ALIASES = {
    "prune": "prune-smallest",
    "flip": "flip-smallest",
    "noise": "noise-uniform",
    "null-G": "null-G-left",
}


def check_probe(probe: object, func: str) -> ProbeSpec:
    """The :class:`ProbeSpec` called ``probe`` (aliases and bare null-model names accepted)."""
    if isinstance(probe, str):
        name = _ALIASES.get(probe, probe)
        if name in PROBES:
            return PROBES[name]
        found = lookup_model(probe)
        if found is not None and f"null-{found.name}" in PROBES:
            return PROBES[f"null-{found.name}"]
    raise param_error(
        "probe", func, f"one of {sorted(PROBES) + sorted(_ALIASES)} or a null-model name", probe
    )


def check_level(spec: ProbeSpec, level: object, func: str) -> float:
    """Validate a level for ``spec`` (fractions in [0, 1], scales >= 0)."""
    if spec.family == "noise":
        return float(check_scalar(level, "level", func, min_value=0.0))
    return check_fraction(level, "level", func)


@dataclass(frozen=True, eq=False)
class ProbeStack:
    """``n_samples`` perturbed copies of a graph, stacked per block.

    Attributes
    ----------
    source : SignedGraph
    probe : ProbeSpec
    level : float
    seed : int
    weights : mapping of block name to ndarray of shape (n_samples, n_out, n_in), float32
    masks : mapping of block name to ndarray of shape (n_samples, n_out, n_in), bool
    biases : mapping of block name to ndarray of shape (n_samples, n_out), float32
        Only blocks that have a bias.
    """

    source: SignedGraph
    probe: ProbeSpec
    level: float
    seed: int
    weights: Mapping[str, np.ndarray]
    masks: Mapping[str, np.ndarray]
    biases: Mapping[str, np.ndarray]
    n_samples: int

    def __len__(self) -> int:
        return self.n_samples

    def binarized(self) -> ProbeStack:
        """The same copies followed by binarization (signs of weights and biases).

        Only weight blocks are binarized; skip, identity and norm blocks are structure.
        """
        kind = {b.name: b.kind for b in self.source.blocks}
        sw = {
            k: (np.sign(v).astype(WEIGHT_DTYPE) if kind[k] == "weight" else v)
            for k, v in self.weights.items()
        }
        sb = {
            k: (np.sign(v).astype(WEIGHT_DTYPE) if kind[k] == "weight" else v)
            for k, v in self.biases.items()
        }
        return ProbeStack(
            self.source,
            self.probe,
            self.level,
            self.seed,
            MappingProxyType(sw),
            self.masks,
            MappingProxyType(sb),
            self.n_samples,
        )

    def graph(self, k: int) -> SignedGraph:
        """Copy ``k`` as a :class:`~netstruct.SignedGraph`."""
        k = int(
            check_scalar(
                k, "k", "ProbeStack.graph", kind=int, min_value=0, max_value=self.n_samples - 1
            )
        )
        upd: dict[str, dict[str, np.ndarray]] = {}
        for name, w in self.weights.items():
            upd[name] = {"weight": w[k], "mask": self.masks[name][k]}
            if name in self.biases:
                upd[name]["bias"] = self.biases[name][k]
        return self.source.replace_blocks(upd)


def _child(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))


def _one_copy(G: SignedGraph, spec: ProbeSpec, level: float, rng: np.random.Generator | None):
    """Per-block (W, mask, b) of one perturbed copy (inputs already validated)."""
    out = []
    for blk in G.blocks:
        W, m, b = blk.weight, blk.mask, blk.bias
        if blk.kind != "weight":  # skip/identity/norm blocks are structure, not weights to probe
            pass
        elif spec.family == "prune" and level > 0:
            W, m, b = _k._prune_layer(W, m, b, level, spec.option, rng, True)
        elif spec.family == "flip" and level > 0:
            W, m, b = _k._flip_layer(W, m, b, level, spec.option, rng, True)
        elif spec.family == "noise" and level > 0:
            dist, mode = spec.option.split("/")
            W, m, b = _k._noise_layer(W, m, b, level, dist, mode, rng, True)
        out.append((W, m, b))
    return out


def perturb(
    G: SignedGraph,
    probe: str,
    level: float,
    *,
    n_samples: int = 1,
    seed: int = 0,
    n_steps: int | None = None,
) -> ProbeStack:
    """Draw ``n_samples`` copies of ``G`` perturbed by a named probe at one level, stacked.

    Parameters
    ----------
    G : SignedGraph
    probe : str
        A name of :data:`PROBES` (or an alias, or a bare null-model name such as ``"B"``).
    level : float
        Fraction removed / flipped (in [0, 1]), noise scale (>= 0), or for ``null-*`` the
        fraction pruned (smallest ``|w|``, biases included) before randomizing.
    n_samples : int >= 1, default=1
    seed : int >= 0, default=0
        Copy ``k`` of a random probe uses ``SeedSequence(seed, spawn_key=(k,))``; null
        models use ``randomize_ensemble(prune(G, level), model, n, seed=seed)``.
    n_steps : int, optional
        Chain length of MCMC null models.

    Returns
    -------
    ProbeStack
        Every block of ``G`` is present in ``weights`` and ``masks``.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> from netstruct.probes import perturb
    >>> W = np.array([[0.5, -0.2, 0.1], [-0.4, 0.3, -0.05]])
    >>> G = ns.SignedGraph({"name": list("abcde")}, [ns.make_block(
    ...     name="fc", weight=W, sources=[0, 1, 2], targets=[3, 4])])
    >>> S = perturb(G, "noise", 0.1, n_samples=4, seed=0)
    >>> S.weights["fc"].shape
    (4, 2, 3)
    >>> perturb(G, "flip", 0.5).binarized().weights["fc"][0].tolist()
    [[1.0, 1.0, -1.0], [-1.0, 1.0, 1.0]]
    """
    func = "perturb"
    check_graph(G, func)
    spec = check_probe(probe, func)
    level = check_level(spec, level, func)
    n_samples = int(check_scalar(n_samples, "n_samples", func, kind=int, min_value=1))
    seed = int(check_scalar(seed, "seed", func, kind=int, min_value=0))
    names = [b.name for b in G.blocks]
    if spec.family == "null":
        P = _t.prune(G, level) if level > 0 else G
        ens = randomize_ensemble(P, spec.option, n_samples, seed=seed, n_steps=n_steps)
        weights = dict(ens.weights)
        masks = {b.name: np.broadcast_to(b.mask, (n_samples, *b.shape)) for b in P.blocks}
        biases = {
            b.name: np.broadcast_to(b.bias, (n_samples, b.shape[0]))
            for b in P.blocks
            if b.bias is not None
        }
        for b in P.blocks:
            weights.setdefault(b.name, np.broadcast_to(b.weight, (n_samples, *b.shape)))
    else:
        draws = n_samples if spec.stochastic and level > 0 else 1
        copies = [
            _one_copy(G, spec, level, _child(seed, k) if spec.stochastic else None)
            for k in range(draws)
        ]
        weights, masks, biases = {}, {}, {}
        for j, name in enumerate(names):
            weights[name] = np.stack([c[j][0] for c in copies])
            masks[name] = np.stack([c[j][1] for c in copies])
            if copies[0][j][2] is not None:
                biases[name] = np.stack([np.asarray(c[j][2], dtype=WEIGHT_DTYPE) for c in copies])
            if draws < n_samples:  # deterministic: one copy, broadcast
                weights[name] = np.broadcast_to(
                    weights[name][0], (n_samples, *weights[name].shape[1:])
                )
                masks[name] = np.broadcast_to(masks[name][0], (n_samples, *masks[name].shape[1:]))
                if name in biases:
                    biases[name] = np.broadcast_to(
                        biases[name][0], (n_samples, *biases[name].shape[1:])
                    )
    return ProbeStack(
        G,
        spec,
        level,
        seed,
        MappingProxyType(weights),
        MappingProxyType(masks),
        MappingProxyType(biases),
        n_samples,
    )

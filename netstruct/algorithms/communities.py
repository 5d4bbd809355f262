"""Signed communities of a network's units: modularity, a Leiden-type optimiser, clusterability, lesions.

Communities live on the **undirected signed projection** of a :class:`~netstruct.SignedGraph`:
one node per unit (gate rows of an LSTM/GRU unit are folded into their unit through the node
table's ``unit`` column) and ``A = S + S^T``, where ``S[u, v]`` sums the weights of all edges
from unit ``v`` to unit ``u`` over every block (feed-forward, recurrent, skip or any other
kind in ``G.blocks``). A self-loop (a unit feeding its own gates) appears as ``A[u, u] = 2 S[u, u]``.

Signed modularity (Gomez, Jensen & Arenas, Phys. Rev. E 80, 016114, 2009) splits ``A`` into
``A+ = max(A, 0)`` and ``A- = max(-A, 0)`` with strengths ``k+``, ``k-`` and totals
``2m+ = sum A+``, ``2m- = sum A-``::

    Q = 1 / (2m+ + 2m-) * sum_ij [A_ij - g+ k+_i k+_j / 2m+ + g- k-_i k-_j / 2m-] delta(c_i, c_j)

with resolutions ``g+`` (``resolution``) and ``g-`` (``resolution_neg``, default ``g+``).
Positive weight inside communities and negative weight between them raise ``Q``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import GraphError, param_error
from ..graphs.signed import SignedGraph
from ..utils.deprecation import renamed_parameters
from ..utils.random import check_random_state, spawn_seeds
from ..utils.validation import check_choice, check_graph, check_scalar

__all__ = [
    "SignedProjection",
    "Communities",
    "Clusterability",
    "signed_projection",
    "signed_modularity",
    "signed_communities",
    "clusterability",
    "community_lesion",
]

_WEIGHTS = ("weight", "sign")


@dataclass(frozen=True, eq=False)
class SignedProjection:
    """The undirected signed projection of a graph onto its units.

    Attributes
    ----------
    adjacency : scipy.sparse.csr_array of shape (n_units, n_units), float64
        Symmetric ``A = S + S^T`` (self-loops on the diagonal, counted twice).
    units : ndarray of int64, shape (n_units,)
        Node id of each unit (the graph's non-gate nodes).
    node_unit : ndarray of int64, shape (n_nodes,)
        Position in ``units`` of every node's unit (gate rows point to their unit).
    """

    adjacency: Any  # a scipy.sparse CSR matrix
    units: np.ndarray
    node_unit: np.ndarray
    _parts: tuple = field(default=(), repr=False)

    @property
    def n_units(self) -> int:
        """Number of units."""
        return int(self.units.size)

    def strengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative strengths ``k+``, ``k-`` of every unit."""
        return self._parts[0], self._parts[1]

    def kernel_args(self, resolution: float, resolution_neg: float) -> tuple:
        """``(indptr, indices, weight, kpos, kneg, cpos, cneg)`` for the numba kernels."""
        kpos, kneg = self._parts
        A = self.adjacency
        mp, mn = float(kpos.sum()), float(kneg.sum())
        cpos = resolution / mp if mp > 0 else 0.0
        cneg = resolution_neg / mn if mn > 0 else 0.0
        return (
            A.indptr.astype(np.int64),
            A.indices.astype(np.int64),
            A.data,
            kpos,
            kneg,
            cpos,
            cneg,
        )

    @property
    def total_weight(self) -> float:
        """``2m+ + 2m-``, the sum of ``|A|``."""
        return float(self._parts[0].sum() + self._parts[1].sum())


def _project(G: SignedGraph, weight: str, weights: np.ndarray | None = None) -> SignedProjection:
    """Build the projection (inputs already validated); ``weights`` overrides the edge weights."""
    import scipy.sparse as sp

    unit = G.node_column("unit").astype(np.int64)
    units = np.unique(unit)
    node_unit = np.searchsorted(units, unit).astype(np.int64)
    e = G.edge_arrays()
    w = np.asarray(e["weight"] if weights is None else weights, dtype=np.float64)
    if weight == "sign":
        w = np.sign(w)
    a, b = node_unit[e["target"]], node_unit[e["source"]]
    n = units.size
    A = sp.coo_array(
        (np.concatenate([w, w]), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(n, n)
    ).tocsr()
    A.sum_duplicates()
    A.eliminate_zeros()
    A.sort_indices()
    kpos = np.asarray(
        sp.csr_array((np.maximum(A.data, 0), A.indices, A.indptr), shape=A.shape).sum(axis=1)
    ).ravel()
    kneg = np.asarray(
        sp.csr_array((np.maximum(-A.data, 0), A.indices, A.indptr), shape=A.shape).sum(axis=1)
    ).ravel()
    return SignedProjection(A, units, node_unit, (kpos.astype(np.float64), kneg.astype(np.float64)))


def signed_projection(G: SignedGraph, *, weight: str = "weight") -> SignedProjection:
    """The undirected signed projection of ``G`` onto its units (module docstring).

    Parameters
    ----------
    G : SignedGraph
    weight : {"weight", "sign"}, default="weight"
        Use the weights, or only their signs (+1/-1), before summing.

    Returns
    -------
    SignedProjection

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct.algorithms.communities import signed_projection
    >>> P = signed_projection(ns.from_torch(ns.training.mlp([3, 2], seed=0)))
    >>> P.n_units, P.adjacency.shape, bool((P.adjacency != P.adjacency.T).nnz == 0)
    (5, (5, 5), True)
    """
    func = "signed_projection"
    check_graph(G, func)
    return _project(G, check_choice(weight, "weight", func, _WEIGHTS))


def _check_resolutions(
    resolution: object, resolution_neg: object, func: str
) -> tuple[float, float]:
    g = float(check_scalar(resolution, "resolution", func, min_value=0.0))
    gn = (
        g
        if resolution_neg is None
        else float(check_scalar(resolution_neg, "resolution_neg", func, min_value=0.0))
    )
    return g, gn


def _as_projection(G: object, weight: str, func: str) -> SignedProjection:
    if isinstance(G, SignedProjection):
        return G
    check_graph(G, func)
    P = _project(G, check_choice(weight, "weight", func, _WEIGHTS))  # type: ignore[arg-type]
    if P.total_weight == 0:
        raise GraphError(f"{func}: the graph has no non-zero edge, so its modularity is undefined.")
    return P


def _unit_labels(P: SignedProjection, membership: object, func: str) -> np.ndarray:
    m = np.asarray(membership)
    if (
        m.ndim != 1
        or not np.issubdtype(m.dtype, np.integer)
        or m.size not in (P.n_units, P.node_unit.size)
    ):
        raise param_error(
            "membership",
            func,
            f"an int array with one label per node ({P.node_unit.size}) or per unit ({P.n_units})",
            f"dtype {m.dtype}, shape {m.shape}",
        )
    if m.size == P.node_unit.size and m.size != P.n_units:
        m = m[P.units]  # unit nodes carry the labels; gate rows follow their unit
    _, inv = np.unique(m, return_inverse=True)
    return inv.astype(np.int64)


def signed_modularity(
    G: SignedGraph | SignedProjection,
    membership: object,
    *,
    resolution: float = 1.0,
    resolution_neg: float | None = None,
    weight: str = "weight",
) -> float:
    """Signed modularity ``Q`` of a partition of the units of ``G`` (module docstring).

    Parameters
    ----------
    G : SignedGraph or SignedProjection
    membership : array of int, shape (n_nodes,) or (n_units,)
        Community labels. Per node: the labels of unit nodes are used, gate rows follow their unit.
    resolution, resolution_neg : float >= 0, default=1.0 and None (= ``resolution``)
        Resolutions ``g+`` and ``g-`` of the positive and negative parts.
    weight : {"weight", "sign"}, default="weight"
        Ignored when ``G`` is a projection.

    Returns
    -------
    float

    Raises
    ------
    InvalidParameterError
        Bad membership shape or dtype, negative resolutions.
    GraphError
        The graph has no non-zero edge.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(name="w", weight=W, sources=[0, 1], targets=[2, 3])])
    >>> round(ns.signed_modularity(G, [0, 1, 0, 1]), 3), round(ns.signed_modularity(G, [0, 0, 0, 0]), 3)
    (0.5, 0.0)
    """
    from ..backends.numba.communities import signed_modularity as kernel

    func = "signed_modularity"
    g, gn = _check_resolutions(resolution, resolution_neg, func)
    P = _as_projection(G, weight, func)
    labels = _unit_labels(P, membership, func)
    return float(kernel(*P.kernel_args(g, gn), labels) / P.total_weight)


@dataclass(frozen=True, eq=False)
class Communities:
    """A partition of a graph's units found by :func:`signed_communities`.

    Attributes
    ----------
    membership : ndarray of int64, shape (n_nodes,)
        Community of every node (gate rows carry their unit's label).
    unit_membership : ndarray of int64, shape (n_units,)
    modularity : float
        Signed modularity of the partition at the resolutions used.
    resolution, resolution_neg : float
    projection : SignedProjection
    """

    membership: np.ndarray
    unit_membership: np.ndarray
    modularity: float
    resolution: float
    resolution_neg: float
    projection: SignedProjection

    @property
    def n_communities(self) -> int:
        """Number of communities."""
        return int(self.unit_membership.max()) + 1 if self.unit_membership.size else 0

    def table(self, G: SignedGraph) -> pd.DataFrame:
        """One row per community: its size and its units per node kind and layer group."""
        nodes = G.nodes().iloc[self.projection.units]
        df = pd.DataFrame(
            {
                "community": self.unit_membership,
                "kind": nodes["kind"].to_numpy(),
                "group": nodes["group"].to_numpy(),
            }
        )
        rows = []
        for c, d in df.groupby("community"):
            row: dict[str, Any] = {"community": int(c), "units": len(d)}
            for k in ("input", "hidden", "output"):
                row[k] = int((d["kind"] == k).sum())
            row["layers"] = ",".join(str(int(x)) for x in sorted(d["group"].unique()))
            rows.append(row)
        return pd.DataFrame(rows)


def signed_communities(
    G: SignedGraph,
    *,
    resolution: float = 1.0,
    resolution_neg: float | None = None,
    weight: str = "weight",
    n_restarts: int = 8,
    n_iterations: int = 10,
    seed: int | np.random.Generator | None = None,
) -> Communities:
    """Communities of the units of ``G`` that maximise signed modularity (a Leiden-type optimiser).

    Each restart runs passes of queue-based local moving (moves into neighbouring or empty
    communities), a greedy Leiden refinement (singletons merge into sub-communities of their
    community) and aggregation on the refined partition, repeated from the previous result up
    to ``n_iterations`` times or until a pass changes nothing; the best restart is returned.

    Parameters
    ----------
    G : SignedGraph
    resolution, resolution_neg : float >= 0, default=1.0 and None (= ``resolution``)
    weight : {"weight", "sign"}, default="weight"
    n_restarts : int >= 1, default=8
        Independent randomised runs (node orders); the best modularity wins.
    n_iterations : int >= 1, default=10
    seed : int, Generator or None, default=None
        Restart ``r`` depends only on ``(seed, r)``.

    Returns
    -------
    Communities

    Raises
    ------
    InvalidParameterError
        Bad resolutions, counts or seed.
    GraphError
        The graph has no non-zero edge.

    Notes
    -----
    Complexity about O(nnz) per sweep of local moving on the projection; numba, one thread.
    Written for netstruct (permissive licence); the tests check it against ``leidenalg``
    (GPL, test-only) on the same objective.

    References
    ----------
    Traag, Waltman & van Eck, "From Louvain to Leiden", Sci. Rep. 9, 5233 (2019).

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> W = np.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> G = ns.SignedGraph({"name": list("abcd")}, [ns.make_block(name="w", weight=W, sources=[0, 1], targets=[2, 3])])
    >>> C = ns.signed_communities(G, seed=0)
    >>> C.n_communities, round(C.modularity, 3), bool(C.membership[0] == C.membership[2])
    (2, 0.5, True)
    """
    func = "signed_communities"
    g, gn = _check_resolutions(resolution, resolution_neg, func)
    n_restarts = int(
        check_scalar(n_restarts, "n_restarts", func, kind=numbers.Integral, min_value=1)
    )
    n_iterations = int(
        check_scalar(n_iterations, "n_iterations", func, kind=numbers.Integral, min_value=1)
    )
    seeds = spawn_seeds(check_random_state(seed, func=func), n_restarts, func=func)
    P = _as_projection(G, weight, func)
    return _optimise(P, g, gn, seeds, n_iterations)


def _optimise(
    P: SignedProjection, g: float, gn: float, seeds: np.ndarray, n_iterations: int
) -> Communities:
    """Best of the restarts (inputs already validated)."""
    from ..backends.numba.communities import signed_leiden

    args = P.kernel_args(g, gn)
    start = np.arange(P.n_units, dtype=np.int64)
    best, best_h = start, -np.inf
    for s in seeds:
        memb, h = signed_leiden(*args, start, np.uint64(s), n_iterations)
        if h > best_h:
            best, best_h = memb, h
    best.setflags(write=False)
    node = best[P.node_unit]
    node.setflags(write=False)
    return Communities(node, best, float(best_h / P.total_weight), g, gn, P)


@dataclass(frozen=True, eq=False)
class Clusterability:
    """Optimised signed modularity of a graph against the same optimiser on null-model samples.

    Attributes
    ----------
    observed : float
    null : ndarray of float64, shape (n_samples,)
    model : str
    z : float
        ``(observed - mean(null)) / sd(null)``; NaN when the null has no spread.
    p_value : float
        One-sided empirical ``(1 + #{null >= observed}) / (n_samples + 1)``.
    communities : Communities
        The partition of the observed graph.
    """

    observed: float
    null: np.ndarray
    model: str
    z: float
    p_value: float
    communities: Communities

    def row(self) -> dict[str, float | str | int]:
        """The summary as one table row."""
        return {
            "null model": self.model,
            "observed Q": self.observed,
            "null mean": float(self.null.mean()),
            "null sd": float(self.null.std(ddof=1)) if self.null.size > 1 else float("nan"),
            "z": self.z,
            "p": self.p_value,
            "samples": int(self.null.size),
        }


@renamed_parameters("clusterability", layers="blocks")
def clusterability(
    G: SignedGraph,
    *,
    model: str = "G-left",
    n_samples: int = 20,
    resolution: float = 1.0,
    resolution_neg: float | None = None,
    weight: str = "weight",
    n_restarts: int = 2,
    n_iterations: int = 10,
    blocks: int | str | Iterable[int | str] | None = None,
    seed: int | np.random.Generator | None = None,
) -> Clusterability:
    """Is ``G`` more modular than its null models? Optimised ``Q`` against a null ensemble.

    The ensemble is drawn with :func:`netstruct.randomize_ensemble` (``model``, ``blocks``) and
    every sample is optimised like the graph itself, so the comparison is fair to the optimiser.

    Parameters
    ----------
    G : SignedGraph
    model : str, default="G-left"
        A null model of :data:`netstruct.algorithms.randomize.NULL_MODELS`; ``"G-left"`` keeps
        every node's signed degrees and each input node's weights.
    n_samples : int >= 2, default=20
    resolution, resolution_neg, weight, n_restarts, n_iterations : see :func:`signed_communities`.
    blocks : blocks to randomize (default: all).
    seed : int, Generator or None, default=None

    Returns
    -------
    Clusterability

    Examples
    --------
    >>> import netstruct as ns
    >>> G = ns.from_torch(ns.training.mlp([6, 5, 3], seed=0))
    >>> res = ns.clusterability(G, model="A", n_samples=5, seed=0)
    >>> res.null.shape, 0 < res.p_value <= 1
    ((5,), True)
    """
    from .randomize import randomize_ensemble

    func = "clusterability"
    check_graph(G, func)
    g, gn = _check_resolutions(resolution, resolution_neg, func)
    weight = check_choice(weight, "weight", func, _WEIGHTS)
    n_samples = int(check_scalar(n_samples, "n_samples", func, kind=numbers.Integral, min_value=2))
    n_restarts = int(
        check_scalar(n_restarts, "n_restarts", func, kind=numbers.Integral, min_value=1)
    )
    n_iterations = int(
        check_scalar(n_iterations, "n_iterations", func, kind=numbers.Integral, min_value=1)
    )
    rng = check_random_state(seed, func=func)
    seeds = spawn_seeds(rng, n_restarts * (n_samples + 1), func=func).reshape(
        n_samples + 1, n_restarts
    )
    obs = _optimise(_as_projection(G, weight, func), g, gn, seeds[0], n_iterations)
    ens = randomize_ensemble(G, model, n_samples, blocks=blocks, seed=rng)
    null = np.empty(n_samples)
    for k in range(n_samples):
        parts = []
        for b in G.blocks:
            w = ens.weights[b.name][k] if b.name in ens.weights else b.weight
            parts.append(w.reshape(-1) if b.is_dense else w[b.mask])
        P = _project(G, weight, np.concatenate(parts) if parts else None)
        null[k] = (
            _optimise(P, g, gn, seeds[k + 1], n_iterations).modularity
            if P.total_weight > 0
            else 0.0
        )
    sd = float(null.std(ddof=1))
    z = (obs.modularity - float(null.mean())) / sd if sd > 0 else float("nan")
    p = float((1 + np.count_nonzero(null >= obs.modularity)) / (n_samples + 1))
    return Clusterability(obs.modularity, null, ens.model.name, float(z), p, obs)


def _lesion_updates(G: SignedGraph, lesioned: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
    """Block updates that cut the lesioned nodes off (rows, biases and columns zeroed)."""
    upd = {}
    for i, b in enumerate(G.blocks):
        rows, cols = lesioned[b.targets], lesioned[b.sources]
        if not (rows.any() or cols.any()):
            continue
        w = np.array(b.weight)
        w[rows, :] = 0.0
        w[:, cols] = 0.0
        ch: dict[str, np.ndarray] = {"weight": w}
        if b.bias is not None:
            bias = np.array(b.bias)
            bias[rows] = 0.0
            ch["bias"] = bias
        upd[i] = ch
    return upd


def _predict(G: SignedGraph, X: np.ndarray) -> np.ndarray:
    """Predicted labels of the network ``G`` (its re-imported torch module on ``X``)."""
    from ..convert.to_torch import to_torch
    from ..training import predict

    X = np.asarray(X)
    n_in = int(np.count_nonzero(G.node_column("kind") == "input"))
    if X.ndim > 2 and int(np.prod(X.shape[1:])) == n_in:  # images for an MLP: flat rows
        X = X.reshape(len(X), n_in)
    out = np.asarray(predict(to_torch(G), X))
    return out.argmax(-1) if out.ndim == 2 else out


def community_lesion(
    G: SignedGraph,
    communities: Communities | object,
    X: object,
    y: object,
    *,
    n_random: int = 0,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Prune each community's hidden units and record the test accuracy per class.

    A lesion cuts the community's hidden units (and their gate rows) off the network: their
    incoming weights, biases and outgoing weights are set to zero (for ReLU, tanh and LSTM units
    the unit then outputs 0). Input and output units are never lesioned. With ``n_random > 0``,
    each lesion is compared with ``n_random`` random sets of hidden units of the same size drawn
    layer by layer (the same number per layer group).

    Parameters
    ----------
    G : SignedGraph
        A classifier: the batched evaluator's feed-forward chain, or any graph
        :func:`netstruct.to_torch` rebuilds (recurrent models take ``X`` as sequences).
    communities : Communities or array of int of shape (n_nodes,)
    X : array-like
        Test inputs.
    y : array-like of int, shape (n_samples,)
    n_random : int >= 0, default=0
    seed : int, Generator or None, default=None
        Draws the random control sets.

    Returns
    -------
    DataFrame
        One row per (community, class): ``community``, ``hidden units``, ``class``,
        ``baseline`` (intact accuracy on that class), ``accuracy``, ``drop`` (baseline minus
        accuracy) and, with controls, ``random drop`` (mean over the random sets) and
        ``excess drop``. Class ``"all"`` rows give the overall accuracy.

    Examples
    --------
    >>> import numpy as np, netstruct as ns
    >>> ds = ns.datasets.load_iris()
    >>> m = ns.training.mlp([4, 8, 3], seed=0)
    >>> _ = ns.training.train(m, ds.X_train, ds.y_train, epochs=20, seed=0, progress=False)
    >>> G = ns.from_torch(m)
    >>> df = ns.community_lesion(G, ns.signed_communities(G, seed=0), ds.X_test, ds.y_test)
    >>> sorted(set(df["class"].astype(str)))[:2], bool((df["drop"] >= -1).all())
    (['0', '1'], True)
    """
    func = "community_lesion"
    check_graph(G, func)
    labels = np.asarray(
        communities.membership if isinstance(communities, Communities) else communities
    )
    if labels.shape != (G.n_nodes,) or not np.issubdtype(labels.dtype, np.integer):
        raise param_error(
            "communities",
            func,
            f"a Communities result or an int array of shape ({G.n_nodes},)",
            f"shape {labels.shape}",
        )
    n_random = int(check_scalar(n_random, "n_random", func, kind=numbers.Integral, min_value=0))
    rng = check_random_state(seed, func=func)
    Xa = np.asarray(X, dtype=np.float32)
    ya = np.asarray(y)
    if ya.ndim != 1 or len(ya) != len(Xa) or not np.issubdtype(ya.dtype, np.integer):
        raise param_error(
            "y", func, f"an int array with one label per row of X ({len(Xa)})", f"shape {ya.shape}"
        )
    kind = G.node_column("kind")
    unit = G.node_column("unit")
    hidden_unit = kind[unit] == "hidden"  # node belongs to a hidden unit (gate rows included)
    unit_labels = labels[unit]
    group = G.node_column("group")[unit]
    classes = np.unique(ya)

    def per_class(pred: np.ndarray) -> dict[object, float]:
        out: dict[object, float] = {c: float((pred[ya == c] == c).mean()) for c in classes}
        out["all"] = float((pred == ya).mean())
        return out

    base = per_class(_predict(G, Xa))
    hidden_units = np.flatnonzero((kind == "hidden") & (np.arange(G.n_nodes) == unit))
    rows = []
    for c in np.unique(unit_labels[hidden_units]):
        lesioned = hidden_unit & (unit_labels == c)
        acc = per_class(_predict(G.replace_blocks(_lesion_updates(G, lesioned)), Xa))
        ctrl: list[dict[object, float]] = []
        members = hidden_units[unit_labels[hidden_units] == c]
        for _ in range(n_random):
            pick = np.zeros(G.n_nodes, dtype=bool)
            for grp in np.unique(group[members]):
                pool = hidden_units[group[hidden_units] == grp]
                pick[rng.choice(pool, size=int((group[members] == grp).sum()), replace=False)] = (
                    True
                )
            ctrl.append(
                per_class(
                    _predict(G.replace_blocks(_lesion_updates(G, hidden_unit & pick[unit])), Xa)
                )
            )
        for cls in [*classes, "all"]:
            row = {
                "community": int(c),
                "hidden units": int(members.size),
                "class": cls,
                "baseline": base[cls],
                "accuracy": acc[cls],
                "drop": base[cls] - acc[cls],
            }
            if ctrl:
                row["random drop"] = float(np.mean([base[cls] - a[cls] for a in ctrl]))
                row["excess drop"] = row["drop"] - row["random drop"]
            rows.append(row)
    return pd.DataFrame(rows)

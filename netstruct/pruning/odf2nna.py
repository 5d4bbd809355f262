"""ODF2NNA-style useful-unit pruning of dense feed-forward networks.

Balderas, Lastra and Benítez (Neural Networks 2024, arXiv:2312.10560) build a small dense
network from a large trained one by keeping, layer by layer, the hidden units whose output
varies over the data, copying their trained weights and retraining briefly. The paper's
method section was not available; this module implements the reconstruction of
``specs/odf2nna.md`` (an "ODF2NNA-style" method, not a reproduction of the paper's numbers):

* variability: population std (``ddof=0``) of each unit's post-activation output over the
  training inputs, computed in float64 (options: variance, coefficient of variation, median
  absolute deviation);
* threshold per layer from ε: ``"mean"`` (τ = ε·mean σ, default), ``"max"``, ``"quantile"``,
  ``"absolute"``; a unit is useful iff it is not constant and its score is ≥ τ, so dead and
  constant units always go;
* progressive scoring (default): layer ``l`` is scored through the already-pruned layers
  ``< l`` (with removed units replaced by their means); ``"static"`` scores every layer on the
  untouched model;
* removed units' means are folded into the downstream biases (``fold=True``), which is exact
  for constant units;
* the result is a :class:`~netstruct.pruning.PruningPlan` applied and shrunk: a physically
  smaller model with the kept units' trained weights.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import GraphError, InvalidParameterError, NetstructWarning, param_error
from ..graphs.signed import SignedGraph
from ..utils.random import check_random_state
from ..utils.validation import check_choice, check_scalar
from .magnitude import count_params
from .plan import PruningPlan

__all__ = [
    "odf2nna",
    "ODF2NNAResult",
    "LayerDecision",
    "activation_stats",
    "odf2nna_sweep",
    "useful_units",
    "EpsChoice",
    "choose_eps",
    "select_eps",
    "odf2nna_protocol",
]

_RULES = ("mean", "max", "quantile", "absolute")
_STATS = ("std", "var", "cv", "mad")


def _activation(name: str, layer: int):
    """The map of a hidden layer's activation label, from its layer handler."""
    from ..convert.elementwise import activation_map, activation_parts

    try:
        parts = activation_parts(name)
    except GraphError as exc:
        raise GraphError(
            f"odf2nna cannot evaluate the activation of hidden layer {layer}: {exc}"
        ) from None
    if any(not h.elementwise for h, _ in parts):
        raise GraphError(
            f"odf2nna needs element-wise activations; hidden layer {layer} uses {name!r}."
        )
    return activation_map(name)


@dataclass
class _Chain:
    blocks: list[Any]
    acts: list[Any]
    layer_nodes: list[np.ndarray]  # node ids per layer, inputs first, outputs last


def _chain(G: SignedGraph, func: str) -> _Chain:
    """Check that ``G`` is a dense feed-forward chain ``Linear -> act -> ... -> Linear``."""
    kind = G.node_column("kind")
    unit = G.node_column("unit")
    blocks = list(G.blocks)
    hint = f"{func} handles dense feed-forward networks (nn.Linear layers with elementwise activations)"
    if not blocks:
        raise GraphError(f"{hint}; this graph has no weight blocks.")
    inputs = np.flatnonzero(kind == "input")
    prev = inputs
    layers = [inputs]
    acts = []
    for i, b in enumerate(blocks):
        if b.delay != 0 or not np.array_equal(b.sources, prev):
            raise GraphError(
                f"{hint}; block {b.name!r} does not read exactly the previous layer's units."
            )
        tk = kind[b.targets]
        last = i == len(blocks) - 1
        want = "output" if last else "hidden"
        if not np.all(tk == want) or np.any(unit[b.targets] != b.targets):
            raise GraphError(
                f"{hint}; block {b.name!r} feeds {sorted(set(tk))} nodes, expected only {want!r} units."
            )
        act_names = set(G.node_column("activation")[b.targets])
        if len(act_names) != 1:
            raise GraphError(
                f"{hint}; the units of block {b.name!r} have mixed activations {sorted(act_names)}."
            )
        acts.append(_activation(act_names.pop(), i + 1))
        prev = b.targets
        layers.append(b.targets)
    return _Chain(blocks, acts, layers)


class _Stats:
    """Streaming float64 column mean/std (Chan's parallel merge) plus min and max."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.lo = np.full(width, np.inf)
        self.hi = np.full(width, -np.inf)

    def update(self, h: np.ndarray) -> None:
        nb = h.shape[0]
        if nb == 0:
            return
        mb = h.mean(axis=0)
        m2b = ((h - mb) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n
        self.lo = np.minimum(self.lo, h.min(axis=0))
        self.hi = np.maximum(self.hi, h.max(axis=0))

    @property
    def std(self) -> np.ndarray:
        s = np.sqrt(np.maximum(self.m2 / max(self.n, 1), 0.0))
        s[self.lo == self.hi] = 0.0
        return s


@dataclass
class LayerDecision:
    """Scores and decision for one hidden layer.

    Attributes
    ----------
    layer : int
        Position of the layer (1 = first hidden layer).
    module : str
        Module that computes the layer.
    sigma, mean : ndarray of shape (n_units,)
        Population std and mean of each unit's output over the scoring data (float64).
    score : ndarray of shape (n_units,)
        The statistic compared with ``tau`` (``sigma`` for ``stat="std"``).
    tau : float
        Threshold from ε.
    constant : ndarray of bool
        Units constant on the data (always removed).
    kept, removed : ndarray of int
        Unit indices within the layer.
    guard : bool
        True when the width guard kept units that failed the test.
    """

    layer: int
    module: str
    sigma: np.ndarray
    mean: np.ndarray
    score: np.ndarray
    tau: float
    constant: np.ndarray
    kept: np.ndarray
    removed: np.ndarray
    guard: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "layer": self.layer,
            "module": self.module,
            "tau": float(self.tau),
            "guard": bool(self.guard),
            "sigma": self.sigma.tolist(),
            "mean": self.mean.tolist(),
            "score": self.score.tolist(),
            "constant": self.constant.tolist(),
            "kept": self.kept.tolist(),
            "removed": self.removed.tolist(),
        }


@dataclass
class ODF2NNAResult:
    """Outcome of :func:`odf2nna`.

    Attributes
    ----------
    graph : SignedGraph
        The refined (shrunk) graph: kept units only, their trained weights, folded biases.
        ``netstruct.to_torch(result.graph)`` (or :meth:`model`) gives physically smaller Linear layers.
    scored : SignedGraph
        The general graph with node attributes ``var_sigma``, ``var_mean``, ``var_n``,
        ``useful`` and ``constant`` (query them: ``"kind == 'hidden' and not useful"``).
    plan : PruningPlan
        One step per layer: removed units, the reason (threshold) and folded constants.
    layers : list of LayerDecision
    widths_before, widths_after : list of int
        Layer widths (inputs first) of the general and refined models.
    params_before, params_after : int
        Parameter counts (weights and biases).
    settings : dict
        eps, rule, stat, mode, fold, tolerances, number of scoring samples and the seed.
    """

    graph: SignedGraph
    scored: SignedGraph
    plan: PruningPlan
    layers: list[LayerDecision]
    widths_before: list[int]
    widths_after: list[int]
    params_before: int
    params_after: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def reduction(self) -> float:
        """Share of parameters removed, in [0, 1]."""
        return 1.0 - self.params_after / self.params_before if self.params_before else 0.0

    @property
    def index_maps(self) -> list[np.ndarray]:
        """Per hidden layer, the old unit index at each new position."""
        return [d.kept.copy() for d in self.layers]

    def model(self) -> Any:
        """The refined torch module (physically smaller, eval mode)."""
        from ..convert.to_torch import to_torch

        return to_torch(self.graph)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable report: settings, per-layer scores and decisions, parameter counts."""
        return {
            "settings": dict(self.settings),
            "widths_before": self.widths_before,
            "widths_after": self.widths_after,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "reduction": self.reduction,
            "layers": [d.to_dict() for d in self.layers],
        }

    def __repr__(self) -> str:
        return (
            f"<ODF2NNAResult {'-'.join(map(str, self.widths_before))} -> {'-'.join(map(str, self.widths_after))}, "
            f"{self.params_before} -> {self.params_after} parameters ({100 * self.reduction:.1f} % removed)>"
        )


def _as_graph(model: Any, func: str) -> SignedGraph:
    if isinstance(model, SignedGraph):
        return model
    if hasattr(model, "named_parameters"):
        from ..convert.from_torch import from_torch

        return from_torch(model)
    raise param_error(
        "model", func, "a torch module or a netstruct.SignedGraph", type(model).__name__
    )


def _check_X(X: Any, n_in: int, func: str) -> np.ndarray:
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim != 2 or Xa.shape[1] != n_in or Xa.shape[0] == 0:
        raise param_error(
            "X", func, f"a non-empty 2-D array with {n_in} columns", f"shape {Xa.shape}"
        )
    if not np.isfinite(Xa).all():
        raise param_error("X", func, "finite", "NaN or infinite values")
    return Xa


def _layer_pass(
    H_prev: np.ndarray, W: np.ndarray, b: np.ndarray, act, batch_size: int, store: bool
):
    st = _Stats(W.shape[0])
    buf = np.empty((H_prev.shape[0] if store else 0, W.shape[0]))
    for s in range(0, H_prev.shape[0], batch_size):
        h = act(H_prev[s : s + batch_size] @ W.T + b)
        st.update(h)
        if store:
            buf[s : s + batch_size] = h
    return st, (buf if store else None)


def activation_stats(model: Any, X: Any, *, batch_size: int = 4096) -> pd.DataFrame:
    """Per-node mean, population std (float64) and sample count of every unit's output on ``X``.

    Parameters
    ----------
    model : torch module or SignedGraph
        A dense feed-forward network (``Linear`` layers with elementwise activations).
    X : array of shape (n_samples, n_inputs)
    batch_size : int, default=4096

    Returns
    -------
    DataFrame indexed by node id with columns ``mean``, ``std``, ``n``.

    Examples
    --------
    >>> import numpy as np, torch, netstruct as ns
    >>> lin = torch.nn.Linear(1, 1)
    >>> with torch.no_grad():
    ...     _ = lin.weight.fill_(1.0), lin.bias.fill_(0.0)
    >>> activation_stats(lin, np.array([[1.0], [2.0], [3.0], [4.0]]))["std"].round(6).tolist()
    [1.118034, 1.118034]
    """
    func = "activation_stats"
    G = _as_graph(model, func)
    ch = _chain(G, func)
    batch_size = int(check_scalar(batch_size, "batch_size", func, kind=int, min_value=1))
    H = _check_X(X, len(ch.layer_nodes[0]), func)
    rows = np.zeros((G.n_nodes, 3))
    st = _Stats(H.shape[1])
    st.update(H)
    rows[ch.layer_nodes[0]] = np.c_[st.mean, st.std, np.full(H.shape[1], st.n)]
    for i, (b, act) in enumerate(zip(ch.blocks, ch.acts)):
        bias = np.zeros(b.shape[0]) if b.bias is None else b.bias.astype(np.float64)
        st, H = _layer_pass(H, b.weight.astype(np.float64), bias, act, batch_size, True)
        rows[ch.layer_nodes[i + 1]] = np.c_[st.mean, st.std, np.full(b.shape[0], st.n)]
    df = pd.DataFrame(rows, columns=["mean", "std", "n"])
    df["n"] = df["n"].astype(np.int64)
    df.index.name = "node"
    return df


def _score(stat: str, st: _Stats, H: np.ndarray | None, cv_floor: float) -> np.ndarray:
    sigma = st.std
    if stat == "std":
        return sigma
    if stat == "var":
        return sigma**2
    if stat == "cv":
        return sigma / np.maximum(np.abs(st.mean), cv_floor)
    assert H is not None, "the MAD score needs the layer's stored activations"
    med = np.median(H, axis=0)
    return np.median(np.abs(H - med), axis=0)


def _threshold(score: np.ndarray, eps: float, rule: str) -> float:
    if rule == "mean":
        return eps * float(score.mean())
    if rule == "max":
        return eps * float(score.max())
    if rule == "quantile":
        return float(np.quantile(score, eps))
    return float(eps)


def useful_units(
    score: np.ndarray,
    sigma: np.ndarray,
    mean: np.ndarray,
    *,
    eps: float,
    rule: str = "mean",
    tol_abs: float = 0.0,
    tol_rel: float = 1e-6,
    min_units: int = 1,
) -> tuple[np.ndarray, float, np.ndarray, bool]:
    """The ε rule for one layer: which units are useful (inputs already validated).

    Returns ``(useful mask, tau, constant mask, guard fired)``. A unit is useful iff it is not
    constant (``sigma > tol_abs + tol_rel * max(1, |mean|)``) and ``score >= tau`` (compared
    with a relative slack of 1e-12, so boundary values of ε behave as exact arithmetic says).
    If fewer than ``min_units`` pass, the ``min_units`` units with the largest score are kept
    (ties: lowest index).

    Examples
    --------
    >>> s = np.array([0.5, 0.5, 0.0, 0.0, 0.5])
    >>> keep, tau, const, guard = useful_units(s, s, np.zeros(5), eps=1.0)
    >>> keep.tolist(), round(tau, 6), guard
    ([True, True, False, False, True], 0.3, False)
    """
    constant = ~(sigma > tol_abs + tol_rel * np.maximum(1.0, np.abs(mean)))
    tau = _threshold(score, eps, rule)
    useful = ~constant & (score >= tau - 1e-12 * max(1.0, abs(tau)))
    guard = False
    if int(useful.sum()) < min_units:
        order = np.lexsort((np.arange(score.size), -score))
        useful = np.zeros(score.size, dtype=bool)
        useful[order[: min(min_units, score.size)]] = True
        guard = True
    return useful, tau, constant, guard


def odf2nna(
    model: Any,
    X: Any,
    *,
    eps: float = 0.5,
    rule: str = "mean",
    stat: str = "std",
    mode: str = "progressive",
    fold: bool = True,
    min_units: int = 1,
    tol_abs: float = 0.0,
    tol_rel: float = 1e-6,
    cv_floor: float = 1e-12,
    max_samples: int | None = 50_000,
    batch_size: int = 4096,
    seed: Any = 0,
) -> ODF2NNAResult:
    """Keep the useful hidden units of a dense network and build the smaller refined model.

    Parameters
    ----------
    model : torch module or SignedGraph
        The trained general model: ``Linear`` layers with elementwise activations
        (a ``nn.Sequential`` MLP). Inputs and outputs are never pruned.
    X : array of shape (n_samples, n_inputs)
        Training inputs used for scoring (never test data; labels are not needed).
    eps : float, default=0.5
        The pruning parameter ε: ``>= 0`` for rules ``"mean"`` and ``"absolute"``, in
        ``[0, 1]`` for ``"max"`` and ``"quantile"``. With ε = 0 only constant units go.
    rule : {"mean", "max", "quantile", "absolute"}, default="mean"
        Threshold per layer: ε·mean score, ε·max score, the ε-quantile of the scores, or ε.
    stat : {"std", "var", "cv", "mad"}, default="std"
        Variability statistic of a unit's post-activation output (population std, variance,
        std / |mean|, median absolute deviation).
    mode : {"progressive", "static"}, default="progressive"
        Score layer ``l`` through the already-pruned layers before it, or on the untouched model.
    fold : bool, default=True
        Fold the mean output of removed units into the downstream biases (exact for constant
        units). ``False`` drops them.
    min_units : int, default=1
        Width guard: if fewer units pass, keep this many with the largest score (warns).
    tol_abs, tol_rel : float
        A unit is constant when ``sigma <= tol_abs + tol_rel * max(1, |mean|)`` (or when all its
        outputs are equal). Use ``tol_rel=1e-5`` for activations computed in float32.
    cv_floor : float, default=1e-12
        Denominator floor of ``stat="cv"``.
    max_samples : int or None, default=50_000
        Score on a seeded random subsample of at most this many rows (None: all rows).
    batch_size : int, default=4096
    seed : int, Generator or None, default=0
        Seeds the subsample.

    Returns
    -------
    ODF2NNAResult

    Raises
    ------
    InvalidParameterError
        ε out of range for the rule, unknown rule/stat/mode, bad ``X``.
    GraphError
        The model is not a dense feed-forward chain; folding into a layer without bias.

    Warns
    -----
    NetstructWarning
        When the width guard keeps units that failed the test (and says if the layer was constant).

    Notes
    -----
    Cost: one forward pass over the scoring data per hidden layer (progressive) or in total
    (static), in float64 numpy, shown as a progress bar over the layers (hidden with
    ``NETSTRUCT_PROGRESS=0`` or ``netstruct.config.progress = False``). Static mode makes each layer's kept set monotone in ε;
    progressive mode does not guarantee that. ODF2NNA keeps duplicate units and ignores
    outgoing weights (see the spec, §2.7).

    References
    ----------
    L. Balderas, M. Lastra, J. M. Benítez, "Optimizing Dense Feed-Forward Neural Networks",
    Neural Networks (2024), doi:10.1016/j.neunet.2023.12.015.

    Examples
    --------
    Example A of the spec: a dead unit (u2) and a constant unit (u3) go, the rest stay, and
    folding the constant keeps every output:

    >>> import numpy as np, torch, netstruct as ns
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[1., 0], [0, 1], [-1, -1], [0, 0], [1, 0]]))
    ...     _ = net[0].bias.copy_(torch.tensor([0., 0, -10, 2, 0]))
    ...     _ = net[2].weight.copy_(torch.tensor([[1., -2, 5, 0.5, 3]]))
    ...     _ = net[2].bias.fill_(0.1)
    >>> X = np.array([[0., 0], [0, 1], [1, 0], [1, 1]])
    >>> res = odf2nna(net, X, eps=0.0)
    >>> res.layers[0].kept.tolist(), res.widths_after
    ([0, 1, 4], [2, 3, 1])
    >>> res.model()(torch.tensor(X, dtype=torch.float32)).flatten().tolist()
    [1.100000023841858, -0.8999999761581421, 5.099999904632568, 3.0999999046325684]
    """
    func = "odf2nna"
    G = _as_graph(model, func)
    rule = check_choice(rule, "rule", func, _RULES)
    stat = check_choice(stat, "stat", func, _STATS)
    mode = check_choice(mode, "mode", func, ["progressive", "static"])
    if rule in ("max", "quantile"):
        eps = float(check_scalar(eps, "eps", func, min_value=0.0, max_value=1.0))
    else:
        eps = float(check_scalar(eps, "eps", func, min_value=0.0))
    if not isinstance(fold, bool):
        raise param_error("fold", func, "a bool", fold)
    min_units = int(check_scalar(min_units, "min_units", func, kind=int, min_value=1))
    tol_abs = float(check_scalar(tol_abs, "tol_abs", func, min_value=0.0))
    tol_rel = float(check_scalar(tol_rel, "tol_rel", func, min_value=0.0))
    cv_floor = float(check_scalar(cv_floor, "cv_floor", func, min_value=0.0, include_min=False))
    batch_size = int(check_scalar(batch_size, "batch_size", func, kind=int, min_value=1))
    if max_samples is not None:
        max_samples = int(check_scalar(max_samples, "max_samples", func, kind=int, min_value=1))
    ch = _chain(G, func)
    if len(ch.blocks) < 2:
        raise GraphError(
            f"{func}: the network has no hidden layer to prune (a single Linear layer)."
        )
    X = _check_X(X, len(ch.layer_nodes[0]), func)
    rng = check_random_state(seed, func=func)
    if max_samples is not None and X.shape[0] > max_samples:
        X = X[np.sort(rng.choice(X.shape[0], size=max_samples, replace=False))]
    n = X.shape[0]

    kind_names = G.node_column("name")
    stats_rows = {"var_sigma": np.zeros(G.n_nodes), "var_mean": np.zeros(G.n_nodes)}
    st0 = _Stats(X.shape[1])
    st0.update(X)
    stats_rows["var_sigma"][ch.layer_nodes[0]] = st0.std
    stats_rows["var_mean"][ch.layer_nodes[0]] = st0.mean
    useful_all = np.ones(G.n_nodes, dtype=bool)
    constant_all = np.zeros(G.n_nodes, dtype=bool)

    decisions: list[LayerDecision] = []
    plan = PruningPlan.for_graph(G)
    H_prog = X  # kept units of the previous layer (progressive)
    H_full = X  # all units of the previous layer (static)
    kept_prev = np.arange(X.shape[1])
    removed_prev = np.zeros(0, dtype=np.int64)
    const_prev = np.zeros(0)
    n_hidden = len(ch.blocks) - 1
    from tqdm.auto import tqdm

    from .._config import config

    layers_bar = tqdm(
        range(len(ch.blocks)),
        desc="odf2nna",
        unit="layer",
        leave=False,
        disable=not config.progress,
    )
    for li in layers_bar:
        b, act = ch.blocks[li], ch.acts[li]
        W = b.weight.astype(np.float64)
        bias = np.zeros(b.shape[0]) if b.bias is None else b.bias.astype(np.float64)
        last = li == n_hidden
        if mode == "static":
            st, H_full_next = _layer_pass(H_full, W, bias, act, batch_size, True)
            H_cur = H_full_next
        else:
            b_eff = bias + (W[:, removed_prev] @ const_prev if fold and removed_prev.size else 0.0)
            st, H_cur = _layer_pass(H_prog, W[:, kept_prev], b_eff, act, batch_size, True)
        nodes = ch.layer_nodes[li + 1]
        stats_rows["var_sigma"][nodes] = st.std
        stats_rows["var_mean"][nodes] = st.mean
        if last:
            break
        score = _score(stat, st, H_cur, cv_floor)
        keep, tau, constant, guard = useful_units(
            score,
            st.std,
            st.mean,
            eps=eps,
            rule=rule,
            tol_abs=tol_abs,
            tol_rel=tol_rel,
            min_units=min_units,
        )
        layer_no = li + 1
        module = str(G.node_column("module")[nodes[0]])
        if guard:
            extra = (
                " Every unit of the layer is constant on the data, so the network's output is constant."
                if constant.all()
                else ""
            )
            warnings.warn(
                f"odf2nna: fewer than min_units={min_units} units of hidden layer {layer_no} (module {module!r}) "
                f"pass the threshold (eps={eps}, rule={rule!r}); keeping the {int(keep.sum())} most variable.{extra}",
                NetstructWarning,
                stacklevel=2,
            )
        kept = np.flatnonzero(keep)
        removed = np.flatnonzero(~keep)
        decisions.append(
            LayerDecision(
                layer_no,
                module,
                st.std.copy(),
                st.mean.copy(),
                np.asarray(score, float).copy(),
                tau,
                constant,
                kept,
                removed,
                guard,
            )
        )
        useful_all[nodes] = keep
        constant_all[nodes] = constant
        if removed.size:
            sel = np.zeros(G.n_nodes, dtype=bool)
            sel[nodes[removed]] = True
            consts = (
                {str(kind_names[nodes[j]]): float(st.mean[j]) for j in removed} if fold else None
            )
            n_const = int(constant[removed].sum())
            plan = plan.remove_units(
                G,
                sel,
                constants=consts,
                reason=(
                    f"odf2nna: hidden layer {layer_no} (module {module!r}): {removed.size} units with "
                    f"{stat} < tau={tau:.6g} (eps={eps:g}, rule={rule!r}, mode={mode!r}); {n_const} constant"
                    + ("; means folded into downstream biases" if fold else "")
                ),
                meta={
                    "method": "odf2nna",
                    "layer": layer_no,
                    "tau": tau,
                    "eps": eps,
                    "rule": rule,
                    "stat": stat,
                },
            )
        if mode == "static":
            H_full = H_full_next
        else:
            H_prog = H_cur[:, kept]
        kept_prev, removed_prev, const_prev = kept, removed, st.mean[removed]
    layers_bar.close()

    scored = G.with_node_attrs(
        var_sigma=stats_rows["var_sigma"],
        var_mean=stats_rows["var_mean"],
        var_n=np.full(G.n_nodes, n),
        useful=useful_all,
        constant=constant_all,
    )
    refined = plan.apply(scored, shrink=True)
    if refined.n_nodes != G.n_nodes - sum(d.removed.size for d in decisions):  # shrink removed more
        names_left = set(refined.node_column("name").tolist())
        for d in decisions:
            nodes = ch.layer_nodes[d.layer]
            d.kept = np.array(
                [j for j in d.kept if kind_names[nodes[j]] in names_left], dtype=np.int64
            )
    widths_before = [len(x) for x in ch.layer_nodes]
    widths_after = [widths_before[0]] + [int(d.kept.size) for d in decisions] + [widths_before[-1]]
    settings = {
        "eps": eps,
        "rule": rule,
        "stat": stat,
        "mode": mode,
        "fold": fold,
        "min_units": min_units,
        "tol_abs": tol_abs,
        "tol_rel": tol_rel,
        "n_samples": int(n),
        "max_samples": max_samples,
        "seed": seed if isinstance(seed, (int, type(None))) else repr(seed),
    }
    return ODF2NNAResult(
        refined,
        scored,
        plan,
        decisions,
        widths_before,
        widths_after,
        count_params(G),
        count_params(refined),
        settings,
    )


def _retrain(
    model: Any, X: Any, y: Any, epochs: int, seed: int, train_kwargs: dict[str, Any]
) -> Any:
    from ..training import train

    kw = {"progress": False, **train_kwargs}
    train(model, X, y, epochs=epochs, seed=seed, **kw)
    return model


def _reinit(model: Any, seed: int) -> Any:
    import torch

    torch.manual_seed(int(seed))
    for m in model.modules():
        if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False)):
            m.reset_parameters()
    return model


def odf2nna_sweep(
    model: Any,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    eps_values: Any,
    *,
    general_epochs: int,
    light_epochs: int | None = None,
    scratch: bool = True,
    X_val: Any = None,
    y_val: Any = None,
    train_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    **odf2nna_kwargs: Any,
) -> pd.DataFrame:
    """ε sweep: refine, retrain lightly, compare with the refined architecture trained from scratch.

    For each ε, :func:`odf2nna` refines the trained ``model``; the refined model is evaluated
    before and after light retraining (``light_epochs``, default ``ceil(0.1 * general_epochs)``,
    all parameters trainable, same ``train_kwargs``). With ``scratch=True`` the refined
    architecture is re-initialised (seed ``seed + 1``) and trained with the light budget and
    with the full ``general_epochs`` budget (spec §2.5).

    Parameters
    ----------
    model : torch module
        The trained general model (left unchanged).
    X_train, y_train, X_test, y_test : arrays
        Scoring/training data and held-out test data.
    eps_values : sequence of float
    general_epochs : int
        Epochs the general model was trained for.
    light_epochs : int, optional
    scratch : bool, default=True
    X_val, y_val : arrays, optional
        Validation data: adds ``acc_val_refined`` for choosing ε (never choose on test data).
    train_kwargs : dict, optional
        Passed to :func:`netstruct.training.train` (``lr``, ``batch_size``, ``optimizer`` ...).
    seed : int, default=0
    **odf2nna_kwargs
        Passed to :func:`odf2nna` (``rule``, ``mode``, ``fold`` ...).

    Returns
    -------
    DataFrame
        One row per ε: ``eps, widths, params_general, params_refined, reduction, acc_general,
        acc_refined_before, acc_refined, acc_scratch_light, acc_scratch_full`` (and
        ``acc_val_refined``).

    Examples
    --------
    >>> import netstruct as ns
    >>> from netstruct import datasets, training
    >>> ds = datasets.load_iris()
    >>> m = training.mlp([4, 16, 16, 3], seed=0)
    >>> _ = training.train(m, ds.X_train, ds.y_train, epochs=5, progress=False)
    >>> df = odf2nna_sweep(m, ds.X_train, ds.y_train, ds.X_test, ds.y_test, [0.0, 1.0],
    ...                    general_epochs=5, scratch=False)
    >>> df["params_refined"].is_monotonic_decreasing
    True
    """
    from ..convert.to_torch import to_torch
    from ..training import evaluate

    func = "odf2nna_sweep"
    general_epochs = int(
        check_scalar(general_epochs, "general_epochs", func, kind=int, min_value=1)
    )
    if light_epochs is None:
        light_epochs = max(1, math.ceil(0.1 * general_epochs))
    light_epochs = int(check_scalar(light_epochs, "light_epochs", func, kind=int, min_value=1))
    eps_list = [float(e) for e in np.atleast_1d(np.asarray(eps_values, dtype=float))]
    if not eps_list:
        raise InvalidParameterError(
            "The 'eps_values' parameter of odf2nna_sweep must hold at least one value."
        )
    train_kwargs = dict(train_kwargs or {})
    G = _as_graph(model, func)
    acc_general = evaluate(to_torch(G), X_test, y_test)
    rows = []
    for eps in eps_list:
        res = odf2nna(G, X_train, eps=eps, seed=seed, **odf2nna_kwargs)
        refined = res.model()
        row = {
            "eps": eps,
            "widths": "-".join(map(str, res.widths_after)),
            "params_general": res.params_before,
            "params_refined": res.params_after,
            "reduction": res.reduction,
            "acc_general": acc_general,
            "acc_refined_before": evaluate(refined, X_test, y_test),
        }
        refined.train()
        _retrain(refined, X_train, y_train, light_epochs, seed, train_kwargs)
        row["acc_refined"] = evaluate(refined, X_test, y_test)
        if X_val is not None:
            row["acc_val_refined"] = evaluate(refined, X_val, y_val)
        if scratch:
            for name, ep in (("light", light_epochs), ("full", general_epochs)):
                fresh = _reinit(res.model(), seed + 1)
                fresh.train()
                _retrain(fresh, X_train, y_train, ep, seed + 1, train_kwargs)
                row[f"acc_scratch_{name}"] = evaluate(fresh, X_test, y_test)
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class EpsChoice:
    """The ε chosen on a validation split by :func:`select_eps`.

    Attributes
    ----------
    eps : float
        The largest-reduction ε whose refined, lightly retrained model is within ``tolerance``
        of the general model on the validation split (ties: the smaller ε).
    tolerance : float
        Accuracy tolerance (fraction, e.g. 0.01 = one point).
    within_tolerance : bool
        False when no ε of the grid met the tolerance; ``eps`` is then the one with the best
        validation accuracy.
    validation : DataFrame
        One row per ε of the grid, validation accuracies only (``acc_val_general``,
        ``acc_val_refined_before``, ``acc_val_refined``), ``reduction``, ``widths``.
    """

    eps: float
    tolerance: float
    within_tolerance: bool
    validation: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for provenance records)."""
        return {
            "eps": self.eps,
            "tolerance": self.tolerance,
            "within_tolerance": self.within_tolerance,
            "validation": self.validation.to_dict("records"),
        }


def choose_eps(table: pd.DataFrame, tolerance: float) -> tuple[float, bool]:
    """The ε rule of :func:`select_eps` on a validation table (pure; no data).

    Among the rows with ``acc_val_refined >= acc_val_general - tolerance``, the one with the
    largest ``reduction`` (ties: smaller ε); if none qualifies, the best ``acc_val_refined``.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"eps": [0.5, 1.0, 1.2], "reduction": [0.5, 0.8, 0.9],
    ...                   "acc_val_general": 0.95, "acc_val_refined": [0.95, 0.945, 0.90]})
    >>> choose_eps(t, 0.01)
    (1.0, True)
    """
    tol = float(check_scalar(tolerance, "tolerance", "choose_eps", min_value=0.0, max_value=1.0))
    ok = table["acc_val_refined"] >= table["acc_val_general"] - tol - 1e-12
    if ok.any():
        cand = table[ok].sort_values(["reduction", "eps"], ascending=[False, True], kind="stable")
        return float(cand["eps"].iloc[0]), True
    cand = table.sort_values(["acc_val_refined", "eps"], ascending=[False, True], kind="stable")
    return float(cand["eps"].iloc[0]), False


def select_eps(
    model: Any,
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    eps_grid: Any,
    *,
    tolerance: float = 0.01,
    general_epochs: int,
    light_epochs: int | None = None,
    train_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    **odf2nna_kwargs: Any,
) -> EpsChoice:
    """Choose ε on a validation split: the largest reduction within ``tolerance`` of the general model.

    Every ε of ``eps_grid`` is refined on ``X_train`` and lightly retrained as in
    :func:`odf2nna_sweep`, then evaluated on ``(X_val, y_val)`` only; the test split is not an
    argument, so it cannot influence the choice. Report the test numbers at the chosen ε with
    :func:`odf2nna_protocol` (which also trains the refined architecture from scratch).

    Parameters
    ----------
    model : torch module
        The trained general model (trained on ``X_train`` only, not on the validation split).
    X_train, y_train : arrays
        Scoring and retraining data.
    X_val, y_val : arrays
        Validation split, disjoint from the training and test data.
    eps_grid : sequence of float
        A fine grid, e.g. ``np.round(np.arange(0.0, 1.6, 0.05), 2)``.
    tolerance : float, default=0.01
        Largest accepted validation-accuracy loss against the general model (0.01 = 1 point).
    general_epochs, light_epochs, train_kwargs, seed, **odf2nna_kwargs
        As in :func:`odf2nna_sweep`.

    Returns
    -------
    EpsChoice

    Examples
    --------
    >>> import numpy as np
    >>> from netstruct import datasets, training
    >>> ds = datasets.load_iris()
    >>> Xf, yf, Xv, yv = ds.X_train[:90], ds.y_train[:90], ds.X_train[90:], ds.y_train[90:]
    >>> m = training.mlp([4, 16, 16, 3], seed=0)
    >>> _ = training.train(m, Xf, yf, epochs=5, progress=False)
    >>> ch = select_eps(m, Xf, yf, Xv, yv, [0.0, 0.5, 1.0], tolerance=0.05, general_epochs=5)
    >>> ch.eps in (0.0, 0.5, 1.0), sorted(ch.validation.columns)[:2]
    (True, ['acc_val_general', 'acc_val_refined'])
    """
    func = "select_eps"
    tol = float(check_scalar(tolerance, "tolerance", func, min_value=0.0, max_value=1.0))
    if X_val is None or y_val is None:
        raise param_error(
            "X_val", func, "a validation split (X_val, y_val) disjoint from the test set", None
        )
    table = odf2nna_sweep(
        model,
        X_train,
        y_train,
        X_val,
        y_val,
        eps_grid,
        general_epochs=general_epochs,
        light_epochs=light_epochs,
        scratch=False,
        train_kwargs=train_kwargs,
        seed=seed,
        **odf2nna_kwargs,
    )
    table = table.rename(
        columns={
            "acc_general": "acc_val_general",
            "acc_refined_before": "acc_val_refined_before",
            "acc_refined": "acc_val_refined",
        }
    )
    eps, ok = choose_eps(table, tol)
    if not ok:
        warnings.warn(
            f"{func}: no eps of the grid keeps the validation accuracy within {tol:g} of the general "
            f"model; eps={eps:g} (best validation accuracy) was chosen.",
            NetstructWarning,
            stacklevel=2,
        )
    return EpsChoice(eps, tol, ok, table)


def odf2nna_protocol(
    model: Any,
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    X_test: Any,
    y_test: Any,
    eps_grid: Any,
    *,
    tolerance: float = 0.01,
    general_epochs: int,
    light_epochs: int | None = None,
    train_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    **odf2nna_kwargs: Any,
) -> tuple[EpsChoice, dict[str, Any]]:
    """The headline protocol: ε chosen on validation, then test numbers beside the from-scratch control.

    First :func:`select_eps` (validation only); then, at the chosen ε, one
    :func:`odf2nna_sweep` row on the test split with ``scratch=True``: the refined model
    after light retraining and the same architecture re-initialised and trained with the light
    and the full budget. ``transfer_gain = acc_refined - acc_scratch_full`` says whether the
    copied weights add anything over training the small architecture directly.

    Returns
    -------
    choice : EpsChoice
    row : dict
        ``eps, tolerance, widths, params_general, params_refined, reduction, acc_general,
        acc_refined_before, acc_refined, acc_scratch_light, acc_scratch_full, transfer_gain``
        (test accuracies).

    Examples
    --------
    >>> from netstruct import datasets, training
    >>> ds = datasets.load_iris()
    >>> Xf, yf, Xv, yv = ds.X_train[:90], ds.y_train[:90], ds.X_train[90:], ds.y_train[90:]
    >>> m = training.mlp([4, 16, 16, 3], seed=0)
    >>> _ = training.train(m, Xf, yf, epochs=5, progress=False)
    >>> ch, row = odf2nna_protocol(m, Xf, yf, Xv, yv, ds.X_test, ds.y_test, [0.0, 1.0], tolerance=0.05,
    ...                            general_epochs=5)
    >>> row["eps"] == ch.eps, "transfer_gain" in row
    (True, True)
    """
    choice = select_eps(
        model,
        X_train,
        y_train,
        X_val,
        y_val,
        eps_grid,
        tolerance=tolerance,
        general_epochs=general_epochs,
        light_epochs=light_epochs,
        train_kwargs=train_kwargs,
        seed=seed,
        **odf2nna_kwargs,
    )
    test = odf2nna_sweep(
        model,
        X_train,
        y_train,
        X_test,
        y_test,
        [choice.eps],
        general_epochs=general_epochs,
        light_epochs=light_epochs,
        scratch=True,
        train_kwargs=train_kwargs,
        seed=seed,
        **odf2nna_kwargs,
    )
    row = {"eps": choice.eps, "tolerance": choice.tolerance, **test.iloc[0].to_dict()}
    row["transfer_gain"] = row["acc_refined"] - row["acc_scratch_full"]
    return choice, row

"""Lottery tickets: concave-regularised relaxed masks, iterative magnitude pruning, ticket training.

Reconstruction of Fracastoro, Fosson, Migliorati and Calafiore, "Playing the Lottery With
Concave Regularizers for Sparse Trainable Neural Networks" (IEEE TNNLS 2025,
arXiv:2501.11135) following ``specs/concave_lottery.md`` (the paper's method section was not
available; defaults are the spec's CPU protocol, not the paper's settings):

* every masked weight gets a gate ``m in [0, 1]``; the network computes with ``m ⊙ θ``; gates
  and weights are trained jointly on ``L(m ⊙ θ) + λ Σ r(m)`` — weights with SGD (momentum,
  weight decay, cosine schedule), gates with plain projected SGD (clamp to [0, 1], pruned
  gates stay 0), see :mod:`netstruct.pruning.regularizers`;
* binarise by threshold (``tau``) or exactly to a target sparsity (global top-k, ties broken
  by ``|m θ|`` then position);
* weights rewind to ``θ_k`` (``rewind_to`` iterations of dense training; 0 = initialisation);
  rounds with growing λ go deeper.

:func:`imp` is the iterative-magnitude-pruning baseline and :func:`train_ticket` trains a
ticket with its mask fixed. Every result is a pruned :class:`~netstruct.SignedGraph` built
through a :class:`~netstruct.pruning.PruningPlan`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._config import config
from ..exceptions import param_error
from ..graphs.signed import SignedGraph
from ..utils.deprecation import renamed_parameters
from ..utils.validation import check_choice, check_fraction, check_scalar
from .magnitude import block_masks, magnitude_plan, mask_plan
from .plan import PruningPlan
from .regularizers import Regularizer, projected_step, regularizer

__all__ = [
    "EdgeMask",
    "topk_mask",
    "TicketResult",
    "TrainedTicket",
    "learn_mask",
    "imp",
    "train_ticket",
    "he_normal_",
]


# ---------------------------------------------------------------------- masks
def topk_mask(
    scores: Mapping[str, np.ndarray],
    keep: float,
    *,
    tiebreak: Mapping[str, np.ndarray] | None = None,
    scope: str = "global",
) -> dict[str, np.ndarray]:
    """Keep exactly ``round(keep * d)`` entries with the largest scores (globally or per block).

    Ties are broken by ``tiebreak`` (larger first, e.g. ``|m θ|``), then by position (blocks in
    order, row-major), so the result is deterministic.

    Parameters
    ----------
    scores : mapping of name to array
    keep : float in [0, 1]
        Share of entries kept (density).
    tiebreak : mapping of name to array, optional
    scope : {"global", "layer"}

    Returns
    -------
    dict of name to bool array

    Examples
    --------
    >>> import numpy as np
    >>> out = topk_mask({"a": np.array([0.9, 0.1]), "b": np.array([0.5, 0.5, 0.2])}, 0.4)
    >>> {k: v.tolist() for k, v in out.items()}
    {'a': [True, False], 'b': [True, False, False]}
    """
    func = "topk_mask"
    keep = check_fraction(keep, "keep", func)
    check_choice(scope, "scope", func, ["global", "layer"])
    names = list(scores)
    out: dict[str, np.ndarray] = {}
    groups = [names] if scope == "global" else [[n] for n in names]
    for grp in groups:
        vals = (
            np.concatenate([np.asarray(scores[n], dtype=np.float64).ravel() for n in grp])
            if grp
            else np.zeros(0)
        )
        tb = (
            np.concatenate([np.asarray(tiebreak[n], dtype=np.float64).ravel() for n in grp])
            if tiebreak is not None and grp
            else np.zeros(vals.size)
        )
        k = int(round(keep * vals.size))
        order = np.lexsort((np.arange(vals.size), -tb, -vals))
        flat = np.zeros(vals.size, dtype=bool)
        flat[order[:k]] = True
        start = 0
        for n in grp:
            shape = np.shape(scores[n])
            size = int(np.prod(shape))
            out[n] = flat[start : start + size].reshape(shape)
            start += size
    return out


class EdgeMask(Mapping):
    """Relaxed gates per masked block (name -> float array in [0, 1]).

    Examples
    --------
    >>> import numpy as np
    >>> m = EdgeMask({"w": np.array([[0.0, 0.98], [0.5, 1.0]])})
    >>> m.natural_sparsity(), m.binarity(), m.per_layer_density()
    (0.5, 0.25, {'w': 0.5})
    """

    def __init__(self, gates: Mapping[str, np.ndarray]) -> None:
        self._gates = {k: np.asarray(v, dtype=np.float64) for k, v in gates.items()}

    def __getitem__(self, key: str) -> np.ndarray:
        return self._gates[key]

    def __iter__(self):
        return iter(self._gates)

    def __len__(self) -> int:
        return len(self._gates)

    def _all(self) -> np.ndarray:
        return (
            np.concatenate([g.ravel() for g in self._gates.values()])
            if self._gates
            else np.zeros(0)
        )

    def natural_sparsity(self, tau: float = 0.5) -> float:
        """Share of gates ``<= tau``."""
        a = self._all()
        return float((a <= tau).mean()) if a.size else 0.0

    def binarize(self, tau: float = 0.5) -> dict[str, np.ndarray]:
        """Keep masks ``m > tau``."""
        check_fraction(tau, "tau", "EdgeMask.binarize")
        return {k: g > tau for k, g in self._gates.items()}

    def topk(
        self, keep: float, *, weights: Mapping[str, np.ndarray] | None = None, scope: str = "global"
    ) -> dict[str, np.ndarray]:
        """Exactly ``round(keep * d)`` kept gates (see :func:`topk_mask`); ties by ``|m θ|`` when
        ``weights`` are given."""
        tb = (
            None
            if weights is None
            else {k: np.abs(g * np.asarray(weights[k])) for k, g in self._gates.items()}
        )
        return topk_mask(self._gates, keep, tiebreak=tb, scope=scope)

    def binarity(self, lo: float = 0.05, hi: float = 0.95) -> float:
        """Share of gates strictly inside ``(lo, hi)`` (0 = perfectly binary)."""
        a = self._all()
        return float(((a > lo) & (a < hi)).mean()) if a.size else 0.0

    def per_layer_density(self, tau: float = 0.5) -> dict[str, float]:
        """Share of gates ``> tau`` in each block."""
        return {k: float((g > tau).mean()) for k, g in self._gates.items()}


# ---------------------------------------------------------------------- results
@dataclass
class TicketResult:
    """A lottery ticket: a binary mask over the masked blocks and the rewind weights.

    Attributes
    ----------
    graph : SignedGraph
        The rewound weights ``θ_k`` with the mask applied (the untrained ticket);
        ``netstruct.to_torch(graph, prune_masks=True)`` gives a ``torch.nn.utils.prune`` module.
    plan : PruningPlan
        The removal as a replayable plan.
    mask : dict of str to bool array
        Kept entries per masked block.
    sparsity : float
        Share of removed entries over the masked blocks.
    natural_sparsity : float or None
        Share of gates ``<= tau`` before any top-k (learned masks only).
    gates : EdgeMask or None
        The relaxed gates of the last search round (learned masks only).
    history : DataFrame
        One row per round: sparsity, λ, binarity, loss, test accuracy when test data was given.
    epochs : int
        Training epochs spent finding the mask (the cost).
    settings : dict
    """

    graph: SignedGraph
    plan: PruningPlan
    mask: dict[str, np.ndarray]
    sparsity: float
    natural_sparsity: float | None
    gates: EdgeMask | None
    history: pd.DataFrame
    epochs: int
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<TicketResult {self.settings.get('method', '')}: sparsity {self.sparsity:.4f}, {self.epochs} epochs>"


@dataclass
class TrainedTicket:
    """A ticket trained with its mask fixed: the module, its pruned graph and the accuracy."""

    model: Any
    graph: SignedGraph
    accuracy: float | None
    loss: float


# ---------------------------------------------------------------------- torch helpers
def he_normal_(model: Any, *, seed: int = 0) -> Any:
    """He-normal weights and zero biases for every ``nn.Linear`` (in place; returns the model).

    Examples
    --------
    >>> import torch
    >>> m = he_normal_(torch.nn.Sequential(torch.nn.Linear(4, 3)), seed=0)
    >>> float(m[0].bias.detach().abs().sum())
    0.0
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear):
                std = math.sqrt(2.0 / mod.in_features)
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * std)
                if mod.bias is not None:
                    mod.bias.zero_()
    return model


def _tensors(X: Any, y: Any, func: str) -> tuple[Any, Any]:
    import torch

    Xa = np.asarray(X, dtype=np.float32)
    ya = np.asarray(y)
    if Xa.shape[0] != ya.shape[0] or Xa.shape[0] == 0:
        raise param_error(
            "X",
            func,
            f"as many rows as y has labels ({ya.shape[0]}), and at least one",
            f"{Xa.shape[0]} rows",
        )
    if not np.isfinite(Xa).all():
        raise param_error("X", func, "finite", "NaN or infinite values")
    return torch.from_numpy(Xa), torch.from_numpy(ya.astype(np.int64))


def _accuracy(model: Any, Xt: Any, yt: Any, masks: Mapping[str, Any] | None = None) -> float:
    import torch
    from torch.func import functional_call

    model.eval()
    with torch.no_grad():
        if masks:
            named = dict(model.named_parameters())
            out = functional_call(model, {k: named[k] * v for k, v in masks.items()}, (Xt,))
        else:
            out = model(Xt)
    return float((out.argmax(1) == yt).float().mean())


@dataclass
class _Schedule:
    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 64


def _fit(
    model: Any,
    Xt: Any,
    yt: Any,
    sch: _Schedule,
    *,
    seed: int,
    masks: Mapping[str, Any] | None = None,
    gates: Mapping[str, Any] | None = None,
    reg: Regularizer | None = None,
    lam: float = 0.0,
    eta_m: float = 0.0,
    max_steps: int | None = None,
    bar: Any = None,
) -> float:
    """SGD with momentum, weight decay and per-step cosine decay; masks fixed or gates learned."""
    import torch
    from torch.func import functional_call

    named = dict(model.named_parameters())
    opt = torch.optim.SGD(
        list(named.values()), lr=sch.lr, momentum=sch.momentum, weight_decay=sch.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    n = len(yt)
    total = sch.epochs * math.ceil(n / sch.batch_size)
    gen = torch.Generator().manual_seed(int(seed))
    model.train()
    step, last = 0, float("nan")
    for _ in range(sch.epochs):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, sch.batch_size):
            if max_steps is not None and step >= max_steps:
                break
            for g in opt.param_groups:
                g["lr"] = sch.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            idx = perm[s : s + sch.batch_size]
            mult = gates if gates is not None else masks
            if mult:
                out = functional_call(model, {k: named[k] * v for k, v in mult.items()}, (Xt[idx],))
            else:
                out = model(Xt[idx])
            loss = loss_fn(out, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if gates is not None:
                assert reg is not None, "learned gates need their regulariser"
                with torch.no_grad():
                    for k, m in gates.items():
                        grad = m.grad if m.grad is not None else torch.zeros_like(m)
                        projected_step(
                            m, grad, reg=reg, lam=lam, eta=eta_m, alive=masks[k] if masks else None
                        )
                        m.grad = None
            step += 1
            last = float(loss.detach())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{last:.4f}")
        if max_steps is not None and step >= max_steps:
            break
    if masks:
        with torch.no_grad():
            for k, v in masks.items():
                named[k].mul_(v)
    model.eval()
    return last


def _masked_names(
    G: SignedGraph, blocks: Sequence[str] | None, exclude: Sequence[str], func: str
) -> list[str]:
    names = [b.name for b in G.blocks]
    chosen = names if blocks is None else list(blocks)
    bad = [b for b in list(chosen) + list(exclude) if b not in names]
    if bad:
        raise param_error("blocks", func, f"names among the model's weight blocks {names}", bad)
    chosen = [b for b in chosen if b not in set(exclude)]
    if not chosen:
        raise param_error("blocks", func, "a non-empty selection of weight blocks", chosen)
    return chosen


def _progress(desc: str, total: int | None) -> Any:
    """A tqdm bar over training epochs, silent when ``netstruct.config.progress`` is off
    (``NETSTRUCT_PROGRESS=0``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", leave=False, disable=not config.progress)


def _snapshot(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _ticket_graph(
    model: Any,
    theta_k: Mapping[str, Any],
    mask: Mapping[str, np.ndarray],
    reason: str,
    meta: dict[str, Any],
) -> tuple[SignedGraph, PruningPlan]:
    from ..convert.from_torch import from_torch

    model.load_state_dict(theta_k)
    G = from_torch(model)
    plan = mask_plan(G, mask, reason=reason, meta=meta)
    return plan.apply(G), plan


def _sparsity(mask: Mapping[str, np.ndarray]) -> float:
    tot = sum(m.size for m in mask.values())
    return 1.0 - sum(int(m.sum()) for m in mask.values()) / tot if tot else 0.0


def _prepare(
    model: Any,
    X: Any,
    y: Any,
    sch: _Schedule,
    rewind_to: int,
    seed: int,
    blocks,
    exclude,
    func: str,
):
    import torch

    from ..convert.from_torch import from_torch

    if not isinstance(model, torch.nn.Module):
        raise param_error(
            "model", func, "a torch.nn.Module (at its initialisation)", type(model).__name__
        )
    Xt, yt = _tensors(X, y, func)
    work = copy.deepcopy(model)
    names = _masked_names(from_torch(work), blocks, exclude, func)
    if rewind_to:
        _fit(work, Xt, yt, sch, seed=seed, max_steps=rewind_to)
    return work, Xt, yt, names, _snapshot(work)


def _check_schedule(
    func: str, epochs: int, lr: float, momentum: float, weight_decay: float, batch_size: int
) -> _Schedule:
    return _Schedule(
        int(check_scalar(epochs, "epochs", func, kind=int, min_value=1)),
        float(check_scalar(lr, "lr", func, min_value=0.0, include_min=False)),
        float(
            check_scalar(
                momentum, "momentum", func, min_value=0.0, max_value=1.0, include_max=False
            )
        ),
        float(check_scalar(weight_decay, "weight_decay", func, min_value=0.0)),
        int(check_scalar(batch_size, "batch_size", func, kind=int, min_value=1)),
    )


# ---------------------------------------------------------------------- learned masks
@renamed_parameters("learn_mask", target="amount")
def learn_mask(
    model: Any,
    X: Any,
    y: Any,
    *,
    reg: str | Regularizer = "log",
    lam: float = 3e-4,
    eps: float = 0.1,
    q: float = 0.5,
    delta: float = 1e-2,
    sigma: float = 0.25,
    eta_m: float = 10.0,
    m0: float = 1.0,
    rounds: int = 1,
    lam_growth: float = 1.0,
    rewind_to: int = 0,
    tau: float = 0.5,
    amount: float | None = None,
    scope: str = "global",
    blocks: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    epochs: int = 30,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    X_test: Any = None,
    y_test: Any = None,
) -> TicketResult:
    """Learn a sparse mask with a concave (or ℓ1) penalty on relaxed gates, jointly with the weights.

    Parameters
    ----------
    model : torch.nn.Module
        The network at initialisation (copied, never changed).
    X, y : arrays
        Training data (classification; cross-entropy with per-sample mean).
    reg : {"log", "lq", "exp", "l1"} or Regularizer, default="log"
    lam : float >= 0, default=3e-4
        Penalty weight λ of the first round.
    eps, q, delta, sigma : float
        Penalty shapes (see :func:`~netstruct.pruning.regularizers.regularizer`).
    eta_m : float > 0, default=10
        Gate learning rate (plain projected SGD).
    m0 : float in (0, 1], default=1
        Initial gate value.
    rounds : int, default=1
        Search rounds; each rewinds the weights, restarts surviving gates at ``m0`` and
        multiplies λ by ``lam_growth``. Pruned entries never return.
    rewind_to : int, default=0
        Iterations of dense training before saving ``θ_k`` (0 = initialisation).
    tau : float in [0, 1], default=0.5
        Binarisation threshold ``m > tau``.
    amount : float in [0, 1), optional
        Exact final sparsity (share of the masked entries removed): the last round keeps the
        global (or per-block) top-k gates. Formerly ``target`` (deprecated alias).
    scope : {"global", "layer"}
        Scope of the top-k budget.
    blocks, exclude : lists of block names, optional
        Masked blocks (default: every weight matrix) and blocks left dense (e.g. the last layer).
    epochs, lr, momentum, weight_decay, batch_size : training schedule of each search round
        (SGD, cosine decay to 0 per step, weight decay on weights only, never on gates).
    seed : int
    X_test, y_test : arrays, optional
        Adds the masked search network's test accuracy to the history.

    Returns
    -------
    TicketResult
        ``plan`` removes the entries where ``mask`` (True = keep) is False.

    Raises
    ------
    InvalidParameterError
        Out-of-range λ, ε, η, τ, amount or schedule values.

    Notes
    -----
    Cost: ``rounds * epochs`` training epochs, shown as a progress bar (hidden with
    ``NETSTRUCT_PROGRESS=0`` or ``netstruct.config.progress = False``). Concave penalties make 0 an attractor, so the
    gates end near-binary and the sparsity hardly depends on ``tau``; ℓ1 gates do not.

    Examples
    --------
    >>> from netstruct import datasets, training
    >>> ds = datasets.load_iris()
    >>> res = learn_mask(training.mlp([4, 16, 3], seed=0), ds.X_train, ds.y_train, lam=1e-3, epochs=3)
    >>> 0.0 <= res.sparsity <= 1.0 and res.gates.binarity() <= 1.0
    True
    """
    import torch

    func = "learn_mask"
    reg_obj = regularizer(reg, eps=eps, q=q, delta=delta, sigma=sigma)
    lam = float(check_scalar(lam, "lam", func, min_value=0.0))
    eta_m = float(check_scalar(eta_m, "eta_m", func, min_value=0.0, include_min=False))
    m0 = float(check_scalar(m0, "m0", func, min_value=0.0, max_value=1.0, include_min=False))
    rounds = int(check_scalar(rounds, "rounds", func, kind=int, min_value=1))
    lam_growth = float(
        check_scalar(lam_growth, "lam_growth", func, min_value=0.0, include_min=False)
    )
    rewind_to = int(check_scalar(rewind_to, "rewind_to", func, kind=int, min_value=0))
    tau = check_fraction(tau, "tau", func)
    if amount is not None:
        amount = float(
            check_scalar(amount, "amount", func, min_value=0.0, max_value=1.0, include_max=False)
        )
    check_choice(scope, "scope", func, ["global", "layer"])
    sch = _check_schedule(func, epochs, lr, momentum, weight_decay, batch_size)
    work, Xt, yt, names, theta_k = _prepare(
        model, X, y, sch, rewind_to, seed, blocks, exclude, func
    )
    test = _tensors(X_test, y_test, func) if X_test is not None else None
    bar = _progress("learn_mask", rounds * sch.epochs)
    params = dict(work.named_parameters())
    alive = {k: torch.ones_like(params[k]) for k in names}
    rows = []
    lam_r = lam
    gates_np: dict[str, np.ndarray] = {}
    natural = 0.0
    for r in range(rounds):
        work.load_state_dict(theta_k)
        gates = {k: (alive[k] * m0).clone().requires_grad_(True) for k in names}
        loss = _fit(
            work,
            Xt,
            yt,
            sch,
            seed=seed + r,
            masks=alive,
            gates=gates,
            reg=reg_obj,
            lam=lam_r,
            eta_m=eta_m,
            bar=bar,
        )
        gates_np = {k: g.detach().numpy().astype(np.float64) for k, g in gates.items()}
        em = EdgeMask(gates_np)
        natural = em.natural_sparsity(tau)
        row = {
            "round": r,
            "lam": lam_r,
            "natural_sparsity": natural,
            "binarity": em.binarity(),
            "loss": loss,
        }
        if test is not None:
            row["search_accuracy"] = _accuracy(
                work, *test, masks={k: g.detach() for k, g in gates.items()}
            )
        last = r == rounds - 1
        if last and amount is not None:
            weights = {k: params[k].detach().numpy() for k in names}
            new = em.topk(1.0 - amount, weights=weights, scope=scope)
        else:
            new = em.binarize(tau)
        alive = {k: alive[k] * torch.from_numpy(new[k].astype(np.float32)) for k in names}
        row["sparsity"] = _sparsity({k: v.numpy() > 0 for k, v in alive.items()})
        rows.append(row)
        lam_r *= lam_growth
    bar.close()
    mask = {k: v.numpy() > 0 for k, v in alive.items()}
    s = _sparsity(mask)
    settings = {
        "method": "learned",
        "reg": reg_obj.name,
        "lam": lam,
        "eps": reg_obj.eps,
        "q": reg_obj.q,
        "sigma": reg_obj.sigma,
        "eta_m": eta_m,
        "rounds": rounds,
        "lam_growth": lam_growth,
        "rewind_to": rewind_to,
        "tau": tau,
        "amount": amount,
        "scope": scope,
        "seed": seed,
    }
    reason = (
        f"learned mask: {reg_obj.name} penalty, lambda={lam:g} x{lam_growth:g}/round, {rounds} round(s), "
        + (f"top-k to sparsity {amount:g}" if amount is not None else f"gates <= tau={tau:g}")
    )
    graph, plan = _ticket_graph(
        work, theta_k, mask, reason, {k: v for k, v in settings.items() if k != "seed"}
    )
    return TicketResult(
        graph,
        plan,
        mask,
        s,
        natural,
        EdgeMask(gates_np),
        pd.DataFrame(rows),
        rounds * sch.epochs,
        settings,
    )


# ---------------------------------------------------------------------- IMP
@renamed_parameters("imp", target="amount")
def imp(
    model: Any,
    X: Any,
    y: Any,
    *,
    amount: float = 0.9,
    rate: float = 0.2,
    rewind_to: int = 0,
    scope: str = "global",
    exact_last: bool = True,
    blocks: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    epochs: int = 30,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    X_test: Any = None,
    y_test: Any = None,
) -> TicketResult:
    """Iterative magnitude pruning with rewinding (Frankle & Carbin), the lottery baseline.

    Train from ``θ_k`` with the current mask, remove ``rate`` of the remaining masked weights
    with the smallest ``|θ|`` (globally or per block), rewind the survivors to ``θ_k`` and
    repeat until sparsity ``amount``; with ``exact_last`` the last prune lands exactly on
    ``amount``. Round ``r`` targets sparsity ``1 - (1 - rate)^r`` of the full matrices, so the
    density after ``r`` rounds is ``(1 - rate)^r`` up to rounding.

    Parameters
    ----------
    model : torch.nn.Module
        The network at initialisation (copied, never changed).
    X, y : arrays
    amount : float in [0, 1), default=0.9
        Final sparsity (share of the masked entries removed; formerly ``target``).
    rate : float in (0, 1), default=0.2
        Share of the remaining masked weights removed per round.
    rewind_to, scope, blocks, exclude, epochs, lr, momentum, weight_decay, batch_size, seed :
        As in :func:`learn_mask`.
    exact_last : bool, default=True
    X_test, y_test : arrays, optional
        Each round's trained network (the ticket at that sparsity) is evaluated: the history is
        a full accuracy-against-sparsity curve.

    Returns
    -------
    TicketResult
        ``history`` has one row per training: ``round, sparsity, accuracy, epochs``;
        ``plan`` removes the entries where ``mask`` (True = keep) is False.

    Notes
    -----
    Training epochs are shown as a progress bar (hidden with ``NETSTRUCT_PROGRESS=0``).

    Examples
    --------
    >>> from netstruct import datasets, training
    >>> ds = datasets.load_iris()
    >>> res = imp(training.mlp([4, 16, 3], seed=0), ds.X_train, ds.y_train, amount=0.36, epochs=2)
    >>> res.history["sparsity"].round(2).tolist()
    [0.0, 0.2, 0.36]
    """
    import torch

    func = "imp"
    target = float(
        check_scalar(amount, "amount", func, min_value=0.0, max_value=1.0, include_max=False)
    )
    rate = float(
        check_scalar(
            rate, "rate", func, min_value=0.0, max_value=1.0, include_min=False, include_max=False
        )
    )
    rewind_to = int(check_scalar(rewind_to, "rewind_to", func, kind=int, min_value=0))
    check_choice(scope, "scope", func, ["global", "layer"])
    if not isinstance(exact_last, bool):
        raise param_error("exact_last", func, "a bool", exact_last)
    sch = _check_schedule(func, epochs, lr, momentum, weight_decay, batch_size)
    work, Xt, yt, names, theta_k = _prepare(
        model, X, y, sch, rewind_to, seed, blocks, exclude, func
    )
    test = _tensors(X_test, y_test, func) if X_test is not None else None
    from ..convert.from_torch import from_torch

    mask = {k: np.ones(tuple(dict(work.named_parameters())[k].shape), dtype=bool) for k in names}
    n_rounds = _imp_rounds(target, rate, exact_last)
    bar = _progress("imp", (n_rounds + 1) * sch.epochs)
    rows = []
    r = 0
    spent = 0
    nominal = 0.0  # sparsity requested by the last prune
    while True:
        work.load_state_dict(theta_k)
        tmask = {k: torch.from_numpy(v.astype(np.float32)) for k, v in mask.items()}
        loss = _fit(work, Xt, yt, sch, seed=seed + r, masks=tmask, bar=bar)
        spent += sch.epochs
        s_now = _sparsity(mask)
        row = {"round": r, "sparsity": s_now, "loss": loss, "epochs": spent}
        if test is not None:
            row["accuracy"] = _accuracy(work, *test)
        rows.append(row)
        if nominal >= target - 1e-12:
            break
        r += 1
        nominal = 1.0 - (1.0 - rate) ** r
        if exact_last and nominal > target:
            nominal = target
        G = from_torch(work)
        G = mask_plan(G, mask).apply(G)
        pruned = magnitude_plan(G, nominal, scope=scope, blocks=names).apply(G)
        mask = {k: v for k, v in block_masks(pruned).items() if k in names}
    bar.close()
    s = _sparsity(mask)
    settings = {
        "method": "imp",
        "rate": rate,
        "amount": target,
        "rewind_to": rewind_to,
        "scope": scope,
        "exact_last": exact_last,
        "seed": seed,
    }
    reason = f"IMP: {rate:g} of the remaining |weight| per round ({scope}), {r} rounds, rewound to iteration {rewind_to}"
    graph, plan = _ticket_graph(
        work, theta_k, mask, reason, {k: v for k, v in settings.items() if k != "seed"}
    )
    return TicketResult(graph, plan, mask, s, None, None, pd.DataFrame(rows), spent, settings)


def _imp_rounds(target: float, rate: float, exact_last: bool) -> int:
    """Number of prune rounds :func:`imp` runs (the loop's stopping rule, for the progress bar)."""
    r, nominal = 0, 0.0
    while nominal < target - 1e-12:
        r += 1
        nominal = 1.0 - (1.0 - rate) ** r
        if exact_last and nominal > target:
            nominal = target
    return r


# ---------------------------------------------------------------------- ticket training
def train_ticket(
    ticket: TicketResult | SignedGraph,
    X: Any,
    y: Any,
    *,
    epochs: int = 30,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    seed: int = 0,
    X_test: Any = None,
    y_test: Any = None,
) -> TrainedTicket:
    """Train a ticket (rewound weights with a fixed mask); pruned weights stay exactly zero.

    Parameters
    ----------
    ticket : TicketResult or SignedGraph
        A result of :func:`learn_mask`/:func:`imp`, or any pruned graph with an architecture
        spec (e.g. from :func:`~netstruct.pruning.random_prune`).
    X, y : arrays
    epochs, lr, momentum, weight_decay, batch_size, seed : training schedule
    X_test, y_test : arrays, optional

    Returns
    -------
    TrainedTicket
        ``graph`` is the trained network with the same edges as the ticket.

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> from netstruct import datasets, training
    >>> from netstruct.pruning import random_prune
    >>> ds = datasets.load_iris()
    >>> G = random_prune(ns.from_torch(training.mlp([4, 16, 3], seed=0)), 0.5, seed=0)
    >>> t = train_ticket(G, ds.X_train, ds.y_train, epochs=2, X_test=ds.X_test, y_test=ds.y_test)
    >>> t.graph.n_edges == G.n_edges
    True
    """
    import torch

    from ..convert.from_torch import from_torch
    from ..convert.to_torch import to_torch

    func = "train_ticket"
    G = ticket.graph if isinstance(ticket, TicketResult) else ticket
    if not isinstance(G, SignedGraph):
        raise param_error(
            "ticket", func, "a TicketResult or a netstruct.SignedGraph", type(ticket).__name__
        )
    sch = _check_schedule(func, epochs, lr, momentum, weight_decay, batch_size)
    Xt, yt = _tensors(X, y, func)
    model = to_torch(G)
    masks = {
        b.name: torch.from_numpy(b.mask.astype(np.float32)) for b in G.blocks if not b.is_dense
    }
    loss = _fit(model, Xt, yt, sch, seed=seed, masks=masks)
    acc = _accuracy(model, *_tensors(X_test, y_test, func)) if X_test is not None else None
    H = from_torch(model)
    H = mask_plan(H, {b.name: b.mask for b in G.blocks}, reason="ticket mask").apply(H)
    return TrainedTicket(model, H, acc, loss)

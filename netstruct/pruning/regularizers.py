"""Sparsity penalties on relaxed masks ``m in [0, 1]`` and the projected (clamped) gate step.

The normalised forms of ``specs/concave_lottery.md`` §2.3 satisfy ``r(0) = 0`` and
``r(1) = 1``, so one λ means the same for every penalty (a fully-on gate costs λ):

=========  ==========================================  ================================
name       r(m)                                        r'(m)
=========  ==========================================  ================================
``l1``     m                                           1
``log``    c log(1 + m/ε),  c = 1/log(1 + 1/ε)         c / (m + ε)
``lq``     c_q ((m+δ)^q − δ^q)                          c_q q (m+δ)^(q−1)
``exp``    (1 − e^(−m/σ)) / (1 − e^(−1/σ))              e^(−m/σ) / (σ (1 − e^(−1/σ)))
=========  ==========================================  ================================

Concave penalties have a large slope at 0 (a "sticky zero": a closed gate re-opens only if
the data gradient beats ``λ r'(0)``) and a small slope near 1 (less bias on kept gates).
Functions accept numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import param_error
from ..utils.validation import check_choice, check_scalar

__all__ = ["Regularizer", "regularizer", "projected_step"]

_NAMES = ("l1", "log", "lq", "exp")


def _xp(m: Any):
    if isinstance(m, np.ndarray) or np.isscalar(m):
        return np
    import torch

    return torch


@dataclass(frozen=True)
class Regularizer:
    """A per-entry sparsity penalty ``r`` on [0, 1] with its derivative.

    Build one with :func:`regularizer`.

    Attributes
    ----------
    name : {"l1", "log", "lq", "exp"}
    eps, q, delta, sigma : float
        Shape parameters (``eps`` for log, ``q`` and ``delta`` for lq, ``sigma`` for exp).
    normalize : bool
        Scale so that ``r(0) = 0`` and ``r(1) = 1``.
    """

    name: str
    eps: float = 0.1
    q: float = 0.5
    delta: float = 1e-2
    sigma: float = 0.25
    normalize: bool = True

    @property
    def scale(self) -> float:
        """The normalising constant (``c`` for log, ``c_q`` for lq; 1 when ``normalize=False``)."""
        if not self.normalize:
            return 1.0
        if self.name == "log":
            return 1.0 / math.log1p(1.0 / self.eps)
        if self.name == "lq":
            return 1.0 / ((1.0 + self.delta) ** self.q - self.delta**self.q)
        if self.name == "exp":
            return 1.0 / (1.0 - math.exp(-1.0 / self.sigma))
        return 1.0

    def value(self, m: Any) -> Any:
        """``r(m)`` elementwise (numpy array, torch tensor or float).

        Without normalisation, log gives ``log(m + ε)``, lq ``(m + δ)^q`` and exp ``1 − e^(−m/σ)``.
        """
        xp = _xp(m)
        c = self.scale
        if self.name == "l1":
            return m * 1.0
        if self.name == "log":
            return c * xp.log1p(m / self.eps) if self.normalize else xp.log(m + self.eps)
        if self.name == "lq":
            return (
                c * ((m + self.delta) ** self.q - self.delta**self.q)
                if self.normalize
                else (m + self.delta) ** self.q
            )
        return c * (1.0 - xp.exp(-m / self.sigma))

    def grad(self, m: Any) -> Any:
        """``r'(m)`` elementwise."""
        xp = _xp(m)
        c = self.scale
        if self.name == "l1":
            return m * 0.0 + 1.0
        if self.name == "log":
            return c / (m + self.eps)
        if self.name == "lq":
            return c * self.q * (m + self.delta) ** (self.q - 1.0)
        return c * xp.exp(-m / self.sigma) / self.sigma

    def __call__(self, m: Any) -> Any:
        return self.value(m)


def regularizer(
    name: str | Regularizer = "log",
    *,
    eps: float = 0.1,
    q: float = 0.5,
    delta: float = 1e-2,
    sigma: float = 0.25,
    normalize: bool = True,
) -> Regularizer:
    """Build a mask penalty by name.

    Parameters
    ----------
    name : {"l1", "log", "lq", "exp"} or Regularizer
    eps : float > 0, default=0.1
        log: ε → ∞ approaches ℓ1, ε → 0 approaches ℓ0.
    q : float in (0, 1], default=0.5
    delta : float > 0, default=0.01
        lq offset (raw ``m^q`` has an infinite slope at 0).
    sigma : float > 0, default=0.25
    normalize : bool, default=True

    Returns
    -------
    Regularizer

    Examples
    --------
    >>> r = regularizer("log", eps=0.1)
    >>> round(r.scale, 7), round(float(r.grad(0.0)), 6), round(float(r.value(0.5)), 7)
    (0.4170324, 4.170324, 0.7472217)
    >>> round(float(regularizer("lq").grad(0.25)), 6)
    1.083529
    """
    if isinstance(name, Regularizer):
        return name
    func = "regularizer"
    name = check_choice(name, "name", func, _NAMES)
    eps = float(check_scalar(eps, "eps", func, min_value=0.0, include_min=False))
    q = float(check_scalar(q, "q", func, min_value=0.0, max_value=1.0, include_min=False))
    delta = float(check_scalar(delta, "delta", func, min_value=0.0, include_min=False))
    sigma = float(check_scalar(sigma, "sigma", func, min_value=0.0, include_min=False))
    if not isinstance(normalize, bool):
        raise param_error("normalize", func, "a bool", normalize)
    return Regularizer(name, eps, q, delta, sigma, normalize)


def projected_step(
    m: Any, grad: Any, *, reg: Regularizer, lam: float, eta: float, alive: Any = None
) -> Any:
    """One projected gradient step on gates: ``clip(m − η (grad + λ r'(m)), 0, 1) ⊙ alive``.

    Works in place on torch tensors (returns the same tensor) and returns a new array for
    numpy input (inputs already validated; used inside training loops).

    Examples
    --------
    >>> import numpy as np
    >>> m = projected_step(np.array([1.0, 0.0, 0.5]), np.array([-1e3, -0.2, 1e3]), reg=regularizer("log"),
    ...                    lam=0.1, eta=1.0)
    >>> m.tolist()
    [1.0, 0.0, 0.0]
    """
    step = grad + lam * reg.grad(m)
    if isinstance(m, np.ndarray):
        out = np.clip(m - eta * step, 0.0, 1.0)
        return out if alive is None else out * alive
    m.sub_(eta * step).clamp_(0.0, 1.0)
    if alive is not None:
        m.mul_(alive)
    return m

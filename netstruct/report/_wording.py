"""Wording shared by the report steps: p-values at their floor and whose model it is."""

from __future__ import annotations

import math

__all__ = ["p_value_text", "model_phrase"]


def p_value_text(p: float, n_samples: int) -> str:
    """An empirical p-value ``(1 + #{null >= observed}) / (n + 1)`` as the report shows it.

    At its floor ``1 / (n + 1)`` (no null sample reached the observed value) the estimate says
    only that p is below the resolution of ``n`` samples, so it reads ``p < 1/(n+1)``.

    Examples
    --------
    >>> p_value_text(1 / 21, 20)
    'p < 1/(n+1) = 0.0476 (n = 20 null samples)'
    >>> p_value_text(0.25, 20)
    'p = 0.25'
    """
    floor = 1.0 / (n_samples + 1)
    if math.isfinite(p) and p <= floor * (1 + 1e-9):
        return f"p < 1/(n+1) = {floor:.3g} (n = {n_samples} null samples)"
    return f"p = {p:.3g}"


def model_phrase(name: str) -> str:
    """How the report names a model: the user's own is "your model", not a trained one.

    Examples
    --------
    >>> model_phrase("user"), model_phrase("mlp")
    ('your model', 'the trained mlp')
    """
    return "your model" if name == "user" else f"the trained {name}"

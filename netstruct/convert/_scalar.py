"""``ScalarAffine``: the module behind scalar arithmetic on a layer's output (``x * c + d``).

A model's ``h * 0.5``, ``h / 4``, ``h + 1`` or ``1 - h`` is recorded as the traced operation it
is (re-import replays it exactly) and, in the graph, as the element-wise map
``ScalarAffine(scale, shift)`` on the units it transforms, so analyses that read activations
(slopes for path influence, constant folding in shrink, probes' forward passes) see its
meaning from one handler (:class:`netstruct.convert.elementwise.ElementwiseHandler`).
"""

from __future__ import annotations

import torch

__all__ = ["ScalarAffine", "ReLUSquared"]


class ScalarAffine(torch.nn.Module):
    """``scale * x + shift`` element-wise, with Python-number ``scale`` and ``shift``.

    Parameters
    ----------
    scale : float, default=1.0
    shift : float, default=0.0

    Examples
    --------
    >>> import torch
    >>> from netstruct.convert._scalar import ScalarAffine
    >>> ScalarAffine(scale=0.5, shift=1.0)(torch.tensor([2.0, -2.0])).tolist()
    [2.0, 0.0]
    """

    def __init__(self, scale: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        self.scale = float(scale)
        self.shift = float(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * self.scale if self.scale != 1.0 else x
        return out + self.shift if self.shift != 0.0 else out

    def extra_repr(self) -> str:
        return f"scale={self.scale}, shift={self.shift}"


class ReLUSquared(torch.nn.Module):
    """``relu(x) ** 2`` element-wise (Primer's activation; transformers' ``"relu2"``, used by
    Persimmon, Arcee and Nemotron), netstruct's own element-wise type ``ReLUSquared``.

    Examples
    --------
    >>> import torch
    >>> from netstruct.convert._scalar import ReLUSquared
    >>> ReLUSquared()(torch.tensor([-1.0, 3.0])).tolist()
    [0.0, 9.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.square(torch.relu(x))

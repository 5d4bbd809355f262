"""Layer norms whose statistics run over a subset of their features (the masked norm-width model).

Removing a dimension of a normalised width (a transformer's residual stream) removes it from
every norm over that width: each norm then computes its mean and variance (LayerNorm) or mean
square (RMSNorm) over the **kept** dimensions only, which is what the physically smaller
``nn.LayerNorm(n_kept)`` computes. :class:`MaskedLayerNorm` and :class:`MaskedRMSNorm` are that
norm at the original width: a boolean buffer ``stat_mask`` (True = in the statistics) selects
the entries, and the removed entries output 0. ``MaskedLayerNorm(n, stat_mask=keep)(x)[..., keep]``
equals ``LayerNorm(keep.sum())(x[..., keep])`` with the kept weights and biases, up to float
rounding. :class:`netstruct.convert.layers.NormHandler` builds them when a masked graph's norm
block carries a ``stat_mask`` state with a False entry (see
:func:`netstruct.convert.layers.exclude_from_norm_statistics`).

:class:`MaskedConvNextLayerNorm` is the masked counterpart of Hugging Face ConvNeXt's
``ConvNextLayerNorm`` (built by :class:`netstruct.convert.hf.ConvNextLayerNormHandler`): the
same statistics over the channel axis 1 (``data_format="channels_first"``, NCHW) or the last
axis (``"channels_last"``), computed by :class:`MaskedLayerNorm` after the same permute the
ConvNeXt layer makes. It needs no ``transformers`` import.
"""

from __future__ import annotations

from typing import Any

import torch

from .layers import STAT_MASK

__all__ = ["MaskedLayerNorm", "MaskedRMSNorm", "MaskedConvNextLayerNorm", "STAT_MASK"]


def _init_mask(module: torch.nn.Module, n: int, stat_mask: Any) -> None:
    keep = torch.ones(n, dtype=torch.bool) if stat_mask is None else torch.as_tensor(stat_mask)
    if keep.dtype != torch.bool or tuple(keep.shape) != (n,):
        raise ValueError(f"stat_mask must be a bool tensor of shape ({n},), got {keep!r}")
    module.register_buffer(STAT_MASK, keep.clone())


class MaskedLayerNorm(torch.nn.LayerNorm):
    """``nn.LayerNorm`` over one feature axis whose mean and variance read the ``stat_mask`` entries.

    Parameters
    ----------
    normalized_shape : int
        Width of the last axis (kept and removed entries).
    eps, elementwise_affine, bias : as ``nn.LayerNorm``
    stat_mask : bool tensor of shape (normalized_shape,), optional
        True for the entries in the statistics (default: all). Removed entries output 0.

    Examples
    --------
    >>> import torch
    >>> from netstruct.convert._norm_module import MaskedLayerNorm
    >>> keep = torch.tensor([True, False, True, True])
    >>> m, ref = MaskedLayerNorm(4, stat_mask=keep), torch.nn.LayerNorm(3)
    >>> x = torch.randn(2, 4)
    >>> bool(torch.allclose(m(x)[:, keep], ref(x[:, keep]), atol=1e-6)), m(x)[:, 1].tolist()
    (True, [0.0, 0.0])
    """

    def __init__(
        self,
        normalized_shape: int,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        stat_mask: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            int(normalized_shape), eps, elementwise_affine, bias, device=device, dtype=dtype
        )
        _init_mask(self, int(normalized_shape), stat_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = getattr(self, STAT_MASK)
        m = keep.to(x.dtype)
        n = m.sum()
        mean = (x * m).sum(-1, keepdim=True) / n
        d = (x - mean) * m
        var = (d * d).sum(-1, keepdim=True) / n
        y = d * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y * m


_DATA_FORMATS = ("channels_last", "channels_first")


class MaskedConvNextLayerNorm(MaskedLayerNorm):
    """ConvNeXt's ``ConvNextLayerNorm`` whose mean and variance read the ``stat_mask`` channels.

    ``data_format="channels_first"`` normalises the channel axis 1 of an ``(N, C, H, W)``
    input (moved last, normalised by :class:`MaskedLayerNorm`, moved back, as
    ``ConvNextLayerNorm`` does); ``"channels_last"`` normalises the last axis. Removed
    channels output 0. The attributes are those of ``ConvNextLayerNorm`` (``data_format``,
    ``eps``, ``normalized_shape``, ``elementwise_affine``, ``weight``, ``bias``).

    Parameters
    ----------
    normalized_shape : int
        Number of channels (kept and removed).
    eps : float, default=1e-6
        ConvNeXt's default.
    elementwise_affine, bias : as ``nn.LayerNorm``
    data_format : {"channels_last", "channels_first"}, default="channels_last"
    stat_mask : bool tensor of shape (normalized_shape,), optional
        True for the channels in the statistics (default: all).

    Examples
    --------
    >>> import torch
    >>> from netstruct.convert._norm_module import MaskedConvNextLayerNorm
    >>> keep = torch.tensor([True, False, True])
    >>> m = MaskedConvNextLayerNorm(3, data_format="channels_first", stat_mask=keep)
    >>> x = torch.randn(2, 3, 4, 4)
    >>> ref = torch.nn.LayerNorm(2, eps=1e-6)(x[:, keep].permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    >>> bool(torch.allclose(m(x)[:, keep], ref, atol=1e-6)), float(m(x)[:, 1].abs().max())
    (True, 0.0)
    """

    def __init__(
        self,
        normalized_shape: int,
        eps: float = 1e-6,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        data_format: str = "channels_last",
        stat_mask: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if data_format not in _DATA_FORMATS:
            raise ValueError(
                f"data_format must be one of {_DATA_FORMATS} (as ConvNextLayerNorm's), "
                f"got {data_format!r}"
            )
        super().__init__(
            normalized_shape,
            eps,
            elementwise_affine,
            bias,
            stat_mask=stat_mask,
            device=device,
            dtype=dtype,
        )
        self.data_format = data_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.data_format == "channels_first":
            return super().forward(x.movedim(1, -1)).movedim(-1, 1)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, data_format={self.data_format!r}"


class MaskedRMSNorm(torch.nn.RMSNorm):
    """``nn.RMSNorm`` over one feature axis whose mean square reads the ``stat_mask`` entries.

    Parameters
    ----------
    normalized_shape : int
    eps, elementwise_affine : as ``nn.RMSNorm`` (``eps=None``: the dtype's machine epsilon)
    stat_mask : bool tensor of shape (normalized_shape,), optional
        True for the entries in the statistics (default: all). Removed entries output 0.

    Examples
    --------
    >>> import torch
    >>> from netstruct.convert._norm_module import MaskedRMSNorm
    >>> keep = torch.tensor([True, True, False])
    >>> x = torch.randn(2, 3)
    >>> ref = torch.nn.RMSNorm(2)(x[:, keep])
    >>> bool(torch.allclose(MaskedRMSNorm(3, stat_mask=keep)(x)[:, keep], ref, atol=1e-6))
    True
    """

    def __init__(
        self,
        normalized_shape: int,
        eps: float | None = None,
        elementwise_affine: bool = True,
        *,
        stat_mask: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(int(normalized_shape), eps, elementwise_affine, device=device, dtype=dtype)
        _init_mask(self, int(normalized_shape), stat_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = getattr(self, STAT_MASK)
        m = keep.to(x.dtype)
        eps = self.eps if self.eps is not None else torch.finfo(x.dtype).eps
        ms = (x * x * m).sum(-1, keepdim=True) / m.sum()
        y = x * torch.rsqrt(ms + eps)
        if self.weight is not None:
            y = y * self.weight
        return y * m

"""A self-attention module whose inner width (heads x head dim) differs from its embedding width.

``nn.MultiheadAttention`` ties its inner width to ``embed_dim`` (``head_dim = embed_dim /
num_heads``), so removing whole heads leaves a layer it cannot represent.
:class:`HeadPrunedAttention` has the same parameters (``in_proj_weight``, ``in_proj_bias``,
``out_proj``), the same call signature and the same outputs, with ``num_heads * head_dim`` inner
units; :mod:`netstruct.convert.attention` rebuilds a head-pruned layer as one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

__all__ = ["HeadPrunedAttention"]


class HeadPrunedAttention(torch.nn.Module):
    """Multi-head attention with ``num_heads`` heads of ``head_dim`` dims over ``embed_dim`` features.

    Parameters
    ----------
    embed_dim : int
        Width of the query, key and value inputs.
    num_heads : int
        Number of heads kept.
    head_dim : int
        Dimensions per head (unchanged by head pruning, so the ``1/sqrt(head_dim)`` scale holds).
    out_dim : int, optional
        Width of the output projection (default ``embed_dim``).
    dropout : float, default=0.0
        Dropout on the attention weights (training mode only).
    bias : bool, default=True
    batch_first : bool, default=False
    kdim, vdim : int, optional
        Widths of the key and value inputs (default ``embed_dim``). As in
        ``nn.MultiheadAttention``, equal widths give one ``in_proj_weight``, others separate
        ``q_proj_weight``, ``k_proj_weight`` and ``v_proj_weight``.

    Examples
    --------
    >>> import torch
    >>> from netstruct.convert._attention_module import HeadPrunedAttention
    >>> m = HeadPrunedAttention(8, 1, 4, batch_first=True)
    >>> x = torch.randn(2, 5, 8)
    >>> m(x, x, x)[0].shape
    torch.Size([2, 5, 8])
    >>> cross = HeadPrunedAttention(8, 1, 4, kdim=6, vdim=6, batch_first=True)
    >>> memory = torch.randn(2, 3, 6)
    >>> cross(x, memory, memory)[0].shape, cross.k_proj_weight.shape
    (torch.Size([2, 5, 8]), torch.Size([4, 6]))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        *,
        out_dim: int | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.embed_dim = int(embed_dim)
        self.kdim = int(kdim if kdim is not None else embed_dim)
        self.vdim = int(vdim if vdim is not None else embed_dim)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        inner = self.num_heads * self.head_dim
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        # False keeps torch's fused encoder fast paths, which assume inner == embed_dim, off
        self._qkv_same_embed_dim = False
        self.bias_k = self.bias_v = None
        self.add_zero_attn = False
        if self.kdim == self.vdim == self.embed_dim:
            self.in_proj_weight = torch.nn.Parameter(torch.empty(3 * inner, self.embed_dim, **kw))
            torch.nn.init.xavier_uniform_(self.in_proj_weight)
            for part in "qkv":
                self.register_parameter(f"{part}_proj_weight", None)
        else:
            self.register_parameter("in_proj_weight", None)
            for part, width in zip("qkv", (self.embed_dim, self.kdim, self.vdim)):
                w = torch.nn.Parameter(torch.empty(inner, width, **kw))
                torch.nn.init.xavier_uniform_(w)
                self.register_parameter(f"{part}_proj_weight", w)
        self.in_proj_bias = torch.nn.Parameter(torch.zeros(3 * inner, **kw)) if bias else None
        self.out_proj = torch.nn.Linear(inner, int(out_dim or embed_dim), bias=bias, **kw)

    def _mask(self, attn_mask, key_padding_mask, q, B, T, S):
        """Additive float mask of shape broadcastable to (B, H, T, S), or None."""
        out = None
        if attn_mask is not None:
            m = attn_mask
            if m.dtype == torch.bool:
                m = torch.zeros_like(m, dtype=q.dtype).masked_fill(m, float("-inf"))
            m = m.to(q.dtype)
            out = m.view(B, -1, T, S) if m.dim() == 3 else m.view(1, 1, T, S)
        if key_padding_mask is not None:
            k = key_padding_mask
            if k.dtype == torch.bool:
                k = torch.zeros_like(k, dtype=q.dtype).masked_fill(k, float("-inf"))
            k = k.to(q.dtype).view(B, 1, 1, S)
            out = k if out is None else out + k
        return out

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Same contract as ``nn.MultiheadAttention.forward``."""
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = (
                t.unsqueeze(0 if self.batch_first else 1) for t in (query, key, value)
            )
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        B, T, _ = query.shape
        S = key.shape[1]
        H, D = self.num_heads, self.head_dim
        if self.in_proj_weight is not None:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = F.linear(query, w_q, b_q).view(B, T, H, D).transpose(1, 2)
        k = F.linear(key, w_k, b_k).view(B, S, H, D).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(B, S, H, D).transpose(1, 2)
        mask = self._mask(attn_mask, key_padding_mask, q, B, T, S)
        if is_causal and mask is None:
            causal = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1)
            mask = torch.zeros(T, S, dtype=q.dtype, device=q.device).masked_fill(
                causal, float("-inf")
            )
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(D)
            if mask is not None:
                scores = scores + mask
            attn = torch.softmax(scores, dim=-1)
            weights = attn.mean(1) if average_attn_weights else attn
            if p:
                attn = F.dropout(attn, p)
            ctx = attn @ v
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        out = self.out_proj(ctx.transpose(1, 2).reshape(B, T, H * D))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
            weights = None if weights is None else weights.squeeze(0)
        return out, weights

"""``HeadPrunedAttention`` computes what ``nn.MultiheadAttention`` computes, masks included."""

from __future__ import annotations

import pytest
import torch

from netstruct.convert._attention_module import HeadPrunedAttention

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("kdim,vdim", [(None, None), (6, 5)])
@pytest.mark.parametrize("batch_first", [True, False])
def test_all_heads_kept_equals_multihead_attention_with_masks(kdim, vdim, batch_first):
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first, kdim=kdim, vdim=vdim).eval()
    m = HeadPrunedAttention(8, 2, 4, batch_first=batch_first, kdim=kdim, vdim=vdim).eval()
    assert sorted(m.state_dict()) == sorted(ref.state_dict())
    m.load_state_dict(ref.state_dict())
    B, T, S = 3, 4, 6
    q = torch.randn(B, T, 8)
    k, v = torch.randn(B, S, kdim or 8), torch.randn(B, S, vdim or 8)
    if not batch_first:
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
    attn_mask = torch.zeros(T, S).masked_fill(torch.rand(T, S) > 0.7, float("-inf"))
    attn_mask[:, 0] = 0.0  # every query sees one key
    padding = torch.zeros(B, S, dtype=torch.bool)
    padding[0, -2:] = True
    for kw in ({}, {"attn_mask": attn_mask}, {"key_padding_mask": padding}):
        for need_weights in (True, False):
            want = ref(q, k, v, need_weights=need_weights, **kw)
            got = m(q, k, v, need_weights=need_weights, **kw)
            torch.testing.assert_close(got[0], want[0], atol=1e-6, rtol=1e-5)
            if need_weights:
                torch.testing.assert_close(got[1], want[1], atol=1e-6, rtol=1e-5)

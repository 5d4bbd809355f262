"""Coupling groups: units tied one-to-one are grouped, whatever layer made the tie."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.graphs.coupling import coupled_units, coupling_table
from tests.models import AttentionClassifier, LastStep, UserCNN

pytestmark = pytest.mark.torch


def _group_of(G, node):
    g = coupled_units(G)
    return set(np.flatnonzero(g == g[node]).tolist())


def test_residual_cnn_ties_channel_norm_depthwise_and_sum():
    torch.manual_seed(0)
    G = ns.from_torch(UserCNN().eval(), torch.randn(2, 1, 8, 8))
    c = int(G.block("conv1.weight").targets[2])
    want = {
        c,
        int(G.block("bn1.weight").targets[2]),
        int(G.block("dw.weight").targets[2]),
        int(G.block("bn2.weight").targets[2]),
        int(next(b for b in G.blocks if b.kind == "skip").targets[2]),
    }
    assert _group_of(G, c) == want
    # conv3's channels are tied to nothing
    assert _group_of(G, int(G.block("conv3.weight").targets[0])) == {
        int(G.block("conv3.weight").targets[0])
    }


def test_lstm_gate_rows_belong_to_their_unit():
    G = ns.from_torch(LastStep("LSTM", n_in=3, hidden=2, n_out=2))
    ih = G.block("rnn.weight_ih_l0")
    unit = G.node_column("unit")
    for r in ih.targets.tolist():
        assert unit[r] in _group_of(G, r)
    assert all(
        len(_group_of(G, u)) == 5 for u in set(unit[ih.targets].tolist())
    )  # unit + 4 gate rows


def test_attention_head_ties_query_key_value_and_context_of_every_dimension():
    torch.manual_seed(0)
    G = ns.from_torch(AttentionClassifier().eval(), torch.randint(0, 20, (2, 5)))
    qkv = G.block("attn.in_proj_weight").targets
    op = next(b for b in G.blocks if b.kind == "operator")
    head = range(4, 8)  # head 1 of 2 (head_dim 4)
    want = {int(qkv[p * 8 + j]) for p in range(3) for j in head} | {
        int(op.targets[j]) for j in head
    }
    assert _group_of(G, int(op.targets[5])) == want
    t = coupling_table(G)
    assert (t["size"] >= 2).all() and len(t) == 10  # 2 attention heads + 8 residual stream dims

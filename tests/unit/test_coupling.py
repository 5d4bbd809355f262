"""Coupling groups: units tied one-to-one are grouped, whatever layer made the tie."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns
from netstruct.graphs.coupling import coupled_units, coupling_table, smallest_in_component
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


def test_grouped_query_heads_go_with_the_key_value_group_they_share():
    # 4 query heads of 1 dim, 2 key/value groups: head h reads k/v group h // 2
    names = ["x0", "x1"] + [f"q{h}" for h in range(4)] + ["k0", "k1", "v0", "v1"]
    names += [f"ctx{h}" for h in range(4)]
    kinds = ["input"] * 2 + ["hidden"] * 12
    gates = ["", ""] + [f"q{h}" for h in range(4)] + ["k0", "k1", "v0", "v1"] + [""] * 4
    groups = [0, 0] + [1] * 8 + [2] * 4
    mix = np.array(
        [
            [(c < 4 and c == h) or (c >= 4 and (c - 4) % 2 == h // 2) for c in range(8)]
            for h in range(4)
        ]
    )
    G = ns.SignedGraph(
        {"name": names, "kind": kinds, "gate": gates, "group": groups},
        [
            ns.make_block(
                name="proj", weight=np.ones((8, 2)), sources=[0, 1], targets=range(2, 10)
            ),
            ns.make_block(
                name="mix",
                weight=mix.astype(float),
                mask=mix,
                sources=range(2, 10),
                targets=range(10, 14),
                kind="operator",
                param="",
            ),
        ],
    )
    g = coupled_units(G)
    by_name = dict(zip(names, g.tolist()))
    first = {by_name[n] for n in ("q0", "q1", "k0", "v0", "ctx0", "ctx1")}
    second = {by_name[n] for n in ("q2", "q3", "k1", "v1", "ctx2", "ctx3")}
    assert len(first) == 1 and len(second) == 1 and first != second


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 60),
    edges=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 59)), max_size=120),
)
def test_smallest_in_component_equals_scipy_connected_components(n, edges):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = np.array([u % n for u, _ in edges], dtype=np.int64)
    b = np.array([v % n for _, v in edges], dtype=np.int64)
    got = smallest_in_component(n, a, b)
    adj = coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    _, label = connected_components(adj, directed=False)
    want = np.array([np.flatnonzero(label == label[i]).min() for i in range(n)])
    assert got.dtype == np.int64 and np.array_equal(got, want)


def test_smallest_in_component_on_a_long_shuffled_chain():
    """The slowest case for hooking (a path in random id order) still ends, and right."""
    rng = np.random.default_rng(0)
    p = rng.permutation(5000)
    got = smallest_in_component(5000, p[:-1], p[1:])
    assert np.array_equal(got, np.zeros(5000, dtype=np.int64))

"""Coverage corpus: model families users bring, exported and re-imported exactly.

For each model: ``to_torch(from_torch(m, x))(x) == m(x)`` within 1e-5, the same
``state_dict`` keys, the graph facts (one edge per channel pair or weight entry, skip edges,
node kinds), the networkx/igraph/scipy views and GraphML read back.
"""

from __future__ import annotations

import igraph
import networkx as nx
import numpy as np
import pytest
import torch

import netstruct as ns
from tests.models import (
    AttentionClassifier,
    BiGRUCat,
    CrossAttention,
    EncoderClassifier,
    HandWrittenAttention,
    ResidualMLP,
    Seq2SeqClassifier,
    TextLSTM,
    UserCNN,
)

pytestmark = pytest.mark.torch


def _user_cnn():
    torch.manual_seed(0)
    m = UserCNN()
    for bn in (m.bn1, m.bn2):  # non-trivial eval statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return m.eval(), torch.randn(2, 1, 8, 8)


def _text_lstm():
    torch.manual_seed(0)
    return TextLSTM().eval(), torch.randint(0, 11, (3, 7))


def _bigru():
    torch.manual_seed(0)
    return BiGRUCat().eval(), torch.randn(3, 5, 3)


def _residual_mlp():
    torch.manual_seed(0)
    return ResidualMLP().eval(), torch.randn(4, 6)


def _sequential_cnn():
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv1d(2, 3, 3, stride=2, dilation=1, padding=1),
        torch.nn.BatchNorm1d(3),
        torch.nn.LeakyReLU(0.1),
        torch.nn.AvgPool1d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 4, 2),
    )
    return m.eval(), torch.randn(2, 2, 16)


def _conv_transpose():
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3),
        torch.nn.SiLU(),
        torch.nn.ConvTranspose2d(3, 2, 2, stride=2),
        torch.nn.GroupNorm(1, 2),
        torch.nn.AdaptiveMaxPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(2, 2),
    )
    return m.eval(), torch.randn(2, 1, 6, 6)


def _attention():
    torch.manual_seed(0)
    return AttentionClassifier().eval(), torch.randint(0, 20, (4, 6))


def _encoder_post():
    torch.manual_seed(0)
    return EncoderClassifier().eval(), torch.randn(3, 5, 8)


def _encoder_pre():
    torch.manual_seed(0)
    return EncoderClassifier(norm_first=True).eval(), torch.randn(3, 5, 8)


def _bare_encoder():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, activation="gelu")
    return torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False).eval(), torch.randn(
        2, 4, 8
    )


def _seq2seq_post():
    torch.manual_seed(0)
    return Seq2SeqClassifier().eval(), torch.randn(3, 5, 8)


def _seq2seq_pre_gelu():
    torch.manual_seed(0)
    return Seq2SeqClassifier(norm_first=True, activation="gelu").eval(), torch.randn(3, 5, 8)


def _cross_attention():
    torch.manual_seed(0)
    return CrossAttention().eval(), torch.randn(3, 5, 8)


def _hand_attention():
    torch.manual_seed(0)
    return HandWrittenAttention().eval(), torch.randn(3, 5, 8)


MODELS = {
    "hand_written_attention": _hand_attention,
    "attention": _attention,
    "encoder_post_norm": _encoder_post,
    "encoder_pre_norm": _encoder_pre,
    "bare_transformer_encoder": _bare_encoder,
    "encoder_decoder_post_norm": _seq2seq_post,
    "encoder_decoder_pre_norm_gelu": _seq2seq_pre_gelu,
    "cross_attention_kdim_vdim": _cross_attention,
    "user_cnn": _user_cnn,
    "text_lstm": _text_lstm,
    "bigru_cat": _bigru,
    "residual_mlp": _residual_mlp,
    "sequential_cnn": _sequential_cnn,
    "conv_transpose": _conv_transpose,
}


@pytest.fixture(params=sorted(MODELS))
def exported(request):
    m, x = MODELS[request.param]()
    return request.param, m, x, ns.from_torch(m, x)


def test_reimport_reproduces_outputs_and_state_dict_keys(exported):
    _, m, x, G = exported
    r = ns.to_torch(G)
    with torch.no_grad():
        assert torch.allclose(r(x), m(x), atol=1e-5)
    assert sorted(r.state_dict()) == sorted(m.state_dict())


def test_node_names_are_unique(exported):
    _, _, _, G = exported
    names = G.nodes()["name"]
    assert names.is_unique, names[names.duplicated()].tolist()[:5]


def test_views_and_graphml_agree_with_edge_table(exported, tmp_path):
    _, _, _, G = exported
    e = G.edges()
    Gx = G.to_networkx()
    assert Gx.number_of_edges() == len(e)
    g = G.to_igraph()
    assert g.ecount() == len(e)
    A = G.to_scipy()
    np.testing.assert_allclose(A[e.source.to_numpy(), e.target.to_numpy()], e.weight.to_numpy())
    path = tmp_path / "g.graphml"
    ns.write_graphml(G, path)
    assert nx.read_graphml(path).number_of_edges() == len(e)
    assert igraph.Graph.Read_GraphML(str(path)).ecount() == len(e)


def test_cnn_graph_facts():
    m, x = _user_cnn()
    G = ns.from_torch(m, x)
    c1 = G.block("conv1.weight")
    assert c1.shape == (4, 1) and c1.kernel.shape == (4, 1, 3, 3)
    # edge weight = sum of the pair's taps (the default reduction)
    np.testing.assert_allclose(
        c1.weight[:, 0], m.conv1.weight.detach().sum((1, 2, 3)).numpy(), rtol=1e-6
    )
    dw = G.block("dw.weight")  # depthwise: one edge per channel, inside its group
    assert dw.n_edges == 4 and np.array_equal(dw.mask, np.eye(4, dtype=bool))
    bn = G.block("bn1.weight")
    assert bn.kind == "norm" and set(bn.state) == {
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }
    skips = [b for b in G.blocks if b.kind == "skip"]
    assert len(skips) == 2 and all(b.n_edges == 4 for b in skips)
    fc = G.block("fc.weight")  # a Linear on a flattened map: one edge per (unit, channel)
    assert fc.shape == (3, 6) and fc.kernel.shape == (3, 24)
    assert set(G.nodes().loc[fc.sources].module) == {"conv3"}


def test_embedding_is_a_vocabulary_to_dimension_block():
    m, x = _text_lstm()
    G = ns.from_torch(m, x)
    emb = G.block("emb.weight")
    assert emb.shape == (5, 11)
    np.testing.assert_array_equal(emb.parameter(), m.emb.weight.detach().numpy())
    assert G.nodes().loc[emb.sources].name.iloc[0] == "token[0]"


def test_cat_of_directions_feeds_the_head():
    m, x = _bigru()
    G = ns.from_torch(m, x)
    fc = G.block("fc.weight")
    d = G.nodes().loc[fc.sources].direction.tolist()
    assert d == [0] * 4 + [1] * 4


def test_pruned_conv_channel_pair_zeroes_its_taps_and_edits_rescale_them():
    m, x = _user_cnn()
    G = ns.from_torch(m, x)
    e = G.edges()
    cut = ((e.block == "conv3.weight") & (e.row == 0) & (e.col == 1)).to_numpy()
    H = G.remove_edges(cut)
    r = ns.to_torch(H)
    assert torch.count_nonzero(r.conv3.weight[0, 1]) == 0
    ref = m.conv3.weight.detach().clone()
    ref[0, 1] = 0
    assert torch.equal(r.conv3.weight[torch.arange(6) != 0], ref[torch.arange(6) != 0])
    # flipping an edge's weight flips its taps (the reduction is homogeneous)
    i = G.block_index("conv1.weight")
    W = G.blocks[i].weight.copy()
    W[2, 0] *= -1
    F = G.replace_blocks({i: {"weight": W}})
    assert torch.allclose(ns.to_torch(F).conv1.weight[2], -m.conv1.weight[2], atol=1e-7)


def test_pruned_skip_edge_is_realised_on_reimport():
    m, x = _residual_mlp()
    G = ns.from_torch(m, x)
    e = G.edges()
    skip = next(b.name for b in G.blocks if b.kind == "skip")
    H = G.remove_edges(((e.block == skip) & (e.row == 0)).to_numpy())
    r = ns.to_torch(H)
    h = m.inp(x)
    f = m.f1(torch.nn.functional.gelu(m.norm(h)))
    h2 = h * torch.tensor([0.0] + [1.0] * 7) + f
    want = m.head(h2 + torch.tanh(m.f2(h2)))
    assert torch.allclose(r(x), want, atol=1e-5)
    assert not torch.allclose(r(x), m(x), atol=1e-3)


def test_shrink_cnn_is_physically_smaller_and_equal_to_masked():
    m, x = _sequential_cnn()
    G = ns.from_torch(m, x)
    e = G.edges()
    c = G.block("0.weight").targets[1]
    bn = G.block("1.weight")
    gone = ((e.block == "5.weight") & (e.source == bn.targets[1])).to_numpy()
    H = G.remove_edges(gone)
    S = ns.shrink(H)
    assert S.block("0.weight").shape == (2, 2) and S.block("5.weight").shape == (2, 2)
    assert S.block("5.weight").kernel.shape == (2, 8)
    small = ns.to_torch(S)
    assert small[0].out_channels == 2 and small[1].num_features == 2 and small[5].in_features == 8
    assert torch.allclose(small(x), ns.to_torch(H)(x), atol=1e-5)
    assert c not in set(S.nodes().name)


def test_probes_and_path_influence_run_on_a_cnn():
    m, x = _user_cnn()
    x = torch.randn(16, 1, 8, 8)
    G = ns.from_torch(m, x)
    y = m(x).argmax(1).numpy()
    df = ns.probes.sweep(
        [G], x.numpy(), y, {"prune": [0.0, 0.5], "noise": [0.05]}, n_repeats=2, scheduler="serial"
    )
    full = df[(df.metric == "acc_full") & (df.level == 0.0)].value
    assert (full == 100.0).all()  # the unperturbed CNN predicts its own labels
    # probes leave structure alone: skip and norm blocks of a pruned copy are untouched
    from netstruct.probes.registry import perturb

    S = perturb(G, "prune", 0.5, n_samples=1, seed=0)
    for b in G.blocks:
        if b.kind != "weight":
            np.testing.assert_array_equal(S.weights[b.name][0], b.weight)
    # structural path influence works on any block DAG; with data it refuses norms/convs clearly
    GI, infl = ns.path_influence(G)
    assert infl.shape == (G.n_nodes, 3) and np.isfinite(infl).all()
    with pytest.raises(ns.GraphError, match="without X"):
        ns.path_influence(G, x.numpy().reshape(16, -1))


def test_lattice_context_of_a_conv_block():
    m, x = _user_cnn()
    G = ns.from_torch(m, x)
    from netstruct.lattice.thresholds import binarize
    from tests.oracles.naive_lattice import naive_meet_irreducible_attributes

    b = G.block("conv3.weight")
    ctx = ns.lattice.FormalContext.from_block(G, "conv3.weight", quantile=0.5)
    # objects are the source channels, attributes the target channels (one per channel pair)
    assert ctx.objects == tuple(b.sources.tolist()) and ctx.attributes == tuple(b.targets.tolist())
    np.testing.assert_array_equal(
        np.asarray(ctx.incidence), binarize(np.abs(b.weight), quantile=0.5).T
    )
    irr = ns.lattice.meet_irreducibles(ctx)
    want = naive_meet_irreducible_attributes(np.asarray(ctx.incidence))
    assert set(np.flatnonzero(irr.mask).tolist()) == set(want)


def test_attention_heads_are_unit_groups_and_token_mixing_an_operator():
    m, t = _attention()
    G = ns.from_torch(m, t)
    n = G.nodes()
    qkv = G.block("attn.in_proj_weight")
    assert qkv.shape == (24, 8)
    gates = n.loc[qkv.targets].gate.tolist()
    assert gates == [f"{p}{h}" for p in "qkv" for h in (0, 1) for _ in range(4)]
    op = next(b for b in G.blocks if b.kind == "operator")
    assert op.shape == (8, 24) and op.n_edges == 24  # query, key and value dim j -> context j
    assert G.block("attn.out_proj.weight").sources.tolist() == op.targets.tolist()
    # the operator is structure: pruning it cannot be realised and is refused
    e = G.edges()
    H = G.remove_edges(((e.block == op.name) & (e.row == 0)).to_numpy())
    with pytest.raises(ns.GraphError, match="structure inside a layer"):
        ns.to_torch(H)
    # a pruned projection entry is realised exactly
    P = G.remove_edges(
        ((e.block == "attn.in_proj_weight") & (e.row == 3) & (e.col == 1)).to_numpy()
    )
    assert ns.to_torch(P).attn.in_proj_weight[3, 1].item() == 0.0


def test_null_models_probes_and_lattice_on_a_transformer_block():
    m, x = _encoder_post()
    x = torch.randn(12, 5, 8)
    G = ns.from_torch(m, x)
    name = "encoder.layers.0.linear1.weight"
    R = ns.randomize(G, model="A", blocks=[name], seed=0)
    before, after = G.block(name), R.block(name)
    np.testing.assert_array_equal(
        np.sort(before.weight[before.mask]), np.sort(after.weight[after.mask])
    )
    assert not np.array_equal(before.weight, after.weight)
    assert ns.to_torch(R)(x).shape == (12, 3)
    y = m(x).argmax(1).numpy()
    df = ns.probes.sweep([G], x.numpy(), y, {"prune": [0.0, 0.3]}, n_repeats=1, scheduler="serial")
    assert (df[(df.metric == "acc_full") & (df.level == 0.0)].value == 100.0).all()
    ctx = ns.lattice.FormalContext.from_block(G, name, quantile=0.8)
    assert ctx.shape == (8, 16)
    _, infl = ns.path_influence(G)
    assert np.isfinite(infl).all()


def test_native_file_round_trip_keeps_kernels_state_and_kinds(exported, tmp_path):
    _, m, x, G = exported
    path = tmp_path / "g.nsg"
    ns.save(G, path)
    H = ns.load(path)
    for a, b in zip(G.blocks, H.blocks):
        assert (a.name, a.kind, dict(a.layout)) == (b.name, b.kind, dict(b.layout))
        np.testing.assert_array_equal(a.parameter(), b.parameter())
        assert set(a.state) == set(b.state)
    with torch.no_grad():
        assert torch.allclose(ns.to_torch(H)(x), m(x), atol=1e-5)


def test_hand_written_heads_and_sdpa_are_followed_and_replay_at_any_length():
    m, x = _hand_attention()
    G = ns.from_torch(m, x)
    op = next(b for b in G.blocks if b.kind == "operator")
    qkv = G.block("qkv.weight").targets
    assert op.shape == (8, 24) and op.sources.tolist() == qkv.tolist()  # q, k, v dims in order
    r = ns.to_torch(G)
    x2 = torch.randn(4, 9, 8)  # another batch size and sequence length: sizes are symbolic
    with torch.no_grad():
        assert torch.allclose(r(x2), m(x2), atol=1e-5)


def test_null_models_leave_structure_blocks_alone_by_default():
    m, x = _user_cnn()
    G = ns.from_torch(m, x)
    R = ns.randomize(G, model="B", seed=3)
    for a, b in zip(G.blocks, R.blocks):
        if a.kind != "weight" or a.layout.get("groups", 1) != 1:
            np.testing.assert_array_equal(a.weight, b.weight)
    assert any(not np.array_equal(a.weight, b.weight) for a, b in zip(G.blocks, R.blocks))
    with torch.no_grad():
        assert ns.to_torch(R)(x).shape == m(x).shape


def test_from_networkx_restores_every_family(exported):
    _, m, x, G = exported
    H = ns.from_networkx(G.to_networkx())
    assert [(b.name, b.kind) for b in H.blocks] == [(b.name, b.kind) for b in G.blocks]
    with torch.no_grad():
        assert torch.allclose(ns.to_torch(H)(x), m(x), atol=1e-5)


def test_model_files_of_every_family(exported, tmp_path):
    _, m, x, _ = exported
    path = tmp_path / "m.nsm"
    ns.save_model(m, path, example_input=x)
    back = ns.load_model(path)
    with torch.no_grad():
        assert torch.allclose(back(x), m(x), atol=1e-5)
    # each handler's build is the load's one copy: every tensor of the file arrives, exactly
    want, got = m.state_dict(), back.state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        assert torch.equal(got[k].reshape(v.shape), v), k


# -- cross-attention and decoders with several inputs ---------------------------------------


def _decoder_layer(norm_first, activation):
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(
        8, 2, 16, dropout=0.0, batch_first=True, norm_first=norm_first, activation=activation
    )
    return layer.eval(), (torch.randn(2, 4, 8), torch.randn(2, 6, 8))


def _decoder_stack():
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)  # (time, batch, features)
    m = torch.nn.TransformerDecoder(layer, 2, norm=torch.nn.LayerNorm(8))
    return m.eval(), (torch.randn(4, 2, 8), torch.randn(6, 2, 8))


def _decoder_causal_mask():
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    m = torch.nn.TransformerDecoder(layer, 1)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(4)
    return m.eval(), (torch.randn(2, 4, 8), torch.randn(2, 6, 8), mask)


def _transformer():
    torch.manual_seed(0)
    m = torch.nn.Transformer(8, 2, 1, 1, 16, dropout=0.0, batch_first=True)
    return m.eval(), (torch.randn(2, 6, 8), torch.randn(2, 4, 8))


def _bare_cross_attention():
    torch.manual_seed(0)
    m = torch.nn.MultiheadAttention(8, 2, batch_first=True, kdim=6, vdim=6)
    return m.eval(), (torch.randn(2, 4, 8), torch.randn(2, 6, 6), torch.randn(2, 6, 6))


class _TwoImages(torch.nn.Module):
    """Two image inputs, the second read by a conv and added back as a residual."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.c2 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, a, b):
        return self.fc((self.c1(a) + self.c2(b) + b).mean((2, 3)))


def _two_images():
    torch.manual_seed(0)
    return _TwoImages().eval(), (torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5))


MULTI_INPUT = {
    "two_image_cnn": _two_images,
    "decoder_layer_post_relu": lambda: _decoder_layer(False, "relu"),
    "decoder_layer_pre_gelu": lambda: _decoder_layer(True, "gelu"),
    "decoder_stack_time_first": _decoder_stack,
    "decoder_causal_mask_input": _decoder_causal_mask,
    "transformer": _transformer,
    "multihead_attention_q_k_v": _bare_cross_attention,
}


def _first(y):
    return y[0] if isinstance(y, tuple) else y


@pytest.mark.parametrize("name", sorted(MULTI_INPUT))
def test_multi_input_attention_reimports_exactly_and_graphml_reads_back(name, tmp_path):
    m, xs = MULTI_INPUT[name]()
    G = ns.from_torch(m, xs)
    r = ns.to_torch(G)
    with torch.no_grad():
        assert torch.allclose(_first(r(*xs)), _first(m(*xs)), atol=1e-5)
    assert sorted(r.state_dict()) == sorted(m.state_dict())
    assert G.nodes()["name"].is_unique
    e = G.edges()
    path = tmp_path / "g.graphml"
    ns.write_graphml(G, path)
    assert nx.read_graphml(path).number_of_edges() == len(e) == G.to_networkx().number_of_edges()
    ns.save(G, tmp_path / "g.nsg")
    H = ns.load(tmp_path / "g.nsg")
    assert [dict(b.layout) for b in H.blocks] == [dict(b.layout) for b in G.blocks]
    with torch.no_grad():
        assert torch.allclose(_first(ns.to_torch(H)(*xs)), _first(m(*xs)), atol=1e-5)


def _heads(G, block):
    return G.nodes().loc[G.block(block).targets].gate.tolist()


def test_cross_attention_reads_queries_from_the_target_and_keys_values_from_memory():
    m, (x, mem) = _decoder_layer(False, "relu")
    G = ns.from_torch(m, (x, mem))
    n = G.nodes()
    memory = n.index[n.name.str.startswith("input.memory[")].to_numpy()
    target = n.index[n.name.str.match(r"input\[")].to_numpy()
    assert memory.size == target.size == 8 and (n.loc[memory].kind == "input").all()
    q, k, v = (G.block(f"multihead_attn.in_proj_weight[{p}]") for p in "qkv")
    # the query reads the decoder stream (after the first residual and norm), keys and values
    # read the memory's input nodes; each block holds its rows of in_proj_weight and in_proj_bias
    assert k.sources.tolist() == v.sources.tolist() == memory.tolist()
    assert q.sources.tolist() == G.block("norm1.weight").targets.tolist()
    w, b = m.multihead_attn.in_proj_weight.detach(), m.multihead_attn.in_proj_bias.detach()
    for j, blk in enumerate((q, k, v)):
        np.testing.assert_array_equal(blk.weight, w[8 * j : 8 * (j + 1)].numpy())
        np.testing.assert_array_equal(blk.bias, b[8 * j : 8 * (j + 1)].numpy())
        assert blk.shape == (8, 8)
    for p, blk in zip("qkv", (q, k, v)):
        assert _heads(G, blk.name) == [f"{p}{h}" for h in (0, 1) for _ in range(4)]
    groups = n.loc[np.concatenate([q.targets, k.targets, v.targets])].group
    assert groups.nunique() == 1  # one layer: heads are unit groups over Q/K/V
    op = G.block("multihead_attn.attention")
    assert op.kind == "operator" and op.shape == (8, 24) and op.n_edges == 24
    assert op.sources.tolist() == np.concatenate([q.targets, k.targets, v.targets]).tolist()
    # self-attention stays one in_proj_weight block over the target; residual sums are skips
    assert G.block("self_attn.in_proj_weight").sources.tolist() == target.tolist()
    assert sum(b.kind == "skip" for b in G.blocks) == 6  # three sums of two operands
    # a pruned key projection entry is realised exactly in the fused parameter
    e = G.edges()
    P = G.remove_edges(((e.block == k.name) & (e.row == 2) & (e.col == 5)).to_numpy())
    r = ns.to_torch(P)
    assert r.multihead_attn.in_proj_weight[8 + 2, 5].item() == 0.0
    assert r.multihead_attn.in_proj_weight[2, 5].item() == w[2, 5].item()


def test_cross_attention_heads_shrink_whole_and_equal_the_masked_model():
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(8, 4, 16, dropout=0.0, batch_first=True)
    m = torch.nn.TransformerDecoder(layer, 1).eval()
    xs = (torch.randn(2, 4, 8), torch.randn(2, 6, 8))
    G = ns.from_torch(m, xs)
    kinds = ns.structured_groups(G, macs=False).kind.value_counts()
    assert kinds["head"] == 8  # 4 self-attention and 4 cross-attention heads
    M = ns.structured_prune(G, amount=0.5).apply(G)
    masked, small = ns.to_torch(M), ns.to_torch(ns.shrink(M))
    with torch.no_grad():
        np.testing.assert_allclose(small(*xs).numpy(), masked(*xs).numpy(), atol=1e-5, rtol=0)
    cross = small.layers.get_submodule("0.multihead_attn")
    assert cross.num_heads < 4 and cross.in_proj_weight.shape == (3 * 2 * cross.num_heads, 8)


def test_a_later_input_read_by_a_conv_keeps_its_channel_axis_for_its_skip_edges():
    m, xs = _two_images()
    G = ns.from_torch(m, xs)
    n = G.nodes()
    b = n.index[n.name.str.startswith("input.b[")].tolist()
    assert len(b) == 3 and G.block("c2.weight").sources.tolist() == b
    skips = [blk for blk in G.blocks if blk.kind == "skip" and blk.sources.tolist() == b]
    assert len(skips) == 1  # the residual "+ b", channel c to channel c


def test_decoders_are_handled_layers_that_replay_at_any_length_with_masks():
    m, (x, mem) = _decoder_stack()
    G = ns.from_torch(m, (x, mem))
    assert G.spec["modules"][""]["handler"] == "TransformerDecoder"
    assert "specialised" not in G.spec  # not a tape: sizes stay free
    r = ns.to_torch(G)
    assert type(r) is torch.nn.TransformerDecoder
    x2, mem2 = torch.randn(7, 3, 8), torch.randn(2, 3, 8)  # (time, batch, features)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(7)
    padding = torch.zeros(3, 2, dtype=torch.bool)
    padding[0, 1] = True
    with torch.no_grad():
        for kw in (
            {},
            {"tgt_mask": mask, "tgt_is_causal": True},
            {"memory_key_padding_mask": padding},
        ):
            assert torch.allclose(r(x2, mem2, **kw), m(x2, mem2, **kw), atol=1e-5)

"""Structured pruning of Hugging Face models: heads, FFN units and channels, physically removed.

For ``ResNetModel``, ``ViTModel``, ``BertModel`` and ``GPT2LMHeadModel`` (tiny configs, four
heads): ``structured_prune`` at 30/50/70 % gives a plan whose masked module
(``plan.apply(G)``) and shrunk module (``shrink(G, units=plan)``) return the same outputs
within 1e-5, with fewer parameters; whole heads go (the rebuilt projections lose multiples of
the head size and the replayed views and splits take the new sizes); LayerNorm-tied residual
units are offered only with ``norm_width=True``
(tests/integration/test_norm_width.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert._resize import resize_ops
from netstruct.convert._tape import flat_tensors
from netstruct.exceptions import GraphError

tf = pytest.importorskip("transformers", reason="the Hugging Face corpus needs transformers")

pytestmark = pytest.mark.torch

_HEADS = 4
_WIDTH = 16


def _ids(shape=(2, 5)):
    return torch.randint(0, 40, shape, generator=torch.Generator().manual_seed(1))


def _pixels(shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(2))


def _bert():
    c = tf.BertConfig(
        vocab_size=40,
        hidden_size=_WIDTH,
        num_hidden_layers=1,
        num_attention_heads=_HEADS,
        intermediate_size=24,
        max_position_embeddings=12,
        type_vocab_size=2,
    )
    return tf.BertModel(c), _ids()


def _gpt2():
    c = tf.GPT2Config(
        vocab_size=40,
        n_embd=_WIDTH,
        n_layer=1,
        n_head=_HEADS,
        n_positions=12,
        use_cache=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    return tf.GPT2LMHeadModel(c), _ids()


def _vit():
    c = tf.ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=3,
        hidden_size=_WIDTH,
        num_hidden_layers=1,
        num_attention_heads=_HEADS,
        intermediate_size=24,
    )
    return tf.ViTModel(c), _pixels((2, 3, 8, 8))


def _resnet():
    c = tf.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"
    )
    return tf.ResNetModel(c), _pixels((2, 3, 16, 16))


MODELS = {"resnet": _resnet, "vit": _vit, "bert": _bert, "gpt2": _gpt2}
#: the query projection of each transformer (its rows are the heads' query units)
QUERY = {
    "vit": "layers.0.attention.q_proj",
    "bert": "encoder.layer.0.attention.self.query",
    "gpt2": "transformer.h.0.attn.c_attn",  # q, k and v together
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request):
    torch.manual_seed(0)
    m, x = MODELS[request.param]()
    m.eval()
    for mod in m.modules():  # non-trivial batch-norm statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return request.param, m, x, ns.from_torch(m, x)


def _outputs(module, x):
    with torch.no_grad():
        return flat_tensors(module(x))


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_masked_equals_shrunk_at_every_amount(exported, amount):
    name, m, x, G = exported
    plan = ns.structured_prune(G, amount=amount)
    masked = ns.to_torch(plan.apply(G))
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    want, got = _outputs(masked, x), _outputs(small, x)
    assert len(want) == len(got) > 0
    for a, b in zip(want, got):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-5
    assert ns.graph_params(S) == _n_params(small) < _n_params(m)
    assert ns.count_macs(S) < ns.count_macs(G)
    assert sorted(small.state_dict()) == sorted(m.state_dict())


def test_macs_of_traced_attention_are_counted():
    torch.manual_seed(0)
    m, x = _bert()
    G = ns.from_torch(m.eval(), x)
    # 10 positions x (q, k, v, o: 4 x 16 x 16; FFN: 2 x 16 x 24; scores and context: 2 x 16 x 5
    # keys) + the pooler on the 2 class tokens (16 x 16)
    assert ns.count_macs(G) == 10 * (1024 + 768 + 160) + 2 * 256


def test_transformers_offer_head_groups_and_no_residual_units(exported):
    name, _, _, G = exported
    kinds = ns.structured_groups(G, macs=False)["kind"].value_counts().to_dict()
    if name == "resnet":
        assert set(kinds) == {"channel", "residual"}
        return
    # four heads and the 24 FFN units (GPT-2: 4 x 16); the residual stream is LayerNorm-tied
    assert kinds == {"head": _HEADS, "unit": 64 if name == "gpt2" else 24}


@pytest.mark.parametrize("exported", sorted(QUERY), indirect=True)
@pytest.mark.parametrize("amount", [0.3, 0.5])
def test_whole_heads_go_and_the_replayed_shapes_follow(exported, amount):
    name, _, x, G = exported
    groups = ns.structured_groups(G, macs=False)
    heads = groups[groups["kind"] == "head"]
    n_drop = int(round(amount * _HEADS))
    drop = [u for members in heads["members"].iloc[:n_drop] for u in members]
    plan = ns.PruningPlan.for_graph(G).remove_units(G, G.nodes()["name"].isin(drop).to_numpy())
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    head_dim = _WIDTH // _HEADS
    q = small.get_submodule(QUERY[name])
    rows = q.weight.shape[1] if name == "gpt2" else q.weight.shape[0]  # Conv1D is (in, out)
    kept = _HEADS - n_drop
    assert rows == kept * head_dim * (3 if name == "gpt2" else 1)
    if name == "gpt2":  # split(16, dim=2) became the kept q/k/v sizes
        split = next(r for r in S.spec["ops"] if r.get("target") == "split")
        assert split["args"][1] == [kept * head_dim] * 3
    masked = ns.to_torch(plan.apply(G))
    for a, b in zip(_outputs(masked, x), _outputs(small, x)):
        assert float((a - b).abs().max()) <= 1e-5


def test_gpt2_shrinks_twice_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    m, x = _gpt2()
    m.eval()
    G = ns.from_torch(m, x)
    once = ns.shrink(G, units=ns.structured_prune(G, amount=0.3))
    twice = ns.shrink(once, units=ns.structured_prune(once, amount=0.5))
    ns.save(twice, tmp_path / "g.ns")
    loaded = ns.load(tmp_path / "g.ns")
    r = ns.to_torch(loaded)
    assert _n_params(r) < _n_params(ns.to_torch(once)) < _n_params(m)
    # the tied LM head stays tied to the (unshrunk) token embedding
    assert r.lm_head.weight is r.transformer.wte.weight
    np.testing.assert_allclose(
        _outputs(r, x)[0].numpy(), _outputs(ns.to_torch(twice), x)[0].numpy(), atol=1e-6
    )


def test_layer_norm_tied_residual_units_go_as_a_norm_width():
    # not offered by default; asked for by unit, the whole residual dimension goes and leaves
    # every LayerNorm's statistics (tests/integration/test_norm_width.py)
    torch.manual_seed(0)
    m, x = _bert()
    G = ns.from_torch(m.eval(), x)
    residual = G.block("encoder.layer.0.attention.output.dense.weight").targets[:1]
    small = ns.to_torch(ns.shrink(G, units=residual))
    assert small.embeddings.LayerNorm.normalized_shape == (_WIDTH - 1,)
    query = small.get_submodule("encoder.layer.0.attention.self.query")
    assert query.weight.shape == (_WIDTH, _WIDTH - 1)


def test_resize_refuses_kept_units_that_are_not_whole_heads():
    spec = {
        "ops": [
            {
                "op": "call_method",
                "target": "view",
                "args": [{"$node": 0}, 2, 5, 2, 3],
                "units": {"axes": [2, 3], "ids": [[0, 1, 2], [3, 4, 5]]},
            }
        ]
    }
    keep = np.ones(6, dtype=bool)
    keep[[3, 4, 5]] = False  # head 1 whole: the view gets one head
    out = resize_ops(spec, keep, np.cumsum(keep) - 1)
    assert out["ops"][0]["args"] == [{"$node": 0}, 2, 5, 1, 3]
    assert out["ops"][0]["units"]["ids"] == [[0, 1, 2]]
    assert spec["ops"][0]["args"][3] == 2  # the original spec is left alone
    keep = np.ones(6, dtype=bool)
    keep[[2, 5]] = False  # the last dimension of both heads: a product, head_dim 2
    assert resize_ops(spec, keep, np.cumsum(keep) - 1)["ops"][0]["args"][4] == 2
    keep = np.ones(6, dtype=bool)
    keep[4] = False  # part of a head
    with pytest.raises(GraphError, match="whole heads"):
        resize_ops(spec, keep, np.cumsum(keep) - 1)


def test_hand_written_heads_shrink_and_replay_at_any_length():
    from tests.models import HandWrittenAttention

    torch.manual_seed(0)
    m = HandWrittenAttention(dim=8, heads=4).eval()
    x = torch.randn(3, 5, 8)
    G = ns.from_torch(m, x)  # torch.fx: split(C) and view(B, T, 4, C // 4) are symbolic
    plan = ns.structured_prune(G, amount=0.5)
    masked, small = ns.to_torch(plan.apply(G)), ns.to_torch(ns.shrink(G, units=plan))
    assert small.qkv.weight.shape == (12, 8)  # 2 heads of 2 dims for q, k and v
    x2 = torch.randn(4, 9, 8)  # batch and length stay symbolic after the shrink
    with torch.no_grad():
        for inp in (x, x2):
            assert torch.allclose(masked(inp), small(inp), atol=1e-5)


def _more_families():
    from tests.integration import test_hf_models as corpus

    more = dict(corpus.MORE)
    more.update({k: corpus.MODELS[k] for k in ("distilbert", "convnext", "mobilenet_v2")})
    return more


@pytest.mark.parametrize("name", sorted(_more_families()))
def test_more_families_shrink_equal_to_masked(name):
    torch.manual_seed(0)
    m, x = _more_families()[name]()
    G = ns.from_torch(m.eval(), x)
    kinds = set(ns.structured_groups(G, macs=False)["kind"])
    # the transformers offer their heads; OLMo-3's q_norm/k_norm normalise all heads' queries
    # and keys together (statistics over the full width), so no head can go alone there
    if name not in ("convnext", "mobilenet_v2", "regnet", "olmo3"):
        assert "head" in kinds
    plan = ns.structured_prune(G, amount=0.5)
    masked, small = ns.to_torch(plan.apply(G)), ns.to_torch(ns.shrink(G, units=plan))
    assert _n_params(small) < _n_params(m)
    for a, b in zip(_outputs(masked, x), _outputs(small, x)):
        assert float((a - b).abs().max()) <= 1e-5


def test_swin_relative_position_bias_goes_with_its_head():
    torch.manual_seed(0)
    m, x = _more_families()["swin"]()
    G = ns.from_torch(m.eval(), x)
    table = (
        "encoder.layers.0.blocks.0.attention.relative_position_bias.relative_position_bias_table"
    )
    op = next(b for b in G.blocks if b.kind == "operator")
    assert op.shape == (8, 3 * 8 + 2)  # q, k, v and one score-bias unit per head
    assert set(G.block(table).targets.tolist()) <= set(op.sources.tolist())
    heads = ns.structured_groups(G, macs=False).query("kind == 'head'")
    assert all(any(n.startswith(table) for n in ms) for ms in heads["members"])
    plan = ns.PruningPlan.for_graph(G).remove_units(
        G, G.nodes()["name"].isin(heads["members"].iloc[0]).to_numpy()
    )
    small = ns.to_torch(ns.shrink(G, units=plan))
    bias = small.get_submodule(table.rsplit(".", 1)[0])
    assert bias.relative_position_bias_table.shape == (9, 1)
    for a, b in zip(_outputs(ns.to_torch(plan.apply(G)), x), _outputs(small, x)):
        assert float((a - b).abs().max()) <= 1e-5


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_llama_prunes_kv_groups_and_swiglu_units_and_shrinks_to_the_masked_model(amount):
    """Grouped-query attention: a key/value head goes with every query head that reads it."""
    from tests.integration import test_hf_models as corpus

    torch.manual_seed(0)
    m, x = corpus.MORE["llama"]()
    G = ns.from_torch(m.eval(), x)
    groups = ns.structured_groups(G, macs=False)
    heads = groups[groups["kind"] == "head"]
    # four query heads on two key/value heads: two groups of 2 x 4 query, 4 key and 4 value
    # dimensions and their contexts; the 24 SwiGLU units tie gate row, up row, down column
    assert len(heads) == 2 and groups["kind"].value_counts()["unit"] == 24
    names = set(heads["members"].iloc[0])
    assert {"model.layers.0.self_attn.k_proj[0]", "model.layers.0.self_attn.q_proj[7]"} <= names
    plan = ns.structured_prune(G, amount=amount)
    S = ns.shrink(G, units=plan)
    small, masked = ns.to_torch(S), ns.to_torch(plan.apply(G))
    for a, b in zip(_outputs(masked, x), _outputs(small, x)):
        assert float((a - b).abs().max()) <= 1e-5
    attn, mlp = (
        small.get_submodule("model.layers.0.self_attn"),
        small.get_submodule("model.layers.0.mlp"),
    )
    q_rows, kv_rows = attn.q_proj.weight.shape[0], attn.k_proj.weight.shape[0]
    assert q_rows == 2 * kv_rows and kv_rows % 4 == 0  # whole groups: 2 query heads per kv head
    assert attn.v_proj.weight.shape[0] == kv_rows == attn.o_proj.weight.shape[1] // 2
    assert (
        mlp.gate_proj.weight.shape[0]
        == mlp.up_proj.weight.shape[0]
        == mlp.down_proj.weight.shape[1]
    )
    assert ns.graph_params(S) == _n_params(small) < _n_params(m)
    assert ns.count_macs(S) < ns.count_macs(G)

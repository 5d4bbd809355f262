"""Hugging Face ``transformers`` models from tiny configs (no weight download), exported exactly.

``torch.fx`` cannot trace them (their forwards branch on values and sizes), so ``from_torch``
records one run on the example input (the tape tracer). For each model:
``to_torch(from_torch(m, x))(x)`` returns every tensor of ``m(x)`` (its ``ModelOutput`` fields,
in order) within 1e-5, the ``state_dict`` keys are the same, weight blocks are named like
``state_dict`` keys, and the edge table agrees with networkx, igraph and scipy.
"""

from __future__ import annotations

import igraph
import networkx as nx
import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert._tape import flat_tensors
from netstruct.exceptions import InvalidParameterError, UnsupportedModuleError

tf = pytest.importorskip("transformers", reason="the Hugging Face corpus needs transformers")

pytestmark = pytest.mark.torch


def _ids(vocab, shape=(2, 5)):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(1))


def _pixels(shape):
    return torch.randn(shape, generator=torch.Generator().manual_seed(2))


def _bert(attn="sdpa"):
    c = tf.BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=12,
        type_vocab_size=2,
        attn_implementation=attn,
    )
    return tf.BertModel(c), _ids(40)


def _gpt2(attn="sdpa"):
    c = tf.GPT2Config(
        vocab_size=40,
        n_embd=16,
        n_layer=1,
        n_head=2,
        n_positions=12,
        use_cache=False,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation=attn,
    )
    return tf.GPT2LMHeadModel(c), _ids(40)


def _vit():
    c = tf.ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
    )
    return tf.ViTModel(c), _pixels((2, 3, 8, 8))


def _resnet():
    c = tf.ResNetConfig(
        num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"
    )
    return tf.ResNetModel(c), _pixels((2, 3, 16, 16))


def _distilbert():
    c = tf.DistilBertConfig(
        vocab_size=40, dim=16, n_layers=1, n_heads=2, hidden_dim=24, max_position_embeddings=12
    )
    return tf.DistilBertModel(c), _ids(40)


def _convnext():
    c = tf.ConvNextConfig(
        num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, patch_size=2
    )
    return tf.ConvNextModel(c), _pixels((2, 3, 8, 8))


def _mobilenet_v2():
    c = tf.MobileNetV2Config(
        num_channels=3,
        image_size=16,
        depth_multiplier=0.1,
        min_depth=4,
        divisible_by=4,
        expand_ratio=2,
        finegrained_output=False,
    )
    return tf.MobileNetV2Model(c), _pixels((1, 3, 16, 16))


MODELS = {
    "bert": _bert,
    "gpt2": _gpt2,
    "vit": _vit,
    "resnet": _resnet,
    "distilbert": _distilbert,
    "convnext": _convnext,
    "mobilenet_v2": _mobilenet_v2,
}


def _build(name):
    torch.manual_seed(0)
    m, x = MODELS[name]()
    m.eval()
    for mod in m.modules():  # non-trivial batch-norm statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m, x


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request):
    m, x = _build(request.param)
    return request.param, m, x, ns.from_torch(m, x)


def test_reimport_reproduces_every_output_and_the_state_dict_keys(exported):
    _, m, x, G = exported
    r = ns.to_torch(G)
    with torch.no_grad():
        want, got = flat_tensors(m(x)), flat_tensors(r(x))
    assert len(want) == len(got) == len(G.spec["specialised"]["outputs"])
    for a, b in zip(want, got):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert sorted(r.state_dict()) == sorted(m.state_dict())


def test_node_names_are_unique(exported):
    _, _, _, G = exported
    names = G.nodes()["name"]
    assert names.is_unique, names[names.duplicated()].tolist()[:5]


def test_weight_blocks_are_named_like_state_dict_keys(exported):
    _, m, _, G = exported
    keys = set(m.state_dict())
    for b in G.blocks:
        if b.has_parameter:
            assert b.name in keys, b.name
            want = m.state_dict()[b.name].detach().float().numpy()
            np.testing.assert_array_equal(b.parameter().reshape(want.shape), want)


def test_views_and_graphml_agree_with_the_edge_table(exported, tmp_path):
    _, _, _, G = exported
    e = G.edges()
    assert G.to_networkx().number_of_edges() == len(e)
    assert G.to_igraph().ecount() == len(e)
    A = G.to_scipy()
    np.testing.assert_allclose(A[e.source.to_numpy(), e.target.to_numpy()], e.weight.to_numpy())
    path = tmp_path / "g.graphml"
    ns.write_graphml(G, path)
    assert nx.read_graphml(path).number_of_edges() == len(e)
    assert igraph.Graph.Read_GraphML(str(path)).ecount() == len(e)


def test_saved_graph_loads_and_reimports_exactly(exported, tmp_path):
    _, m, x, G = exported
    ns.save(G, tmp_path / "g.ns")
    r = ns.to_torch(ns.load(tmp_path / "g.ns"))
    with torch.no_grad():
        for a, b in zip(flat_tensors(m(x)), flat_tensors(r(x))):
            assert torch.allclose(a, b, atol=1e-5, rtol=0)


def test_the_rebuilt_module_is_specialised_to_the_example_shapes(exported):
    _, _, x, G = exported
    assert G.spec["specialised"]["input_shapes"] == [list(x.shape)]
    r = ns.to_torch(G)
    bigger = torch.cat([x, x])  # another batch size
    with pytest.raises(InvalidParameterError, match="specialised to input shapes"):
        r(bigger)


def test_gpt2_lm_head_stays_tied_to_the_token_embedding():
    m, x = _build("gpt2")
    G = ns.from_torch(m, x)
    assert G.spec["tied"] == {"lm_head.weight": "transformer.wte.weight"}
    c_attn = G.block("transformer.h.0.attn.c_attn.weight")  # Conv1D: (in, out) stored
    assert c_attn.shape == (48, 16)
    np.testing.assert_array_equal(
        c_attn.parameter(), m.transformer.h[0].attn.c_attn.weight.detach().numpy()
    )
    r = ns.to_torch(G)
    assert r.lm_head.weight is r.transformer.wte.weight


def test_gpt2_model_file_keeps_the_tie(tmp_path):
    m, x = _build("gpt2")
    ns.save_model(m, tmp_path / "g.nsm", example_input=x)
    back = ns.load_model(tmp_path / "g.nsm")
    assert back.lm_head.weight is back.transformer.wte.weight  # one tensor, as in the model
    with torch.no_grad():
        for a, b in zip(flat_tensors(m(x)), flat_tensors(back(x))):
            assert torch.allclose(a, b, atol=1e-5, rtol=0)


def test_vit_reads_cls_token_and_position_embeddings_as_parameter_blocks():
    m, x = _build("vit")
    G = ns.from_torch(m, x)
    cls = G.block("embeddings.cls_token")
    pos = G.block("embeddings.position_embeddings")
    assert cls.shape == (16, 1) and pos.shape == (16, 5)  # 1 class token + 4 patches
    names = G.nodes().loc[pos.sources].name.tolist()
    assert names[0] == "embeddings.position_embeddings[0]"  # rows are inputs, values `.out[i]`
    assert G.nodes().loc[pos.targets].name.tolist()[0] == "embeddings.position_embeddings.out[0]"
    # the class token is concatenated before the patches: both feed fresh units via skip edges
    parts = [b for b in G.blocks if b.kind == "skip" and ".part" in b.name]
    assert len(parts) == 2 and {p.n_edges for p in parts} == {16}


def test_attention_heads_are_operators_in_bert():
    m, x = _build("bert")
    G = ns.from_torch(m, x)
    ops = [b for b in G.blocks if b.kind == "operator"]
    assert len(ops) == 1 and ops[0].shape == (16, 48)  # context units <- q, k, v of each head
    assert G.block("embeddings.word_embeddings.weight").shape == (16, 40)
    skips = [b for b in G.blocks if b.kind == "skip"]
    assert len(skips) == 2 * 4  # word+type, +position, and the two residual sums of the layer


@pytest.mark.parametrize("build", [_bert, _gpt2], ids=["bert", "gpt2"])
def test_eager_attention_exports_like_sdpa(build):
    torch.manual_seed(0)
    m, x = build("eager")
    G = ns.from_torch(m.eval(), x)
    torch.manual_seed(0)
    m2, _ = build("sdpa")
    H = ns.from_torch(m2.eval(), x)
    assert [(b.kind, b.shape) for b in G.blocks] == [(b.kind, b.shape) for b in H.blocks]
    assert [b.name for b in G.blocks if b.has_parameter] == [
        b.name for b in H.blocks if b.has_parameter
    ]
    assert sum(b.kind == "operator" for b in G.blocks) == 1


def test_a_pruned_hf_graph_reimports_with_its_edges_removed():
    m, x = _build("bert")
    G = ns.from_torch(m, x)
    e = G.edges()
    cut = ((e.block == "encoder.layer.0.intermediate.dense.weight") & (e.row == 0)).to_numpy()
    r = ns.to_torch(G.remove_edges(cut))
    dense = r.get_submodule("encoder.layer.0.intermediate.dense")
    assert torch.count_nonzero(dense.weight[0]) == 0
    H = ns.from_torch(r, x)  # the rebuilt module exports again, block for block
    assert [b.name for b in H.blocks] == [b.name for b in G.blocks]


class _Untraceable(torch.nn.Module):
    """Branches on a value (fx fails), then uses three operations netstruct cannot follow."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.b = torch.nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        if h.sum() > -1e9:  # data-dependent Python
            h = torch.cumsum(h, dim=-1)
        g = torch.sort(self.b(x), dim=-1).values
        return self.b(torch.erf(x)) + h + g


def test_three_unsupported_operations_are_reported_at_once_with_source_lines():
    with pytest.raises(UnsupportedModuleError) as info:
        ns.from_torch(_Untraceable(), torch.randn(2, 4))
    msg = str(info.value)
    assert "3 operation(s)" in msg
    for op in ("cumsum", "sort", "erf"):
        assert op in msg
    assert msg.count("test_hf_models.py, line") == 3


def test_fx_failure_without_example_input_says_to_pass_one():
    m, _ = _build("bert")
    with pytest.raises(UnsupportedModuleError, match="Pass example_input"):
        ns.from_torch(m)


def test_an_attention_mask_is_an_input_and_branches_on_it_are_guarded():
    m, x = _build("bert")
    pad = torch.ones_like(x)
    pad[0, -2:] = 0
    G = ns.from_torch(m, (x, pad))  # a padded example records the mask's path
    r = ns.to_torch(G)
    other = torch.ones_like(x)
    other[1, -1:] = 0
    with torch.no_grad():
        assert torch.allclose(r(x, other)[0], m(x, other).last_hidden_state, atol=1e-5)
    # with an all-ones example BERT skips the mask (a branch on its values): the rebuilt
    # module refuses a padded mask instead of ignoring it
    r1 = ns.to_torch(ns.from_torch(m, (x, torch.ones_like(x))))
    with pytest.raises(InvalidParameterError, match="another path than example_input"):
        r1(x, pad)


_TEXT = dict(
    vocab_size=40,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=24,
    max_position_embeddings=20,
)
_VIT = dict(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
#: decoder LLMs: RMS norms, SwiGLU (``act(gate(x)) * up(x)``), rotary embeddings, four query heads
#: on two key/value heads (grouped-query attention)
_LLM = dict(_TEXT, num_attention_heads=4, num_key_value_heads=2, use_cache=False)
MORE = {
    "llama": lambda: (tf.LlamaForCausalLM(tf.LlamaConfig(**_LLM)), _ids(40)),
    # eager attention: repeat_kv copies the key/value heads, then matmul attention
    "llama_eager": lambda: (
        tf.LlamaModel(tf.LlamaConfig(**_LLM, attn_implementation="eager")),
        _ids(40),
    ),
    "mistral": lambda: (tf.MistralModel(tf.MistralConfig(**_LLM)), _ids(40)),
    "qwen2": lambda: (tf.Qwen2Model(tf.Qwen2Config(**_LLM)), _ids(40)),
    # fused q/k/v and gate/up projections cut by constant slices and chunk; full rotary: the
    # pass-through part q[..., head_dim:] is empty
    "phi3": lambda: (tf.Phi3Model(tf.Phi3Config(**_LLM, pad_token_id=0)), _ids(40)),
    # partial rotary embeddings: q[..., :r] rotated (its halves 1 wide), q[..., r:] passed
    "stablelm": lambda: (
        tf.StableLmModel(tf.StableLmConfig(**dict(_LLM, hidden_size=32))),
        _ids(40),
    ),
    "gpt_neox": lambda: (
        tf.GPTNeoXModel(
            tf.GPTNeoXConfig(**{k: v for k, v in _LLM.items() if k != "num_key_value_heads"})
        ),
        _ids(40),
    ),
    # per-head RMS norms of the queries and keys (q_norm / k_norm over each head's dims)
    "qwen3": lambda: (tf.Qwen3ForCausalLM(tf.Qwen3Config(**_LLM, head_dim=4)), _ids(40)),
    "gemma3": lambda: (
        tf.Gemma3TextModel(tf.Gemma3TextConfig(**_LLM, head_dim=4, pad_token_id=0)),
        _ids(40),
    ),
    # attention-logit and final-logit soft-capping: tanh(x / c) * c
    "gemma2": lambda: (
        tf.Gemma2ForCausalLM(tf.Gemma2Config(**_LLM, head_dim=4, pad_token_id=0)),
        _ids(40),
    ),
    # copies of LlamaRMSNorm / OLMo-2's norm under their own names, recognised by their code
    "glm": lambda: (tf.GlmForCausalLM(tf.GlmConfig(**_LLM, pad_token_id=0)), _ids(40)),
    "olmo3": lambda: (tf.Olmo3ForCausalLM(tf.Olmo3Config(**_LLM, pad_token_id=0)), _ids(40)),
    # multi-query attention: one key/value head, (B, 1, T, head_dim), for four query heads
    "gpt_bigcode": lambda: (
        tf.GPTBigCodeForCausalLM(
            tf.GPTBigCodeConfig(
                vocab_size=40,
                n_embd=16,
                n_layer=1,
                n_head=4,
                n_inner=24,
                n_positions=32,
                multi_query=True,
            )
        ),
        _ids(40),
    ),
    # LayerNorms written in Python: Cohere's (a weight, no bias), OLMo's (no parameters)
    "cohere": lambda: (tf.CohereForCausalLM(tf.CohereConfig(**_LLM, pad_token_id=0)), _ids(40)),
    "olmo": lambda: (tf.OlmoForCausalLM(tf.OlmoConfig(**_LLM, pad_token_id=0)), _ids(40)),
    # relu(x) ** 2 MLP, partial rotary, fused query/key/value
    "persimmon": lambda: (
        tf.PersimmonForCausalLM(
            tf.PersimmonConfig(**{k: v for k, v in _LLM.items() if k != "num_key_value_heads"})
        ),
        _ids(40),
    ),
    # a scaled word embedding and learned positions (offset 2) from the attention mask
    "biogpt": lambda: (
        tf.BioGptForCausalLM(
            tf.BioGptConfig(
                vocab_size=40,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=4,
                intermediate_size=24,
                max_position_embeddings=32,
                pad_token_id=1,
            )
        ),
        _ids(40),
    ),
    # learned positions looked up from the attention mask's cumulative sum (offset 2)
    "opt": lambda: (
        tf.OPTForCausalLM(
            tf.OPTConfig(
                vocab_size=40,
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=4,
                ffn_dim=24,
                max_position_embeddings=20,
                word_embed_proj_dim=16,
                pad_token_id=1,
            )
        ),
        _ids(40),
    ),
    # (1 + weight) RMS norms, a scaled embedding, GELU-tanh gates, an LM head tied to it
    "gemma": lambda: (
        tf.GemmaForCausalLM(tf.GemmaConfig(**_LLM, head_dim=4, pad_token_id=0)),
        _ids(40),
    ),
    # squeeze-and-excitation: x * sigmoid(conv(pool(x))), a product of two values with units
    "regnet": lambda: (
        tf.RegNetModel(
            tf.RegNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8)
        ),
        _pixels((2, 3, 16, 16)),
    ),
    "roberta": lambda: (tf.RobertaModel(tf.RobertaConfig(**_TEXT, pad_token_id=1)), _ids(40)),
    "electra": lambda: (tf.ElectraModel(tf.ElectraConfig(embedding_size=8, **_TEXT)), _ids(40)),
    "albert": lambda: (tf.AlbertModel(tf.AlbertConfig(embedding_size=8, **_TEXT)), _ids(40)),
    "deit": lambda: (
        tf.DeiTModel(tf.DeiTConfig(intermediate_size=24, **_VIT)),
        _pixels((2, 3, 16, 16)),
    ),
    "swin": lambda: (
        tf.SwinModel(
            tf.SwinConfig(
                image_size=16, patch_size=4, embed_dim=8, depths=[1], num_heads=[2], window_size=2
            )
        ),
        _pixels((2, 3, 16, 16)),
    ),
}


@pytest.mark.parametrize("name", sorted(MORE))
def test_more_families_export_and_reimport_exactly(name):
    torch.manual_seed(0)
    m, x = MORE[name]()
    m.eval()
    G = ns.from_torch(m, x)
    r = ns.to_torch(G)
    with torch.no_grad():
        want, got = flat_tensors(m(x)), flat_tensors(r(x))
    assert len(want) == len(got) > 0
    assert all(torch.allclose(a, b, atol=1e-5, rtol=0) for a, b in zip(want, got))
    assert sorted(r.state_dict()) == sorted(m.state_dict())
    assert G.nodes()["name"].is_unique


def test_families_netstruct_cannot_follow_yet_get_one_clear_error():
    torch.manual_seed(0)
    # Mixtral routes each token to its top experts: the router reads its weight by F.linear
    # and the experts run on data-dependent subsets of the tokens
    mixtral = tf.MixtralModel(
        tf.MixtralConfig(**_LLM, num_local_experts=2, num_experts_per_tok=1)
    ).eval()
    with pytest.raises(UnsupportedModuleError) as info:
        ns.from_torch(mixtral, _ids(40))
    msg = str(info.value)
    assert "linear in module 'layers.0.mlp.gate'" in msg and "modeling_mixtral.py, line" in msg
    # StableLM with 1-wide rotary halves: the rotary tables (2 wide) broadcast the rotated
    # part of each head to more positions than it has units
    odd = tf.StableLmModel(tf.StableLmConfig(**_LLM)).eval()
    with pytest.raises(UnsupportedModuleError, match=r"broadcasts a value with units \(2, 1\)"):
        ns.from_torch(odd, _ids(40))


def test_llama_with_a_padding_mask_reads_repeated_kv_heads_as_grouped_query_attention():
    """With a mask, transformers' SDPA path repeats the key/value heads (repeat_kv) first."""
    torch.manual_seed(0)
    m = tf.LlamaForCausalLM(tf.LlamaConfig(**_LLM)).eval()
    ids, mask = _ids(40), torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    G = ns.from_torch(m, (ids, mask))
    att = [b for b in G.blocks if b.kind == "operator" and b.name.endswith(".attention")]
    assert [b.layout["kv_repeats"] for b in att] == [2]
    assert att[0].shape == (16, 16 + 8 + 8)  # q, then each key/value unit once
    with torch.no_grad():
        want = m(ids, attention_mask=mask).logits
        assert torch.allclose(ns.to_torch(G)(ids, mask)[0], want, atol=1e-5)


def test_shrunk_bert_with_a_padded_mask_rebuilds_and_equals_the_masked_model():
    """A tape graph with two inputs (ids, mask) re-exports its shrunk wiring on placeholders."""
    model, ids = _bert()
    model.eval()
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    G = ns.from_torch(model, (ids, mask))
    assert G.spec["specialised"]["input_dtypes"] == ["int64", "int64"]
    plan = ns.structured_prune(G, amount=0.5)
    masked, small = ns.to_torch(plan.apply(G)), ns.to_torch(ns.shrink(G, units=plan))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        for a, b in zip(masked(ids, mask), small(ids, mask)):
            assert torch.allclose(a, b, atol=1e-5)


class _BertDecoder(torch.nn.Module):
    """A BERT decoder whose cross-attention reads the encoder states, a second model input."""

    def __init__(self):
        super().__init__()
        c = tf.BertConfig(
            vocab_size=30,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=16,
            is_decoder=True,
            add_cross_attention=True,
        )
        torch.manual_seed(0)
        self.bert = tf.BertModel(c, add_pooling_layer=False)

    def forward(self, ids, states):
        return self.bert(input_ids=ids, encoder_hidden_states=states).last_hidden_state


def test_bert_cross_attention_reads_the_encoder_states_input_and_shrinks_by_heads():
    m = _BertDecoder().eval()
    xs = (_ids(30), torch.randn(2, 7, 8, generator=torch.Generator().manual_seed(3)))
    G = ns.from_torch(m, xs)
    with torch.no_grad():
        assert torch.allclose(ns.to_torch(G)(*xs), m(*xs), atol=1e-5)
    n = G.nodes()
    states = n.index[n.name.str.startswith("input.states[")].tolist()
    cross = "bert.encoder.layer.0.crossattention.self."
    assert len(states) == 8
    assert G.block(cross + "key.weight").sources.tolist() == states
    assert G.block(cross + "value.weight").sources.tolist() == states
    assert set(G.block(cross + "query.weight").sources.tolist()).isdisjoint(states)
    assert ns.structured_groups(G, macs=False).kind.value_counts()["head"] == 4
    M = ns.structured_prune(G, amount=0.5).apply(G)
    small = ns.to_torch(ns.shrink(M))
    with torch.no_grad():
        np.testing.assert_allclose(small(*xs).numpy(), ns.to_torch(M)(*xs).numpy(), atol=1e-5)
    assert small.bert.encoder.layer.get_submodule("0.crossattention.self.key").out_features == 4


def _bart():
    torch.manual_seed(0)
    cfg = tf.BartConfig(
        vocab_size=40,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
        scale_embedding=True,
        pad_token_id=1,
    )
    ids = _ids(40)
    return tf.BartModel(cfg).eval(), (ids, torch.ones_like(ids), _ids(40, (2, 4)))


def test_bart_encoder_decoder_exports_shrinks_and_comes_back_in_its_class():
    """BART's encoder passes one feature of its embeddings (``inputs_embeds[:, :, -1]``) to
    the position table, which reads its shape only; the decoder's ids are the third input."""
    m, x = _bart()
    G = ns.from_torch(m, x)
    with torch.no_grad():
        want = flat_tensors(m(*x))
        got = flat_tensors(ns.to_torch(G)(*x))
    assert all(torch.allclose(a, b, atol=1e-5, rtol=0) for a, b in zip(want, got))
    plan = ns.structured_prune(G, amount=0.5)
    small = ns.to_torch(plan.apply(G), shrink=True, into=m)
    masked = ns.to_torch(plan.apply(G), into=m)
    assert type(small) is type(m)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in m.parameters())
    ids = _ids(40, (3, 7))  # another shape: the model's own forward
    other = (ids, torch.ones_like(ids), _ids(40, (3, 6)))
    with torch.no_grad():
        a, b = flat_tensors(small(*other))[0], flat_tensors(masked(*other))[0]
    assert float((a - b).abs().max()) <= 1e-5


def test_one_unit_taken_out_as_a_tensor_is_refused_where_its_values_are_read():
    class OneUnit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            h = self.a(x)
            return self.b(h + h[..., 0].unsqueeze(-1))

    with pytest.raises(UnsupportedModuleError, match=r"one unit taken out as a tensor"):
        ns.from_torch(OneUnit().eval(), torch.randn(5, 3))


def test_marian_decoder_with_a_fixed_position_table_shrinks_in_its_class():
    """A (T, D) sinusoidal table added to (B, T, D) token vectors (a broadcast sum); the
    decoder's cross-attention is never called without encoder states, so the graph has no
    blocks for it and the model keeps it as it is under ``into=``."""
    torch.manual_seed(0)
    cfg = tf.MarianConfig(
        vocab_size=40,
        d_model=16,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=24,
        max_position_embeddings=32,
        pad_token_id=1,
        decoder_start_token_id=1,
    )
    m, x = tf.MarianForCausalLM(cfg).eval(), _ids(40)
    G = ns.from_torch(m, x)
    with torch.no_grad():
        assert torch.allclose(ns.to_torch(G)(x)[0], m(x).logits, atol=1e-5)
    plan = ns.structured_prune(G, amount=0.5)
    small = ns.to_torch(plan.apply(G), shrink=True, into=m)
    masked = ns.to_torch(plan.apply(G), into=m)
    assert small.model.decoder.layers[0].fc1.out_features == 12
    other = _ids(40, (3, 8))
    with torch.no_grad():
        assert torch.allclose(small(other).logits, masked(other).logits, atol=1e-5)

"""Slices along the feature axes: 1-wide and empty head-dim slices, constant bounds refitted."""

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert._resize import resize_ops, units_record
from netstruct.convert._values import Feat, decode, encode


def _coded(ids: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]):
    t, lookup = encode(Feat(ids, len(shape), axes[0], axes), shape, np.random.default_rng(0))
    return t, lookup


def test_a_one_wide_head_dim_slice_keeps_both_feature_axes():
    ids = np.arange(8).reshape(2, 4)  # 2 heads x 4 dims, value (B, heads, T, dims)
    t, lookup = _coded(ids, (3, 2, 5, 4), (1, 3))
    f = decode(t[..., :1], lookup, keep_axes=(1, 3))
    assert f is not None and f.axes == (1, 3)
    assert f.ids.tolist() == [[0], [4]]
    # without the hint the 1-wide axis is lost: a (heads,) value
    assert decode(t[..., :1], lookup).axes is None


def test_an_empty_head_dim_slice_is_an_empty_value_on_the_kept_axes():
    ids = np.arange(8).reshape(2, 4)
    t, lookup = _coded(ids, (3, 2, 5, 4), (1, 3))
    f = decode(t[..., 4:], lookup, keep_axes=(1, 3))
    assert f is not None and f.axes == (1, 3) and f.ids.shape == (2, 0)
    assert decode(t[..., 4:], lookup) is None  # nothing says where units would be


def test_constant_slice_bounds_follow_the_kept_units():
    rec = {
        "op": "call_function",
        "target": "getitem",
        "args": [{"$node": 0}, {"$tuple": [{"$ellipsis": True}, {"$slice": [4, 10, None]}]}],
    }
    inp = Feat(np.arange(12), 3, -1)
    out = Feat(np.arange(4, 10), 3, -1)
    rec["units"] = units_record(rec, out, inp)
    assert rec["units"]["bounds"] == [4, 10]
    keep = np.ones(12, dtype=bool)
    keep[[1, 5, 6]] = False  # one before the slice, two inside
    new = resize_ops({"ops": [rec]}, keep, np.cumsum(keep) - 1)["ops"][0]
    assert new["args"][1]["$tuple"][1] == {"$slice": [3, 7, None]}
    assert new["units"]["ids"] == list(range(9))  # the sliced input's kept units, renumbered
    again = resize_ops({"ops": [new]}, np.arange(9) != 0, np.arange(9) - 1)["ops"][0]
    assert again["args"][1]["$tuple"][1] == {"$slice": [2, 6, None]}  # a second shrink


class _FusedQKV(torch.nn.Module):
    """Phi-3's pattern: one projection, cut by constant slices into q, k and v."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = torch.nn.Linear(6, 12)
        self.out = torch.nn.Linear(4, 3)

    def forward(self, x):
        h = self.qkv(x)
        q, k, v = h[..., :4], h[..., 4:8], h[..., 8:]
        return self.out(torch.relu(q) * torch.sigmoid(k) + v)


def test_fused_projection_cut_by_constant_slices_shrinks_to_the_masked_model():
    torch.manual_seed(0)
    m, x = _FusedQKV().eval(), torch.randn(5, 6)
    G = ns.from_torch(m, x)
    plan = ns.structured_prune(G, amount=0.5)
    small = ns.to_torch(ns.prune(G, plan, shrink=True))
    assert small.qkv.out_features < 12
    with torch.no_grad():
        assert torch.allclose(small(x), ns.to_torch(plan.apply(G))(x), atol=1e-6)


def test_gemma_norm_block_holds_the_gain_and_rebuilds_the_weight():
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=4)
    cfg.update(num_key_value_heads=2, intermediate_size=24, head_dim=4, pad_token_id=0)
    m = tf.GemmaModel(tf.GemmaConfig(**cfg)).eval()
    with torch.no_grad():
        m.norm.weight.uniform_(-0.5, 0.5)
    G = ns.from_torch(m, torch.randint(0, 40, (2, 5)))
    assert np.allclose(G.block("norm.weight").parameter(), 1 + m.norm.weight.detach().numpy())
    emb = G.nodes().query("module == 'embed_tokens' and kind != 'input'")
    assert emb["activation"].str.startswith("scalaraffine").all()
    r = ns.to_torch(G)
    # the gain is held at the graph's float32: weight comes back within an ulp of 1 + weight
    assert torch.allclose(r.norm.weight, m.norm.weight, atol=1e-7, rtol=0)
    assert float(r.embed_tokens.embed_scale) == pytest.approx(16**0.5)


class _PerHeadNorm(torch.nn.Module):
    """Qwen3's pattern: a norm over each head's dimensions of a head-split projection."""

    def __init__(self, heads: int = 4, dim: int = 3) -> None:
        super().__init__()
        self.heads, self.dim = heads, dim
        self.q = torch.nn.Linear(5, heads * dim)
        self.norm = torch.nn.LayerNorm(dim)
        self.out = torch.nn.Linear(heads * dim, 2)

    def forward(self, x):
        h = self.norm(self.q(x).view(*x.shape[:-1], self.heads, self.dim))
        return self.out(torch.relu(h).flatten(-2))


def _per_head_graph():
    torch.manual_seed(0)
    m, x = _PerHeadNorm().eval(), torch.randn(6, 5)
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.uniform_(-0.5, 0.5)
    return m, x, ns.from_torch(m, x)


def test_a_per_head_norm_is_one_block_with_the_gain_repeated_per_head():
    m, x, G = _per_head_graph()
    b = G.block("norm.weight")
    assert b.shape == (12, 12) and b.layout["group_width"] == 3
    assert np.allclose(
        np.diagonal(np.where(b.mask, b.weight, 0)), np.tile(m.norm.weight.detach(), 4)
    )
    assert np.allclose(b.parameter(), m.norm.weight.detach().numpy())  # one head's copy
    r = ns.to_torch(G)
    with torch.no_grad():
        assert torch.allclose(r(x), m(x), atol=1e-6)
    assert ns.graph_params(G) == sum(p.numel() for p in m.parameters())
    # each head's three units are one statistics group: coupled
    groups = ns.structured_groups(G, macs=False)
    norm_units = set(G.nodes().query("module == 'norm'")["name"])
    sizes = sorted(len(set(ms) & norm_units) for ms in groups["members"])
    assert set(sizes) <= {0, 3}


def test_removing_a_head_keeps_one_shared_gain_and_equals_the_masked_model():
    m, x, G = _per_head_graph()
    nodes = G.nodes()
    q = nodes.query("module == 'q'").index.to_numpy()
    plan = ns.PruningPlan.for_graph(G).remove_units(G, np.isin(np.arange(G.n_nodes), q[3:6]))
    small = ns.to_torch(ns.shrink(G, units=plan))
    assert small.q.out_features == 9 and small.norm.weight.shape == (3,)
    with torch.no_grad():
        assert torch.allclose(small(x), ns.to_torch(plan.apply(G))(x), atol=1e-6)
    assert ns.graph_params(ns.shrink(G, units=plan)) == sum(p.numel() for p in small.parameters())


def test_editing_one_heads_copy_of_a_shared_gain_is_refused_on_reimport():
    m, x, G = _per_head_graph()

    def edit_first_head(b):
        w = np.array(b.weight, dtype=np.float64)
        w[0, 0] = 9.0
        return w

    H = G.map_weights(edit_first_head, layers=["norm.weight"])
    with pytest.raises(ns.GraphError, match="kept groups hold different values"):
        ns.to_torch(H)


def test_copies_of_the_llama_rms_norm_are_recognised_by_their_code():
    pytest.importorskip("transformers")
    from transformers.models.glm.modeling_glm import GlmRMSNorm

    from netstruct.convert import handlers
    from netstruct.convert.hf import RMSNormHandler, discover

    h = discover(GlmRMSNorm)
    assert isinstance(h, RMSNormHandler) and h.name == "transformers.glm.GlmRMSNorm"

    class GlmRMSNormLookalike(GlmRMSNorm):  # same name pattern, another forward
        def forward(self, x):
            return 2 * super().forward(x)

    GlmRMSNormLookalike.__module__ = GlmRMSNorm.__module__
    assert discover(GlmRMSNormLookalike) is None
    assert discover(torch.nn.LayerNorm) is None
    # a saved graph names the handler; a fresh session finds it by that name
    handlers._BY_NAME.pop("transformers.glm.GlmRMSNorm", None)
    assert handlers.handler_for_name("transformers.glm.GlmRMSNorm").name == h.name

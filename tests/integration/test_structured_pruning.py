"""Structured pruning end to end: groups -> plan -> masked == shrunk, counts, budgets, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import netstruct as ns
from tests.integration.test_model_families import MODELS as CORPUS
from tests.models import BiGRUCat, CrossAttention, Seq2SeqClassifier, TextLSTM, UserCNN

pytestmark = pytest.mark.torch


class ResCNN(torch.nn.Module):
    """A residual stage: stem conv/BN, then h + BN(conv(ReLU(BN(conv(h))))), pooled head."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(2, width, 3, padding=1)
        self.bn0 = torch.nn.BatchNorm2d(width)
        self.c1 = torch.nn.Conv2d(width, width, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.c2 = torch.nn.Conv2d(width, width, 3, padding=1)
        self.bn2 = torch.nn.BatchNorm2d(width)
        self.fc = torch.nn.Linear(width, 3)

    def forward(self, x):
        h = torch.relu(self.bn0(self.stem(x)))
        h = torch.relu(h + self.bn2(self.c2(torch.relu(self.bn1(self.c1(h))))))
        return self.fc(h.mean((2, 3)))


class Depthwise(torch.nn.Module):
    """Pointwise expand, depthwise 3x3 with BN, pointwise project (a MobileNet block)."""

    def __init__(self) -> None:
        super().__init__()
        self.pw1 = torch.nn.Conv2d(3, 8, 1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.pw2 = torch.nn.Conv2d(8, 4, 1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        h = torch.relu(self.bn1(self.pw1(x)))
        h = torch.relu(self.bn2(self.dw(h)))
        return self.fc(self.pw2(h).mean((2, 3)))


class HeadEncoder(torch.nn.Module):
    """A TransformerEncoder with 4 heads per layer and a head on token 0."""

    def __init__(self) -> None:
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(8, 4, 16, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.encoder(x)[:, 0])


def _randomise_norms(model):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


FAMILIES = {
    "user_cnn_bn": (lambda: UserCNN(), lambda: torch.randn(2, 1, 8, 8), {"channel", "residual"}),
    "residual_cnn": (lambda: ResCNN(), lambda: torch.randn(2, 2, 6, 6), {"channel", "residual"}),
    "depthwise": (lambda: Depthwise(), lambda: torch.randn(2, 3, 5, 5), {"channel", "depthwise"}),
    "encoder_heads": (lambda: HeadEncoder(), lambda: torch.randn(2, 5, 8), {"head", "unit"}),
    # causal decoder over the encoder's memory: self- and cross-attention heads
    "decoder_heads": (
        lambda: Seq2SeqClassifier(heads=4),
        lambda: torch.randn(2, 5, 8),
        {"head", "unit"},
    ),
    # kdim/vdim projections, 3 keys for 5 queries
    "cross_kdim": (lambda: CrossAttention(heads=4), lambda: torch.randn(2, 5, 8), {"head"}),
    "lstm": (lambda: TextLSTM(), lambda: torch.randint(0, 11, (2, 6)), {"recurrent", "embedding"}),
    "gru": (lambda: BiGRUCat(), lambda: torch.randn(2, 5, 3), {"recurrent"}),
}


def _export(name):
    make, example, _ = FAMILIES[name]
    torch.manual_seed(0)
    model = _randomise_norms(make())
    x = example()
    return model, x, ns.from_torch(model, x)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_structured_groups_cover_the_family_kinds(name):
    _, _, G = _export(name)
    t = ns.structured_groups(G)
    assert FAMILIES[name][2] <= set(t["kind"])
    assert (t["params"] > 0).all() and (t["size"] >= 1).all()


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_masked_equals_shrunk_and_counts_match_the_torch_module(name, amount):
    model, x, G = _export(name)
    plan = ns.structured_prune(G, amount=amount)
    M = plan.apply(G)
    S = ns.shrink(M)
    masked, small = ns.to_torch(M), ns.to_torch(S)
    with torch.no_grad():
        np.testing.assert_allclose(small(x).numpy(), masked(x).numpy(), atol=1e-5, rtol=0)
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < sum(p.numel() for p in model.parameters())
    assert plan.steps[0].meta["params"] == ns.graph_params(S) == n_small
    assert S.n_nodes < G.n_nodes


def _attention_macs(model, x, n_keys=None):
    """Q K^T and A V of every attention layer, counted by hand (FlopCounterMode misses CPU sdpa).

    ``n_keys``: the key length of cross-attention (default: the query length).
    """
    out = 0
    for m in model.modules():
        if (
            isinstance(m, (torch.nn.MultiheadAttention,))
            or type(m).__name__ == "HeadPrunedAttention"
        ):
            B, T, _ = x.shape
            out += 2 * B * T * (n_keys or T) * m.num_heads * m.head_dim
    return out


@pytest.mark.parametrize(
    "name",
    [
        "user_cnn_bn",
        "residual_cnn",
        "depthwise",
        "encoder_heads",
        "decoder_heads",
        "cross_kdim",
        "gru",
    ],
)
def test_macs_equal_flop_counter_on_the_shrunk_module(name):
    _, x, G = _export(name)
    S = ns.structured_prune(G, amount=0.5).apply(G, shrink=True)
    small = ns.to_torch(S)
    counter = FlopCounterMode(display=False)
    with counter:
        small(x)
    n_keys = 3 if name == "cross_kdim" else None  # CrossAttention reads 3 keys for 5 queries
    hand = _attention_macs(small, x, n_keys)
    assert ns.count_macs(S) == counter.get_total_flops() // 2 + hand


def test_lstm_macs_equal_a_hand_count():
    _, x, G = _export("lstm")
    S = ns.structured_prune(G, amount=0.5).apply(G, shrink=True)
    small = ns.to_torch(S)
    B, T = x.shape
    H, D = small.rnn.hidden_size, small.rnn.input_size
    hand = B * T * 4 * H * (D + H) + B * small.fc.in_features * small.fc.out_features
    assert ns.count_macs(S) == hand


def test_heads_are_removed_whole_and_num_heads_updated():
    _, x, G = _export("encoder_heads")
    small = ns.to_torch(ns.structured_prune(G, amount=0.5).apply(G, shrink=True))
    for layer in small.encoder.layers:
        attn = layer.self_attn
        assert attn.num_heads == 2 and attn.head_dim == 2
        assert attn.in_proj_weight.shape == (12, 8)
    assert small(x).shape == (2, 3)


def test_depthwise_groups_follow_the_channels():
    _, _, G = _export("depthwise")
    small = ns.to_torch(ns.structured_prune(G, amount=0.5).apply(G, shrink=True))
    assert small.dw.groups == small.dw.in_channels == small.dw.out_channels == 4
    assert small.bn2.num_features == 4 and small.bn2.running_mean.shape == (4,)


@pytest.mark.parametrize("kind", ["params", "macs"])
@pytest.mark.parametrize("round_to", [1, 4])
def test_budget_met_within_one_percent_with_round_to(kind, round_to):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, padding=1),
        torch.nn.BatchNorm2d(64),
        torch.nn.ReLU(),
        torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.BatchNorm2d(64),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    ).eval()
    x = torch.randn(1, 3, 8, 8)
    G = ns.from_torch(model, x)
    full = ns.graph_params(G) if kind == "params" else ns.count_macs(G)
    target = int(0.5 * full)
    plan = ns.structured_prune(G, **{f"target_{kind}": target}, round_to=round_to)
    S = plan.apply(G, shrink=True)
    got = ns.graph_params(S) if kind == "params" else ns.count_macs(S)
    assert abs(got - target) <= 0.01 * target
    small = ns.to_torch(S)
    assert small[0].out_channels % round_to == 0 and small[3].out_channels % round_to == 0
    assert got == (sum(p.numel() for p in small.parameters()) if kind == "params" else got)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_shrunk_module_saves_and_loads_back(name, tmp_path):
    _, x, G = _export(name)
    small = ns.to_torch(ns.structured_prune(G, amount=0.5).apply(G, shrink=True))
    path = tmp_path / "small.nsm"
    ns.save_model(small, path, example_input=x)
    back = ns.load_model(path)
    with torch.no_grad():
        np.testing.assert_allclose(back(x).numpy(), small(x).numpy(), atol=1e-6, rtol=0)
    assert sum(p.numel() for p in back.parameters()) == sum(p.numel() for p in small.parameters())


def test_group_importance_from_a_node_column_and_a_callable():
    _, _, G = _export("residual_cnn")
    gids = ns.structured_groups(G, macs=False)["group"].to_numpy()
    by_bias = ns.group_importance(G, by="bias")
    assert by_bias.index.tolist() == gids.tolist()
    score = np.zeros(G.n_nodes)
    score[gids[0]] = -5.0  # make one group the weakest
    plan = ns.structured_prune(G, amount=0.1, scope="global", by=lambda g: score)
    assert gids[0] in plan.steps[0].meta["groups"]


def test_plan_replays_by_name_on_a_fresh_model():
    _, x, G = _export("residual_cnn")
    plan = ns.structured_prune(G, amount=0.5)
    torch.manual_seed(1)
    fresh = ns.from_torch(_randomise_norms(ResCNN()), x)
    S = plan.apply(fresh, shrink=True)
    assert ns.graph_params(S) == plan.steps[0].meta["params"]


def test_bad_parameters_are_refused_with_the_standard_message():
    _, _, G = _export("residual_cnn")
    with pytest.raises(ns.InvalidParameterError, match="'amount' parameter of structured_prune"):
        ns.structured_prune(G, amount=1.5)
    with pytest.raises(ns.InvalidParameterError, match="'amount' parameter of structured_prune"):
        ns.structured_prune(G, amount=0.5, target_params=10)
    with pytest.raises(ns.InvalidParameterError, match="'round_to' parameter"):
        ns.structured_prune(G, amount=0.5, round_to=0)
    with pytest.raises(ns.InvalidParameterError, match="'by' parameter of group_importance"):
        ns.group_importance(G, by="no_such_column")
    with pytest.raises(ns.InvalidParameterError, match="'scope' parameter"):
        ns.structured_prune(G, amount=0.5, scope="everywhere")


@pytest.mark.parametrize("name", ["residual_cnn", "encoder_heads", "lstm"])
def test_shrink_units_equals_shrinking_the_applied_plan(name):
    _, x, G = _export(name)
    plan = ns.structured_prune(G, amount=0.5)
    direct = ns.shrink(G, units=plan)
    via_mask = ns.shrink(plan.apply(G))
    assert [b.shape for b in direct.blocks] == [b.shape for b in via_mask.blocks]
    with torch.no_grad():
        np.testing.assert_allclose(
            ns.to_torch(direct)(x).numpy(), ns.to_torch(via_mask)(x).numpy(), atol=1e-6, rtol=0
        )


def test_shrink_refuses_units_whose_group_cannot_go():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.GroupNorm(1, 4), torch.nn.Linear(4, 2)
    ).eval()
    G = ns.from_torch(model)
    with pytest.raises(ns.GraphError, match="GroupNorm with one group"):
        ns.shrink(G, units=[int(G.block("0.weight").targets[0])])
    with pytest.raises(ns.InvalidParameterError, match="'units' parameter of shrink"):
        ns.shrink(G, units="everything")
    assert ns.structured_groups(G, macs=False).empty
    # two groups: a unit takes its whole group along (tests/unit/test_groupnorm_pruning.py)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.GroupNorm(2, 4), torch.nn.Linear(4, 2)
    ).eval()
    H = ns.from_torch(model)
    S = ns.shrink(H, units=[int(H.block("0.weight").targets[0])])
    assert ns.to_torch(S)[1].num_groups == 1 and ns.to_torch(S)[1].num_channels == 2
    # a LayerNorm's width is no group by default; named, it goes as a norm width (its norm
    # then normalises over the kept units: tests/integration/test_norm_width.py)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)
    ).eval()
    L = ns.from_torch(model)
    assert ns.structured_groups(L, macs=False).empty
    S = ns.shrink(L, units=[int(L.block("0.weight").targets[0])])
    assert ns.to_torch(S)[1].normalized_shape == (3,)


def _taylor_oracle(model, x, y, G, gids):
    """Direct Taylor score of each group: zero its units' output rows and read the loss change
    to first order, i.e. sum of w * dL/dw over every parameter entry of the group's rows/cols."""
    model = ns.to_torch(G)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    cg = ns.coupled_units(G)
    params = dict(model.named_parameters())
    out = []
    for g in gids:
        members = set(np.flatnonzero(cg == g).tolist())
        total = 0.0
        for b in G.blocks:
            if b.kind != "weight":
                continue
            p = params[f"{b.module}.{b.param}"]
            wg = (p.detach() * p.grad).double().numpy()
            # a cross-attention projection block holds its rows of the shared parameter
            w_rows, b_rows = _part_rows(b) if "part" in b.layout else (slice(None), slice(None))
            wg = wg[w_rows]
            rows = [r for r, t in enumerate(b.targets.tolist()) if t in members]
            cols = [c for c, s in enumerate(b.sources.tolist()) if s in members]
            total += wg[rows].sum() + wg[:, cols].sum()
            if rows and b.bias_param:
                pb = params[f"{b.module}.{b.bias_param}"]
                total += float((pb.detach() * pb.grad).double().numpy()[b_rows][rows].sum())
        out.append(abs(total))
    return np.array(out)


def test_taylor_importance_equals_a_direct_first_order_count():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 6),
        torch.nn.ReLU(),
        torch.nn.Linear(6, 5),
        torch.nn.Tanh(),
        torch.nn.Linear(5, 3),
    ).eval()
    G = ns.from_torch(model)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    s = ns.group_importance(G, by="taylor", data=(x, y))
    np.testing.assert_allclose(s.to_numpy(), _taylor_oracle(model, x, y, G, s.index), rtol=1e-6)
    plan = ns.structured_prune(G, amount=0.5, by="taylor", data=(x, y))
    assert set(plan.steps[0].meta["groups"]) <= set(s.index)
    with pytest.raises(ns.InvalidParameterError, match="'data' parameter of group_importance"):
        ns.group_importance(G, by="taylor")


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_exported_family_prunes_structurally_with_masked_equal_to_shrunk(name):
    model, x = CORPUS[name]()
    G = ns.from_torch(model, x)
    groups = ns.structured_groups(G, macs=False)
    if groups.empty:  # e.g. a residual stream every unit of which a LayerNorm reads
        with pytest.raises(ns.GraphError, match="no removable structured group"):
            ns.structured_prune(G, amount=0.5)
        return
    plan = ns.structured_prune(G, amount=0.5)
    M = plan.apply(G)
    small = ns.to_torch(ns.shrink(G, units=plan))
    with torch.no_grad():
        np.testing.assert_allclose(small(x).numpy(), ns.to_torch(M)(x).numpy(), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in small.parameters()) == plan.steps[0].meta["params"]


def test_budget_on_transformer_heads_and_units_with_round_to():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    model = torch.nn.Sequential(torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False))
    x = torch.randn(2, 6, 32)
    G = ns.from_torch(model.eval(), x)
    target = int(0.6 * ns.graph_params(G))
    plan = ns.structured_prune(G, target_params=target, round_to=2)
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    n = sum(p.numel() for p in small.parameters())
    assert abs(n - target) <= 0.01 * target and n == ns.graph_params(S)
    for enc_layer in small[0].layers:
        assert enc_layer.self_attn.num_heads % 2 == 0 and enc_layer.linear1.out_features % 2 == 0
    with torch.no_grad():
        np.testing.assert_allclose(
            small(x).numpy(), ns.to_torch(plan.apply(G))(x).numpy(), atol=1e-5, rtol=0
        )


class _FixedView(torch.nn.Module):
    """A CNN that flattens with a constant width (``view(-1, 6 * 4 * 4)``)."""

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Conv2d(1, 6, 3)
        self.bn = torch.nn.BatchNorm2d(6)
        self.fc = torch.nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.c(x))).view(-1, 6 * 4 * 4))


def test_a_constant_flatten_width_follows_the_kept_channels():
    torch.manual_seed(0)
    G = ns.from_torch(_FixedView().eval(), torch.randn(2, 1, 6, 6))
    plan = ns.structured_prune(G, amount=0.5)  # 3 of the 6 channels
    S = ns.shrink(G, units=plan)
    view = next(r for r in S.spec["ops"] if r.get("target") == "view")
    assert view["args"][1:] == [-1, 3 * 4 * 4]  # was 96: the batch would have been folded in
    small, masked = ns.to_torch(S), ns.to_torch(plan.apply(G))
    x = torch.randn(5, 1, 6, 6)  # fx traced: any batch size
    with torch.no_grad():
        out = small(x)
        assert out.shape == (5, 3)
        assert torch.allclose(out, masked(x), atol=1e-5)


def _part_rows(b):
    """Rows of a cross-attention projection block in its parameter and in ``in_proj_bias``."""
    part = b.name[-2] if b.name.endswith("]") else b.param.rsplit(".", 1)[-1][0]  # [q] / q_proj
    j = "qkv".index(part)
    n = b.shape[0]
    return (slice(j * n, (j + 1) * n) if b.name.endswith("]") else slice(None)), slice(
        j * n, (j + 1) * n
    )


@pytest.mark.parametrize("name", ["decoder_heads", "cross_kdim"])
def test_taylor_importance_of_cross_attention_reads_each_projection_rows(name):
    model, x, G = _export(name)
    y = torch.randint(0, 3, (x.shape[0],))
    s = ns.group_importance(G, by="taylor", data=(x, y))
    want = _taylor_oracle(model, x, y, G, s.index)
    np.testing.assert_allclose(s.to_numpy(), want, rtol=1e-6, atol=1e-12)

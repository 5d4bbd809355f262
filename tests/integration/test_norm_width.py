"""Norm-width groups: removing dimensions of a width that LayerNorms/RMSNorms normalise.

``structured_groups(G, norm_width=True)`` offers each dimension of a transformer's residual
stream (embedding columns, every norm entry, residual sums, the rows of the projections that
write it, the input columns of those that read it) as one ``norm-width`` group. Removing it
takes it out of every norm's statistics: the masked model (``plan.apply(G)``) normalises over
the kept dimensions (``MaskedLayerNorm``), the shrunk one is ``LayerNorm(n_kept)``; both are
checked equal within 1e-5 on ``nn.TransformerEncoder``, ``BertModel``, ``ViTModel`` and
``GPT2LMHeadModel`` (tiny configs) at 30 and 50 % of the width.
"""

from __future__ import annotations

import pytest
import torch

import netstruct as ns
from netstruct.convert._norm_module import MaskedLayerNorm, MaskedRMSNorm
from netstruct.convert._tape import flat_tensors
from netstruct.exceptions import GraphError, InvalidParameterError

pytestmark = pytest.mark.torch

_WIDTH = 16


class EncoderClassifier(torch.nn.Module):
    """Token embedding, ``nn.TransformerEncoder`` (with a final norm) and a mean-pooled head."""

    def __init__(self, d: int = _WIDTH, norm_first: bool = False) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(20, d)
        layer = torch.nn.TransformerEncoderLayer(
            d, 4, 24, dropout=0.0, batch_first=True, norm_first=norm_first
        )
        self.encoder = torch.nn.TransformerEncoder(
            layer, 2, norm=torch.nn.LayerNorm(d), enable_nested_tensor=False
        )
        self.head = torch.nn.Linear(d, 3)

    def forward(self, x):
        return self.head(self.encoder(self.emb(x)).mean(1))


class TinyResidual(torch.nn.Module):
    """``x -> a -> LayerNorm -> (+ b) -> RMSNorm -> c``: a hand-checkable normalised width."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(3, 4)
        self.ln = torch.nn.LayerNorm(4)
        self.b = torch.nn.Linear(4, 4)
        self.rms = torch.nn.RMSNorm(4)
        self.c = torch.nn.Linear(4, 2)

    def forward(self, x):
        h = self.ln(self.a(x))
        return self.c(self.rms(h + self.b(h)))


def _ids(shape=(2, 5), high=20):
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(1))


def _encoder(norm_first):
    def make():
        return EncoderClassifier(norm_first=norm_first), _ids()

    return make


def _hf(name):
    def make():
        tf = pytest.importorskip("transformers", reason="the HF models need transformers")
        from tests.integration import test_hf_structured as hf

        assert tf is not None
        return {"bert": hf._bert, "vit": hf._vit, "gpt2": hf._gpt2}[name]()

    return make


MODELS = {
    "encoder": _encoder(False),
    "encoder_prenorm": _encoder(True),
    "bert": _hf("bert"),
    "vit": _hf("vit"),
    "gpt2": _hf("gpt2"),
}


def _randomise_norms(m):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.LayerNorm, torch.nn.RMSNorm)):
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
                if getattr(mod, "bias", None) is not None:
                    mod.bias.copy_(0.3 * torch.randn(mod.bias.shape, generator=g))
    return m.eval()


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request):
    torch.manual_seed(0)
    m, x = MODELS[request.param]()
    m = _randomise_norms(m)
    return request.param, m, x, ns.from_torch(m, x)


def _outputs(module, x):
    with torch.no_grad():
        return flat_tensors(module(x))


def _n_params(module):
    return sum(p.numel() for p in module.parameters())


def _width_plan(G, amount):
    """Remove the weakest ``amount`` of the norm-width groups only."""
    groups = ns.structured_groups(G, macs=False, norm_width=True)
    nw = groups[groups["kind"] == "norm-width"]
    score = ns.group_importance(G, norm_width=True).loc[nw["group"]]
    drop = nw.set_index("group").loc[
        score.sort_values(kind="stable").index[: int(amount * len(nw))]
    ]
    names = [u for ms in drop["members"] for u in ms]
    return ns.PruningPlan.for_graph(G).remove_units(G, G.nodes()["name"].isin(names).to_numpy())


def _assert_masked_equals_shrunk(G, S, masked, small, x):
    want, got = _outputs(masked, x), _outputs(small, x)
    assert len(want) == len(got) > 0
    for a, b in zip(want, got):
        if a.shape != b.shape:  # an output of the normalised width (BERT's last hidden state)
            assert a.shape[:-1] == b.shape[:-1] and b.shape[-1] < a.shape[-1]
            gone = set(S.provenance["shrink"]["removed_units"])
            outs = G.node_column("name")[G.node_column("kind") == "output"].tolist()
            cols = [n for n in outs if n.rsplit("[", 1)[0] == outs[0].rsplit("[", 1)[0]]
            assert len(cols) == a.shape[-1]
            keep = torch.tensor([n not in gone for n in cols])
            assert float(a[..., ~keep].abs().max()) == 0.0  # removed features output 0
            a = a[..., keep]
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-5


@pytest.mark.parametrize("amount", [0.3, 0.5])
def test_width_removal_masked_equals_shrunk(exported, amount):
    name, m, x, G = exported
    plan = _width_plan(G, amount)
    M = plan.apply(G)
    masked = ns.to_torch(M)
    assert any(isinstance(mod, MaskedLayerNorm) for mod in masked.modules())
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    _assert_masked_equals_shrunk(G, S, masked, small, x)
    kept = _WIDTH - int(amount * _WIDTH)
    norms = [mod for mod in small.modules() if isinstance(mod, torch.nn.LayerNorm)]
    assert norms and all(tuple(n.normalized_shape) == (kept,) for n in norms)
    assert not any(isinstance(mod, MaskedLayerNorm) for mod in small.modules())
    # the masked graph shrinks by itself to the same model
    S2 = ns.shrink(M)
    assert S2.n_nodes == S.n_nodes and ns.graph_params(S2) == ns.graph_params(S)
    assert ns.graph_params(S) == _n_params(small) < _n_params(m)
    assert sorted(small.state_dict()) == sorted(m.state_dict())


@pytest.mark.parametrize("amount", [0.3, 0.5])
def test_structured_prune_with_norm_width(exported, amount, tmp_path):
    name, m, x, G = exported
    plan = ns.structured_prune(G, amount=amount, norm_width=True)
    groups = ns.structured_groups(G, macs=False, norm_width=True).set_index("group")
    kinds = groups.loc[plan.steps[0].meta["groups"], "kind"].value_counts().to_dict()
    assert kinds["norm-width"] == int(amount * _WIDTH) and kinds["head"] >= 1
    masked = ns.to_torch(ns.prune(G, plan))
    S = ns.prune(G, plan, shrink=True)
    small = ns.to_torch(S)
    _assert_masked_equals_shrunk(G, S, masked, small, x)
    assert plan.steps[0].meta["params"] == ns.graph_params(S) == _n_params(small)
    if name == "gpt2":  # the LM head stays tied to the (narrower) token embedding
        assert small.lm_head.weight is small.transformer.wte.weight
        assert small.lm_head.weight.shape[1] == _WIDTH - int(amount * _WIDTH)
    # the shrunk module saves as state_dict + JSON spec and loads back with the same outputs
    path = tmp_path / "small.nsm"
    ns.save_model(small, path, example_input=x)
    back = ns.load_model(path)
    for a, b in zip(_outputs(small, x), _outputs(back, x)):
        assert torch.allclose(a, b, atol=1e-6)
    # the masked graph, saved and loaded, keeps its norms' statistics masks
    ns.save(plan.apply(G), tmp_path / "masked.ns")
    again = ns.to_torch(ns.load(tmp_path / "masked.ns"))
    for a, b in zip(_outputs(masked, x), _outputs(again, x)):
        assert torch.equal(a, b)


def test_default_offers_no_norm_width_and_plans_are_unchanged(exported):
    name, m, x, G = exported
    default = ns.structured_groups(G, macs=False)
    assert "norm-width" not in set(default["kind"])
    wide = ns.structured_groups(G, macs=False, norm_width=True)
    assert (wide["kind"] == "norm-width").sum() == _WIDTH
    # the other groups are the same rows
    same = wide[wide["kind"] != "norm-width"].reset_index(drop=True)
    assert same[["group", "kind", "size", "params"]].equals(
        default[["group", "kind", "size", "params"]]
    )
    plan = ns.structured_prune(G, amount=0.5)
    assert (
        plan.steps[0].units == ns.structured_prune(G, amount=0.5, norm_width=False).steps[0].units
    )
    masked = ns.to_torch(plan.apply(G))
    assert not any(isinstance(mod, MaskedLayerNorm) for mod in masked.modules())


def test_masked_norm_is_not_zeroing():
    """The statistics change: zeroing the removed dimensions (and keeping them in the norms'
    statistics) gives another model, which the shrunk one does not equal."""
    torch.manual_seed(0)
    m, x = _encoder(False)()
    m = _randomise_norms(m)
    G = ns.from_torch(m, x)
    plan = _width_plan(G, 0.5)
    masked = ns.to_torch(plan.apply(G))
    small = ns.to_torch(ns.shrink(G, units=plan))
    # torch.nn.utils.prune masks in every parameter's layout (embedding tables, norm entries,
    # a composite layer's own parameters) give the same model
    pm = ns.to_torch(plan.apply(G), prune_masks=True)
    with torch.no_grad():
        assert torch.equal(pm(x), masked(x))
    assert not bool(pm.emb.weight_mask[:, ~masked.encoder.norm.stat_mask].any())
    for mod in masked.modules():
        if isinstance(mod, MaskedLayerNorm):
            mod.stat_mask.fill_(True)
    with torch.no_grad():
        assert float((masked(x) - small(x)).abs().max()) > 1e-3


def test_membership_of_a_constructed_width():
    torch.manual_seed(0)
    G = ns.from_torch(_randomise_norms(TinyResidual()), torch.zeros(1, 3))
    groups = ns.structured_groups(G, macs=False, norm_width=True)
    assert groups["kind"].value_counts().to_dict() == {"norm-width": 4}
    row = groups.iloc[1]
    assert sorted(row["members"]) == sorted(
        ["a[1]", "ln.norm[1]", "b[1]", "add.sum[1]", "rms.norm[1]"]
    )
    # a's row 1 (3 weights, 1 bias), both norms' entry 1 (weight, bias; RMSNorm: weight), b's
    # row 1 and column 1 (4 + 4 - 1 weights, 1 bias), c's column 1 (2 weights)
    assert row["params"] == 4 + 2 + 1 + 8 + 2
    assert list(row["modules"]) == ["a", "add", "b", "ln", "rms"]
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))
    plan = ns.PruningPlan.for_graph(G).remove_units(G, G.nodes()["name"] == "ln.norm[1]")
    masked = ns.to_torch(plan.apply(G))
    assert isinstance(masked.rms, MaskedRMSNorm) and isinstance(masked.ln, MaskedLayerNorm)
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    assert small.ln.normalized_shape == (3,) and small.rms.normalized_shape == (3,)
    assert small.a.out_features == 3 and small.b.weight.shape == (3, 3)
    with torch.no_grad():
        assert float((masked(x) - small(x)).abs().max()) <= 1e-5
    assert ns.graph_params(S) == _n_params(small) == _n_params(TinyResidual()) - row["params"]


def test_budget_counts_norm_width_groups():
    torch.manual_seed(0)
    m, x = _encoder(False)()
    G = ns.from_torch(_randomise_norms(m), x)
    total = ns.graph_params(G)
    for frac, round_to in ((0.7, 1), (0.5, 4)):
        target = int(frac * total)
        plan = ns.structured_prune(G, target_params=target, norm_width=True, round_to=round_to)
        S = ns.shrink(G, units=plan)
        small = ns.to_torch(S)
        assert abs(_n_params(small) - target) <= 0.01 * target
        assert plan.steps[0].meta["params"] == _n_params(small)
        width = small.encoder.layers[0].norm1.normalized_shape[0]
        assert width < _WIDTH and width % round_to == 0
        with torch.no_grad():
            assert float((ns.to_torch(plan.apply(G))(x) - small(x)).abs().max()) <= 1e-5
    y = torch.tensor([0, 2])
    plan = ns.structured_prune(G, amount=0.3, norm_width=True, by="taylor", data=(x, y))
    with torch.no_grad():
        got = ns.to_torch(ns.shrink(G, units=plan))(x)
        assert float((ns.to_torch(plan.apply(G))(x) - got).abs().max()) <= 1e-5
    macs = ns.count_macs(G)
    plan = ns.structured_prune(G, target_macs=macs // 2, norm_width=True)
    assert abs(ns.count_macs(ns.shrink(G, units=plan)) - macs // 2) <= 0.01 * macs // 2


def test_bad_input_and_widths_that_stay():
    torch.manual_seed(0)
    m, x = _encoder(False)()
    G = ns.from_torch(m.eval(), x)
    for func in (ns.structured_groups, ns.group_importance):
        with pytest.raises(InvalidParameterError, match="norm_width"):
            func(G, norm_width="yes")
    with pytest.raises(InvalidParameterError, match="norm_width"):
        ns.structured_prune(G, amount=0.3, norm_width=1)
    # a width fed by the model's own input cannot shrink (the input keeps its features)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    R = ns.from_torch(torch.nn.Sequential(layer).eval(), torch.zeros(2, 3, 8))
    assert "norm-width" not in set(ns.structured_groups(R, macs=False, norm_width=True)["kind"])
    unit = R.block("0.linear2.weight").targets[:1]
    with pytest.raises(GraphError, match="LayerNorm"):
        ns.shrink(R, units=unit)
    # GroupNorm's channels are not a norm width: they go by whole statistics group, as
    # channel groups (tests/unit/test_groupnorm_pruning.py)
    gn = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.GroupNorm(2, 4), torch.nn.Conv2d(4, 2, 1)
    )
    H = ns.from_torch(gn.eval(), torch.zeros(1, 1, 5, 5))
    groups = ns.structured_groups(H, macs=False, norm_width=True)
    assert groups["kind"].tolist() == ["channel", "channel"]
    assert groups["size"].tolist() == [4, 4]  # 2 channels of a group with their norm nodes

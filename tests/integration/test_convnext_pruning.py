"""ConvNeXt's channels prune through its ``ConvNextLayerNorm`` (both data formats).

A ConvNeXt stage's channels are one normalised width: the residual sums tie them across the
stage, the depthwise 7x7 convolutions tie each input channel to its output channel, the layer
scale ties a channel to its scaled copy, and every ``ConvNextLayerNorm`` (``channels_first``
in the stem and the downsampling layers, ``channels_last`` inside the blocks) normalises over
them. Removing a channel takes it out of every such norm's statistics
(``structured_groups(G, norm_width=True)``, kind ``norm-width``): the masked model rebuilds
the norms as ``MaskedConvNextLayerNorm`` (statistics over the kept channels, removed channels
output 0), the shrunk one has plain ``ConvNextLayerNorm(n_kept)``; both are checked equal
within 1e-5 on a tiny ``ConvNextModel`` at 30, 50 and 70 % of the channels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert._norm_module import MaskedConvNextLayerNorm, MaskedLayerNorm
from netstruct.convert._tape import flat_tensors
from netstruct.exceptions import GraphError

pytestmark = pytest.mark.torch

tf = pytest.importorskip("transformers", reason="ConvNeXt needs transformers")
ConvNextLayerNorm = tf.models.convnext.modeling_convnext.ConvNextLayerNorm

_SIZES = (8, 16)
_DOWN = "encoder.stages.1.downsampling_layer.1"  # the conv from stage 0 to stage 1


def _randomise(m: torch.nn.Module) -> torch.nn.Module:
    """Norm scales and shifts away from 1 and 0, a layer scale of order 1 (ConvNeXt's default
    1e-6 would hide the blocks' branches from every comparison)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.copy_(0.5 + torch.rand(mod.weight.shape, generator=g))
                mod.bias.copy_(0.3 * torch.randn(mod.bias.shape, generator=g))
            scale = getattr(mod, "layer_scale_parameter", None)
            if isinstance(scale, torch.nn.Parameter):
                scale.copy_(0.5 + torch.rand(scale.shape, generator=g))
    return m.eval()


def _convnext() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    c = tf.ConvNextConfig(
        num_channels=3, hidden_sizes=list(_SIZES), depths=[2, 1], num_stages=2, patch_size=2
    )
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return _randomise(tf.ConvNextModel(c)), x


@pytest.fixture(scope="module")
def convnext():
    m, x = _convnext()
    return m, x, ns.from_torch(m, x)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _outputs(module: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        return flat_tensors(module(x))


def _width_plan(G, amount: float) -> ns.PruningPlan:
    """Remove the weakest ``amount`` of each stage's channels (its norm-width groups)."""
    groups = ns.structured_groups(G, macs=False, norm_width=True)
    nw = groups[groups["kind"] == "norm-width"].set_index("group")
    score = ns.group_importance(G, norm_width=True).loc[nw.index]
    stem = nw["members"].map(lambda ms: any(u.startswith("embeddings.") for u in ms))
    names = []
    for stage in (stem, ~stem):
        weakest = score[stage.to_numpy()].sort_values(kind="stable").index
        names += [u for ms in nw.loc[weakest[: int(amount * stage.sum())], "members"] for u in ms]
    return ns.PruningPlan.for_graph(G).remove_units(G, G.nodes()["name"].isin(names).to_numpy())


def _assert_masked_equals_shrunk(masked, small, x) -> None:
    """``last_hidden_state`` (N, C, H, W) and ``pooler_output`` (N, C): the masked model's
    removed channels are 0, its kept ones equal the shrunk model's within 1e-5."""
    keep = masked.layernorm.stat_mask  # the final LayerNorm reads the last stage's channels
    assert not bool(keep.all())
    (h, p), (hs, ps) = _outputs(masked, x), _outputs(small, x)
    assert float(h[:, ~keep].abs().max()) == 0.0 and float(p[:, ~keep].abs().max()) == 0.0
    assert h[:, keep].shape == hs.shape and p[:, keep].shape == ps.shape
    assert float((h[:, keep] - hs).abs().max()) <= 1e-5
    assert float((p[:, keep] - ps).abs().max()) <= 1e-5


# -- the masked norm in isolation ------------------------------------------------------------


def _reference(x, keep, weight, bias, eps, data_format):
    """LayerNorm over the kept channels, by hand (numpy, float64)."""
    a = x.detach().double().numpy()
    axis = 1 if data_format == "channels_first" else -1
    kept = np.compress(keep.numpy(), a, axis=axis)
    mean = kept.mean(axis=axis, keepdims=True)
    var = ((kept - mean) ** 2).mean(axis=axis, keepdims=True)
    shape = [1] * a.ndim
    shape[axis] = -1
    w = weight.detach().double().numpy()[keep.numpy()].reshape(shape)
    b = bias.detach().double().numpy()[keep.numpy()].reshape(shape)
    return (kept - mean) / np.sqrt(var + eps) * w + b


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
def test_masked_norm_against_hand_computation(data_format):
    g = torch.Generator().manual_seed(0)
    n = 6
    keep = torch.tensor([True, False, True, True, False, True])
    m = MaskedConvNextLayerNorm(n, data_format=data_format, stat_mask=keep)
    with torch.no_grad():
        m.weight.copy_(0.5 + torch.rand(n, generator=g))
        m.bias.copy_(torch.randn(n, generator=g))
    shape = (2, n, 3, 4) if data_format == "channels_first" else (2, 3, 4, n)
    x = 3.0 + 2.0 * torch.randn(shape, generator=g)
    axis = 1 if data_format == "channels_first" else -1
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape and m.eps == 1e-6
    gone = torch.index_select(y, axis, torch.nonzero(~keep).flatten())
    assert float(gone.abs().max()) == 0.0  # removed channels output 0
    got = torch.index_select(y, axis, torch.nonzero(keep).flatten()).double().numpy()
    want = _reference(x, keep, m.weight, m.bias, m.eps, data_format)
    assert np.abs(got - want).max() <= 1e-5
    # the shrunk ConvNextLayerNorm of the kept width, with the sliced weight and bias
    small = ConvNextLayerNorm(int(keep.sum()), data_format=data_format)
    with torch.no_grad():
        small.weight.copy_(m.weight[keep])
        small.bias.copy_(m.bias[keep])
        ref = small(torch.index_select(x, axis, torch.nonzero(keep).flatten()))
    assert float((torch.from_numpy(got).float() - ref).abs().max()) <= 1e-5
    # every channel kept: ConvNeXt's own norm
    full = MaskedConvNextLayerNorm(n, data_format=data_format)
    plain = ConvNextLayerNorm(n, data_format=data_format)
    full.load_state_dict({**plain.state_dict(), "stat_mask": torch.ones(n, dtype=torch.bool)})
    with torch.no_grad():
        assert float((full(x) - plain(x)).abs().max()) <= 1e-5


def test_masked_norm_bad_input():
    with pytest.raises(ValueError, match="data_format"):
        MaskedConvNextLayerNorm(4, data_format="channels_middle")
    with pytest.raises(ValueError, match="stat_mask"):
        MaskedConvNextLayerNorm(4, stat_mask=torch.ones(3, dtype=torch.bool))


def test_handler_chooses_the_masked_norm():
    from netstruct.convert.handlers import handler_for_name

    h = handler_for_name("transformers.ConvNextLayerNorm")
    cfg = {"eps": 1e-6, "data_format": "channels_first", "elementwise_affine": True}
    params = {"weight": np.arange(1, 5, dtype=np.float32), "bias": np.zeros(4, np.float32)}
    assert type(h.build({**cfg, "bias": True}, params)) is ConvNextLayerNorm
    keep = np.array([True, True, False, True])
    m = h.build({**cfg, "bias": True, "width": 4}, {**params, "stat_mask": keep})
    assert type(m) is MaskedConvNextLayerNorm and m.data_format == "channels_first"
    assert m.stat_mask.tolist() == keep.tolist() and m.weight.tolist() == [1, 2, 3, 4]
    every = {**params, "stat_mask": np.ones(4, dtype=bool)}
    assert type(h.build({**cfg, "bias": True}, every)) is ConvNextLayerNorm
    # a norm without parameters takes its width from the config
    bare = h.build({**cfg, "elementwise_affine": False, "bias": False, "width": 5}, {})
    assert type(bare) is ConvNextLayerNorm and tuple(bare.normalized_shape) == (5,)


class BothFormats(torch.nn.Module):
    """conv -> ConvNextLayerNorm(channels_first) -> permute -> ConvNextLayerNorm(channels_last)
    -> Linear: one normalised width of 6 channels through both data formats."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.ln_first = ConvNextLayerNorm(6, eps=1e-6, data_format="channels_first")
        self.ln_last = ConvNextLayerNorm(6, eps=1e-6)
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x):
        h = self.ln_first(self.conv(x)).permute(0, 2, 3, 1)
        return self.head(self.ln_last(h)).mean((1, 2))


def test_both_formats_in_a_graph():
    torch.manual_seed(0)
    m = _randomise(BothFormats())
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    G = ns.from_torch(m, x)
    groups = ns.structured_groups(G, macs=False, norm_width=True)
    assert groups["kind"].value_counts().to_dict() == {"norm-width": 6}
    assert sorted(groups.iloc[2]["members"]) == ["conv[2]", "ln_first.norm[2]", "ln_last.norm[2]"]
    # conv's filter 2 (27 taps, 1 bias), both norms' entry 2, the head's column 2
    assert groups.iloc[2]["params"] == 28 + 2 + 2 + 2
    gone = G.nodes()["name"].isin(["conv[1]", "conv[4]"]).to_numpy()
    plan = ns.PruningPlan.for_graph(G).remove_units(G, gone)
    masked = ns.to_torch(plan.apply(G))
    assert type(masked.ln_first) is type(masked.ln_last) is MaskedConvNextLayerNorm
    assert masked.ln_first.data_format == "channels_first"
    assert masked.ln_last.data_format == "channels_last"
    assert masked.ln_first.stat_mask.tolist() == [True, False, True, True, False, True]
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    assert type(small.ln_first) is type(small.ln_last) is ConvNextLayerNorm
    assert small.ln_first.normalized_shape == small.ln_last.normalized_shape == (4,)
    assert small.ln_first.data_format == "channels_first"
    with torch.no_grad():
        assert float((masked(x) - small(x)).abs().max()) <= 1e-5
        # ConvNeXt's norm with the removed channels zeroed but kept in the statistics is
        # another model
        zeroed = ns.to_torch(plan.apply(G))
        for mod in (zeroed.ln_first, zeroed.ln_last):
            mod.stat_mask.fill_(True)
        assert float((zeroed(x) - small(x)).abs().max()) > 1e-3
    assert ns.graph_params(S) == _n_params(small) == _n_params(m) - 2 * 34
    # the masked model exports back with its statistics masks
    again = ns.from_torch(masked, x)
    with torch.no_grad():
        assert torch.equal(ns.to_torch(again)(x), masked(x))


# -- a tiny ConvNextModel --------------------------------------------------------------------


def test_stage_channels_are_norm_width_groups(convnext):
    m, x, G = convnext
    groups = ns.structured_groups(G, macs=False, norm_width=True)
    nw = groups[groups["kind"] == "norm-width"]
    # every channel of both stages (the old handler kept them: ConvNeXt's norms refused)
    assert len(nw) == sum(_SIZES)
    first = sorted(nw.iloc[0]["members"])
    assert first == [
        "embeddings.layernorm.norm[0]",
        "embeddings.patch_embeddings[0]",
        "encoder.stages.0.layers.0.add.sum[0]",
        "encoder.stages.0.layers.0.dwconv[0]",
        "encoder.stages.0.layers.0.layer_scale_parameter[0]",
        "encoder.stages.0.layers.0.layernorm.norm[0]",
        "encoder.stages.0.layers.0.pwconv2[0]",
        "encoder.stages.0.layers.1.add_1.sum[0]",
        "encoder.stages.0.layers.1.dwconv[0]",
        "encoder.stages.0.layers.1.layer_scale_parameter[0]",
        "encoder.stages.0.layers.1.layernorm.norm[0]",
        "encoder.stages.0.layers.1.pwconv2[0]",
        "encoder.stages.1.downsampling_layer.0.norm[0]",
    ]
    last = nw.iloc[-1]["members"]  # a last-stage channel reaches the final nn.LayerNorm
    assert "layernorm.norm[15]" in last and "encoder.stages.1.downsampling_layer.1[15]" in last
    # without norm_width the stages' channels are not offered (the plans stay as they were)
    assert "norm-width" not in set(ns.structured_groups(G, macs=False)["kind"])
    # one stage-0 channel: patch filter (12 + 1), stem norm (2), per block the depthwise
    # filter (49 + 1), norm (2), pwconv1 column (32), pwconv2 row (32 + 1), layer scale (1),
    # the downsampling norm (2) and the downsampling conv's input channel (16 x 4)
    assert nw.iloc[0]["params"] == 13 + 2 + 2 * (50 + 2 + 32 + 33 + 1) + 2 + 64


def test_shrink_removes_a_stage_channel(convnext):
    """The old handler refused it (GraphError: read by a LayerNorm's statistics)."""
    m, x, G = convnext
    one = G.nodes()["name"].isin(["embeddings.patch_embeddings[0]"]).to_numpy()
    S = ns.shrink(G, units=one)
    small = ns.to_torch(S)
    assert small.embeddings.patch_embeddings.out_channels == _SIZES[0] - 1
    assert small.embeddings.layernorm.normalized_shape == (_SIZES[0] - 1,)
    assert small.get_submodule(_DOWN).in_channels == _SIZES[0] - 1
    assert small.get_submodule("encoder.stages.0.layers.1.dwconv").groups == _SIZES[0] - 1
    assert small.get_submodule("encoder.stages.0.layers.0").layer_scale_parameter.shape == (
        _SIZES[0] - 1,
    )
    plan = ns.PruningPlan.for_graph(G).remove_units(G, one)
    masked = ns.to_torch(plan.apply(G))
    assert isinstance(masked.embeddings.layernorm, MaskedConvNextLayerNorm)
    with torch.no_grad():
        for a, b in zip(_outputs(masked, x), _outputs(small, x)):
            assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-5
    groups = ns.structured_groups(G, macs=False, norm_width=True).set_index("group")
    first = groups[groups["kind"] == "norm-width"].iloc[0]
    assert ns.graph_params(S) == _n_params(small) == _n_params(m) - first["params"]


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_channel_removal_masked_equals_shrunk(convnext, amount):
    m, x, G = convnext
    plan = _width_plan(G, amount)
    M = plan.apply(G)
    masked = ns.to_torch(M)
    formats = {
        mod.data_format for mod in masked.modules() if isinstance(mod, MaskedConvNextLayerNorm)
    }
    assert formats == {"channels_first", "channels_last"}
    assert isinstance(masked.layernorm, MaskedLayerNorm)  # the final nn.LayerNorm
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    assert not any(isinstance(mod, MaskedLayerNorm) for mod in small.modules())
    _assert_masked_equals_shrunk(masked, small, x)
    widths = {
        tuple(mod.normalized_shape)[0]
        for mod in small.modules()
        if isinstance(mod, ConvNextLayerNorm)
    }
    kept = int(masked.embeddings.layernorm.stat_mask.sum()), int(masked.layernorm.stat_mask.sum())
    assert kept == tuple(n - int(amount * n) for n in _SIZES)
    assert widths <= set(kept) and kept[0] in widths
    assert small.get_submodule(_DOWN).weight.shape[:2] == kept[::-1]
    # the masked graph shrinks by itself to the same model
    S2 = ns.shrink(M)
    assert S2.n_nodes == S.n_nodes and ns.graph_params(S2) == ns.graph_params(S)
    assert ns.graph_params(S) == _n_params(small) < _n_params(m)
    assert sorted(small.state_dict()) == sorted(m.state_dict())


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.7])
def test_structured_prune_with_norm_width(convnext, amount, tmp_path):
    m, x, G = convnext
    plan = ns.structured_prune(G, amount=amount, norm_width=True)
    groups = ns.structured_groups(G, macs=False, norm_width=True).set_index("group")
    kinds = groups.loc[plan.steps[0].meta["groups"], "kind"].value_counts().to_dict()
    assert kinds["norm-width"] >= 1 and kinds["unit"] >= 1  # channels and pwconv1 units
    M = plan.apply(G)
    masked = ns.to_torch(M)
    S = ns.prune(G, plan, shrink=True)
    small = ns.to_torch(S)
    _assert_masked_equals_shrunk(masked, small, x)
    assert plan.steps[0].meta["params"] == ns.graph_params(S) == _n_params(small)
    # the shrunk module saves as state_dict + JSON spec and loads back with the same outputs
    path = tmp_path / "small.nsm"
    ns.save_model(small, path, example_input=x)
    back = ns.load_model(path)
    for a, b in zip(_outputs(small, x), _outputs(back, x)):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
    assert _n_params(back) == _n_params(small)
    # the masked graph, saved and loaded, keeps its norms' statistics masks
    ns.save(M, tmp_path / "masked.ns")
    again = ns.to_torch(ns.load(tmp_path / "masked.ns"))
    for a, b in zip(_outputs(masked, x), _outputs(again, x)):
        assert torch.equal(a, b)


def test_prune_masks_reach_the_layer_scale(convnext):
    """``to_torch(prune_masks=True)`` masks the layer scale, a parameter the block's forward
    reads itself: the rebuilt forward applies the mask (torch's hook on its owner never runs)."""
    m, x, G = convnext
    plan = _width_plan(G, 0.5)
    M = plan.apply(G)
    masked, pm = ns.to_torch(M), ns.to_torch(M, prune_masks=True)
    for a, b in zip(_outputs(masked, x), _outputs(pm, x)):
        assert float((a - b).abs().max()) <= 1e-6
    owner = pm.get_submodule("encoder.stages.0.layers.0")
    keep = masked.embeddings.layernorm.stat_mask
    assert owner.layer_scale_parameter_mask.bool().tolist() == keep.tolist()
    with torch.no_grad():  # a training step's change to a removed entry stays without effect
        owner.layer_scale_parameter_orig[~keep] += 5.0
    for a, b in zip(_outputs(masked, x), _outputs(pm, x)):
        assert float((a - b).abs().max()) <= 1e-6
    flat_tensors(pm(x))[1].sum().backward()
    grad = owner.layer_scale_parameter_orig.grad
    assert grad is not None and float(grad[~keep].abs().max()) == 0.0
    assert float(grad[keep].abs().max()) > 0.0


def test_counts_match_torch(convnext):
    """The layer scale is one parameter per channel and no MACs (it counted as a dense
    ``n x n`` product, and ``count_macs`` refused it: no module runs it)."""
    from torch.utils.flop_counter import FlopCounterMode

    m, x, G = convnext
    assert ns.graph_params(G) == _n_params(m)
    for graph, model in ((G, m), (ns.shrink(G, units=_width_plan(G, 0.5)), None)):
        model = model if model is not None else ns.to_torch(graph)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(x)
        assert ns.count_macs(graph) == fc.get_total_flops() // 2
        assert ns.graph_params(graph) == _n_params(model)


def test_width_fed_by_the_input_stays():
    """A norm over the model's own input channels cannot lose them: not offered, refused."""
    m = torch.nn.Sequential(ConvNextLayerNorm(3, data_format="channels_first")).eval()
    G = ns.from_torch(m, torch.randn(1, 3, 4, 4))
    assert "norm-width" not in set(ns.structured_groups(G, macs=False, norm_width=True)["kind"])
    with pytest.raises(GraphError, match="LayerNorm"):
        ns.shrink(G, units=G.block("0.weight").targets[:1])


def test_budgets_count_the_stage_channels(convnext):
    m, x, G = convnext
    total, macs = ns.graph_params(G), ns.count_macs(G)
    for frac in (0.7, 0.5):
        plan = ns.structured_prune(G, target_params=int(frac * total), norm_width=True)
        S = ns.shrink(G, units=plan)
        small = ns.to_torch(S)
        assert abs(_n_params(small) - frac * total) <= 0.01 * frac * total
        assert plan.steps[0].meta["params"] == _n_params(small)
        assert small.embeddings.layernorm.normalized_shape[0] < _SIZES[0]
        _assert_masked_equals_shrunk(ns.to_torch(plan.apply(G)), small, x)
        plan = ns.structured_prune(G, target_macs=int(frac * macs), norm_width=True)
        assert abs(ns.count_macs(ns.shrink(G, units=plan)) - frac * macs) <= 0.01 * frac * macs

"""``from_torch(..., fold_batchnorm=True)``: eval-mode batch norms folded into the layer before.

For a user CNN (Conv-BN-ReLU-Pool and Linear-BN1d), a residual CNN, and transformers'
``ResNetModel`` and ``MobileNetV2Model`` (tiny configs, as in ``test_hf_models.py``): the
folded graph re-imports to a module equal to ``model.eval()`` within 1e-5, holds no norm block
for a folded norm, its folded layers carry the effective weights (checked against the formula),
the spec records which norm went into which layer, and structured pruning + shrink still give
masked == shrunk within 1e-5. Norms that cannot be folded (after a ReLU or an add, a conv read
twice, no running statistics) stay norm nodes with one warning; bad input gets clear errors.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.convert._tape import flat_tensors
from netstruct.exceptions import (
    InvalidParameterError,
    UnfoldedBatchNormWarning,
    UnsupportedModuleError,
)

pytestmark = pytest.mark.torch

nn = torch.nn
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _NORMS) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.3)
    return model.eval()


def _user_cnn():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 2 * 2, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 4),
    )  # fmt: skip
    return _randomize_bn(m), torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))


class _ResCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 6, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(6)
        self.conv1 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.down = nn.Conv2d(6, 8, 1, stride=2, bias=False)  # a projection shortcut
        self.bn_down = nn.BatchNorm2d(8)
        self.conv3 = nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.bn0(self.stem(x)))
        y = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(x + self.bn2(self.conv2(y)))
        x = torch.relu(self.bn_down(self.down(x)) + self.bn3(self.conv3(x)))
        return self.fc(x.mean((2, 3)))


def _res_cnn():
    torch.manual_seed(0)
    return _randomize_bn(_ResCNN()), torch.randn(
        3, 2, 8, 8, generator=torch.Generator().manual_seed(2)
    )


def _hf(name):
    tf = pytest.importorskip("transformers", reason="the Hugging Face models need transformers")
    torch.manual_seed(0)
    pixels = torch.randn((2, 3, 16, 16), generator=torch.Generator().manual_seed(2))
    if name == "resnet":
        c = tf.ResNetConfig(
            num_channels=3,
            embedding_size=8,
            hidden_sizes=[8, 16],
            depths=[1, 1],
            layer_type="basic",
        )
        m = tf.ResNetModel(c)
    else:
        c = tf.MobileNetV2Config(
            num_channels=3,
            image_size=16,
            depth_multiplier=0.1,
            min_depth=4,
            divisible_by=4,
            expand_ratio=2,
            finegrained_output=False,
        )
        m = tf.MobileNetV2Model(c)
        pixels = pixels[:1]
    return _randomize_bn(m), pixels


MODELS = {
    "user_cnn": _user_cnn,
    "res_cnn": _res_cnn,
    "hf_resnet": lambda: _hf("resnet"),
    "hf_mobilenet_v2": lambda: _hf("mobilenet_v2"),
}


def _outputs(module, x):
    with torch.no_grad():
        return flat_tensors(module(x))


def _norm_paths(model):
    return {p for p, m in model.named_modules() if isinstance(m, _NORMS)}


@pytest.fixture(scope="module", params=sorted(MODELS))
def folded(request):
    m, x = MODELS[request.param]()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfoldedBatchNormWarning)  # every norm here folds
        G = ns.from_torch(m, x, fold_batchnorm=True)
    return request.param, m, x, G


def test_folded_graph_reimports_to_the_eval_model(folded):
    _, m, x, G = folded
    want, got = _outputs(m.eval(), x), _outputs(ns.to_torch(G), x)
    assert len(want) == len(got) > 0
    for a, b in zip(want, got):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-5


def test_every_norm_is_folded_and_recorded(folded):
    _, m, x, G = folded
    norms = _norm_paths(m)
    assert set(G.spec["folded_batchnorm"]) == norms
    assert not [b.name for b in G.blocks if b.kind == "norm"]
    assert not any(b.module in norms for b in G.blocks)
    assert not set(G.spec["modules"]) & norms
    assert G.provenance["fold_batchnorm"] is True
    assert G.provenance["unexported_parameters"] == []
    rebuilt = ns.to_torch(G)
    assert not any(isinstance(mod, _NORMS) for mod in rebuilt.modules())
    # the keys differ exactly by the norms' entries and the biases the folded layers gained
    keys = set(rebuilt.state_dict())
    orig = set(m.state_dict())
    assert not {k for k in keys if k.rpartition(".")[0] in norms}
    assert keys - orig <= {f"{layer}.bias" for layer in G.spec["folded_batchnorm"].values()}
    assert {k.rpartition(".")[0] for k in orig - keys} <= norms


def test_folded_blocks_carry_the_effective_weights(folded):
    _, m, x, G = folded
    for bn_path, layer_path in G.spec["folded_batchnorm"].items():
        bn, layer = m.get_submodule(bn_path), m.get_submodule(layer_path)
        s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).double().detach().numpy()
        w = layer.weight.detach().double().numpy()
        b = layer.bias.detach().double().numpy() if layer.bias is not None else 0.0
        want_w = w * s.reshape(-1, *([1] * (w.ndim - 1)))
        want_b = (b - bn.running_mean.double().numpy()) * s + bn.bias.double().detach().numpy()
        blk = G.block(f"{layer_path}.weight")
        np.testing.assert_allclose(blk.parameter(), want_w, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(blk.bias, want_b, rtol=1e-6, atol=1e-7)
        # the edge weights are the kernel reduction of the folded kernel (default: the sum)
        if w.ndim > 2:
            sums = want_w.sum(axis=tuple(range(2, w.ndim)))
            groups = blk.layout.get("groups", 1)
            if groups == 1:
                np.testing.assert_allclose(blk.weight, sums, rtol=1e-5, atol=1e-6)


def test_unfolded_export_is_unchanged(folded):
    _, m, x, G = folded
    H = ns.from_torch(m, x)
    assert "folded_batchnorm" not in H.spec
    assert H.provenance["fold_batchnorm"] is False
    assert sorted(ns.to_torch(H).state_dict()) == sorted(m.state_dict())
    assert len([b for b in H.blocks if b.kind == "norm"]) == len(_norm_paths(m))


@pytest.mark.parametrize("amount", [0.3, 0.5])
def test_structured_pruning_and_shrink_work_on_the_folded_graph(folded, amount):
    _, m, x, G = folded
    plan = ns.structured_prune(G, amount=amount)
    masked = ns.to_torch(plan.apply(G))
    S = ns.shrink(G, units=plan)
    small = ns.to_torch(S)
    for a, b in zip(_outputs(masked, x), _outputs(small, x)):
        assert a.shape == b.shape
        assert float((a - b).abs().max()) <= 1e-5
    assert ns.graph_params(S) == sum(p.numel() for p in small.parameters())
    assert ns.count_macs(S) < ns.count_macs(G)


def test_folded_graph_saves_loads_and_reimports(folded, tmp_path):
    _, m, x, G = folded
    ns.save(G, tmp_path / "g.ns")
    H = ns.load(tmp_path / "g.ns")
    assert H.spec["folded_batchnorm"] == G.spec["folded_batchnorm"]
    for a, b in zip(_outputs(m, x), _outputs(ns.to_torch(H), x)):
        assert float((a - b).abs().max()) <= 1e-5


def test_a_long_sequential_keeps_its_layer_order_through_save_and_load(tmp_path):
    # a saved spec's module table comes back sorted by name ("10" before "2")
    m, x = _user_cnn()
    for fold in (False, True):
        ns.save(ns.from_torch(m, x, fold_batchnorm=fold), tmp_path / f"{fold}.ns")
        rebuilt = ns.to_torch(ns.load(tmp_path / f"{fold}.ns"))
        assert [int(k) for k in rebuilt._modules] == sorted(int(k) for k in rebuilt._modules)
        assert float((_outputs(rebuilt, x)[0] - _outputs(m, x)[0]).abs().max()) <= 1e-5


# ---------------------------------------------------------------------- what is left unfolded
class _Unfoldable(nn.Module):
    """Norms after a ReLU, after an add, after a conv read twice, and one without statistics."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn_after_relu = nn.BatchNorm2d(4)
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn_shared_conv = nn.BatchNorm2d(4)
        self.bn_after_add = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn_no_stats = nn.BatchNorm2d(4, track_running_stats=False)
        self.c3 = nn.Conv2d(4, 4, 1)
        self.bn_ok = nn.BatchNorm2d(4)

    def forward(self, x):
        x = self.bn_after_relu(torch.relu(self.c0(x)))
        y = self.c1(x)
        x = self.bn_after_add(self.bn_shared_conv(y) + y)
        x = self.bn_no_stats(self.c2(x))
        return self.bn_ok(self.c3(x)).mean((2, 3))


def test_norms_that_cannot_fold_stay_with_one_warning():
    torch.manual_seed(0)
    m = _randomize_bn(_Unfoldable())
    x = torch.randn(3, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    with pytest.warns(UnfoldedBatchNormWarning) as record:
        G = ns.from_torch(m, x, fold_batchnorm=True)
    assert len(record) == 1
    msg = str(record[0].message)
    assert "left 4 batch norm(s)" in msg
    assert "'bn_after_relu': its input comes from call_function relu" in msg
    assert "'bn_shared_conv': the output of 'c1' (Conv2d) is also read by" in msg
    assert "'bn_after_add': its input comes from call_function add" in msg
    assert "'bn_no_stats': it has no running statistics" in msg
    assert G.spec["folded_batchnorm"] == {"bn_ok": "c3"}
    norms = {b.module for b in G.blocks if b.kind == "norm"}
    assert norms == {"bn_after_relu", "bn_shared_conv", "bn_after_add", "bn_no_stats"}
    for a, b in zip(_outputs(m, x), _outputs(ns.to_torch(G), x)):
        assert float((a - b).abs().max()) <= 1e-5


def test_strict_folding_is_a_warnings_filter():
    torch.manual_seed(0)
    m = _randomize_bn(_Unfoldable())
    x = torch.randn(3, 1, 6, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnfoldedBatchNormWarning)
        with pytest.raises(UnfoldedBatchNormWarning, match="bn_after_relu"):
            ns.from_torch(m, x, fold_batchnorm=True)


def test_linear_on_a_sequence_is_not_folded_into():
    # BatchNorm1d on (N, C, L) normalises axis 1; the Linear's outputs are on axis 2. Folding
    # leaves it (a warning), and the export then refuses it as it does without folding
    torch.manual_seed(0)
    m = _randomize_bn(nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(3)))
    x = torch.randn(2, 3, 5)
    for fold in (True, False):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            with pytest.raises(UnsupportedModuleError, match="reads features on axis 1"):
                ns.from_torch(m, x, fold_batchnorm=fold)
        msgs = [str(w.message) for w in record if w.category is UnfoldedBatchNormWarning]
        assert len(msgs) == int(fold)
        assert all("'1': the layer before it, '0' (Linear), cannot absorb it" in w for w in msgs)


def test_a_layer_with_tied_weights_or_called_twice_is_not_folded_into():
    torch.manual_seed(0)
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight  # tied: folding into a would change b
    m = _randomize_bn(nn.Sequential(a, nn.BatchNorm1d(4), nn.ReLU(), b))
    x = torch.randn(5, 4)
    with pytest.warns(UnfoldedBatchNormWarning, match="'1': a parameter of '0' .* is shared"):
        G = ns.from_torch(m, x, fold_batchnorm=True)
    assert "folded_batchnorm" not in G.spec
    shared = nn.Linear(4, 4)
    m = _randomize_bn(nn.Sequential(shared, nn.ReLU(), shared, nn.BatchNorm1d(4)))
    with pytest.warns(UnfoldedBatchNormWarning, match="'3': a parameter of '2' .* used twice"):
        G = ns.from_torch(m, x, fold_batchnorm=True)
    assert float((_outputs(ns.to_torch(G), x)[0] - _outputs(m, x)[0]).abs().max()) <= 1e-5


def test_a_chain_of_two_norms_folds_both_into_the_conv():
    torch.manual_seed(0)
    m = _randomize_bn(nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.BatchNorm2d(3)))
    x = torch.randn(2, 1, 5, 5)
    G = ns.from_torch(m, x, fold_batchnorm=True)
    assert G.spec["folded_batchnorm"] == {"1": "0", "2": "0"}
    assert [b.name for b in G.blocks] == ["0.weight"]
    assert float((_outputs(ns.to_torch(G), x)[0] - _outputs(m, x)[0]).abs().max()) <= 1e-5


def test_the_users_model_is_not_modified():
    m, x = _user_cnn()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ns.from_torch(m, x, fold_batchnorm=True)
    after = m.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert m[0].bias is None


class _Scaled(nn.Module):
    """A custom layer ``2 * lin(x)``: folds only when its handler implements absorb_affine."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)

    def forward(self, x):
        return 2.0 * self.lin(x)


class _ScaledHandler(ns.ModuleHandler):
    name = "tests.fold.Scaled"
    shrinkable = True

    def export(self, module, path, inputs, builder):
        src = builder.resolve_features(inputs, 3, path)
        out = builder.add_units(4, module=path)
        builder.add_block(
            module=path,
            param="lin.weight",
            weight=2.0 * module.lin.weight,
            sources=src,
            targets=out,
            bias=2.0 * module.lin.bias,
            bias_param="lin.bias",
        )
        return out

    def build(self, config, params):
        m = _Scaled()
        with torch.no_grad():
            m.lin.weight.copy_(torch.from_numpy(params["lin.weight"] / 2.0))
            m.lin.bias.copy_(torch.from_numpy(params["lin.bias"] / 2.0))
        return m


class _FoldingScaledHandler(_ScaledHandler):
    name = "tests.fold.FoldingScaled"

    def absorb_affine(self, module, scale, shift, out_ndim=None):
        import copy

        out = copy.deepcopy(module)  # 2 * (s * lin(x) + t / 2) = s * (2 lin(x)) + t
        out.lin = ns.convert.handlers.absorb_output_affine(module.lin, scale, shift / 2, out_axis=0)
        return out


@pytest.mark.parametrize("folds", [False, True])
def test_a_custom_handler_folds_when_it_implements_absorb_affine(folds):
    handler = _FoldingScaledHandler() if folds else _ScaledHandler()
    ns.register_module_handler(_Scaled, handler, overwrite=True)
    torch.manual_seed(0)
    m = _randomize_bn(nn.Sequential(_Scaled(), nn.BatchNorm1d(4)))
    x = torch.randn(6, 3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        G = ns.from_torch(m, x, fold_batchnorm=True)
    unfolded = [w for w in record if w.category is UnfoldedBatchNormWarning]
    assert len(unfolded) == int(not folds)
    assert G.spec.get("folded_batchnorm") == ({"1": "0"} if folds else None)
    assert float((_outputs(ns.to_torch(G), x)[0] - _outputs(m, x)[0]).abs().max()) <= 1e-5


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [1, "yes", None, np.bool_(True)])
def test_fold_batchnorm_must_be_a_bool(bad):
    m, x = _user_cnn()
    with pytest.raises(InvalidParameterError, match="'fold_batchnorm' parameter of from_torch"):
        ns.from_torch(m, x, fold_batchnorm=bad)


def test_a_model_in_training_mode_is_refused():
    m, x = _user_cnn()
    m.train()
    with pytest.raises(InvalidParameterError, match="training mode") as info:
        ns.from_torch(m, x, fold_batchnorm=True)
    assert "'1' (and 2 more)" in str(info.value) and "model.eval()" in str(info.value)
    assert m.training  # the mode is left as the user set it
    G = ns.from_torch(m, x)  # without folding the statistics are kept as state, as before
    assert G.provenance["training"] is True


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_16_bit_model_is_refused_with_the_float32_route(dtype):
    m, x = _user_cnn()
    m, x = m.to(dtype), x.to(dtype)
    with pytest.raises(InvalidParameterError, match="float32 or float64") as info:
        ns.from_torch(m, x, fold_batchnorm=True)
    assert str(dtype).replace("torch.", "") in str(info.value)
    # the route the message gives works
    m, x = m.float(), x.float()
    small = ns.to_torch(ns.from_torch(m, x, fold_batchnorm=True)).to(dtype)
    assert next(small.parameters()).dtype == dtype


def test_a_float64_model_folds_in_float64():
    m, x = _user_cnn()
    m, x = m.double(), x.double()
    G = ns.from_torch(m, x, fold_batchnorm=True)
    r = ns.to_torch(G)
    assert next(r.parameters()).dtype == torch.float64
    assert float((_outputs(r, x)[0] - _outputs(m, x)[0]).abs().max()) <= 1e-5


def test_a_model_without_batch_norms_is_exported_as_without_folding():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(2, 3)
    G, H = ns.from_torch(m, x, fold_batchnorm=True), ns.from_torch(m, x)
    assert "folded_batchnorm" not in G.spec
    assert [b.name for b in G.blocks] == [b.name for b in H.blocks]
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(G.blocks, H.blocks))

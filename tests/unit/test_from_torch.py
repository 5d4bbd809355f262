"""Export: graph facts match the tensors; unsupported inputs give netstruct errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.exceptions import GraphError, UnsupportedModuleError
from tests.models import FinalState, LastStep, mlp

pytestmark = pytest.mark.torch


def test_one_edge_per_weight_entry_with_matching_signs_and_weights():
    torch.manual_seed(0)
    m = mlp([7, 5, 4, 3])
    G = ns.from_torch(m)
    params = [p for n, p in m.named_parameters() if n.endswith("weight")]
    assert G.n_edges == sum(p.numel() for p in params)
    e = G.edges()
    for li, (b, p) in enumerate(zip(G.blocks, params)):
        sub = e[e.layer == li]
        W = p.detach().numpy()
        np.testing.assert_array_equal(sub.weight.to_numpy(), W[sub.row, sub.col])
        np.testing.assert_array_equal(sub.sign.to_numpy(), np.sign(W[sub.row, sub.col]))
        np.testing.assert_array_equal(sub.source.to_numpy(), b.sources[sub.col])
        np.testing.assert_array_equal(sub.target.to_numpy(), b.targets[sub.row])


def test_biases_are_kept_on_blocks_and_nodes():
    torch.manual_seed(1)
    m = mlp([3, 2])
    G = ns.from_torch(m)
    np.testing.assert_array_equal(G.blocks[0].bias, m[0].bias.detach().numpy())
    nodes = G.nodes()
    out = nodes[nodes.kind == "output"]
    np.testing.assert_allclose(out.bias.to_numpy(), m[0].bias.detach().numpy().astype(np.float64))
    assert not nodes[nodes.kind == "input"].has_bias.any()


def test_node_kinds_groups_and_names():
    G = ns.from_torch(mlp([4, 3, 2]))
    n = G.nodes()
    assert n.kind.tolist() == ["input"] * 4 + ["hidden"] * 3 + ["output"] * 2
    assert n.group.tolist() == [0] * 4 + [1] * 3 + [2] * 2
    assert n.name.tolist()[:5] == ["input[0]", "input[1]", "input[2]", "input[3]", "0[0]"]
    assert n.activation.tolist()[4:7] == ["relu"] * 3


def test_lstm_unit_owns_four_gate_rows_in_torch_order():
    G = ns.from_torch(LastStep("LSTM", n_in=3, hidden=2, n_out=2))
    n = G.nodes()
    ih = G.block("rnn.weight_ih_l0")
    gates = n.loc[ih.targets]
    assert gates.gate.tolist() == list("iiffggoo")
    units = gates.unit.to_numpy()
    assert set(n.loc[units].kind) == {"hidden"}
    assert units.tolist() == [units[0], units[1]] * 4
    hh = G.block("rnn.weight_hh_l0")
    assert hh.delay == 1 and set(hh.sources.tolist()) == set(units.tolist())
    assert G.block("fc.weight").sources.tolist() == sorted(set(units.tolist()))


def test_gru_has_three_gates_and_rnn_none():
    assert set(ns.from_torch(torch.nn.GRU(2, 3)).nodes().gate) == {"", "r", "z", "n"}
    assert set(ns.from_torch(torch.nn.RNN(2, 3)).nodes().kind) == {"input", "output"}


def test_bidirectional_two_layer_wiring():
    G = ns.from_torch(LastStep("GRU", n_in=3, hidden=2, num_layers=2, bidirectional=True))
    n = G.nodes()
    l1 = G.block("rnn.weight_ih_l1")
    src = n.loc[l1.sources]
    assert l1.shape == (6, 4)
    assert src.direction.tolist() == [0, 0, 1, 1]
    assert G.block("rnn.weight_hh_l0_reverse").delay == 1


def test_provenance_records_model_and_parameters():
    m = mlp([2, 2])
    G = ns.from_torch(m)
    assert G.provenance["model_class"] == "torch.nn.modules.container.Sequential"
    assert G.provenance["parameters"] == ["0.weight", "0.bias"]
    assert G.provenance["netstruct_version"] == ns.__version__


def test_unsupported_module_names_path_type_and_fix():
    m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.PReLU(), torch.nn.Linear(4, 2))
    with pytest.raises(ns.UnsupportedModuleError, match=r"'1'.*PReLU.*register_module_handler"):
        ns.from_torch(m)


def test_all_unsupported_operations_are_reported_at_once_with_source_lines():
    class Three(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(4, 4)
            self.p = torch.nn.PReLU()
            self.b = torch.nn.Linear(4, 4)

        def forward(self, x):
            h = self.p(self.a(x))  # 1: a module without handler
            g = torch.cumsum(self.b(x), 1)  # 2: a function netstruct does not follow
            k = self.a(x).sum(1, keepdim=True) * torch.ones(1, 4)  # 3: a mean-like mix of units
            return h + g + k

    with pytest.raises(ns.UnsupportedModuleError) as info:
        ns.from_torch(Three(), torch.zeros(2, 4))
    msg = str(info.value)
    assert "3 operation(s)" in msg
    assert "PReLU" in msg and "cumsum" in msg and "sum" in msg
    assert msg.count("test_from_torch.py, line") == 3


def test_unsupported_function_in_forward():
    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) + x

    with pytest.raises(ns.UnsupportedModuleError, match="does not follow"):
        ns.from_torch(Residual())


def test_control_flow_is_a_clear_error():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) if x.sum() > 0 else x

    with pytest.raises(ns.UnsupportedModuleError, match="torch.fx"):
        ns.from_torch(Branchy())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_rejected(bad):
    m = mlp([3, 2])
    with torch.no_grad():
        m[0].weight[1, 2] = bad
    with pytest.raises(ns.GraphError, match=r"non-finite.*\(1, 2\)"):
        ns.from_torch(m)


def test_empty_model_and_non_module():
    with pytest.raises(ns.InvalidParameterError, match="has no"):
        ns.from_torch(torch.nn.Sequential())
    with pytest.raises(ns.InvalidParameterError, match="torch.nn.Module"):
        ns.from_torch("model")


def test_example_input_must_fit():
    with pytest.raises(ns.InvalidParameterError, match="example_input"):
        ns.from_torch(mlp([3, 2]), torch.zeros(1, 5))


def test_feature_indexing_is_followed_exactly_with_shapes():
    class Pick(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 3)
            self.b = torch.nn.Linear(1, 2)

        def forward(self, x):
            return self.b(self.a(x)[:, 0:1])

    with pytest.raises(ns.UnsupportedModuleError, match="example_input"):
        ns.from_torch(Pick())
    m = Pick()
    G = ns.from_torch(m, torch.zeros(2, 3))  # the round trip is checked on example_input
    assert G.block("b.weight").sources.tolist() == G.block("a.weight").targets[:1].tolist()


def test_final_state_head_and_functional_activations():
    torch.manual_seed(0)
    m = FinalState("LSTM")
    G = ns.from_torch(m)
    head = G.block("fc.weight")
    n = G.nodes()
    # the LSTM's recurrence reads its units before the relu: the relu gets fresh nodes fed by
    # identity edges, so both readers see the values they really read
    assert (n.loc[head.sources].kind == "hidden").all()
    assert (n.loc[head.sources].activation == "relu").all()
    copy = next(b for b in G.blocks if b.kind == "identity")
    assert copy.targets.tolist() == head.sources.tolist()
    assert (n.loc[copy.sources].activation == "tanh").all()
    x = torch.randn(5, 2, 3)
    assert torch.allclose(ns.to_torch(G)(x), m(x), atol=1e-6)


def test_custom_layer_through_registry():
    class Scaled(torch.nn.Module):
        def __init__(self, n_in, n_out, scale=2.0):
            super().__init__()
            self.lin = torch.nn.Linear(n_in, n_out)
            self.scale = scale

        def forward(self, x):
            return self.lin(x) * self.scale

    class ScaledHandler(ns.ModuleHandler):
        name = "tests.Scaled"

        def export(self, module, path, inputs, builder):
            src = builder.resolve_features(inputs, module.lin.in_features, path)
            out = builder.add_units(module.lin.out_features, module=path)
            builder.add_block(
                module=path,
                param="lin.weight",
                weight=module.lin.weight,
                sources=src,
                targets=out,
                bias=module.lin.bias,
                bias_param="lin.bias",
            )
            return out

        def config(self, module):
            return {"scale": module.scale}

        def build(self, config, params):
            w = params["lin.weight"]
            mod = Scaled(w.shape[1], w.shape[0], config["scale"])
            ns.convert.handlers.load_params(mod, params)
            return mod

    ns.register_module_handler(Scaled, ScaledHandler(), overwrite=True)
    torch.manual_seed(0)
    m = torch.nn.Sequential(Scaled(4, 3, 0.5), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    G = ns.from_torch(m)
    assert [b.name for b in G.blocks] == ["0.lin.weight", "2.weight"]
    x = torch.randn(6, 4)
    assert torch.allclose(ns.to_torch(G)(x), m(x), atol=1e-6)
    with pytest.raises(ns.InvalidParameterError, match="already registered"):
        ns.register_module_handler(Scaled, ScaledHandler())


class _ReadsShape(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 25, 3)

    def forward(self, x):
        b, c, h, w = x.shape  # fx: getattr(x, "shape"), then getitem
        return self.fc(torch.relu(self.conv(x)).reshape(b, c * 0 + 4 * h * w))


def test_a_forward_that_reads_x_shape_exports_and_rebuilds_for_any_batch():
    torch.manual_seed(0)
    model = _ReadsShape().eval()
    G = ns.from_torch(model, torch.randn(2, 2, 5, 5))
    assert [op["target"] for op in G.spec["ops"]].count("getattr") == 1
    rebuilt = ns.to_torch(G)
    x = torch.randn(5, 2, 5, 5)  # another batch size: the shape is read, not baked in
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), atol=1e-5, rtol=1e-4)
    plan = ns.structured_prune(G, amount=0.5)
    small = ns.to_torch(ns.prune(G, plan, shrink=True))
    with torch.no_grad():
        masked = ns.to_torch(ns.prune(G, plan))(x)
        torch.testing.assert_close(small(x), masked, atol=1e-5, rtol=1e-4)


def test_a_spec_reading_another_tensor_attribute_is_refused():
    from netstruct.convert import _ops

    with pytest.raises(GraphError, match="only"):
        _ops.tensor_attribute(torch.zeros(1), "__class__")


def test_reading_x_T_names_the_method_to_call_instead():
    class Transposes(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x.T)

    with pytest.raises(UnsupportedModuleError, match=r"x\.t\(\) for x\.T"):
        ns.from_torch(Transposes().eval(), torch.randn(3, 3))


class _ReadAfterActivation(torch.nn.Module):
    """``h + act(h)``: the pre-activation ``h`` is read after the activation."""

    def __init__(self, module_act: bool) -> None:
        super().__init__()
        self.a = torch.nn.Linear(3, 4)
        self.act = torch.nn.Tanh() if module_act else None
        self.b = torch.nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        g = self.act(h) if self.act is not None else torch.relu(h)
        return self.b(h + g)


@pytest.mark.parametrize("module_act", [False, True], ids=["function", "module"])
def test_an_activation_of_a_value_read_after_it_gets_fresh_nodes(module_act):
    """Annotating ``a``'s nodes in place would make the sum read ``act(h)`` twice (the rebuilt
    module, which replays the operations, hid it from the round-trip check)."""
    import numpy as np

    torch.manual_seed(0)
    model, x = _ReadAfterActivation(module_act).eval(), torch.randn(5, 3)
    G = ns.from_torch(model, x)
    nodes, act = G.nodes(), "tanh" if module_act else "relu"
    a = G.block("a.weight").targets
    assert (nodes.loc[a, "activation"] == "").all()  # h itself
    skips = [b for b in G.blocks if b.kind == "skip"]
    read = [nodes.loc[b.sources, "activation"].unique().tolist() for b in skips]
    assert sorted(read) == [[""], [act]]  # one operand is h, the other act(h)
    # the graph's own arithmetic: b(h + act(h)) from the blocks and the node activations
    A = G.block("a.weight")
    h = x.numpy() @ A.weight.T + A.bias
    g = np.tanh(h) if module_act else np.maximum(h, 0)
    B = G.block("b.weight")
    with torch.no_grad():
        np.testing.assert_allclose((h + g) @ B.weight.T + B.bias, model(x).numpy(), atol=1e-5)
    plan = ns.PruningPlan.for_graph(G).remove_units(G, np.isin(np.arange(G.n_nodes), a[:2]))
    with torch.no_grad():
        torch.testing.assert_close(
            ns.to_torch(ns.prune(G, plan, shrink=True))(x), ns.to_torch(plan.apply(G))(x)
        )

"""``to_torch(G, into=model)``: the graph's layers in the user's own model, at any input shape."""

import pytest
import torch

import netstruct as ns
from netstruct.convert._tape import flat_tensors
from netstruct.exceptions import GraphError, InvalidParameterError

tf = pytest.importorskip("transformers")

from tests.integration import test_hf_models as corpus  # noqa: E402


def _n(module):
    return sum(p.numel() for p in module.parameters())


def _pruned(name, amount=0.5):
    torch.manual_seed(0)
    factory = corpus.MORE.get(name) or getattr(corpus, f"_{name}")
    m, x = factory()
    m.eval()
    G = ns.from_torch(m, x)
    return m, x, G, ns.structured_prune(G, amount=amount)


@pytest.mark.parametrize("name", ["llama", "qwen3", "gemma2", "phi3", "gpt_neox", "stablelm"])
def test_a_shrunk_llm_is_its_own_class_and_runs_at_any_shape(name):
    m, x, G, plan = _pruned(name)
    small = ns.to_torch(plan.apply(G), shrink=True, into=m)
    masked = ns.to_torch(plan.apply(G), into=m)  # the original shapes, removed weights zero
    assert type(small) is type(m) and small is not m
    assert _n(small) < _n(m) and _n(masked) == _n(m)
    other = corpus._ids(40, (3, 9))  # the rebuilt module runs on the example's (2, 5) only
    with torch.no_grad():
        a, b = flat_tensors(small(other))[0], flat_tensors(masked(other))[0]
    assert float((a - b).abs().max()) <= 1e-5
    cfg = small.config
    assert (cfg.num_attention_heads, cfg.intermediate_size) == (2, 12)
    assert m.config.num_attention_heads == 4  # the user's model is left as it was


def test_a_shrunk_llama_saves_and_loads_with_transformers(tmp_path):
    m, x, G, plan = _pruned("llama")
    small = ns.to_torch(plan.apply(G), shrink=True, into=m)
    small.save_pretrained(tmp_path)
    back = tf.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert (back.config.num_key_value_heads, back.config.intermediate_size) == (1, 12)
    other = corpus._ids(40, (1, 7))
    with torch.no_grad():
        assert torch.equal(back(other).logits, small(other).logits)


def test_tied_embeddings_stay_tied():
    m, x, G, plan = _pruned("gemma")
    assert m.lm_head.weight is m.model.embed_tokens.weight
    small = ns.to_torch(plan.apply(G), shrink=True, into=m)
    assert small.lm_head.weight is small.model.embed_tokens.weight


@pytest.mark.parametrize("name", ["resnet", "vit", "bert", "gpt2"])
def test_earlier_families_take_their_shrunk_layers_too(name):
    m, x, G, plan = _pruned(name)
    small = ns.to_torch(plan.apply(G), shrink=True, into=m)
    rebuilt = ns.to_torch(plan.apply(G), shrink=True)
    assert type(small) is type(m) and _n(small) == _n(rebuilt) < _n(m)
    with torch.no_grad():
        for a, b in zip(flat_tensors(small(x)), flat_tensors(rebuilt(x))):
            assert float((a - b).abs().max()) <= 1e-5


def test_uneven_layers_keep_the_config_and_warn():
    torch.manual_seed(0)
    m = tf.LlamaForCausalLM(tf.LlamaConfig(**dict(corpus._LLM, num_hidden_layers=2))).eval()
    x = corpus._ids(40)
    G = ns.from_torch(m, x)
    units = ns.structured_groups(G, macs=False).query("kind == 'unit'")
    first = units[units["members"].map(lambda ms: any(".layers.0." in n for n in ms))]
    names = {n for ms in first["members"].iloc[:4] for n in ms}
    plan = ns.PruningPlan.for_graph(G).remove_units(G, G.nodes()["name"].isin(names).to_numpy())
    with pytest.warns(UserWarning, match="intermediate_size"):
        small = ns.to_torch(plan.apply(G), shrink=True, into=m)
    assert small.config.intermediate_size == 24
    assert small.model.layers[0].mlp.up_proj.out_features == 20


class _FixedView(torch.nn.Module):
    """A forward that keeps a size of its own: x.view(-1, 8) after a layer of 8 outputs."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 8), torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)).view(-1, 8))


def test_a_forward_that_keeps_its_own_sizes_is_refused():
    torch.manual_seed(0)
    m = _FixedView().eval()
    G = ns.from_torch(m, torch.randn(4, 3))
    plan = ns.structured_prune(G, amount=0.5)
    with pytest.raises(GraphError, match="keeps sizes netstruct does not update"):
        ns.to_torch(plan.apply(G), shrink=True, into=m)
    masked = ns.to_torch(plan.apply(G), into=m)  # no size changed: fine
    assert masked.a.out_features == 8


def test_into_must_be_a_module():
    G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with pytest.raises(InvalidParameterError, match="'into'"):
        ns.to_torch(G, into="model")


class _Recurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(3, 8, batch_first=True)
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class _Residual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.bn0 = torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.conv, self.bn = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 2)

    def forward(self, x):
        x = torch.relu(self.bn0(self.stem(x)))
        x = torch.relu(x + self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))


@pytest.mark.parametrize(
    "make, shape, other",
    [(_Recurrent, (4, 6, 3), (2, 9, 3)), (_Residual, (4, 1, 8, 8), (3, 1, 12, 12))],
)
def test_user_classes_take_their_shrunk_layers(make, shape, other):
    torch.manual_seed(0)
    m = make().eval()
    G = ns.from_torch(m, torch.randn(*shape))
    plan = ns.structured_prune(G, amount=0.5)
    own = ns.to_torch(plan.apply(G), shrink=True, into=m)
    masked = ns.to_torch(plan.apply(G), into=m)
    assert type(own) is make and _n(own) < _n(m)
    x = torch.randn(*other)
    with torch.no_grad():
        assert torch.allclose(own(x), masked(x), atol=1e-5)


def test_a_graph_without_an_example_shape_is_grafted_with_a_warning():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    G = ns.from_torch(m)  # no example_input: nothing to check the grafted model on
    plan = ns.structured_prune(G, amount=0.5)
    with pytest.warns(UserWarning, match="could not check"):
        own = ns.to_torch(plan.apply(G), shrink=True, into=m)
    x = torch.randn(5, 3)
    with torch.no_grad():
        assert torch.allclose(own(x), ns.to_torch(plan.apply(G))(x), atol=1e-6)
    assert own[0].out_features == 3

"""Native save/load, model files, GraphML/GEXF/CSV writers and their readers."""

from __future__ import annotations

import zipfile

import igraph as ig
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import netstruct as ns
from tests.models import LastStep, mlp


@pytest.fixture
def lstm_graph():
    torch.manual_seed(0)
    G = ns.from_torch(LastStep("LSTM", n_in=3, hidden=2, n_out=2, bidirectional=True))
    rng = np.random.default_rng(0)
    G = G.remove_edges(rng.random(G.n_edges) < 0.3)
    return G.with_node_attrs(score=rng.random(G.n_nodes)).with_edge_attrs(
        tag=np.arange(G.n_edges) % 3 == 0
    )


def test_native_roundtrip_is_lossless(tmp_path, lstm_graph):
    G = lstm_graph
    ns.save(G, tmp_path / "g.nsg")
    H = ns.load(tmp_path / "g.nsg")
    pd.testing.assert_frame_equal(G.nodes(), H.nodes())
    pd.testing.assert_frame_equal(G.edges(), H.edges())
    for a, b in zip(G.blocks, H.blocks):
        assert a.name == b.name and a.delay == b.delay and a.bias_param == b.bias_param
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert G.spec == H.spec and dict(G.provenance) == dict(H.provenance)
    x = torch.randn(2, 4, 3)
    assert torch.equal(ns.to_torch(G)(x), ns.to_torch(H)(x))


def test_truncated_file_is_a_clear_error(tmp_path, lstm_graph):
    p = tmp_path / "g.nsg"
    ns.save(lstm_graph, p)
    data = p.read_bytes()
    (tmp_path / "cut.nsg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ns.FileFormatError, match="truncated|damaged"):
        ns.load(tmp_path / "cut.nsg")


def test_altered_array_is_detected(tmp_path, lstm_graph):
    p = tmp_path / "g.nsg"
    ns.save(lstm_graph, p)
    with zipfile.ZipFile(p) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    blob = bytearray(entries["arrays/block0/weight.npy"])
    blob[-1] ^= 0xFF
    entries["arrays/block0/weight.npy"] = bytes(blob)
    with zipfile.ZipFile(tmp_path / "bad.nsg", "w") as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    with pytest.raises(ns.FileFormatError, match="altered"):
        ns.load(tmp_path / "bad.nsg")


def test_altered_manifest_is_detected(tmp_path, lstm_graph):
    p = tmp_path / "g.nsg"
    ns.save(lstm_graph, p)
    with zipfile.ZipFile(p) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries["manifest.json"] = entries["manifest.json"].replace(b'"delay": 1', b'"delay": 0', 1)
    with zipfile.ZipFile(tmp_path / "bad.nsg", "w") as zf:
        for n, b in entries.items():
            zf.writestr(n, b)
    with pytest.raises(ns.FileFormatError, match="manifest was altered"):
        ns.load(tmp_path / "bad.nsg")


def test_missing_paths_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file"):
        ns.load(tmp_path / "nope.nsg")
    (tmp_path / "x.nsg").write_text("hello")
    with pytest.raises(ns.FileFormatError, match="not a readable"):
        ns.load(tmp_path / "x.nsg")
    with pytest.raises(ns.InvalidParameterError, match="does not exist"):
        ns.save(ns.from_torch(mlp([2, 2])), tmp_path / "no" / "dir" / "g.nsg")
    m = tmp_path / "m.nsm"
    ns.save_model(mlp([2, 2]), m)
    with pytest.raises(ns.FileFormatError, match="netstruct-model"):
        ns.load(m)


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "g.nsg"
    G = ns.from_torch(mlp([2, 2]))
    ns.save(G, p)
    before = p.read_bytes()
    import netstruct.io._container as c

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(c, "_npy_header", boom)
    with pytest.raises(RuntimeError):
        ns.save(G, p)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["g.nsg"]


def test_model_file_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = LastStep("GRU", num_layers=2)
    ns.save_model(m, tmp_path / "m.nsm")
    r = ns.load_model(tmp_path / "m.nsm")
    x = torch.randn(3, 5, 5)
    assert torch.equal(m(x), r(x))
    with zipfile.ZipFile(tmp_path / "m.nsm") as zf:
        assert not any(n.endswith((".pt", ".pkl")) for n in zf.namelist())


class _TiedPair(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_model_file_keeps_tied_parameters_tied(tmp_path):
    torch.manual_seed(0)
    m, x = _TiedPair(), torch.randn(2, 4)
    ns.save_model(m, tmp_path / "t.nsm", example_input=x)
    r = ns.load_model(tmp_path / "t.nsm")
    assert r.a.weight is r.b.weight  # before: two equal, separate parameters
    assert [n for n, _ in r.named_parameters()] == [n for n, _ in m.named_parameters()]
    assert torch.equal(r(x), m(x))


def _check_reader(H, G, *, id_of, weight_of):
    e = G.edges()
    assert H.number_of_nodes() == G.n_nodes and H.number_of_edges() == G.n_edges
    got = {(id_of(u), id_of(v)): weight_of(d) for u, v, d in H.edges(data=True)}
    want = dict(zip(zip(e.source.tolist(), e.target.tolist()), e.weight.astype(float).tolist()))
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-6)


def test_graphml_reads_back_in_networkx_and_igraph(tmp_path, lstm_graph):
    G = lstm_graph
    p = tmp_path / "g.graphml"
    ns.write_graphml(G, p)
    Hx = nx.read_graphml(p)
    _check_reader(Hx, G, id_of=lambda u: int(u[1:]), weight_of=lambda d: d["weight"])
    assert Hx.nodes["n0"]["name"] == "input[0]"
    g = ig.Graph.Read_GraphML(str(p))
    assert g.vcount() == G.n_nodes and g.ecount() == G.n_edges
    np.testing.assert_allclose(g.es["weight"], G.edges().weight.astype(float), rtol=1e-6)
    assert [int(v["id"][1:]) for v in g.vs] == list(range(G.n_nodes))


def test_gexf_and_csv_read_back(tmp_path, lstm_graph):
    G = lstm_graph
    ns.write_gexf(G, tmp_path / "g.gexf")
    H = nx.read_gexf(tmp_path / "g.gexf")
    _check_reader(H, G, id_of=int, weight_of=lambda d: d["weight"])
    ns.write_edgelist_csv(G, tmp_path / "e.csv", nodes_path=tmp_path / "n.csv")
    df = pd.read_csv(tmp_path / "e.csv")
    np.testing.assert_allclose(df.weight, G.edges().weight, rtol=1e-6)
    assert len(pd.read_csv(tmp_path / "n.csv")) == G.n_nodes


def test_xml_special_characters_are_escaped(tmp_path):
    b = ns.make_block(name="w", weight=np.ones((1, 1)), sources=[0], targets=[1])
    G = ns.SignedGraph({"name": ['a<&>"', "b"], "kind": ["input", "output"]}, [b])
    ns.write_graphml(G, tmp_path / "g.graphml")
    assert nx.read_graphml(tmp_path / "g.graphml").nodes["n0"]["name"] == 'a<&>"'
    ns.write_gexf(G, tmp_path / "g.gexf")
    assert nx.read_gexf(tmp_path / "g.gexf").nodes["0"]["label"] == 'a<&>"'


def test_spec_only_export_lends_tensors_and_copies_otherwise():
    """save_model's export keeps only the spec, so it borrows the weights (no 400 MB copy of a
    BERT-sized model); any other export owns a copy that later training cannot change."""
    import torch

    from netstruct.convert.builder import spec_only_export

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    live = model[2].weight.detach().numpy()
    with spec_only_export():
        lent = ns.from_torch(model, check=False)
    assert np.shares_memory(lent.block("2.weight").weight, live)
    assert not lent.block("2.weight").weight.flags.writeable
    assert live.flags.writeable and model[2].weight.requires_grad  # the model is untouched
    owned = ns.from_torch(model, check=False)
    assert not np.shares_memory(owned.block("2.weight").weight, live)
    assert owned.spec == lent.spec

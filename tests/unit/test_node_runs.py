"""Node names and columns kept per run while exporting (NodeNames, the builder's NodeRuns).

The fast paths (names built from runs when read, uniqueness proven from the runs, the node
columns made per run, activations replayed vectorised) are compared with their references:
names written out one by one, a set of the names, and the per-node accessor ``value``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns
from netstruct.convert.builder import GraphBuilder
from netstruct.exceptions import GraphError
from netstruct.graphs._names import NameRange, NodeNames
from tests.models import EncoderClassifier, TextLSTM


def _reference_names(parts) -> list[str]:
    out: list[str] = []
    for p in parts:
        if isinstance(p, NameRange):
            D = p.head_dim
            out += [
                f"{p.base}[{j // D}.{j % D}]" if D else f"{p.base}[{j}]" for j in range(p.count)
            ]
        else:
            out += list(p)
    return out


_ranges = st.lists(
    st.builds(
        NameRange,
        base=st.text(alphabet="a.[]0", max_size=3),
        count=st.integers(0, 4),
        head_dim=st.integers(0, 2),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(_ranges)
def test_runs_prove_uniqueness_exactly_when_names_are_unique(parts):
    names = NodeNames(parts)
    ref = _reference_names(parts)
    assert names.materialise().tolist() == ref
    assert len(names) == len(ref)
    # bases may hold brackets, dots and digits themselves: the proof still decides exactly
    assert names.proven_unique() == (len(set(ref)) == len(ref))


def test_lists_of_names_are_not_proven_but_checked_by_the_graph():
    parts = [NameRange("a", 2), ["a[1]"]]  # a listed name equal to a run's name
    assert not NodeNames(parts).proven_unique()
    b = ns.make_block(name="w", weight=np.ones((1, 2)), sources=[0, 1], targets=[2])
    with pytest.raises(GraphError, match="unique"):
        ns.SignedGraph({"name": NodeNames(parts)}, [b])
    G = ns.SignedGraph({"name": NodeNames([NameRange("a", 2), ["b"]])}, [b])
    assert G.node_column("name").tolist() == ["a[0]", "a[1]", "b"]


def test_duplicate_runs_are_refused_when_the_graph_is_made():
    b = ns.make_block(name="w", weight=np.ones((2, 2)), sources=[0, 1], targets=[2, 3])
    with pytest.raises(GraphError, match="unique"):
        ns.SignedGraph({"name": NodeNames([NameRange("x", 2), NameRange("x", 2)])}, [b])


def test_names_of_runs_are_made_on_first_read_and_shared_by_derived_graphs():
    G = ns.from_torch(EncoderClassifier().eval(), torch.randn(2, 3, 8))
    assert isinstance(G._nodes._names, NodeNames)  # not built by the export
    H = G.with_node_attrs(score=np.zeros(G.n_nodes))
    names = H.node_column("name")
    assert not names.flags.writeable and names.dtype == object
    assert G._nodes is H._nodes and G.node_column("name") is names
    assert len(set(names.tolist())) == G.n_nodes
    ids = G._name_index().get_indexer(["encoder.layers.0.self_attn.q[1.3]", "input[0]"])
    assert names[ids].tolist() == ["encoder.layers.0.self_attn.q[1.3]", "input[0]"]
    assert G.node_column("gate")[ids[0]] == "q1"


def _builder_with_edits() -> GraphBuilder:
    b = GraphBuilder()
    x = b.resolve_input(ns.convert.builder.PendingInput(), 3, "", label="token")
    h = b.add_units(4, module="fc", label="out")
    g = b.add_gates(h, "ifgo", module="rnn", label="l0")
    q = b._add(
        [NameRange("attn.q", 4, head_dim=2, gate="q"), NameRange("attn.k", 4, head_dim=2)],
        kind="hidden",
        group=3,
        module="attn",
    )
    b._add(["free[0]", "free[1]"], kind="hidden", group=4, module="m", gate=["a", "b"], unit=[0, 1])
    b.annotate(h, "relu")
    b.annotate(h[:2], "tanh")
    b.annotate(np.array([g[1], g[1]]), "sigmoid")  # one node twice: labelled twice, in turn
    b.columns["activation"][int(x[0])] = "set"
    b.annotate(x[:1], "gelu")
    b.columns["gate"][int(q[5])] = "k9"
    b.mark_outputs(h[1:])
    return b


def test_run_table_equals_the_per_node_values():
    b = _builder_with_edits()
    table = b.node_table()
    names = table.pop("name")
    assert names.materialise().tolist() == [b.columns["name"][i] for i in range(b.n_nodes)]
    for col, arr in table.items():
        assert len(arr) == b.n_nodes
        assert arr.tolist() == [b.columns[col][i] for i in range(b.n_nodes)], col
    act = table["activation"].tolist()
    assert act[3:8] == ["relu+tanh", "relu+tanh", "relu", "relu", ""]
    assert act[0] == "set+gelu" and act[8] == "sigmoid+sigmoid"
    assert table["kind"].tolist()[3:7] == ["hidden", "output", "output", "output"]
    assert table["gate"].tolist()[23:31] == ["q0", "q0", "q1", "q1", "", "k9", "", ""]


def test_fixed_columns_are_not_writable():
    b = _builder_with_edits()
    with pytest.raises(GraphError, match="fixed"):
        b.columns["module"][0] = "x"
    with pytest.raises(IndexError):
        b.columns["kind"][b.n_nodes]


def test_lstm_export_names_and_gates_as_written_out():
    G = ns.from_torch(TextLSTM().eval(), torch.randint(0, 11, (2, 5)))
    nodes = G.nodes()
    gates = nodes[nodes.kind == "gate"]
    assert gates.name.tolist()[:2] == ["rnn.l0.i[0]", "rnn.l0.i[1]"]
    assert gates.gate.tolist() == [g for g in "ifgo" for _ in range(4)]
    assert gates["index"].tolist() == list(range(16))
    assert (gates.unit.to_numpy() == np.tile(gates.unit.to_numpy()[:4], 4)).all()

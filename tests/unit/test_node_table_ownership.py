"""A graph's node columns are its own: copied once, or taken over by an owning graph."""

from __future__ import annotations

import numpy as np

import netstruct as ns
from netstruct.graphs.signed import SignedGraph


def test_node_columns_are_the_graphs_own_read_only_copies():
    """SignedGraph copies the caller's node arrays once (no sharing) and fills unit = id."""
    b = ns.make_block(name="w", weight=np.ones((1, 2)), sources=[0, 1], targets=[2])
    group = np.array([0, 0, 1])
    unit = np.array([-1, 0, -1])  # -1: the node is its own unit
    kind = np.array(["input", "input", "output"], dtype=object)
    G = ns.SignedGraph(
        {"name": ["a", "b", "c"], "group": group, "unit": unit, "kind": kind, "index": [0, 1, 0]},
        [b],
    )
    nodes = G.nodes()
    assert nodes["unit"].tolist() == [0, 0, 2] and unit.tolist() == [-1, 0, -1]
    for col, given in (("group", group), ("unit", unit), ("kind", kind)):
        own = G._nodes[col]
        assert not own.flags.writeable and not np.shares_memory(own, given), col
    group[:] = 7
    kind[0] = "gate"
    assert G.nodes()["group"].tolist() == [0, 0, 1] and G.nodes()["kind"].tolist()[0] == "input"
    assert G.nodes()["direction"].dtype == np.int8 and G.nodes()["index"].dtype == np.int64


def test_an_owning_graph_takes_fresh_columns_and_copies_views_and_frozen_ones():
    """SignedGraph._owning (from_torch's) freezes the maker's fresh arrays in place; a view of
    a larger array or a read-only array is copied; the table equals the constructor's."""
    b = ns.make_block(name="w", weight=np.ones((1, 2)), sources=[0, 1], targets=[2])

    def table():
        frozen = np.array(["a", "b", "c"], dtype=object)
        frozen.setflags(write=False)
        return {
            "name": ["n0", "n1", "n2"],
            "group": np.array([0, 0, 1]),  # fresh: taken
            "unit": np.array([-1, 0, -1]),  # fresh: taken, fixed in place
            "index": np.arange(6)[::2],  # a view: copied
            "kind": np.array(["input", "input", "output"], dtype=object),  # fresh: taken
            "module": frozen,  # read-only: shared as before (_freeze), not frozen again
        }

    t = table()
    G = SignedGraph._owning(t, [b], spec=None, provenance={})
    own = G._nodes
    assert own["group"] is t["group"] and own["unit"] is t["unit"] and own["kind"] is t["kind"]
    assert not any(own[c].flags.writeable for c in ("group", "unit", "kind", "index", "module"))
    assert not np.shares_memory(own["index"], t["index"])
    assert own["unit"].tolist() == [0, 0, 2]
    ref = ns.SignedGraph(table(), [b])
    assert G.nodes().equals(ref.nodes())

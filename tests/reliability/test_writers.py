"""Every writer reads back every string a user can hold, in networkx, igraph and pandas."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

import netstruct as ns
from tests.reliability._outcomes import classify, record

ig = pytest.importorskip("igraph", reason="igraph reads GraphML back")

HOSTILE = {
    "lt-gt": "<a>b</a>",
    "amp": "x & y; &amp;",
    "quotes": 'say "hi" it\'s',
    "cr": "cr\rlf\r\nend",
    "tab": "tab\there",
    "newline": "two\nlines",
    "non-ascii": "naïve ü 中文 🙂",
    "cdata-end": "]]>",
    "u2028": "line\u2028sep\u2029",
    "spaces": "  lead and trail  ",
    "empty": "",
    "comma": "a,b;c",
    "backslash": "C:\\path\\n",
    "xml-decl": "<?xml version='1.0'?>",
    "entity": "&lt;&#10;",
}
REFUSED = {
    "control": "ctl\x01char",
    "nul": "nul\x00",
    "surrogate": "lone\ud800x",
    "escape": "esc\x1b[0m",
}


def _graph(value: str):
    G = ns.from_torch(torch.nn.Linear(2, 2))
    tag = np.array([value, "b", "c", "d"], dtype=object)
    return G.with_node_attrs(tag=tag).with_edge_attrs(
        note=np.array([value, "x", "y", "z"], dtype=object)
    )


def _read_graphml_nx(p):
    H = nx.read_graphml(p)
    nodes = [d.get("tag") for _, d in sorted(H.nodes(data=True), key=lambda t: int(t[0][1:]))]
    edges = sorted((int(u[1:]), int(v[1:]), d.get("note")) for u, v, d in H.edges(data=True))
    return nodes, edges


def _read_graphml_ig(p):
    H = ig.Graph.Read_GraphML(str(p))
    return list(H.vs["tag"]), sorted((e.source, e.target, e["note"]) for e in H.es)


def _read_gexf(p):
    H = nx.read_gexf(p)
    nodes = [d.get("tag") for _, d in sorted(H.nodes(data=True), key=lambda t: int(t[0]))]
    edges = sorted((int(u), int(v), d.get("note")) for u, v, d in H.edges(data=True))
    return nodes, edges


def _read_csv(p):
    nodes = pd.read_csv(str(p) + ".nodes.csv", keep_default_na=False, dtype={"tag": str})[
        "tag"
    ].tolist()
    e = pd.read_csv(p, keep_default_na=False, dtype={"note": str})
    return nodes, sorted(zip(e.source.tolist(), e.target.tolist(), e.note.tolist()))


READERS = {
    "graphml/networkx": (ns.write_graphml, _read_graphml_nx),
    "graphml/igraph": (ns.write_graphml, _read_graphml_ig),
    "gexf/networkx": (ns.write_gexf, _read_gexf),
    "csv/pandas": (
        lambda G, p: ns.write_edgelist_csv(G, p, nodes_path=str(p) + ".nodes.csv"),
        _read_csv,
    ),
}


def _expected(G):
    e = G.edges()
    notes = G.edge_arrays()["note"]
    return G.node_column("tag").tolist(), sorted(
        zip(e.source.tolist(), e.target.tolist(), notes.tolist())
    )


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_strings_round_trip(tmp_path, reader, name):
    write, read = READERS[reader]
    G = _graph(HOSTILE[name])
    p = tmp_path / "g.out"
    want = _expected(G)
    outcome, detail = classify(lambda: (write(G, p), read(p))[1], check=lambda got: got == want)
    record(f"{reader} round trip of {name}", outcome, detail)
    assert outcome == "correct result", detail


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("name", list(REFUSED))
def test_unwritable_characters_are_refused_or_read_back(tmp_path, reader, name):
    write, read = READERS[reader]
    G = _graph(REFUSED[name])
    p = tmp_path / "g.out"
    want = _expected(G)
    outcome, detail = classify(lambda: (write(G, p), read(p))[1], check=lambda got: got == want)
    record(f"{reader} {name}", outcome, detail)
    assert outcome in ("clear error", "correct result"), detail
    if outcome == "clear error":
        assert "U+" in detail and not p.exists()


@pytest.mark.parametrize("column", ["kind", "block", "source_name", "target_name"])
@pytest.mark.parametrize("writer", ["graphml", "gexf", "csv"])
def test_attribute_clashing_with_a_writer_column_is_refused(tmp_path, writer, column):
    G = ns.from_torch(torch.nn.Linear(2, 2))
    try:
        G = G.with_edge_attrs(**{column: np.arange(4)})
    except ns.InvalidParameterError:
        record(f"with_edge_attrs({column})", "clear error")
        return
    fn = {"graphml": ns.write_graphml, "gexf": ns.write_gexf, "csv": ns.write_edgelist_csv}[writer]
    outcome, detail = classify(lambda: fn(G, tmp_path / "g.out"))
    record(f"write {writer} with edge attribute {column!r}", outcome, detail)
    assert outcome == "clear error", detail
    assert column in detail

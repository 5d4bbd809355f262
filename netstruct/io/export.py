"""GraphML, GEXF and CSV writers for Gephi, Cytoscape, yEd, networkx and igraph.

The writers format whole columns at once (numpy string conversion, one ``str.format`` per
line) instead of building an XML tree, which makes them much faster than networkx's writers.
Node ids are written as ``n<id>``; every node-table column and edge column is an attribute.
"""

from __future__ import annotations

import os
import re
from xml.sax.saxutils import escape

import numpy as np

from ..exceptions import InvalidParameterError, param_error
from ..graphs.external import _edge_columns
from ..graphs.signed import SignedGraph
from ..utils.validation import check_graph
from ._atomic import atomic_write, check_out_path

__all__ = ["write_graphml", "write_gexf", "write_edgelist_csv"]


_QUOTES = {'"': "&quot;", "'": "&apos;", "\n": "&#10;", "\t": "&#9;", "\r": "&#13;"}
_TEXT = {"\r": "&#13;"}  # XML parsers turn a literal CR (and CRLF) into LF
# characters XML 1.0 cannot hold even as references, and lone surrogates (no UTF-8 form)
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_UTF8_BAD = re.compile("[\x00\ud800-\udfff]")
# columns the writers add beside the edge attributes
_WRITER_COLUMNS = (
    "source",
    "target",
    "source_name",
    "target_name",
    "weight",
    "sign",
    "layer",
    "block",
    "row",
    "col",
    "delay",
    "kind",
)


def _check_names(G: SignedGraph, func: str) -> None:
    """Refuse edge attributes whose names the writer uses for its own columns."""
    clash = sorted(set(G.edge_attr_names) & set(_WRITER_COLUMNS))
    if clash:
        raise InvalidParameterError(
            f"{func}: edge attribute(s) {clash} have the names of columns the writer adds "
            f"({', '.join(_WRITER_COLUMNS)}), so the file could not tell them apart. Rename them "
            "first, e.g. G.with_edge_attrs(my_kind=...)."
        )


def _check_strings(uniq: list[str], column: str, func: str, bad: re.Pattern[str], fmt: str) -> None:
    for u in uniq:
        m = bad.search(u)
        if m is not None:
            raise InvalidParameterError(
                f"{func}: column {column!r} holds {u!r}, whose character U+{ord(m.group()):04X} "
                f"cannot be written to {fmt} (control characters and lone surrogates have no form "
                "there). Replace it first, e.g. with str.replace or unicodedata."
            )


def _kind(a: np.ndarray) -> str:
    if a.dtype == bool:
        return "boolean"
    if np.issubdtype(a.dtype, np.integer):
        return "long"
    if np.issubdtype(a.dtype, np.floating):
        return "double"
    return "string"


def _as_text(a: np.ndarray, column: str, func: str, *, attr: bool = False) -> list[str]:
    """Column -> list of XML-safe strings (shortest round-trip repr for floats)."""
    a = np.asarray(a)
    if a.dtype == bool:
        return np.where(a, "true", "false").tolist()
    if np.issubdtype(a.dtype, np.number):
        return a.astype(str).tolist()
    # str() per value: numpy's fixed-width strings would drop trailing NUL characters
    vals = [v if isinstance(v, str) else str(v) for v in a.tolist()]
    uniq_l = list(dict.fromkeys(vals))
    _check_strings(uniq_l, column, func, _XML_BAD, "XML")
    esc = {u: escape(u, _QUOTES) if attr else escape(u, _TEXT) for u in uniq_l}
    return [esc[v] for v in vals]


def _node_table(G: SignedGraph) -> dict[str, np.ndarray]:
    df = G.nodes()
    return {c: df[c].to_numpy() for c in df.columns}


def write_graphml(G: SignedGraph, path: str | os.PathLike, *, coupling: bool = False) -> None:
    """Write ``G`` as GraphML (readable by networkx, igraph, Gephi, Cytoscape, yEd).

    Parameters
    ----------
    G : SignedGraph
    path : str or path-like
        Written atomically.
    coupling : bool, default=False
        Also write the fixed gate -> unit edges of LSTM/GRU layers.

    Examples
    --------
    >>> import tempfile, os, torch, networkx as nx, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Linear(3, 2))
    >>> p = os.path.join(tempfile.mkdtemp(), "g.graphml")
    >>> ns.write_graphml(G, p)
    >>> nx.read_graphml(p).number_of_edges()
    6
    """
    func = "write_graphml"
    check_graph(G, func)
    if not isinstance(coupling, (bool, np.bool_)):
        raise param_error("coupling", func, "a bool", coupling)
    _check_names(G, func)
    p = check_out_path(path, func)
    nodes = _node_table(G)
    src, tgt, ecols = _edge_columns(G, coupling)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
        'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">',
    ]
    nkeys = {c: f"d{i}" for i, c in enumerate(nodes)}
    ekeys = {c: f"e{i}" for i, c in enumerate(ecols)}
    for c, k in nkeys.items():
        out.append(f'<key id="{k}" for="node" attr.name="{c}" attr.type="{_kind(nodes[c])}"/>')
    for c, k in ekeys.items():
        out.append(f'<key id="{k}" for="edge" attr.name="{c}" attr.type="{_kind(ecols[c])}"/>')
    out.append('<graph id="G" edgedefault="directed">')
    ntpl = (
        '<node id="n{}">'
        + "".join(f'<data key="{k}">{{}}</data>' for k in nkeys.values())
        + "</node>"
    )
    out.append(
        "\n".join(map(ntpl.format, range(G.n_nodes), *(_as_text(nodes[c], c, func) for c in nodes)))
    )
    etpl = (
        '<edge source="n{}" target="n{}">'
        + "".join(f'<data key="{k}">{{}}</data>' for k in ekeys.values())
        + "</edge>"
    )
    if src.size:
        out.append(
            "\n".join(
                map(
                    etpl.format,
                    src.tolist(),
                    tgt.tolist(),
                    *(_as_text(ecols[c], c, func) for c in ecols),
                )
            )
        )
    out.append("</graph>\n</graphml>\n")
    with atomic_write(p, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))


_GEXF_TYPES = {"boolean": "boolean", "long": "long", "double": "double", "string": "string"}


def write_gexf(G: SignedGraph, path: str | os.PathLike, *, coupling: bool = False) -> None:
    """Write ``G`` as GEXF 1.2 (Gephi's format; readable by networkx).

    Node labels are the node names; edges carry ``weight`` (the signed weight) and every edge
    column as an attribute.

    Examples
    --------
    >>> import tempfile, os, torch, networkx as nx, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Linear(3, 2))
    >>> p = os.path.join(tempfile.mkdtemp(), "g.gexf")
    >>> ns.write_gexf(G, p)
    >>> nx.read_gexf(p).number_of_edges()
    6
    """
    func = "write_gexf"
    check_graph(G, func)
    if not isinstance(coupling, (bool, np.bool_)):
        raise param_error("coupling", func, "a bool", coupling)
    _check_names(G, func)
    p = check_out_path(path, func)
    nodes = _node_table(G)
    src, tgt, ecols = _edge_columns(G, coupling)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<gexf xmlns="http://www.gexf.net/1.2draft" version="1.2">',
        '<graph defaultedgetype="directed" mode="static">',
        '<attributes class="node" mode="static">',
    ]
    ncols = [c for c in nodes if c != "name"]
    for i, c in enumerate(ncols):
        out.append(f'<attribute id="{i}" title="{c}" type="{_GEXF_TYPES[_kind(nodes[c])]}"/>')
    out.append('</attributes>\n<attributes class="edge" mode="static">')
    ecols_attr = [c for c in ecols if c != "weight"]
    for i, c in enumerate(ecols_attr):
        out.append(f'<attribute id="{i}" title="{c}" type="{_GEXF_TYPES[_kind(ecols[c])]}"/>')
    out.append("</attributes>\n<nodes>")
    ntpl = (
        '<node id="{}" label="{}"><attvalues>'
        + "".join(f'<attvalue for="{i}" value="{{}}"/>' for i in range(len(ncols)))
        + "</attvalues></node>"
    )
    out.append(
        "\n".join(
            map(
                ntpl.format,
                range(G.n_nodes),
                _as_text(nodes["name"], "name", func, attr=True),
                *(_as_text(nodes[c], c, func, attr=True) for c in ncols),
            )
        )
    )
    out.append("</nodes>\n<edges>")
    etpl = (
        '<edge id="{}" source="{}" target="{}" weight="{}"><attvalues>'
        + "".join(f'<attvalue for="{i}" value="{{}}"/>' for i in range(len(ecols_attr)))
        + "</attvalues></edge>"
    )
    if src.size:
        out.append(
            "\n".join(
                map(
                    etpl.format,
                    range(src.size),
                    src.tolist(),
                    tgt.tolist(),
                    _as_text(ecols["weight"], "weight", func),
                    *(_as_text(ecols[c], c, func, attr=True) for c in ecols_attr),
                )
            )
        )
    out.append("</edges>\n</graph>\n</gexf>\n")
    with atomic_write(p, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))


def write_edgelist_csv(
    G: SignedGraph,
    path: str | os.PathLike,
    *,
    nodes_path: str | os.PathLike | None = None,
    coupling: bool = False,
) -> None:
    """Write the edge table as CSV (``source,target,weight,...`` with node names alongside).

    Gephi, Cytoscape and yEd import it as an edge list; ``nodes_path`` also writes the node
    table. Columns: ``source, target, source_name, target_name, weight, sign, layer, block,
    row, col, delay, kind`` and the edge attributes.

    Examples
    --------
    >>> import tempfile, os, torch, pandas as pd, netstruct as ns
    >>> G = ns.from_torch(torch.nn.Linear(3, 2))
    >>> p = os.path.join(tempfile.mkdtemp(), "edges.csv")
    >>> ns.write_edgelist_csv(G, p)
    >>> pd.read_csv(p).shape
    (6, 12)
    """
    import pandas as pd

    func = "write_edgelist_csv"
    check_graph(G, func)
    if not isinstance(coupling, (bool, np.bool_)):
        raise param_error("coupling", func, "a bool", coupling)
    _check_names(G, func)
    p = check_out_path(path, func)
    np_ = None if nodes_path is None else check_out_path(nodes_path, func, name="nodes_path")
    src, tgt, ecols = _edge_columns(G, coupling)
    names = G.node_column("name")
    df = pd.DataFrame(
        {
            "source": src,
            "target": tgt,
            "source_name": names[src],
            "target_name": names[tgt],
            **ecols,
        }
    )
    nodes = G.nodes() if np_ is not None else None
    for frame in (df, nodes):
        if frame is None:
            continue
        for c in frame.columns:
            if not (
                pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
            ):
                _check_strings(
                    pd.unique(frame[c].astype(str)).tolist(), c, func, _UTF8_BAD, "UTF-8 CSV"
                )
    with atomic_write(p, "w", encoding="utf-8", newline="") as fh:
        df.to_csv(fh, index=False, float_format=None)
    if np_ is not None and nodes is not None:
        with atomic_write(np_, "w", encoding="utf-8", newline="") as fh:
            nodes.to_csv(fh, index=True)

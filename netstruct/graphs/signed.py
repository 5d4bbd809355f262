"""The signed, weighted, directed graph of a neural network.

A :class:`SignedGraph` is immutable. It holds

* a **node table**: one row per neuron (input feature, hidden unit, output unit) and, for
  LSTM/GRU layers, one row per gate pre-activation that belongs to a unit;
* one :class:`~netstruct.graphs.block.Block` per weight parameter (a bipartite layer with
  its bias), stored exactly as torch stores it;
* an optional architecture ``spec`` (JSON) that lets :func:`netstruct.to_torch` rebuild the
  module, and ``provenance`` (model class, parameter names, versions);
* named node and edge attributes that analyses attach without copying the weights.

Every operation returns a new graph; arrays are shared between graphs and never written.
"""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._dtypes import INDEX_DTYPE, SIGN_DTYPE
from ..exceptions import GraphError, InvalidParameterError, NetstructWarning
from . import external as _external
from ._names import NodeNames
from ._schema import EDGE_COLUMNS, NODE_COLUMNS, NODE_KINDS
from .block import BLOCK_KINDS, Block

__all__ = ["SignedGraph", "from_networkx", "NODE_COLUMNS", "EDGE_COLUMNS", "NODE_KINDS"]

_NODE_DTYPES = {
    "group": INDEX_DTYPE,
    "index": INDEX_DTYPE,
    "unit": INDEX_DTYPE,
    "direction": np.int8,
}


_NAME_INDEX = "_netstruct_name_index"
_NAME_IDS = "_netstruct_name_ids"
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(obj: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, tuples of plain values), fast.

    Architecture specs are such data: one ``pickle`` round trip copies them in C, types
    kept, at about half the cost of walking them in Python (``marshal`` would be faster
    still, but writes any object with a buffer, a numpy scalar or array, as plain bytes).
    What pickle refuses takes the walk below, where strings, numbers, booleans and None are
    immutable and shared and ``copy.deepcopy`` copies anything that is not JSON-like.

    Examples
    --------
    >>> import numpy as np
    >>> spec = {"ops": [{"op": "call_module", "args": [0, (1, 2)]}], "n": 3.5}
    >>> out = _copy_json(spec)
    >>> out == spec, out["ops"] is spec["ops"]
    (True, False)
    >>> _copy_json({"scale": np.float64(2.0)})  # types kept
    {'scale': np.float64(2.0)}
    """
    try:
        return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, TypeError, AttributeError):  # e.g. a lambda: walk it
        return _copy_walk(obj)


def _copy_walk(obj: Any) -> Any:
    t = type(obj)
    if t is dict:
        return {k: _copy_walk(v) for k, v in obj.items()}
    if t is list:
        if set(map(type, obj)) <= _JSON_SCALARS:  # e.g. a constant tensor's data: shallow
            return obj.copy()
        return [_copy_walk(v) for v in obj]
    if t is tuple:
        return tuple(_copy_walk(v) for v in obj)
    if t in (str, int, float, bool) or obj is None:
        return obj
    return copy.deepcopy(obj)


def _ids_in_range(blocks: Sequence[Block], n: int) -> bool:
    """Whether every block's source and target ids lie in ``0..n-1`` (one min and max over
    all of them, not four reductions per block)."""
    ids = [a for b in blocks for a in (b.sources, b.targets) if a.size]
    if not ids:
        return True
    flat = np.concatenate(ids)
    return bool(flat.min() >= 0 and flat.max() < n)


def _freeze(a: np.ndarray) -> np.ndarray:
    if a.flags.writeable:
        a = a.copy()
        a.setflags(write=False)
    return a


def _check_column_shape(col: str, raw: np.ndarray, n: int) -> None:
    if raw.shape != (n,):
        raise GraphError(f"Node column {col!r} has shape {raw.shape}, expected ({n},).")


def _all_str(out: np.ndarray, values: list) -> bool:
    """Fill the object array ``out`` from ``values``; True when every entry is a ``str``.

    The check is pandas' C scan (``infer_dtype``), ~3x faster than a Python pass over types
    at the 10^5 names of a BERT-sized export.
    """
    if not values:
        return True
    try:
        out[:] = values
    except ValueError:  # entries that are sequences themselves: not a column of str
        return False
    return bool(pd.api.types.infer_dtype(out, skipna=False) == "string")


def _string_column(col: str, values: Any, n: int, default: str, take: bool = False) -> np.ndarray:
    """A node column as a read-only object array of Python ``str`` that the graph owns.

    A list or object array of ``str`` (what the exporter builds) is taken as it is (an array
    copied once unless read-only, or frozen in place with ``take``; a list's entries put in
    a new array); a column of one repeated value is filled without converting each entry;
    anything else is converted with ``str``.
    """
    if values is None:
        out = np.empty(n, dtype=object)
        out.fill(default)
        return _frozen_in_place(out)
    if isinstance(values, list) and _all_str(out := np.empty(len(values), dtype=object), values):
        _check_column_shape(col, out, n)
        return _frozen_in_place(out)  # every entry a str: taken as it is
    if (
        isinstance(values, np.ndarray)
        and values.dtype == object
        and values.ndim == 1
        and pd.api.types.infer_dtype(values, skipna=False) == "string"
    ):
        _check_column_shape(col, values, n)
        return _frozen_in_place(values) if take and _takeable(values) else _freeze(values)
    raw = np.asarray(values)
    _check_column_shape(col, raw, n)
    return _frozen_in_place(raw.astype(object).astype(str).astype(object))


def _takeable(a: np.ndarray) -> bool:
    """True when ``a`` may be frozen in place for a graph that takes its inputs over: it owns
    its memory (no view of a larger array) and is writeable (no one froze it to share it)."""
    return bool(a.flags.owndata and a.flags.writeable)


def _frozen_in_place(a: np.ndarray) -> np.ndarray:
    """``a`` (a new array no one else holds) made read-only without a copy."""
    a.setflags(write=False)
    return a


class _NodeTable(Mapping):
    """A graph's core node columns (:data:`NODE_COLUMNS`), validated and read-only.

    The name column may be held as :class:`~netstruct.graphs._names.NodeNames` runs whose
    uniqueness is proven (an export's names): it is made into strings on first read and kept.
    Only :func:`_normalize_nodes` (after every check) and :meth:`SignedGraph._derived` make one,
    so a graph built from another's table shares it without checking it again.
    """

    __slots__ = ("_cols", "_names", "n")

    def __init__(self, cols: dict[str, np.ndarray], names: np.ndarray | NodeNames, n: int):
        self._cols = cols
        self._names = names
        self.n = n

    def __getitem__(self, key: str) -> np.ndarray:
        if key != "name":
            return self._cols[key]
        names = self._names
        if isinstance(names, NodeNames):
            arr = names.materialise()
            arr.setflags(write=False)
            self._names = names = arr
        return names

    def __contains__(self, key: object) -> bool:
        return key == "name" or key in self._cols

    def __iter__(self):
        return iter(NODE_COLUMNS)

    def __len__(self) -> int:
        return len(NODE_COLUMNS)


def _normalize_nodes(nodes: Mapping[str, Any] | pd.DataFrame, take: bool = False) -> _NodeTable:
    """The validated node table: columns typed and frozen, kinds and units checked, names unique.

    ``take``: the caller made the column arrays for this graph alone and drops them (an
    export's builder), so arrays of the right type are frozen in place instead of copied;
    every check runs all the same.
    """
    if isinstance(nodes, _NodeTable):
        return nodes  # made by this function (or from a graph's valid columns): checked already
    if isinstance(nodes, pd.DataFrame):
        nodes = {c: nodes[c].to_numpy() for c in nodes.columns}
    if not isinstance(nodes, Mapping):
        raise InvalidParameterError(
            "The 'nodes' parameter of SignedGraph must be a mapping of column name -> values or a "
            f"DataFrame, with at least a 'name' column. Got {type(nodes).__name__} instead."
        )
    if "name" not in nodes:
        raise GraphError("The node table needs a 'name' column.")
    n = len(nodes["name"])
    cols: dict[str, np.ndarray] = {}
    for col, default in NODE_COLUMNS.items():
        if col == "name":
            continue
        if col in _NODE_DTYPES:
            raw = np.asarray(nodes[col]) if col in nodes else np.full(n, default)
            _check_column_shape(col, raw, n)
            own = take and raw.dtype == _NODE_DTYPES[col] and _takeable(raw)
            cols[col] = raw if own else np.array(raw, dtype=_NODE_DTYPES[col], copy=True)
        else:
            cols[col] = _string_column(col, nodes.get(col), n, default, take)
    unit = cols["unit"]
    negative = unit < 0
    unit[negative] = np.arange(n)[negative]  # the graph's own array (above): fixed in place
    for col in _NODE_DTYPES:
        cols[col].setflags(write=False)
    bad = set(cols["kind"].tolist()) - set(NODE_KINDS)
    if bad:
        raise GraphError(f"Unknown node kind(s) {sorted(bad)}; allowed kinds are {NODE_KINDS}.")
    if n and (cols["unit"].max() >= n):
        raise GraphError("Node column 'unit' refers to a node id that does not exist.")
    raw_names = nodes["name"]
    if isinstance(raw_names, NodeNames) and raw_names.proven_unique():
        return _NodeTable(cols, raw_names, n)  # unique by its runs; strings made when read
    if isinstance(raw_names, NodeNames):
        raw_names = raw_names.materialise().tolist()
    names = _string_column("name", raw_names, n, "")
    _check_unique_names(names)
    return _NodeTable(cols, names, n)


class _EdgeColumns(Mapping):
    """Edge columns computed lazily, column by column, from the blocks (read-only arrays)."""

    _KEYS = ("layer", "source", "target", "weight", "sign", "row", "col", "delay")

    def __init__(
        self,
        blocks: tuple[Block, ...],
        attrs: Mapping[str, np.ndarray] | None = None,
        cache: dict | None = None,
    ):
        self._blocks = blocks
        self._attrs = dict(attrs or {})
        self._cache: dict[str, Any] = {} if cache is None else cache

    def __iter__(self):
        yield from self._KEYS
        yield from self._attrs

    def __len__(self) -> int:
        return len(self._KEYS) + len(self._attrs)

    def __getitem__(self, key: str) -> np.ndarray:
        if key in self._attrs:
            return self._attrs[key]
        if key not in self._KEYS:
            raise KeyError(key)
        if key not in self._cache:
            arr = self._compute(key)
            arr.setflags(write=False)
            self._cache[key] = arr
        return self._cache[key]

    def _sparse_rc(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        k = f"_rc{i}"
        if k not in self._cache:
            r, c = np.nonzero(self._blocks[i].mask)
            self._cache[k] = (r.astype(INDEX_DTYPE, copy=False), c.astype(INDEX_DTYPE, copy=False))
        return self._cache[k]

    def _part(self, key: str, i: int, b: Block) -> np.ndarray:
        n_out, n_in = b.shape
        dense = b.is_dense
        if key == "weight":
            return b.weight.reshape(-1) if dense else b.weight[self._sparse_rc(i)]
        if key == "sign":
            return np.sign(self._part("weight", i, b)).astype(SIGN_DTYPE)
        if key in ("layer", "delay"):
            m = b.weight.size if dense else self._sparse_rc(i)[0].size
            return np.full(
                m, i if key == "layer" else b.delay, dtype=np.int32 if key == "layer" else np.int8
            )
        if key == "source":
            return np.tile(b.sources, n_out) if dense else b.sources[self._sparse_rc(i)[1]]
        if key == "target":
            return np.repeat(b.targets, n_in) if dense else b.targets[self._sparse_rc(i)[0]]
        if key == "row":
            return (
                np.repeat(np.arange(n_out, dtype=INDEX_DTYPE), n_in)
                if dense
                else self._sparse_rc(i)[0]
            )
        return (
            np.tile(np.arange(n_in, dtype=INDEX_DTYPE), n_out) if dense else self._sparse_rc(i)[1]
        )

    def _compute(self, key: str) -> np.ndarray:
        parts = [self._part(key, i, b) for i, b in enumerate(self._blocks)]
        if not parts:
            return np.zeros(0, dtype=np.float32 if key == "weight" else INDEX_DTYPE)
        return np.concatenate(parts) if len(parts) > 1 else np.array(parts[0], copy=True)


def _check_unique_names(names: np.ndarray) -> None:
    """Node names identify nodes (plans, selections, shrink): refuse duplicates."""
    if len(set(names.tolist())) == names.size:
        return  # a set of str is ~3x faster than pd.Index(...).is_unique at 10^5 names
    index = pd.Index(names)
    dup = index[index.duplicated()].unique()[:5].tolist()
    raise GraphError(
        f"Node names must be unique; {len(index[index.duplicated()].unique())} name(s) repeat, "
        f"e.g. {dup}. Give each node its own name."
    )


class SignedGraph:
    """A neural network as a signed, weighted, directed graph (immutable).

    Most users get one from :func:`netstruct.from_torch`. Nodes are integer ids
    ``0..n_nodes-1``; :meth:`nodes` and :meth:`edges` return pandas tables that can be
    queried, and analyses return new graphs with extra columns
    (:meth:`with_node_attrs`, :meth:`with_edge_attrs`).

    Parameters
    ----------
    nodes : DataFrame or mapping of column name to array
        The node table; needs ``name`` and may give any column of :data:`NODE_COLUMNS`.
    blocks : sequence of Block
        The weight blocks, in forward order.
    spec : dict, optional
        JSON architecture spec used by :func:`netstruct.to_torch`.
    provenance : dict, optional
        Where the graph came from (model class, parameter names, versions).
    node_attrs, edge_attrs : mapping of str to array, optional
        Extra named columns (length ``n_nodes`` / ``n_edges``).

    Examples
    --------
    >>> import torch, netstruct as ns
    >>> _ = torch.manual_seed(0)
    >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)))
    >>> G.n_nodes, G.n_edges
    (6, 8)
    >>> G.edges().columns[:5].tolist()
    ['layer', 'block', 'source', 'target', 'weight']
    """

    __slots__ = (
        "_nodes",
        "_blocks",
        "_spec",
        "_provenance",
        "_node_attrs",
        "_edge_attrs",
        "__dict__",
    )

    #: what :func:`netstruct.utils.validation.check_graph` looks for (no import of this class)
    _is_signed_graph: ClassVar[bool] = True

    def __init__(
        self,
        nodes: Mapping[str, Any] | pd.DataFrame,
        blocks: Sequence[Block],
        *,
        spec: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
        node_attrs: Mapping[str, Any] | None = None,
        edge_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self._setup(nodes, blocks, spec, provenance, node_attrs, edge_attrs, copy=True)

    @classmethod
    def _owning(
        cls,
        nodes: Mapping[str, Any] | pd.DataFrame,
        blocks: Sequence[Block],
        *,
        spec: dict[str, Any] | None,
        provenance: dict[str, Any],
    ) -> SignedGraph:
        """Like the constructor (every check), but the graph takes ``spec``, ``provenance``
        and the node column arrays over instead of copying them: for a maker that built
        them for this graph alone and drops its references (:func:`netstruct.from_torch`)."""
        self = object.__new__(cls)
        self._setup(nodes, blocks, spec, provenance, None, None, copy=False)
        return self

    def _setup(
        self,
        nodes: Mapping[str, Any] | pd.DataFrame,
        blocks: Sequence[Block],
        spec: Mapping[str, Any] | None,
        provenance: Mapping[str, Any] | None,
        node_attrs: Mapping[str, Any] | None,
        edge_attrs: Mapping[str, Any] | None,
        *,
        copy: bool,
    ) -> None:
        # names checked unique; index built when needed; an owning graph takes the columns
        self._nodes = _normalize_nodes(nodes, take=not copy)
        self._blocks = tuple(blocks)
        n = self.n_nodes
        names = [b.name for b in self._blocks]
        if len(set(names)) != len(names):
            raise GraphError(f"Block names must be unique; got {names}.")
        for b in self._blocks:
            if not isinstance(b, Block):
                raise GraphError(f"blocks must be netstruct Block objects, got {type(b).__name__}.")
        if self._blocks and not _ids_in_range(self._blocks, n):  # one pass over all ids first
            for b in self._blocks:  # then name the block
                for what, ids in (("source", b.sources), ("target", b.targets)):
                    if ids.size and (ids.min() < 0 or ids.max() >= n):
                        raise GraphError(
                            f"Block {b.name!r} refers to {what} node ids outside 0..{n - 1}."
                        )
        if copy:
            self._spec = _copy_json(dict(spec)) if spec is not None else None
            self._provenance = _copy_json(dict(provenance or {}))
        else:
            self._spec = dict(spec) if spec is not None else None
            self._provenance = dict(provenance or {})
        self._node_attrs = self._check_attrs(node_attrs or {}, n, "node", reserved=NODE_COLUMNS)
        self._edge_attrs = self._check_attrs(
            edge_attrs or {}, self.n_edges, "edge", reserved=EDGE_COLUMNS
        )

    @classmethod
    def _derived(
        cls,
        nodes: Mapping[str, np.ndarray],
        blocks: Sequence[Block],
        *,
        spec: Mapping[str, Any] | None,
        provenance: Mapping[str, Any],
        node_attrs: Mapping[str, Any] | None = None,
        edge_attrs: Mapping[str, Any] | None = None,
    ) -> SignedGraph:
        """A graph cut from a valid one (for :func:`netstruct.shrink`; inputs valid by construction).

        ``nodes`` holds every node column, already normalised (sliced from a graph's columns);
        ``spec`` is shared, not copied (graphs never change it and hand out copies), and
        ``provenance`` is copied one level deep. Skips the checks of :class:`SignedGraph`.
        """
        self = object.__new__(cls)
        cols = {c: _freeze(np.asarray(nodes[c])) for c in NODE_COLUMNS}
        names = cols.pop("name")
        self._nodes = _NodeTable(cols, names, int(names.shape[0]))
        self._blocks = tuple(blocks)
        self._spec = spec if spec is None else dict(spec)
        self._provenance = dict(provenance)
        n = self.n_nodes
        self._node_attrs = self._check_attrs(node_attrs or {}, n, "node", reserved=NODE_COLUMNS)
        self._edge_attrs = self._check_attrs(
            edge_attrs or {}, self.n_edges, "edge", reserved=EDGE_COLUMNS
        )
        return self

    def _name_index(self) -> pd.Index:
        """The node names as a pandas index (node id = position), made once per graph:
        ``G._name_index().get_indexer(names)`` gives the ids of ``names`` (-1 if absent)."""
        index = self.__dict__.get(_NAME_INDEX)
        if index is None:
            index = self.__dict__[_NAME_INDEX] = pd.Index(self._nodes["name"])
        return index

    def _node_ids(self, names: Sequence[str]) -> np.ndarray:
        """Node ids of ``names`` (-1 for a name the graph lacks), like
        ``_name_index().get_indexer(names)`` without pandas' per-call conversion of the list
        (a dict from name to id, made once per graph: node names are unique)."""
        ids = self.__dict__.get(_NAME_IDS)
        if ids is None:
            ids = self.__dict__[_NAME_IDS] = {
                n: i for i, n in enumerate(self._nodes["name"].tolist())
            }
        get = ids.get
        return np.fromiter((get(n, -1) for n in names), dtype=np.int64, count=len(names))

    # ------------------------------------------------------------------ basic facts
    @property
    def n_nodes(self) -> int:
        """Number of nodes (including gate nodes)."""
        return self._nodes.n

    @cached_property
    def n_edges(self) -> int:
        """Number of edges (present weight entries over all blocks)."""
        return int(sum(b.n_edges for b in self._blocks))

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The weight blocks in forward order."""
        return self._blocks

    @property
    def spec(self) -> dict[str, Any] | None:
        """A copy of the architecture spec (``None`` when the graph cannot be re-imported)."""
        return _copy_json(self._spec)

    @property
    def provenance(self) -> Mapping[str, Any]:
        """Read-only provenance record."""
        return MappingProxyType(self._provenance)

    @property
    def node_attr_names(self) -> tuple[str, ...]:
        """Names of attached node attributes."""
        return tuple(self._node_attrs)

    @property
    def edge_attr_names(self) -> tuple[str, ...]:
        """Names of attached edge attributes."""
        return tuple(self._edge_attrs)

    def block(self, key: int | str) -> Block:
        """Return a block by position or name."""
        return self._blocks[self.block_index(key)]

    def block_index(self, key: int | str) -> int:
        """Position of a block given by position or name."""
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if not -len(self._blocks) <= key < len(self._blocks):
                raise InvalidParameterError(
                    f"Block index {key} is out of range; the graph has {len(self._blocks)} blocks."
                )
            return int(key) % len(self._blocks)
        for i, b in enumerate(self._blocks):
            if b.name == key:
                return i
        raise InvalidParameterError(
            f"No block named {key!r}; the graph's blocks are {[b.name for b in self._blocks]}."
        )

    def node_column(self, name: str) -> np.ndarray:
        """One node column (core or attribute) as a read-only array."""
        if name in self._nodes:
            return self._nodes[name]
        if name in self._node_attrs:
            return self._node_attrs[name]
        raise InvalidParameterError(
            f"No node column {name!r}; columns are {list(self.nodes().columns)}."
        )

    # ------------------------------------------------------------------ tables
    @cached_property
    def _edge_arrays(self) -> _EdgeColumns:
        return _EdgeColumns(self._blocks)

    def edge_arrays(self) -> Mapping[str, np.ndarray]:
        """The edge table as a dict of read-only numpy arrays (no DataFrame overhead).

        Keys are ``layer, source, target, weight, sign, row, col, delay`` plus attached
        edge attributes. The order is canonical: blocks in order, each row-major over its mask.
        Columns are computed on first access and cached on the graph.
        """
        return _EdgeColumns(self._blocks, self._edge_attrs, cache=self._edge_arrays._cache)

    def edges(self) -> pd.DataFrame:
        """The edge table as a DataFrame (one row per edge).

        Columns: ``layer`` (block position), ``block`` (block name, categorical),
        ``source``, ``target`` (node ids), ``weight``, ``sign`` (-1/0/+1), ``row``, ``col``
        (position in the block's weight), ``delay`` (1 for recurrent blocks), ``kind`` (the
        block's kind: ``weight``, ``skip``, ``identity``, ``norm`` or ``operator``), then
        attributes. For one block of a big graph use :meth:`block_edges`.
        """
        a = self._edge_arrays
        names = [b.name for b in self._blocks]
        data: dict[str, Any] = {"layer": a["layer"]}
        data["block"] = pd.Categorical.from_codes(a["layer"], categories=names) if names else []
        for c in EDGE_COLUMNS[2:-1]:
            data[c] = a[c]
        data["kind"] = self._edge_kinds(a["layer"])
        data.update(self._edge_attrs)
        return pd.DataFrame(data, copy=False)

    def block_edges(self, key: int | str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The edge table of one block, built from that block alone (same columns as :meth:`edges`).

        For big models (a BERT-base-sized graph has ~10^8 edges) this answers per-block
        queries without building the whole edge table. Edge attributes are included, sliced
        to the block. ``columns`` restricts the table to some columns (computed only those).

        Examples
        --------
        >>> import torch, netstruct as ns
        >>> G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1)))
        >>> G.block_edges("2.weight")[["layer", "source", "target"]].values.tolist()
        [[1, 3, 5], [1, 4, 5]]
        """
        i = self.block_index(key)
        b = self._blocks[i]
        want = list(EDGE_COLUMNS) + list(self._edge_attrs) if columns is None else list(columns)
        unknown = set(want) - set(EDGE_COLUMNS) - set(self._edge_attrs)
        if unknown:
            raise InvalidParameterError(
                f"The 'columns' parameter of block_edges must name edge columns "
                f"{list(EDGE_COLUMNS) + list(self._edge_attrs)}. Got {sorted(unknown)} instead."
            )
        cols = _EdgeColumns((b,))
        m = b.n_edges
        start = sum(x.n_edges for x in self._blocks[:i]) if self._edge_attrs else 0
        data: dict[str, Any] = {}
        for c in want:
            if c == "layer":
                data[c] = np.full(m, i, dtype=np.int32)
            elif c == "block":
                data[c] = pd.Categorical.from_codes(np.zeros(m, dtype=np.int8), categories=[b.name])
            elif c == "kind":
                data[c] = pd.Categorical.from_codes(
                    np.full(m, BLOCK_KINDS.index(b.kind), dtype=np.int8),
                    categories=list(BLOCK_KINDS),
                )
            elif c in self._edge_attrs:
                data[c] = self._edge_attrs[c][start : start + m]
            else:
                data[c] = cols._part(
                    c, 0, b
                )  # one block: its arrays as they come, no concatenation
        return pd.DataFrame(data, copy=False)

    def _edge_kinds(self, layer: np.ndarray) -> pd.Categorical:
        codes = np.array([BLOCK_KINDS.index(b.kind) for b in self._blocks], dtype=np.int8)
        return pd.Categorical.from_codes(
            codes[layer] if codes.size else layer, categories=list(BLOCK_KINDS)
        )

    @cached_property
    def _node_bias(self) -> tuple[np.ndarray, np.ndarray]:
        bias = np.zeros(self.n_nodes, dtype=np.float64)
        has = np.zeros(self.n_nodes, dtype=bool)
        for b in self._blocks:
            if b.bias is not None:
                np.add.at(bias, b.targets, b.bias.astype(np.float64))
                has[b.targets] = True
        return bias, has

    def nodes(self) -> pd.DataFrame:
        """The node table as a DataFrame indexed by node id.

        Columns: ``name``, ``kind`` (input/hidden/output/gate), ``group`` (position of the
        node's layer), ``index`` (row or feature index in its tensor), ``unit`` (the unit a
        gate row belongs to; the node itself otherwise), ``gate`` (i/f/g/o, r/z/n or empty),
        ``direction``, ``module``, ``activation``, ``bias`` (sum of the biases feeding the
        node), ``has_bias``, ``in_degree``, ``out_degree``, then attributes.
        """
        data: dict[str, Any] = dict(self._nodes)
        bias, has = self._node_bias
        data["bias"] = bias
        data["has_bias"] = has
        a = self._edge_arrays
        data["in_degree"] = np.bincount(a["target"], minlength=self.n_nodes)
        data["out_degree"] = np.bincount(a["source"], minlength=self.n_nodes)
        data.update(self._node_attrs)
        df = pd.DataFrame(data, copy=False)
        df.index.name = "node"
        return df

    # ------------------------------------------------------------------ derived graphs
    @staticmethod
    def _check_attrs(
        attrs: Mapping[str, Any], n: int, what: str, reserved: Iterable[str]
    ) -> dict[str, np.ndarray]:
        out = {}
        reserved = set(reserved) | {"bias", "has_bias", "in_degree", "out_degree", "node", "block"}
        for k, v in attrs.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise InvalidParameterError(
                    f"{what} attribute names must be Python identifiers (usable in queries); got {k!r}."
                )
            if k in reserved:
                raise InvalidParameterError(
                    f"{what} attribute {k!r} would shadow a built-in column; choose another name."
                )
            arr = np.asarray(v)
            if arr.dtype == object and arr.size:
                kinds = {type(x) for x in arr.tolist()}
                numeric = {
                    k
                    for k in kinds
                    if issubclass(k, (int, float, np.number)) and not issubclass(k, bool)
                }
                if numeric and kinds - numeric:
                    raise InvalidParameterError(
                        f"{what} attribute {k!r} mixes numbers and other values "
                        f"({sorted(t.__name__ for t in kinds)}); queries would compare them as strings. "
                        "Pass one type (e.g. convert the numbers with str() or use two attributes)."
                    )
            if arr.shape[:1] != (n,) or arr.ndim != 1:
                raise InvalidParameterError(
                    f"{what} attribute {k!r} must be a 1-D array of length {n} (one value per {what}); "
                    f"got shape {arr.shape}."
                )
            if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
                raise InvalidParameterError(
                    f"{what} attribute {k!r} holds NaN values; fill or mask them before attaching."
                )
            out[k] = _freeze(arr)
        return out

    def _derive(self, **changes: Any) -> SignedGraph:
        kwargs = {
            "nodes": self._nodes,
            "blocks": self._blocks,
            "spec": self._spec,
            "provenance": self._provenance,
            "node_attrs": self._node_attrs,
            "edge_attrs": self._edge_attrs,
        }
        kwargs.update(changes)
        return SignedGraph(kwargs.pop("nodes"), kwargs.pop("blocks"), **kwargs)

    def with_node_attrs(self, **attrs: Any) -> SignedGraph:
        """Return a graph with extra node columns (the weights are shared, not copied).

        Examples
        --------
        >>> import torch, netstruct as ns
        >>> G = ns.from_torch(torch.nn.Linear(2, 1))
        >>> G.with_node_attrs(score=[0.1, 0.2, 0.3]).nodes()["score"].tolist()
        [0.1, 0.2, 0.3]
        """
        merged = dict(self._node_attrs)
        merged.update(attrs)
        return self._derive(node_attrs=merged)

    def with_edge_attrs(self, **attrs: Any) -> SignedGraph:
        """Return a graph with extra edge columns aligned with :meth:`edges` (weights shared)."""
        merged = dict(self._edge_attrs)
        merged.update(attrs)
        return self._derive(edge_attrs=merged)

    def without_attrs(self) -> SignedGraph:
        """Return the graph with all node and edge attributes dropped."""
        return self._derive(node_attrs={}, edge_attrs={})

    def replace_blocks(
        self, updates: Mapping[int, Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]
    ) -> SignedGraph:
        """Return a graph where some blocks get new ``weight``, ``mask`` and/or ``bias``.

        Edge attributes are kept when every mask is unchanged; otherwise they no longer line
        up with the edges and are dropped with a :class:`~netstruct.NetstructWarning`.
        """
        blocks = list(self._blocks)
        mask_changed = False
        for key, ch in updates.items():
            i = self.block_index(key)
            allowed = {"weight", "mask", "bias"}
            if set(ch) - allowed:
                raise InvalidParameterError(
                    f"replace_blocks can change {sorted(allowed)} of a block; got {sorted(set(ch) - allowed)}."
                )
            old = blocks[i]
            new_shape = np.shape(ch.get("weight", old.weight))
            if new_shape != old.shape:
                raise GraphError(
                    f"Block {old.name!r}: new weight shape {new_shape} differs from {old.shape}; "
                    "shape changes go through netstruct.shrink."
                )
            new = old.replace(**ch)
            if not np.array_equal(new.mask, old.mask):
                mask_changed = True
            blocks[i] = new
        edge_attrs = self._edge_attrs
        if mask_changed and edge_attrs:
            warnings.warn(
                f"Edge attributes {list(edge_attrs)} were dropped because the edge set changed; "
                "recompute them on the new graph.",
                NetstructWarning,
                stacklevel=2,
            )
            edge_attrs = {}
        return self._derive(blocks=blocks, edge_attrs=edge_attrs)

    def map_weights(
        self, func: Callable[[Block], np.ndarray], *, layers: Iterable[int | str] | None = None
    ) -> SignedGraph:
        """Apply ``func(block) -> new weight`` to some blocks; edges stay where they are."""
        idx = range(len(self._blocks)) if layers is None else [self.block_index(k) for k in layers]
        return self.replace_blocks({i: {"weight": func(self._blocks[i])} for i in idx})

    def remove_edges(self, edge_mask: np.ndarray) -> SignedGraph:
        """Return a graph without the edges where ``edge_mask`` is True (masked, zeros in place).

        Parameters
        ----------
        edge_mask : ndarray of bool, shape (n_edges,)
            Aligned with :meth:`edges`.
        """
        em = np.asarray(edge_mask)
        if em.dtype != np.bool_ or em.shape != (self.n_edges,):
            raise InvalidParameterError(
                f"The 'edge_mask' parameter of remove_edges must be a boolean array of shape "
                f"({self.n_edges},). Got dtype {em.dtype} and shape {em.shape} instead."
            )
        a = self._edge_arrays
        blocks = list(self._blocks)
        for li, b in enumerate(blocks):
            sel = em & (a["layer"] == li)
            if not sel.any():
                continue
            mask = b.mask.copy()
            mask[a["row"][sel], a["col"][sel]] = False
            blocks[li] = b.replace(mask=mask)
        keep = ~em
        edge_attrs = {k: v[keep] for k, v in self._edge_attrs.items()}
        return self._derive(blocks=blocks, edge_attrs=edge_attrs)

    # ------------------------------------------------------------------ conversions
    def to_networkx(self, **kwargs: Any):
        """Convert to a :class:`networkx.DiGraph`; see :func:`netstruct.graphs.external.to_networkx`."""
        return _external.to_networkx(self, **kwargs)

    def to_igraph(self, **kwargs: Any):
        """Convert to an :class:`igraph.Graph`; see :func:`netstruct.graphs.external.to_igraph`."""
        return _external.to_igraph(self, **kwargs)

    def to_scipy(self, **kwargs: Any):
        """Adjacency as a ``scipy.sparse.csr_array``; see :func:`netstruct.graphs.external.to_scipy`."""
        return _external.to_scipy(self, **kwargs)

    @classmethod
    def from_networkx(cls, Gx: Any, *, layer: str = "layer", weight: str = "weight") -> SignedGraph:
        """Build a graph from a networkx DiGraph; see :func:`netstruct.from_networkx`."""
        return _external.graph_from_networkx(cls, Gx, layer=layer, weight=weight)

    # ------------------------------------------------------------------ display
    def summary(self) -> pd.DataFrame:
        """One row per block: name, shape, edges, density, positive fraction, bias, delay."""
        rows = []
        for b in self._blocks:
            ne = b.n_edges
            pos = int(np.count_nonzero(b.weight > 0))
            rows.append(
                {
                    "block": b.name,
                    "n_out": b.shape[0],
                    "n_in": b.shape[1],
                    "edges": ne,
                    "density": ne / max(b.weight.size, 1),
                    "positive": pos / max(ne, 1),
                    "has_bias": b.bias is not None,
                    "recurrent": bool(b.delay),
                }
            )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        kinds = pd.Series(self._nodes["kind"]).value_counts().to_dict()
        model = self._provenance.get("model_class", "graph")
        return (
            f"<SignedGraph of {model}: {self.n_nodes} nodes {kinds}, {self.n_edges} edges in "
            f"{len(self._blocks)} blocks>"
        )


def from_networkx(Gx: Any, *, layer: str = "layer", weight: str = "weight") -> SignedGraph:
    """Build a :class:`SignedGraph` from a networkx directed graph.

    Two cases are supported:

    * a graph written by :func:`~netstruct.graphs.external.to_networkx` (it carries ``graph["netstruct"]``): the exact
      graph is restored, architecture spec included, so it can be re-imported with
      :func:`netstruct.to_torch`;
    * any layered DiGraph whose nodes carry an integer ``layer`` attribute and whose edges go
      from layer ``k`` to ``k + 1`` with a numeric ``weight``: one block per pair of
      consecutive layers, absent edges are pruned entries, node attribute ``bias`` (if any)
      becomes the block bias. Such a graph has no architecture spec.

    Raises
    ------
    GraphError
        Nodes without a layer, edges that skip or go back a layer, non-numeric weights.

    Examples
    --------
    >>> import networkx as nx, netstruct as ns
    >>> Gx = nx.DiGraph()
    >>> Gx.add_nodes_from([("x", {"layer": 0}), ("y", {"layer": 1})])
    >>> Gx.add_edge("x", "y", weight=-0.5)
    >>> ns.from_networkx(Gx).edges()[["source", "target", "weight", "sign"]].values.tolist()
    [[0.0, 1.0, -0.5, -1.0]]
    """
    return SignedGraph.from_networkx(Gx, layer=layer, weight=weight)

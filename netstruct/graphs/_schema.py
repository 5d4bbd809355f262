"""The node and edge table schema of a :class:`~netstruct.SignedGraph` (no imports of its own)."""

from __future__ import annotations

from typing import Any

#: Node kinds.
NODE_KINDS = ("input", "hidden", "output", "gate")

#: Required node columns and their default value.
NODE_COLUMNS: dict[str, Any] = {
    "name": "",
    "kind": "hidden",
    "group": 0,
    "index": 0,
    "unit": -1,
    "gate": "",
    "direction": 0,
    "module": "",
    "activation": "",
}

#: Columns of the edge table built from the blocks.
EDGE_COLUMNS = (
    "layer",
    "block",
    "source",
    "target",
    "weight",
    "sign",
    "row",
    "col",
    "delay",
    "kind",
)

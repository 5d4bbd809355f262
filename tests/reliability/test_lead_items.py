"""Issue 14 items in convert/ and graphs/ (the lead's rewrite): expected behaviour, xfail until done."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns


def test_with_node_attrs_refuses_mixed_numbers_and_strings():
    G = ns.from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(ns.InvalidParameterError):
        G.with_node_attrs(tag=np.array([1, "a", 2.5, "b"], dtype=object))


def test_from_networkx_honours_or_refuses_an_edited_bias():
    from netstruct.graphs.external import to_networkx
    from netstruct.graphs.signed import from_networkx

    torch.manual_seed(0)
    G = ns.from_torch(torch.nn.Linear(2, 2))
    N = to_networkx(G)
    out = int(G.blocks[0].targets[0])
    N.nodes[out]["bias"] = 123.0
    try:
        H = from_networkx(N)
    except ns.NetstructError:
        return  # refused: fine
    assert H.blocks[0].bias[0] == 123.0

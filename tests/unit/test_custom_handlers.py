"""The custom-layer how-to runs as written, and custom handlers respect pruning on re-import."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import netstruct as ns

pytestmark = pytest.mark.torch
DOC = Path(__file__).resolve().parents[2] / "docs" / "howto" / "custom-layer.md"


@pytest.fixture(scope="module")
def howto():
    ns_ = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S):
        block = block.replace(
            "ns.register_module_handler(", "ns.register_module_handler(overwrite=True, module_type="
        )
        block = re.sub(r"module_type=(\w+), (\w+\(\))\)", r"module_type=\1, handler=\2)", block)
        exec(compile(block, str(DOC), "exec"), ns_)
    return ns_


def test_conv_like_handler_exports_channel_pairs_and_respects_pruning(howto):
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        howto["GatedConv"](2, 3), torch.nn.Flatten(), torch.nn.Linear(3 * 16, 2)
    ).eval()
    x = torch.randn(2, 2, 4, 4)
    G = ns.from_torch(m, x)
    b = G.block("0.conv.weight")
    assert b.shape == (3, 2) and b.kernel.shape == (3, 2, 3, 3)
    e = G.edges()
    H = G.remove_edges(((e.block == "0.conv.weight") & (e.row == 1) & (e.col == 0)).to_numpy())
    r = ns.to_torch(H)
    assert torch.count_nonzero(r[0].conv.weight[1, 0]) == 0
    ref = m[0].conv.weight.detach().clone()
    ref[1, 0] = 0
    assert torch.equal(r[0].conv.weight, ref)


def test_norm_like_handler_keeps_scales_as_edges(howto):
    torch.manual_seed(0)
    ss = howto["ScaleShift"](3)
    with torch.no_grad():
        ss.weight.copy_(torch.tensor([0.5, -2.0, 1.5]))
        ss.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), ss, torch.nn.ReLU(), torch.nn.Linear(3, 2))
    x = torch.randn(5, 4)
    G = ns.from_torch(m, x)
    b = G.block("1.weight")
    assert b.kind == "norm" and np.allclose(np.diagonal(b.weight), [0.5, -2.0, 1.5])
    e = G.edges()
    H = G.remove_edges(((e.block == "1.weight") & (e.row == 1)).to_numpy())
    assert ns.to_torch(H)[1].weight.tolist() == [0.5, 0.0, 1.5]

"""``x * y`` in a traced model: element-wise operator blocks (``layout["operator"]``).

A product of two values with units (a gated MLP's ``act(gate(x)) * up(x)``, a
squeeze-and-excitation gate) gets fresh ``product`` units fed by one operator edge from each
factor; a value times a tensor without units (rotary ``cos``/``sin``, a mask) gets ``scale``
units. Coupling ties each product unit to its factors, so a gated unit is one structured group
(gate row, up row, down column); shrinking removes it exactly when the masked model drops it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.exceptions import UnsupportedModuleError
from netstruct.graphs.block import elementwise_operator

pytestmark = pytest.mark.torch


class _GLU(torch.nn.Module):
    def __init__(self, n_in=3, hidden=6, n_out=2):
        super().__init__()
        self.gate = torch.nn.Linear(n_in, hidden)
        self.up = torch.nn.Linear(n_in, hidden)
        self.down = torch.nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.down(torch.nn.functional.silu(self.gate(x)) * self.up(x))


class _SE(torch.nn.Module):
    """conv -> BN -> ReLU, times a squeeze-and-excitation gate, -> pooled Linear head."""

    def __init__(self, c=6):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, c, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(c)
        self.squeeze = torch.nn.Conv2d(c, 3, 1)
        self.excite = torch.nn.Conv2d(3, c, 1)
        self.head = torch.nn.Linear(c, 2)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        s = torch.sigmoid(self.excite(torch.relu(self.squeeze(h.mean((2, 3), keepdim=True)))))
        return self.head((h * s).mean((2, 3)))


def _close(a, b, x):
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def test_a_gated_product_is_an_operator_block_that_couples_its_factors():
    torch.manual_seed(0)
    m = _GLU().eval()
    x = torch.randn(4, 3)
    G = ns.from_torch(m, x)
    (prod,) = [b for b in G.blocks if b.kind == "operator"]
    assert elementwise_operator(prod) == "product" and prod.shape == (6, 12)
    names = G.nodes()["name"].to_numpy()
    assert names[prod.targets].tolist() == [f"mul.product[{i}]" for i in range(6)]
    groups = ns.structured_groups(G, macs=False)
    assert groups["kind"].tolist() == ["unit"] * 6
    assert {"gate[2]", "up[2]", "mul.product[2]"} in [set(g) for g in groups["members"]]
    # four example rows x (gate, up: 3 x 6 each; down: 6 x 2); the product itself: no MACs
    assert ns.count_macs(G) == 4 * (3 * 6 * 2 + 6 * 2)
    assert _close(ns.to_torch(G), m, x) <= 1e-6


def test_gated_units_shrink_to_the_masked_model():
    torch.manual_seed(0)
    m = _GLU().eval()
    x = torch.randn(4, 3)
    G = ns.from_torch(m, x)
    plan = ns.structured_prune(G, amount=0.5)
    small = ns.to_torch(ns.shrink(G, units=plan))
    assert small.gate.weight.shape == small.up.weight.shape == (3, 3)
    assert small.down.weight.shape == (2, 3)
    assert _close(small, ns.to_torch(plan.apply(G)), x) <= 1e-6


def test_a_squeeze_excitation_gate_prunes_channels_with_their_gate():
    torch.manual_seed(0)
    m = _SE().eval()
    m.bn.running_mean.uniform_(-0.5, 0.5)
    x = torch.randn(2, 2, 6, 6)
    G = ns.from_torch(m, x)
    assert _close(ns.to_torch(G), m, x) <= 1e-5
    groups = ns.structured_groups(G, macs=False)
    # each of the 6 channels: its conv row, BN, the gate's excite row and the product; the 3
    # squeeze channels are channels of their own
    big = [set(g) for g in groups["members"] if "mul.product[1]" in g]
    assert big and {"conv[1]", "bn.norm[1]", "excite[1]"} <= big[0]
    plan = ns.structured_prune(G, amount=0.5)
    small = ns.to_torch(ns.shrink(G, units=plan))
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in m.parameters())
    assert _close(small, ns.to_torch(plan.apply(G)), x) <= 1e-5


def test_a_square_reads_its_factor_once():
    class Square(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)

        def forward(self, x):
            h = self.a(x)
            return self.b(h * h)

    torch.manual_seed(0)
    m, x = Square().eval(), torch.randn(5, 3)
    G = ns.from_torch(m, x)
    (prod,) = [b for b in G.blocks if b.kind == "operator"]
    assert prod.shape == (4, 4) and np.array_equal(prod.sources, np.arange(3, 7))
    assert _close(ns.to_torch(G), m, x) <= 1e-6


def test_a_mask_broadcast_over_the_units_is_a_scale_that_shrinks():
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)

        def forward(self, x, keep):
            return self.b(torch.relu(self.a(x)) * keep[:, None])

    torch.manual_seed(0)
    m = Masked().eval()
    x, keep = torch.randn(5, 3), torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    G = ns.from_torch(m, (x, keep))
    (scale,) = [b for b in G.blocks if b.kind == "operator"]
    assert dict(scale.layout) == {"operator": "scale", "shrinks": "units"}
    plan = ns.structured_prune(G, amount=0.5)
    small, masked = ns.to_torch(ns.shrink(G, units=plan)), ns.to_torch(plan.apply(G))
    assert small.a.weight.shape == (2, 3)
    with torch.no_grad():
        assert torch.allclose(small(x, keep), masked(x, keep), atol=1e-6)


def test_a_factor_along_the_units_keeps_them_out_of_shrinking():
    class PerUnit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
            self.register_buffer("w", torch.tensor([1.0, 2.0, 3.0, 4.0]))

        def forward(self, x):
            return self.b(self.a(x) * self.w)  # a buffer: its shape is fixed at 4

    torch.manual_seed(0)
    m, x = PerUnit().eval(), torch.randn(5, 3)
    G = ns.from_torch(m, x)
    assert _close(ns.to_torch(G), m, x) <= 1e-6
    (scale,) = [b for b in G.blocks if b.kind == "operator"]
    assert scale.layout["shrinks"] == "none"
    assert not ns.structured_groups(G, macs=False)["kind"].eq("unit").any()


def test_factors_that_do_not_line_up_get_a_clear_error():
    class Broadcast(torch.nn.Module):
        def __init__(self, flip: bool = False):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 1), torch.nn.Linear(3, 4)
            self.flip = flip

        def forward(self, x):
            if self.flip:
                return self.b(x) * self.a(x)  # four units times one
            return self.a(x) * self.b(x)  # one unit times four: broadcasting

    with pytest.raises(
        UnsupportedModuleError,
        match=r"a product that broadcasts a value with units \(1,\) to \(4,\) positions",
    ):
        ns.from_torch(Broadcast().eval(), torch.randn(2, 3))
    with pytest.raises(
        UnsupportedModuleError, match="product of values whose units do not line up"
    ):
        ns.from_torch(Broadcast(flip=True).eval(), torch.randn(2, 3))


def test_product_blocks_survive_a_file_roundtrip(tmp_path):
    torch.manual_seed(0)
    G = ns.from_torch(_GLU().eval(), torch.randn(2, 3))
    ns.save(G, tmp_path / "glu")
    H = ns.load(tmp_path / "glu")
    (prod,) = [b for b in H.blocks if b.kind == "operator"]
    assert elementwise_operator(prod) == "product"
    assert ns.structured_groups(H, macs=False)["kind"].tolist() == ["unit"] * 6

"""An exported conv block's parameter is its kernel, seeded at export (``seed_kernel_parameter``).

The seed skips reconstructing the kernel from its edges on the first re-import; these tests
check that the seeded value is exactly what ``parameter_of`` computes from the block's weight,
mask and taps, for every reduction and grouping, and that edits still go through the
computation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct.graphs._kernels import REDUCTIONS, parameter_of  # noqa: E402


def _conv_graph(dim: int, groups: int, k: int, reduction: str, seed: int):
    torch.manual_seed(seed)
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[dim]
    model = torch.nn.Sequential(
        conv(2 * groups, 3 * groups, k, groups=groups), torch.nn.ReLU(), torch.nn.Flatten()
    ).eval()
    x = torch.randn(2, 2 * groups, *([k + 1] * dim))
    return ns.from_torch(model, x, reduction=reduction), model


@settings(max_examples=25, deadline=None)
@given(
    dim=st.sampled_from([1, 2, 3]),
    groups=st.sampled_from([1, 2]),
    k=st.sampled_from([1, 2, 3]),
    reduction=st.sampled_from(REDUCTIONS),
    seed=st.integers(0, 2**16),
)
def test_the_seeded_parameter_is_what_parameter_of_computes(dim, groups, k, reduction, seed):
    G, model = _conv_graph(dim, groups, k, reduction, seed)
    b = G.block("0.weight")
    assert b.computed_parameter() is b.kernel  # seeded at export
    computed = parameter_of(b)
    assert computed.dtype == b.kernel.dtype and np.array_equal(computed, b.kernel)
    assert np.array_equal(b.kernel, model[0].weight.detach().numpy())


def test_an_edited_or_pruned_conv_block_computes_its_parameter():
    G, model = _conv_graph(2, 1, 3, "sum", 0)
    b = G.block("0.weight")
    H = G.remove_edges(np.arange(G.n_edges) == 0)  # the first edge of the conv
    hb = H.block("0.weight")
    assert hb.computed_parameter() is None
    p = hb.parameter()
    assert np.array_equal(p[0, 0], np.zeros_like(p[0, 0]))  # the pruned pair's taps
    assert np.array_equal(p[1:], b.kernel[1:])


def test_a_transposed_conv_is_not_seeded():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.ConvTranspose2d(2, 3, 3)).eval()
    G = ns.from_torch(model, torch.randn(1, 2, 4, 4), check=False)
    b = G.block("0.weight")
    assert b.computed_parameter() is None
    assert np.array_equal(b.parameter(), model[0].weight.detach().numpy())

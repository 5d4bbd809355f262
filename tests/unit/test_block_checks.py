"""make_block checks a float32 weight in its copy, any other weight as given."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.exceptions import GraphError


def test_a_float32_weight_is_checked_in_its_copy():
    w = np.ones((2, 2), dtype=np.float32)
    w[1, 0] = np.inf
    with pytest.raises(GraphError, match="non-finite"):
        ns.make_block(name="w", weight=w, sources=[0, 1], targets=[2, 3])
    w64 = np.full((1, 1), 1e30)  # float64: checked as given (converted to float32 after)
    b = ns.make_block(name="v", weight=w64, sources=[0], targets=[1])
    assert b.weight.dtype == np.float32

"""``index`` after a shrink: each node's position among the nodes of its layer, kind, gate and
direction, against a pandas ``groupby().cumcount()`` reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from netstruct.convert.shrink import _positions_in_layer


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-3, 40),
            st.sampled_from(["input", "hidden", "output"]),
            st.sampled_from(["", "i", "f", "g", "o"]),
            st.integers(0, 1),
        ),
        max_size=60,
    )
)
def test_positions_in_layer_match_a_groupby(rows):
    df = pd.DataFrame(rows, columns=["group", "kind", "gate", "direction"])
    nodes = {
        "group": df["group"].to_numpy(np.int64),
        "kind": df["kind"].to_numpy(object),
        "gate": df["gate"].to_numpy(object),
        "direction": df["direction"].to_numpy(np.int8),
    }
    want = df.groupby(["group", "kind", "gate", "direction"], sort=False).cumcount().to_numpy()
    np.testing.assert_array_equal(_positions_in_layer(nodes), want)

"""SignedGraph.block_edges is the block's slice of edges(), column for column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import netstruct as ns
from tests import models


def _graphs():
    torch.manual_seed(0)
    yield ns.from_torch(models.EncoderClassifier().eval(), torch.randn(1, 5, 8))
    yield ns.from_torch(models.UserCNN().eval(), torch.randn(1, 1, 8, 8))
    yield ns.from_torch(models.TextLSTM().eval(), torch.randint(0, 11, (1, 7)))
    mask = np.array([[True, False, True], [False, True, True]])  # a pruned (sparse) block
    b = ns.make_block(
        name="w", weight=np.arange(6.0).reshape(2, 3), mask=mask, sources=[0, 1, 2], targets=[3, 4]
    )
    G = ns.SignedGraph({"name": list("abcde")}, [b])
    yield G.with_edge_attrs(score=np.arange(G.n_edges, dtype=np.float64) * 0.5)


def _as_plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as strings: a block's table has only its own block as category."""
    out = df.copy()
    for c in ("block", "kind"):
        if c in out:
            out[c] = out[c].astype(str)
    return out


@pytest.mark.parametrize("G", list(_graphs()))
def test_block_edges_is_the_blocks_slice_of_edges(G):
    E = G.edges()
    for i, b in enumerate(G.blocks):
        want = E[E["layer"] == i].reset_index(drop=True)
        got = G.block_edges(b.name)
        assert list(got.columns) == list(want.columns)
        pd.testing.assert_frame_equal(_as_plain(got), _as_plain(want))
        assert list(got["block"].cat.categories) == [b.name]
        assert got["kind"].dtype == want["kind"].dtype  # the same categories (every kind)
        some = ["kind", "source", "weight", "block"]
        part = G.block_edges(i, columns=some)
        assert list(part.columns) == some
        pd.testing.assert_frame_equal(part, got[some])

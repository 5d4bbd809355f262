"""shrink's sliced blocks (``Block._sliced``) equal the validated reference ``Block.replace``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct.graphs._kernels import take  # noqa: E402


def _fields(b):
    return {
        "name": b.name,
        "module": b.module,
        "param": b.param,
        "bias_param": b.bias_param,
        "delay": b.delay,
        "kind": b.kind,
        "dense": b.is_dense,
        "layout": dict(b.layout),
    }


def _assert_same(a, b):
    assert _fields(a) == _fields(b)
    for f in ("weight", "mask", "sources", "targets", "bias", "kernel"):
        x, y = getattr(a, f), getattr(b, f)
        if y is None:
            assert x is None, f
            continue
        assert x.dtype == y.dtype and x.shape == y.shape and not x.flags.writeable, f
        assert np.array_equal(x, y), f
    assert set(a.state) == set(b.state)
    for k in b.state:
        assert np.array_equal(a.state[k], b.state[k]) and not a.state[k].flags.writeable
    assert np.array_equal(a.parameter(), b.parameter())


def _graph(transposed: bool = False):
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(2, 6, 3, padding=1) if transposed else None
    model = torch.nn.Sequential(
        conv or torch.nn.Conv2d(2, 6, 3, padding=1),
        torch.nn.BatchNorm2d(6),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 4 * 4, 5),
        torch.nn.ReLU(),
        torch.nn.Linear(5, 3),
    ).eval()
    return ns.from_torch(model, torch.randn(2, 2, 4, 4))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("computed", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_sliced_blocks_equal_the_validated_reference(masked, computed, transposed):
    """``computed``: each block's parameter was computed before the cut, so the sliced block
    takes the same slice of it (``take``'s ``parameter``) instead of computing its own; the
    reference (``replace``) always computes its own."""
    G = _graph(transposed)
    rng = np.random.default_rng(0)
    if masked:  # some edges pruned: the masks are not all True
        G = G.remove_edges(rng.random(G.n_edges) < 0.2)
    for b in G.blocks:
        if computed:
            b.parameter()
        elif not masked:  # the export's round-trip check computed (or seeded) every block's
            b.__dict__.pop("_parameter", None)
        rows = rng.random(b.shape[0]) < 0.7
        cols = rows.copy() if b.layout.get("type") == "diag" else rng.random(b.shape[1]) < 0.7
        rows[0] = cols[0] = True
        new_src = np.arange(int(cols.sum())) + 100
        new_tgt = np.arange(int(rows.sum())) + 200
        ref_cut = take(b, rows, cols)
        carried = b.computed_parameter() is not None and b.kernel is not None
        assert ("parameter" in ref_cut) == (carried and not b.layout.get("transposed"))
        ref_cut.pop("parameter", None)  # the reference computes its own
        ref_cut.update(sources=new_src, targets=new_tgt)
        ref = b.replace(**ref_cut)
        cut = take(b, rows, cols)
        cut.update(sources=new_src.copy(), targets=new_tgt.copy())
        _assert_same(b._sliced(cut), ref)
        if b.bias is not None:  # a folded bias: new values, checked
            cut = take(b, rows, cols)
            cut.update(sources=new_src.copy(), targets=new_tgt.copy())
            folded = np.asarray(b.bias, dtype=np.float64)[rows] + 0.5
            ref = b.replace(**{**ref_cut, "bias": folded})
            _assert_same(b._sliced(cut, folded), ref)


def test_a_folded_bias_that_is_not_finite_is_refused():
    G = _graph()
    b = G.block("4.weight")
    rows, cols = np.ones(b.shape[0], bool), np.ones(b.shape[1], bool)
    cut = take(b, rows, cols)
    cut.update(sources=b.sources.copy(), targets=b.targets.copy())
    bad = np.asarray(b.bias, dtype=np.float64).copy()
    bad[1] = np.inf
    with pytest.raises(ns.GraphError, match="non-finite"):
        b._sliced(cut, bad)

"""identity_block and diagonal_block build exactly the blocks make_block builds from the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.exceptions import GraphError
from netstruct.graphs._generated import (
    diagonal_block,
    diagonal_weight,
    identity_arrays,
    identity_block,
)
from tests import models


def _same_block(a: ns.Block, b: ns.Block) -> None:
    for f in ("name", "module", "param", "bias_param", "delay", "kind", "is_dense", "n_edges"):
        assert getattr(a, f) == getattr(b, f), f
    for f in ("weight", "mask", "sources", "targets", "bias", "kernel"):
        x, y = getattr(a, f), getattr(b, f)
        if x is None or y is None:
            assert x is None and y is None, f
            continue
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), f
        assert not x.flags.writeable and not y.flags.writeable, f
        assert x.flags.c_contiguous == y.flags.c_contiguous, f
    assert dict(a.layout) == dict(b.layout)
    assert a.state.keys() == b.state.keys()
    for k in a.state:
        assert np.array_equal(a.state[k], b.state[k])


@pytest.mark.parametrize("n", [0, 1, 2, 5])
@pytest.mark.parametrize("copies", [1, 3])
@pytest.mark.parametrize("kind", ["skip", "identity", "operator"])
def test_identity_block_is_make_block_of_the_identity(n, copies, kind):
    src = np.arange(10, 10 + n * copies)
    tgt = np.arange(100, 100 + n)
    fast = identity_block(
        name="p.s0", kind=kind, sources=src, targets=tgt, module="p", copies=copies
    )
    w, m = identity_arrays(n, copies)
    slow = ns.make_block(
        name="p.s0", weight=w, mask=m, sources=src, targets=tgt, module="p", param="", kind=kind
    )
    _same_block(fast, slow)


def test_identity_block_refuses_other_kinds_and_misfit_ids():
    with pytest.raises(GraphError, match="kind"):
        identity_block(name="x", kind="weight", sources=[0], targets=[1])
    with pytest.raises(GraphError, match="2 source and 1 target"):
        identity_block(name="x", kind="skip", sources=[0, 1], targets=[2])


@pytest.mark.parametrize("n", [0, 1, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_diagonal_block_is_make_block_of_the_diagonal(n, dtype):
    rng = np.random.default_rng(n)
    d = rng.normal(size=n).astype(dtype)
    d[:1] = 0.0  # a zero on the diagonal stays an edge (the mask is the identity)
    bias = rng.normal(size=n).astype(np.float32)
    state = {"running_mean": rng.normal(size=n)}
    kw = dict(
        name="bn.weight",
        sources=np.arange(n),
        targets=np.arange(n, 2 * n),
        bias=bias,
        module="bn",
        param="weight",
        bias_param="bias",
        kind="norm",
        layout={"type": "diag", "stat_groups": 1},
        state=state,
    )
    fast = diagonal_block(diagonal=d, **kw)
    w = np.zeros((n, n), dtype=np.float32)
    np.fill_diagonal(w, d)
    slow = ns.make_block(weight=w, mask=identity_arrays(n)[1], **kw)
    _same_block(fast, slow)
    assert np.array_equal(diagonal_weight(d), w)


def test_diagonal_block_checks_the_values_it_is_given():
    kw = dict(name="n.weight", kind="norm", sources=[0, 1], targets=[2, 3])
    d = np.array([1.0, np.nan])
    with pytest.raises(GraphError) as fast:
        diagonal_block(diagonal=d, **kw)
    with pytest.raises(GraphError) as slow:
        ns.make_block(weight=diagonal_weight(d), mask=identity_arrays(2)[1], **kw)
    assert str(fast.value) == str(slow.value)  # the same message, naming entry (1, 1)
    with np.errstate(over="ignore"), pytest.raises(GraphError, match="non-finite"):
        diagonal_block(diagonal=np.array([1.0, 1e39]), **kw)  # finite float64, inf as float32
    with pytest.raises(GraphError, match="bias"):
        diagonal_block(diagonal=[1.0, 2.0], bias=np.array([0.0, np.inf]), **kw)
    with pytest.raises(GraphError, match="bias has shape"):
        diagonal_block(diagonal=[1.0, 2.0], bias=np.zeros(3), **kw)
    with pytest.raises(GraphError, match="1-D"):
        diagonal_block(diagonal=np.ones((2, 1)), **kw)
    with pytest.raises(GraphError, match="real numbers"):
        diagonal_block(diagonal=np.array(["a", "b"]), **kw)
    with pytest.raises(GraphError, match="3 source"):
        diagonal_block(
            diagonal=[1.0, 2.0], name="x", kind="norm", sources=[0, 1, 2], targets=[3, 4]
        )


def _rebuilt_slowly(b: ns.Block) -> ns.Block:
    return ns.make_block(
        name=b.name,
        weight=np.array(b.weight),
        mask=np.array(b.mask),
        sources=b.sources,
        targets=b.targets,
        bias=b.bias,
        module=b.module,
        param=b.param,
        bias_param=b.bias_param,
        delay=b.delay,
        kind=b.kind,
        kernel=b.kernel,
        layout=b.layout,
        state=b.state,
    )


@pytest.mark.parametrize(
    "model, x",
    [
        (models.EncoderClassifier(), torch.randn(1, 5, 8)),
        (models.EncoderClassifier(norm_first=True), torch.randn(1, 5, 8)),
        (models.UserCNN(), torch.randn(1, 1, 8, 8)),
        (models.ResidualMLP(), torch.randn(2, 6)),
        (models.AttentionClassifier(), torch.randint(0, 20, (1, 5))),
    ],
)
def test_exported_structural_and_norm_blocks_equal_make_block(model, x):
    """Every block an export makes with the generated constructors is what make_block makes."""
    torch.manual_seed(0)
    G = ns.from_torch(model.eval(), x)
    checked = 0
    for b in G.blocks:
        if b.kind in ("skip", "identity", "operator", "norm"):
            _same_block(b, _rebuilt_slowly(b))
            checked += 1
    assert checked > 0

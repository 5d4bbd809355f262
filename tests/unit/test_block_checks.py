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


def _slow_checked(w: np.ndarray, what: str) -> np.ndarray:
    """The reference: the frozen copy, then check_finite over it."""
    from netstruct.graphs.block import _frozen_weight
    from netstruct.utils.validation import check_finite

    out = _frozen_weight(w)
    check_finite(out, what)
    return out


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("bad", [None, "nan-first", "inf-last", "overflow"])
def test_chunked_copy_check_equals_copy_then_check(monkeypatch, layout, bad):
    """make_block's chunked copy-and-check of a float32 weight: the same copy, the same errors."""
    import netstruct.graphs.block as block

    monkeypatch.setattr(block, "_CHECK_CHUNK", 7)  # many chunks, one partial
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 10)).astype(np.float32)
    if bad == "nan-first":
        base[0, 0] = np.nan
    elif bad == "inf-last":
        base[-1, -1] = -np.inf
    elif bad == "overflow":
        base[2, :] = 3e38  # finite; a sum of squares overflows
    w = {"C": base, "F": np.asfortranarray(base), "strided": base[:, ::2]}[layout]
    try:
        want = _slow_checked(w, "Block 'w' weight")
    except GraphError as exc:
        with pytest.raises(GraphError) as got:
            block._checked_weight_copy(w, "Block 'w' weight")
        assert str(got.value) == str(exc)
        with pytest.raises(GraphError, match="non-finite"):
            ns.make_block(name="w", weight=w, sources=range(w.shape[1]), targets=range(w.shape[0]))
        return
    got = block._checked_weight_copy(w, "Block 'w' weight")
    assert got.dtype == want.dtype and np.array_equal(got, want)
    assert not got.flags.writeable and not np.shares_memory(got, w)
    assert (got.flags.c_contiguous, got.flags.f_contiguous) == (
        want.flags.c_contiguous,
        want.flags.f_contiguous,
    )
    b = ns.make_block(name="w", weight=w, sources=range(w.shape[1]), targets=range(w.shape[0]))
    assert np.array_equal(b.weight, w) and not np.shares_memory(b.weight, w)

"""Property tests of the signed motif census and balance measures (exact invariants)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import netstruct as ns
from tests.oracles.naive_netsci import naive_motifs, random_layered_graph

_FLIP = str.maketrans("+-", "-+")


@st.composite
def layered(draw):
    sizes = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    density = draw(st.sampled_from([1.0, 0.6, 0.3]))
    skip = draw(st.booleans()) and len(sizes) >= 3
    return random_layered_graph(
        np.random.default_rng(draw(st.integers(0, 2**32 - 1))), sizes, density, skip=skip
    )


def _flip_label(motif, signs):
    flipped = signs.translate(_FLIP)
    if motif in ("convergent", "divergent"):
        return "".join(sorted(flipped))
    if motif == "bifan":
        return {"++++": "----", "----": "++++", "+++-": "+---", "+---": "+++-"}.get(signs, signs)
    if motif == "biparallel":
        order = ["++", "+-", "-+", "--"]
        return "|".join(sorted(flipped.split("|"), key=order.index))
    return flipped


@settings(max_examples=25, deadline=None)
@given(layered())
def test_census_equals_oracle_and_flipping_signs_swaps_classes(G):
    c = ns.motif_census(G, size=None, by_block=True)
    got = {(r.motif, r.signs, r.blocks): r.count for r in c.itertuples()}
    ref = naive_motifs(G)
    assert all(got[k] == ref.get(k, 0) for k in got) and set(ref) <= set(got)
    neg = G.map_weights(lambda b: -b.weight)
    flipped = {
        (r.motif, r.signs, r.blocks): r.count
        for r in ns.motif_census(neg, size=None, by_block=True).itertuples()
    }
    assert all(flipped[(m, _flip_label(m, s), b)] == v for (m, s, b), v in got.items())


@settings(max_examples=25, deadline=None)
@given(layered())
def test_balance_counts_are_consistent(G):
    br = ns.balance_ratio(G)
    assert ((br["n_balanced"] >= 0) & (br["n_balanced"] <= br["n_cycles"])).all()
    r = ns.frustration_index(G)
    assert 0 <= r.lower_bound <= r.index <= r.n_edges // 2 + 1
    # flipping every sign of a bipartite layered projection without skips keeps 4-cycle balance
    h = ns.balance_ratio(G.map_weights(lambda b: -b.weight))
    assert (h.loc[1, ["n_cycles", "n_balanced"]] == br.loc[1, ["n_cycles", "n_balanced"]]).all()

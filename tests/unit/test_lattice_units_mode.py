"""Structured lattice mode: a unit survives only when irreducible in every block it belongs to."""

from __future__ import annotations

import numpy as np
import pytest

import netstruct as ns
from netstruct.lattice import FormalContext, meet_irreducibles

# inputs x0..x2, hidden h0..h2 (ih block and a delayed hh block), one output
# ih: h2's inputs {x1} are the intersection of h0's {x0, x1} and h1's {x1, x2} -> h2 reducible
# hh: h1's inputs {h1} are the intersection of h0's {h0, h1} and h2's {h1, h2} -> h1 reducible
IH = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
HH = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])


def _graph(ih=IH, hh=HH):
    nodes = {
        "name": ["x0", "x1", "x2", "h0", "h1", "h2", "y"],
        "kind": ["input"] * 3 + ["hidden"] * 3 + ["output"],
    }
    blocks = [
        ns.make_block(name="ih", weight=ih, sources=[0, 1, 2], targets=[3, 4, 5]),
        ns.make_block(name="hh", weight=hh, sources=[3, 4, 5], targets=[3, 4, 5], delay=1),
        ns.make_block(name="head", weight=np.ones((1, 3)), sources=[3, 4, 5], targets=[6]),
    ]
    return ns.SignedGraph(nodes, blocks)


def _meet(W):
    return meet_irreducibles(FormalContext((W > 0).T)).mask


def test_constructed_example_keeps_only_units_irreducible_in_every_block():
    assert _meet(IH).tolist() == [True, True, False]  # the construction is what it claims
    assert _meet(HH).tolist() == [True, False, True]
    # quantile 0.1 of 0/1 strengths is 0, so each context is exactly W > 0
    res = ns.lattice.lattice_prune(_graph(), variant="units", quantile=0.1)
    assert res.config["removed_units"] == ["h1", "h2"]
    nodes = res.graph.nodes().set_index("name")
    assert nodes.loc[["h0", "h1", "h2"], "lattice_irreducible"].tolist() == [True, False, False]
    assert not nodes.loc[["x0", "x1", "x2", "y"], "lattice_removed"].any()
    # removed whole: no row, no column, no readout column; the kept unit keeps every connection
    assert not res.masks["ih"][1:].any() and res.masks["ih"][0].tolist() == [True, True, True]
    assert res.masks["hh"].tolist() == [[True, False, False], [False] * 3, [False] * 3]
    assert res.masks["head"].tolist() == [[True, False, False]]
    # the union rule (irreducible in some block, or central, or input) keeps all three
    union = ns.lattice.lattice_prune(_graph(), quantile=0.1, centrality_quantile=1.0)
    assert (
        union.graph.nodes().set_index("name").loc[["h0", "h1", "h2"], "lattice_irreducible"].all()
    )


@pytest.mark.parametrize("seed", range(5))
def test_units_mode_equals_the_and_over_blocks_on_random_contexts(seed):
    rng = np.random.default_rng(seed)
    ih, hh = (rng.random((3, 3)) < 0.5).astype(float), (rng.random((3, 3)) < 0.5).astype(float)
    ih[ih == 0], hh[hh == 0] = 0.0, 0.0
    ih[0, 0] = hh[0, 0] = 0.0  # at least one zero: quantile 0.1 cuts at 0
    G = _graph(ih + 0.0, hh + 0.0)
    res = ns.lattice.lattice_prune(G, variant="units", quantile=0.1)
    kept = np.ones(3, bool)
    for W in (ih, hh):
        kept &= _meet(W) if (W > 0).any() else np.zeros(3, bool)
    expected = [f"h{j}" for j in range(3) if not kept[j]]
    assert res.config["removed_units"] == expected


def test_units_mode_reaches_a_target_and_shrinks_an_lstm():
    torch = pytest.importorskip("torch")
    G = ns.from_torch(ns.training.recurrent_classifier("LSTM", 8, 16, 10, seed=0))
    res = ns.lattice.lattice_prune(G, variant="units", amount=0.5)
    removed = set(res.config["removed_units"])
    assert 0.0 < res.global_sparsity < 1.0 and removed
    nodes = res.graph.nodes()
    hidden = nodes[nodes["kind"] == "hidden"]
    assert set(hidden.loc[hidden["lattice_removed"], "name"]) >= removed
    small = ns.to_torch(res.graph, shrink=True)
    assert isinstance(small, torch.nn.Module)
    assert sum(p.numel() for p in small.parameters()) < sum(
        p.numel() for p in ns.to_torch(G).parameters()
    )


def test_unit_controls_match_the_number_of_removed_units():
    res = ns.lattice.lattice_prune(_graph(), variant="units", quantile=0.1)
    k = len(res.config["removed_units"])
    rnd = ns.lattice.unit_prune(_graph(), n_units=k, seed=0)
    mag = ns.lattice.unit_prune(_graph(), n_units=k, by="magnitude")
    assert len(rnd.config["removed_units"]) == len(mag.config["removed_units"]) == k
    assert rnd.global_sparsity == pytest.approx(res.global_sparsity)  # equal unit connectivity
    again = ns.lattice.unit_prune(_graph(), n_units=k, seed=0)
    assert again.config["removed_units"] == rnd.config["removed_units"]


def test_units_mode_bad_options():
    with pytest.raises(ns.InvalidParameterError, match="construction"):
        ns.lattice.lattice_prune(_graph(), variant="units", construction="unrolled_dm")
    with pytest.raises(ns.InvalidParameterError, match="n_units"):
        ns.lattice.unit_prune(_graph(), n_units=4)
    with pytest.raises(ns.InvalidParameterError, match="by"):
        ns.lattice.unit_prune(_graph(), n_units=1, by="size")

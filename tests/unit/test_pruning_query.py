"""Selectors, query pruning and pruning plans: coupling, refusal, save and replay."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct.pruning import (  # noqa: E402
    PruningPlan,
    largest,
    quantile,
    select_edges,
    select_nodes,
    smallest,
    where,
)
from tests.models import LastStep, mlp  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture
def G(seed):
    torch.manual_seed(seed)
    return ns.from_torch(mlp([5, 6, 4, 3]))


def test_selectors_compose_and_rank_deterministically():
    t = pd.DataFrame({"layer": [0, 0, 0, 1, 1], "weight": [0.3, -0.3, 0.1, 0.5, -0.2]})
    assert smallest("abs(weight)", k=2).mask(t).tolist() == [False, False, True, False, True]
    # ties (0.3, -0.3) are broken by row order
    assert largest("abs(weight)", k=1, per="layer").mask(t).tolist() == [
        True,
        False,
        False,
        True,
        False,
    ]
    assert (where("layer == 0") & ~smallest("abs(weight)", k=1, per="layer")).mask(t).tolist() == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert ("layer == 1" | where([True] + [False] * 4)).mask(t).tolist() == [
        True,
        False,
        False,
        True,
        True,
    ]
    assert (where("weight > 0") ^ "layer == 1").mask(t).tolist() == [True, False, True, False, True]
    assert smallest("weight", k=1, within="layer == 1").mask(t).tolist() == [False] * 4 + [True]
    assert quantile("weight", 0.5, per="layer").mask(t).tolist() == [False, True, True, False, True]


def test_top_fraction_per_target_node(G):
    sel = largest("abs(weight)", k=2, per="target", within="layer == 0")
    m = select_edges(G, sel)
    e = G.edges()
    assert (e[m].groupby("target").size() == 2).all() and e[m].layer.eq(0).all()
    assert m.sum() == 2 * 6


def test_unknown_column_lists_columns(G):
    with pytest.raises(ns.InvalidParameterError, match=r"columns \[.*'weight'"):
        select_edges(G, "wieght < 0")
    with pytest.raises(ns.InvalidParameterError, match="'per'.*do not exist"):
        select_edges(G, smallest("weight", k=1, per="nope"))
    with pytest.raises(ns.InvalidParameterError, match="one boolean per row"):
        select_nodes(G, "index + 1")
    with pytest.raises(ns.InvalidParameterError, match="'fraction'"):
        smallest("weight", fraction=1.5)


def test_removing_every_unit_of_a_layer_is_refused(G):
    with pytest.raises(ns.GraphError, match=r"every unit of layer 2 \(module '2'\)"):
        ns.prune(G, nodes="group == 2")
    with pytest.raises(ns.GraphError, match="layer 1"):
        ns.prune(G, edges="layer == 1")  # no unit of layer 1 keeps an output


def test_query_pruned_mlp_shrinks_to_fewer_parameters_with_equal_outputs(G, rng):
    H = ns.prune(G, edges="abs(weight) < 0.1", nodes="kind == 'hidden' and index % 2 == 1")
    masked, small = ns.to_torch(H), ns.to_torch(H, shrink=True)
    assert ns.pruning.count_params(small) < ns.pruning.count_params(masked)
    x = torch.from_numpy(rng.normal(size=(16, 5)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(small(x), masked(x), atol=1e-6, rtol=1e-5)
    assert H.provenance["pruning"][0]["reason"].startswith("nodes:")


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_unit_removal_takes_every_coupled_row_and_column(kind, seed, rng):
    torch.manual_seed(seed)
    model = LastStep(kind, n_in=5, hidden=6, n_out=3)
    G = ns.from_torch(model)
    H = ns.prune(G, nodes="kind == 'hidden' and index in [1, 4]")
    n_gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    ih, hh, fc = (H.block(n).mask for n in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "fc.weight"))
    gone_rows = np.r_[[g * 6 + j for g in range(n_gates) for j in (1, 4)]]
    assert not ih[gone_rows].any() and not hh[gone_rows].any()  # the unit's gate rows
    assert (
        not hh[:, [1, 4]].any() and not fc[:, [1, 4]].any()
    )  # its recurrent column and the readout
    assert ih.sum() == (6 - 2) * n_gates * 5
    small = ns.to_torch(H, shrink=True)
    assert small.rnn.hidden_size == 4
    assert ns.pruning.count_params(small) < ns.pruning.count_params(model)
    x = torch.from_numpy(rng.normal(size=(3, 7, 5)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(small(x), ns.to_torch(H)(x), atol=1e-6, rtol=1e-5)


def test_plan_saves_atomically_and_replays_on_another_initialisation(G, tmp_path, seed):
    plan = (
        PruningPlan.for_graph(G)
        .remove_units(G, "name == '0[2]'", reason="dull unit")
        .remove_edges(G, smallest("abs(weight)", fraction=0.3, per="layer"), reason="small weights")
    )
    path = tmp_path / "plan.json"
    plan.save(path)
    assert json.loads(path.read_text())["format"] == "netstruct-pruning-plan"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]
    loaded = PruningPlan.load(path)
    torch.manual_seed(seed + 100)
    G2 = ns.from_torch(mlp([5, 6, 4, 3]))
    H1, H2 = plan.apply(G), loaded.apply(G2)
    for a, b in zip(H1.blocks, H2.blocks):
        np.testing.assert_array_equal(a.mask, b.mask)
    assert loaded.summary()["reason"].tolist() == ["dull unit", "small weights"]
    other = ns.from_torch(mlp([5, 7, 4, 3]))
    with pytest.raises(ns.GraphError, match="architecture differs"):
        loaded.apply(other)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "x"}')
    with pytest.raises(ns.FileFormatError):
        PruningPlan.load(bad)


def test_folding_constants_keeps_outputs(rng):
    lin1, lin2 = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
    with torch.no_grad():
        lin1.weight[2].zero_()
        lin1.bias[2] = 0.7  # unit 2 outputs relu(0.7) = 0.7 for every input
    model = torch.nn.Sequential(lin1, torch.nn.ReLU(), lin2)
    G = ns.from_torch(model)
    plan = PruningPlan.for_graph(G).remove_units(G, "name == '0[2]'", constants={"0[2]": 0.7})
    small = ns.to_torch(plan.apply(G, shrink=True))
    assert small[0].out_features == 3
    x = torch.from_numpy(rng.normal(size=(8, 3)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), atol=1e-6, rtol=1e-5)

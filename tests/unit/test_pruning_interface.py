"""One pruning interface: every method's result goes through ``ns.prune`` with one convention.

Each method's decision, applied by ``ns.prune``, keeps what the method says it keeps (True =
keep, by block name); a plan replays on a fresh initialisation of the same architecture and
is refused, naming the block, on another one. Selections cannot go wrong silently.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netstruct as ns  # noqa: E402
from netstruct import datasets, probes, training  # noqa: E402
from netstruct.exceptions import EmptySelectionWarning  # noqa: E402
from netstruct.pruning import (  # noqa: E402
    PlanStep,
    PruningPlan,
    imp,
    learn_mask,
    magnitude_plan,
    mask_plan,
    odf2nna,
    random_plan,
)


@pytest.fixture(scope="module")
def iris():
    return datasets.load_iris()


def _present(G) -> set[tuple[str, int, int]]:
    e = G.edges()
    names = [b.name for b in G.blocks]
    return {(names[li], int(r), int(c)) for li, r, c in zip(e["layer"], e["row"], e["col"])}


def _masks(G) -> dict[str, list]:
    return {b.name: b.mask.tolist() for b in G.blocks}


def _refused_elsewhere(result, other_graph, block: str):
    with pytest.raises(ns.GraphError, match=rf"architecture differs.*{block}"):
        ns.prune(other_graph, result)


# ---------------------------------------------------------------------- every method's convention
def test_magnitude_plan_keeps_the_largest_weights_and_replays():
    G = ns.from_torch(training.mlp([4, 6, 3], seed=0))
    plan = magnitude_plan(G, 0.5)
    H = ns.prune(G, plan)
    kept = np.abs(H.edges()["weight"].to_numpy())
    gone = set(_present(G)) - _present(H)
    e = G.edges().set_index(["layer", "row", "col"])
    names = [b.name for b in G.blocks]
    removed = np.abs([e.loc[(names.index(b), r, c), "weight"] for b, r, c in gone])
    assert len(gone) == G.n_edges // 2 and kept.min() >= removed.max()
    fresh = ns.from_torch(training.mlp([4, 6, 3], seed=1))
    assert ns.prune(fresh, plan).n_edges == H.n_edges  # same ids, other weights
    _refused_elsewhere(plan, ns.from_torch(training.mlp([4, 7, 3], seed=0)), "0.weight")


def test_random_plan_and_keep_masks_are_the_same_decision():
    G = ns.from_torch(training.mlp([4, 6, 3], seed=0))
    plan = random_plan(G, 0.4)
    assert _masks(ns.prune(G, plan)) == _masks(ns.prune(G, plan.keep_masks(G)))
    assert _masks(ns.prune(G, plan)) == _masks(random_plan(G, 0.4).apply(G))  # seed=0 by default


def test_lattice_plan_keeps_the_irreducible_units_edges():
    # h2 reducible in ih, h1 reducible in hh (tests/unit/test_lattice_units_mode.py)
    ih = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    hh = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    nodes = {
        "name": ["x0", "x1", "x2", "h0", "h1", "h2", "y"],
        "kind": ["input"] * 3 + ["hidden"] * 3 + ["output"],
    }
    blocks = [
        ns.make_block(name="ih", weight=ih, sources=[0, 1, 2], targets=[3, 4, 5]),
        ns.make_block(name="hh", weight=hh, sources=[3, 4, 5], targets=[3, 4, 5], delay=1),
        ns.make_block(name="head", weight=np.ones((1, 3)), sources=[3, 4, 5], targets=[6]),
    ]
    G = ns.SignedGraph(nodes, blocks)
    res = ns.lattice_prune(G, variant="units", quantile=0.1)
    H = ns.prune(G, res)
    table = res.graph.nodes()
    irreducible = set(table.index[table["lattice_irreducible"] | (table["kind"] != "hidden")])
    assert irreducible == {0, 1, 2, 3, 6}
    e = G.edges()
    names = [b.name for b in G.blocks]
    between = {
        (names[li], r, c)
        for li, r, c, s, t in zip(e["layer"], e["row"], e["col"], e["source"], e["target"])
        if s in irreducible and t in irreducible
    }
    assert _present(H) == between  # every edge among irreducible units, nothing else
    assert _masks(H) == _masks(res.graph)


@pytest.mark.parametrize("variant", ["binary", "units"])
def test_lattice_plan_replays_on_a_fresh_lstm(variant):
    G = ns.from_torch(training.recurrent_classifier("LSTM", 3, 5, 2, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ns.NetstructWarning)
        res = ns.lattice_prune(G, variant=variant)
    assert _masks(ns.prune(G, res)) == _masks(res.graph)
    fresh = ns.from_torch(training.recurrent_classifier("LSTM", 3, 5, 2, seed=1))
    H = ns.prune(fresh, res)
    for name, m in res.masks.items():
        assert (H.blocks[H.block_index(name)].mask <= m).all()
    _refused_elsewhere(
        res, ns.from_torch(training.recurrent_classifier("LSTM", 3, 6, 2, seed=0)), "rnn"
    )


def test_lattice_baseline_results_carry_plans():
    G = ns.from_torch(training.recurrent_classifier("GRU", 3, 4, 2, seed=0))
    for res in (
        ns.lattice.magnitude_prune(G, amount=0.5),
        ns.lattice.random_prune(G, amount=0.5),
        ns.lattice.unit_prune(G, n_units=1),
    ):
        assert _masks(ns.prune(G, res)) == _masks(res.graph)


def test_legcnet_plan_keeps_the_weights_it_calls_causal(iris):
    from netstruct.causal import LEGCNetConfig, legcnet_prune

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Sigmoid(), torch.nn.Linear(6, 3))
    init = ns.from_torch(model)
    data = datasets.load_iris(test_size=0.2, seed=0)
    res = legcnet_prune(
        model,
        data,
        mode="PT",
        epochs=3,
        pt_epochs=3,
        lr=0.05,
        benchmark=0.9,
        config=LEGCNetConfig.authors(40),
        extra_epochs=0,
    )
    causal = ~res.prune_mask  # LEGCNet's own vector: True = prune
    assert 0 < causal.sum() < causal.size
    H = ns.prune(res.graph, res)
    assert H.n_edges == int(causal.sum())
    assert not H.edges()["prune"].any()  # every kept edge is one the rule calls causal
    flat_keep = np.concatenate([res.keep_masks[b.name].ravel() for b in res.graph.blocks])
    assert (flat_keep == causal).all()
    assert _masks(ns.prune(init, res)) == _masks(H)  # replay on the initialisation
    with pytest.raises(ns.InvalidParameterError, match="True = prune"):
        mask_plan(res.graph, res.prune_mask)  # the flat vector cannot reach mask_plan wrongly
    with pytest.raises(ns.InvalidParameterError, match="dict of block name"):
        ns.pruning.mask_plan(res.graph, list(res.prune_mask))


def test_odf2nna_plan_removes_the_units_it_calls_useless(iris):
    model = training.mlp([4, 12, 3], seed=0)
    training.train(model, iris.X_train, iris.y_train, epochs=3, progress=False)
    G = ns.from_torch(model)
    res = odf2nna(model, iris.X_train, eps=1.0)
    table = res.scored.nodes()
    useless = set(table.index[(table["kind"] == "hidden") & ~table["useful"]])
    assert useless
    H = ns.prune(G, res)
    e = H.edges()
    assert not (set(e["source"]) | set(e["target"])) & useless
    small = ns.prune(G, res, shrink=True)
    assert sorted(small.nodes()["name"]) == sorted(res.graph.nodes()["name"])
    fresh = ns.from_torch(training.mlp([4, 12, 3], seed=1))
    assert ns.prune(fresh, res, shrink=True).blocks[0].shape == res.graph.blocks[0].shape
    _refused_elsewhere(res, ns.from_torch(training.mlp([4, 11, 3], seed=0)), "0.weight")


@pytest.mark.parametrize("method", ["imp", "learn_mask"])
def test_ticket_plans_keep_the_masks_true_entries(iris, method):
    model = training.mlp([4, 8, 3], seed=0)
    init = ns.from_torch(model)
    if method == "imp":
        res = imp(model, iris.X_train, iris.y_train, amount=0.5, epochs=1)
    else:
        res = learn_mask(model, iris.X_train, iris.y_train, lam=1e-3, epochs=2, amount=0.5)
    H = ns.prune(init, res)
    for name, keep in res.mask.items():
        assert H.blocks[H.block_index(name)].mask.tolist() == keep.tolist()
    np.testing.assert_array_equal(
        ns.to_torch(H)(torch.ones(2, 4)).detach().numpy(),
        ns.to_torch(res.graph)(torch.ones(2, 4)).detach().numpy(),
    )
    fresh = ns.from_torch(training.mlp([4, 8, 3], seed=5))
    assert _masks(ns.prune(fresh, res)) == _masks(H)
    _refused_elsewhere(res, ns.from_torch(training.mlp([4, 9, 3], seed=0)), "0.weight")


@pytest.mark.parametrize("rule", ["smallest", "largest", "random"])
def test_probes_prune_plan_matches_probes_prune(rule):
    G = ns.from_torch(training.mlp([4, 6, 3], seed=0))
    plan = probes.prune_plan(G, 0.5, rule=rule, seed=3)
    assert _masks(ns.prune(G, plan)) == _masks(
        probes.prune(G, 0.5, rule=rule, seed=3, prune_bias=False)
    )
    _refused_elsewhere(plan, ns.from_torch(training.mlp([4, 6, 2], seed=0)), "2.weight")


# ---------------------------------------------------------------------- plans cannot go wrong silently
def test_plan_with_negative_or_out_of_range_edge_id_is_refused():
    G = ns.from_torch(torch.nn.Linear(3, 2))
    arch = PruningPlan.for_graph(G).architecture
    for bad in (-1, 6):
        with pytest.raises(
            ns.InvalidParameterError, match=rf"edge id {bad} of block 'weight'.*\[0, 6\)"
        ):
            PruningPlan(arch, [PlanStep("by hand", edges={"weight": (0, bad)})])
    data = PruningPlan.for_graph(G).remove_edges(G, "row == 0").to_dict()
    data["steps"][0]["edges"]["weight"] = [-1]
    with pytest.raises(ns.FileFormatError, match="never negative"):
        PruningPlan.from_dict(data)
    with pytest.raises(ns.InvalidParameterError, match="block 'nope'"):
        PruningPlan(arch, [PlanStep("by hand", edges={"nope": (0,)})])


def test_a_sorted_boolean_series_selects_by_label_not_position():
    G = ns.from_torch(training.mlp([4, 8, 3], seed=0))
    e = G.edges()
    sel = e.sort_values("weight")["weight"] < 0  # labels permuted
    H = ns.prune(G, edges=sel)
    assert H.n_edges == int((e["weight"] >= 0).sum())
    assert (H.edges()["weight"] >= 0).all()
    same = ns.prune(G, edges=lambda t: t.sort_values("weight")["weight"] < 0)
    assert same.n_edges == H.n_edges
    nodes = G.nodes()
    unit = nodes.sort_values("name", ascending=False)["name"] == "0[1]"
    assert "0[1]" not in set(ns.prune(G, nodes=unit, shrink=True).nodes()["name"])


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s.iloc[:-1],
        lambda s: s.set_axis(s.index + 1000),
        lambda s: s.reset_index(drop=True).iloc[[0] * len(s)],
    ],
)
def test_a_series_whose_index_is_not_the_tables_is_refused(make):
    G = ns.from_torch(training.mlp([4, 8, 3], seed=0))
    sel = make(G.edges()["weight"] < 0)
    with pytest.raises(ns.InvalidParameterError, match="must have the table's index"):
        ns.prune(G, edges=sel)


def test_a_query_that_matches_nothing_warns():
    G = ns.from_torch(training.mlp([4, 8, 3], seed=0))
    with pytest.warns(EmptySelectionWarning, match="matches none of the"):
        H = ns.prune(G, edges="abs(weight) > 1e9")
    assert H.n_edges == G.n_edges
    with pytest.warns(EmptySelectionWarning, match="nodes"):
        ns.prune(G, nodes="kind == 'hidden' and index > 1000")
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptySelectionWarning)
        ns.prune(
            G, np.zeros(G.n_edges, dtype=bool)
        )  # an explicit empty mask is a decision, not a typo


def test_prune_refuses_ambiguous_calls():
    G = ns.from_torch(training.mlp([4, 8, 3], seed=0))
    plan = magnitude_plan(G, 0.3)
    with pytest.raises(ns.InvalidParameterError, match="not both"):
        ns.prune(G, plan, edges="weight < 0")
    with pytest.raises(ns.InvalidParameterError, match="needs something to apply"):
        ns.prune(G)
    with pytest.raises(ns.InvalidParameterError, match="both positionally and as edges"):
        ns.prune(G, "weight < 0", edges="weight > 0")
    assert ns.prune(G, "weight < 0").n_edges == ns.prune(G, edges="weight < 0").n_edges


# ---------------------------------------------------------------------- one vocabulary
def _graph():
    return ns.from_torch(training.mlp([4, 6, 3], seed=0))


def _lstm():
    return ns.from_torch(training.recurrent_classifier("LSTM", 3, 5, 2, seed=0))


@pytest.mark.parametrize(
    "call, old, new",
    [
        (lambda: ns.magnitude_prune(_graph(), sparsity=0.5), "sparsity", "amount"),
        (lambda: ns.pruning.magnitude_plan(_graph(), sparsity=0.5), "sparsity", "amount"),
        (lambda: ns.random_prune(_graph(), sparsity=0.5), "sparsity", "amount"),
        (lambda: ns.pruning.random_plan(_graph(), sparsity=0.5), "sparsity", "amount"),
        (lambda: ns.lattice.magnitude_prune(_lstm(), sparsity=0.5), "sparsity", "amount"),
        (lambda: ns.lattice.random_prune(_lstm(), sparsity=0.5), "sparsity", "amount"),
        (lambda: ns.lattice_prune(_lstm(), target_sparsity=0.5), "target_sparsity", "amount"),
        (lambda: probes.prune(_graph(), fraction=0.5), "fraction", "amount"),
        (lambda: probes.prune(_graph(), 0.5, layers=[0]), "layers", "blocks"),
        (
            lambda: ns.causal.LEGCNetConfig.recommended(target_sparsity=0.5),
            "target_sparsity",
            "amount",
        ),
    ],
)
def test_old_parameter_names_warn_and_name_the_new_one(call, old, new):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ns.NetstructWarning)
        with pytest.warns(FutureWarning, match=rf"'{old}' parameter of .* deprecated; use '{new}'"):
            out = call()
    assert out is not None


def test_old_and_new_name_together_are_refused():
    with pytest.raises(ns.InvalidParameterError, match="pass only 'amount'"):
        ns.magnitude_prune(_graph(), 0.5, sparsity=0.5)
    with pytest.raises(ns.InvalidParameterError, match="pass only 'amount'"):
        ns.causal.LEGCNetConfig(amount=0.1, target_sparsity=0.2)


def test_deprecated_aliases_give_the_same_result():
    G = _graph()
    with pytest.warns(FutureWarning):
        old = ns.random_prune(G, sparsity=0.5, seed=1)
    assert _masks(old) == _masks(ns.random_prune(G, amount=0.5, seed=1))
    with pytest.warns(FutureWarning):
        cfg = ns.causal.LEGCNetConfig.recommended(target_sparsity=0.3)
    assert cfg.amount == 0.3 and cfg.target_sparsity is None


# ---------------------------------------------------------------------- progress
@pytest.mark.parametrize("show", [True, False])
def test_long_calls_show_progress_only_when_enabled(iris, capsys, show):
    model = training.mlp([4, 8, 3], seed=0)
    with ns.config_context(progress=show):
        imp(model, iris.X_train, iris.y_train, amount=0.2, epochs=1)
        learn_mask(model, iris.X_train, iris.y_train, epochs=1)
        odf2nna(model, iris.X_train, eps=0.0)
    err = capsys.readouterr().err
    for name in ("imp", "learn_mask", "odf2nna"):
        assert (name in err) is show


PRUNING_API = [
    ns.prune,
    ns.pruning.magnitude_plan,
    ns.pruning.magnitude_prune,
    ns.pruning.random_plan,
    ns.pruning.random_prune,
    ns.pruning.mask_plan,
    ns.pruning.imp,
    ns.pruning.learn_mask,
    ns.pruning.odf2nna,
    ns.lattice_prune,
    ns.lattice.magnitude_prune,
    ns.lattice.random_prune,
    ns.lattice.unit_prune,
    ns.legcnet_prune,
    probes.prune,
    probes.prune_plan,
]


@pytest.mark.parametrize("func", PRUNING_API, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_the_public_pruning_api_speaks_one_vocabulary(func):
    import inspect

    params = inspect.signature(func).parameters
    assert not {"sparsity", "target_sparsity", "target", "fraction", "layers"} & set(params)
    if "seed" in params:
        assert params["seed"].default == 0


def test_prune_names_what_it_accepts():
    G = _graph()
    with pytest.raises(ns.InvalidParameterError, match="'what' parameter of prune.*Got object"):
        ns.prune(G, object())

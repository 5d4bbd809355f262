"""Unit tests of netstruct.randomize: worked examples (spec §8 E3, E4, E8), API, errors."""

from __future__ import annotations

import random
import warnings
from collections import Counter

import numba
import numpy as np
import pytest
from scipy import stats

import netstruct as ns
from netstruct.algorithms.randomize import (
    INVARIANTS,
    NULL_MODELS,
    LayerTooSmallWarning,
    mixing_diagnostic,
)
from tests.oracles.naive_randomize import (
    degree_preserving_patterns,
    invariants,
    naive_randomize,
    pattern_key,
    reachable_patterns,
)

CHAINS = ["G-left", "G-right", "G-shuffle", "curveball", "curveball-right"]


def graph_of(*weights: np.ndarray, masks=None, bias: bool = True) -> ns.SignedGraph:
    """A graph with one block per weight matrix (fresh node ids per block)."""
    blocks, n = [], 0
    for k, W in enumerate(weights):
        n_out, n_in = np.shape(W)
        blocks.append(
            ns.make_block(
                name=f"b{k}",
                weight=np.asarray(W, dtype=np.float32),
                mask=None if masks is None else masks[k],
                sources=np.arange(n, n + n_in),
                targets=np.arange(n + n_in, n + n_in + n_out),
                bias=np.linspace(-1, 1, n_out) if bias else None,
            )
        )
        n += n_in + n_out
    return ns.SignedGraph({"name": [f"v{i}" for i in range(n)]}, blocks)


def outcome_counts(G: ns.SignedGraph, model: str, n: int, seed: int, **kw) -> Counter:
    ens = ns.randomize_ensemble(G, model, n, seed=seed, **kw)
    return Counter(tuple(w.ravel().tolist()) for w in ens.weights["b0"])


CHECKER = np.array([[0.5, -0.2], [-0.4, 0.3]], dtype=np.float32)


# ----------------------------------------------------------------------------- E3 worked examples
def test_g_left_and_g_right_on_checkerboard_give_the_spec_outcomes(seed):
    G = graph_of(CHECKER)
    f32 = np.float32
    expected = {
        "G-left": {tuple(CHECKER.ravel().tolist()), tuple(f32([-0.4, 0.3, 0.5, -0.2]).tolist())},
        "G-right": {tuple(CHECKER.ravel().tolist()), tuple(f32([-0.2, 0.5, 0.3, -0.4]).tolist())},
    }
    for model, outs in expected.items():
        counts = outcome_counts(G, model, 2000, seed)
        assert set(counts) == outs
        assert stats.chisquare(list(counts.values())).pvalue > 1e-4


@pytest.mark.parametrize("model", ["B", "C"])
def test_b_and_c_on_checkerboard_have_four_equally_likely_outputs(model, seed):
    counts = outcome_counts(graph_of(CHECKER), model, 4000, seed)
    assert len(counts) == 4
    assert stats.chisquare(list(counts.values())).pvalue > 1e-4


@pytest.mark.parametrize("model", ["E", "F"])
def test_e_and_f_on_checkerboard_are_the_identity(model, seed):
    G = graph_of(CHECKER)
    H = ns.randomize(G, model, seed=seed)
    assert np.array_equal(H.blocks[0].weight, CHECKER)


def test_curveball_trade_matches_bitmask_example_e8(seed):
    # output rows a = {0, 1}, b = {1, 2} positive over 4 columns, full support
    W = np.array([[0.9, 0.8, -0.1, -0.2], [-0.3, 0.7, 0.6, -0.4]], dtype=np.float32)
    ens = ns.randomize_ensemble(graph_of(W), "curveball-right", 2000, seed=seed, n_steps=1)
    rows = Counter(
        (tuple(np.flatnonzero(w[0] > 0).tolist()), tuple(np.flatnonzero(w[1] > 0).tolist()))
        for w in ens.weights["b0"]
    )
    assert set(rows) == {((0, 1), (1, 2)), ((1, 2), (0, 1))}
    assert stats.binomtest(rows[((0, 1), (1, 2))], 2000, 0.5).pvalue > 1e-4
    for w in ens.weights["b0"]:
        assert (w > 0).sum(0).tolist() == [1, 2, 1, 0]
        assert sorted(w[0].tolist()) == sorted(W[0].tolist())


# ----------------------------------------------------------------------------- E4 uniformity
UNIFORMITY_CASES = {
    "3x3 permutation": np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    * np.arange(1, 10).reshape(3, 3)
    / 10,
    "2x3 degrees (2,1)": np.array([[1, 1, -1], [-1, -1, 1]]) * np.arange(1, 7).reshape(2, 3) / 10,
}


@pytest.mark.parametrize("model", ["G-left", "G-right", "curveball", "curveball-right"])
@pytest.mark.parametrize("case", sorted(UNIFORMITY_CASES))
def test_chains_visit_every_degree_preserving_pattern_uniformly(case, model, seed):
    W = UNIFORMITY_CASES[case].astype(np.float32)
    valid = degree_preserving_patterns(W)
    ens = ns.randomize_ensemble(graph_of(W), model, 3000, seed=seed)
    counts = Counter(pattern_key(w) for w in ens.weights["b0"])
    assert set(counts) == valid
    assert stats.chisquare([counts[k] for k in sorted(valid)]).pvalue > 1e-4


def test_swap_chain_is_uniform_over_reachable_patterns_of_a_pruned_layer(seed):
    W = np.array([[1, -2, 3, -4], [-5, 6, 0, 7], [8, -9, -10, 0]], dtype=np.float32) / 10
    reach = reachable_patterns(W)
    assert len(reach) > 1
    ens = ns.randomize_ensemble(graph_of(W), "G-left", 3000, seed=seed, n_steps=200)
    counts = Counter(pattern_key(w) for w in ens.weights["b0"])
    assert set(counts) == reach
    assert stats.chisquare([counts[k] for k in sorted(reach)]).pvalue > 1e-4


@pytest.mark.parametrize("model", ["A", "B", "C", "G-left", "curveball"])
def test_kernels_match_the_naive_oracle_in_distribution(model, seed):
    # where does the largest weight land? compare kernel and oracle histograms (chi-square)
    W = np.array([[0.9, -0.2, 0.3], [-0.4, 0.5, -0.6], [0.7, -0.8, 0.1]], dtype=np.float32)
    n = 1500
    ens = ns.randomize_ensemble(
        graph_of(W), model, n, seed=seed, **({} if model in "ABC" else {"n_steps": 60})
    )
    kern = Counter(int(np.argmax(w)) for w in ens.weights["b0"])
    rnd = random.Random(seed)
    orac = Counter(int(np.argmax(naive_randomize(W, model, rnd, n_steps=60))) for _ in range(n))
    cells = sorted(set(kern) | set(orac))
    table = np.array([[kern[c] for c in cells], [orac[c] for c in cells]])
    assert stats.chi2_contingency(table).pvalue > 1e-4 if len(cells) > 1 else kern == orac


# ----------------------------------------------------------------------------- API
def test_randomize_keeps_masks_biases_and_unselected_blocks(seed):
    rng = np.random.default_rng(seed)
    W0, W1 = rng.standard_normal((4, 6)), rng.standard_normal((3, 4))
    mask0 = rng.random((4, 6)) < 0.7
    G = graph_of(W0, W1, masks=[mask0, None])
    H = ns.randomize(G, "A", blocks="b0", seed=seed)
    assert np.array_equal(H.blocks[0].mask, G.blocks[0].mask)
    assert H.blocks[0].bias is G.blocks[0].bias or np.array_equal(
        H.blocks[0].bias, G.blocks[0].bias
    )
    assert H.blocks[1] is G.blocks[1]
    assert not np.array_equal(H.blocks[0].weight, G.blocks[0].weight)
    assert (H.blocks[0].weight[~mask0] == 0).all()


def test_randomize_equals_first_ensemble_member_and_ignores_layer_selection(seed):
    rng = np.random.default_rng(seed)
    G = graph_of(rng.standard_normal((5, 6)), rng.standard_normal((4, 5)))
    for model in ("B", "G-left", "curveball"):
        one = ns.randomize(G, model, seed=seed)
        ens = ns.randomize_ensemble(G, model, 3, seed=seed)
        only1 = ns.randomize(G, model, blocks=[1], seed=seed)
        assert np.array_equal(one.blocks[0].weight, ens.graph(0).blocks[0].weight)
        assert np.array_equal(one.blocks[1].weight, only1.blocks[1].weight)


def test_results_do_not_depend_on_the_thread_count(seed):
    G = graph_of(np.random.default_rng(seed).standard_normal((6, 8)))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = ns.randomize_ensemble(G, "curveball", 4, seed=seed).weights["b0"]
        numba.set_num_threads(before)
        b = ns.randomize_ensemble(G, "curveball", 4, seed=seed).weights["b0"]
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a, b)


def test_ensemble_reports_steps_and_acceptance(seed):
    G = graph_of(np.random.default_rng(seed).standard_normal((6, 8)))
    ens = ns.randomize_ensemble(G, "G-left", 5, seed=seed, n_steps=123)
    assert len(ens) == 5 and ens.n_steps["b0"] == 123
    assert ens.acceptance["b0"].shape == (5,) and (ens.acceptance["b0"] <= 1).all()
    assert [g.blocks[0].shape for g in ens] == [(6, 8)] * 5
    ens = ns.randomize_ensemble(G, "curveball", 2, seed=seed, n_steps=5)
    assert ens.n_steps["b0"] == 8  # rounded up to whole rounds of 8 // 2 trades
    assert ns.randomize_ensemble(G, "A", 2, seed=seed).n_steps["b0"] == 0
    with pytest.raises(ns.InvalidParameterError):
        ens.graph(2)
    with pytest.raises(ValueError):
        ens.weights["b0"][0, 0, 0] = 1.0


def test_model_names_are_case_insensitive_with_aliases():
    G = graph_of(CHECKER)
    for alias, name in [("g", "G-left"), ("random_pos_neg", "B"), ("CURVEBALL-left", "curveball")]:
        assert ns.randomize_ensemble(G, alias, 1, seed=0).model is NULL_MODELS[name]


def test_every_model_documents_what_it_preserves():
    for m in NULL_MODELS.values():
        assert m.preserves <= set(INVARIANTS) and {"support", "multiset"} <= m.preserves
        assert m.summary


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"model": "H"},
            r"The 'model' parameter of randomize_ensemble must be one of \[.*\]\. Got 'H' instead\.",
        ),
        ({"model": 3}, r"The 'model' parameter"),
        (
            {"model": "G", "n_steps": -3},
            r"The 'n_steps' parameter of randomize_ensemble must be an int >= 0\. Got -3 instead\.",
        ),
        ({"model": "G", "n_steps": 2.5}, r"The 'n_steps' parameter"),
        (
            {"model": "A", "n_steps": 10},
            r"The 'n_steps' parameter .* must be None for the exact model 'A'",
        ),
        ({"model": "A", "seed": -1}, r"The 'seed' parameter .* Got -1 instead\."),
        ({"model": "A", "seed": "x"}, r"The 'seed' parameter"),
        ({"model": "A", "blocks": 2.0}, r"The 'blocks' parameter"),
        ({"model": "A", "blocks": ["nope"]}, r"No block named 'nope'"),
        ({"model": "A", "blocks": 7}, r"out of range"),
    ],
)
def test_bad_parameters_raise_the_standard_message(kwargs, pattern):
    G = graph_of(CHECKER)
    with pytest.raises(ns.InvalidParameterError, match=pattern):
        ns.randomize(G, **kwargs)


def test_bad_n_samples_and_graph_raise():
    with pytest.raises(
        ns.InvalidParameterError,
        match="'n_samples' parameter of randomize_ensemble must be an int >= 1",
    ):
        ns.randomize_ensemble(graph_of(CHECKER), "A", 0)
    with pytest.raises(ns.InvalidParameterError, match="'G' parameter of randomize"):
        ns.randomize(CHECKER, "A")


@pytest.mark.parametrize(
    "W",
    [np.array([[0.5, -0.2, 0.3]]), np.array([[0.5, 0.2], [0.3, -0.1]]), np.zeros((3, 3))],
    ids=["one-row", "one-negative", "all-zero"],
)
@pytest.mark.parametrize("model", CHAINS)
def test_layer_too_small_to_move_warns_and_is_unchanged(W, model):
    G = graph_of(W)
    with pytest.warns(LayerTooSmallWarning, match="too small .* returned unchanged"):
        ens = ns.randomize_ensemble(G, model, 2, seed=0)
    assert ens.unchanged == ("b0",)
    assert np.array_equal(ens.weights["b0"][1], G.blocks[0].weight)
    assert issubclass(LayerTooSmallWarning, ns.NetstructWarning)


def test_exact_models_do_not_warn_on_tiny_layers():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        H = ns.randomize(graph_of(np.array([[0.5]])), "A", seed=0)
    assert H.blocks[0].weight.tolist() == [[0.5]]


def test_n_steps_zero_returns_the_input():
    G = graph_of(np.random.default_rng(0).standard_normal((5, 5)))
    for model in CHAINS[:2]:
        assert np.array_equal(
            ns.randomize(G, model, n_steps=0, seed=1).blocks[0].weight, G.blocks[0].weight
        )


# ----------------------------------------------------------------------------- mixing diagnostic
@pytest.mark.parametrize("model", ["G-left", "curveball"])
def test_mixing_diagnostic_reaches_a_plateau_before_the_default(model, seed):
    G = graph_of(np.random.default_rng(seed).standard_normal((16, 24)))
    tr = mixing_diagnostic(G, model, n_points=12, n_chains=4, seed=seed)
    assert tr.hamming.shape == tr.overlap.shape == tr.acceptance.shape == (4, 12)
    assert (np.diff(tr.steps) > 0).all() and tr.steps[-1] >= 3 * tr.default_n_steps
    assert 0.3 < tr.plateau < 0.7
    assert tr.mixed_at is not None and tr.mixed_at <= tr.default_n_steps
    assert tr.overlap[:, -1].mean() < 0.8  # starts at 1 (every original positive edge kept)


def test_mixing_diagnostic_rejects_exact_models_and_tiny_layers():
    with pytest.raises(
        ns.InvalidParameterError,
        match="'model' parameter of mixing_diagnostic must be a chain model",
    ):
        mixing_diagnostic(graph_of(CHECKER), "B")
    with pytest.raises(ns.InvalidParameterError, match="'layer' parameter of mixing_diagnostic"):
        mixing_diagnostic(graph_of(np.array([[1.0, -1.0]])), "G-left")


def test_oracle_invariants_cover_every_name():
    assert set(invariants(CHECKER)) == set(INVARIANTS)


@pytest.mark.parametrize("model", ["curveball", "curveball-right"])
def test_curveball_keeps_invariants_on_layers_wider_than_one_bit_word(model, seed):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((150, 140)) * (rng.random((150, 140)) < 0.5)).astype(np.float32)
    ens = ns.randomize_ensemble(graph_of(W), model, 2, seed=seed)
    ref = invariants(ens.source.blocks[0].weight)
    for w in ens.weights["b0"]:
        got = invariants(w)
        assert all(got[name] == ref[name] for name in NULL_MODELS[model].preserves)
        assert not np.array_equal(np.sign(w), np.sign(W))


@pytest.mark.parametrize("model", ["A", "B", "E", "G-left", "G-shuffle", "curveball"])
def test_sample_graph_equals_replace_blocks(model):
    """The samplers' trusted graph rebuild == the validating replace_blocks (edge attrs kept)."""
    rng = np.random.default_rng(3)
    W = (rng.standard_normal((6, 9)) * (rng.random((6, 9)) < 0.6)).astype(np.float32)
    G = ns.SignedGraph(
        {"name": [str(i) for i in range(15)]},
        [ns.make_block(name="fc", weight=W, mask=W != 0, sources=range(9), targets=range(9, 15))],
    ).with_edge_attrs(tag=np.arange(int((W != 0).sum())))
    ens = ns.randomize_ensemble(G, model, 2, seed=0)
    H = ens.graph(1)
    ref = G.replace_blocks({"fc": {"weight": ens.weights["fc"][1]}})
    np.testing.assert_array_equal(H.blocks[0].weight, ref.blocks[0].weight)
    np.testing.assert_array_equal(H.blocks[0].mask, ref.blocks[0].mask)
    assert H.blocks[0].is_dense == ref.blocks[0].is_dense
    assert H.edges().equals(ref.edges()) and "tag" in H.edge_attr_names


def test_model_a_groups_are_cached_per_block():
    from netstruct.algorithms import _randomize_models as _m

    rng = np.random.default_rng(4)
    W = (rng.standard_normal((5, 7)) * (rng.random((5, 7)) < 0.5)).astype(np.float32)
    G = ns.SignedGraph(
        {"name": [str(i) for i in range(12)]},
        [ns.make_block(name="fc", weight=W, mask=W != 0, sources=range(7), targets=range(7, 12))],
    )
    w = G.blocks[0].weight
    first = _m.cached_permutation_groups(w, ())
    assert _m.cached_permutation_groups(w, ())[1] is first[1]
    for got, ref in zip(first, _m.permutation_groups(np.array(w), ())):
        np.testing.assert_array_equal(got, ref)
    a, b = ns.randomize(G, "A", seed=5), ns.randomize(G, "A", seed=5)
    np.testing.assert_array_equal(a.blocks[0].weight, b.blocks[0].weight)


def test_layers_is_a_deprecated_alias_of_blocks():
    import torch

    torch.manual_seed(0)
    G = ns.from_torch(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)))
    with pytest.warns(
        FutureWarning, match="'layers' parameter of randomize is deprecated; use 'blocks'"
    ):
        old = ns.randomize(G, "A", layers=[0], seed=1)
    new = ns.randomize(G, "A", blocks=[0], seed=1)
    assert np.array_equal(old.blocks[0].weight, new.blocks[0].weight)
    with pytest.warns(FutureWarning, match="randomize_ensemble"):
        ns.randomize_ensemble(G, "A", 2, layers=0, seed=1)

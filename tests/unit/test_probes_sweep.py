"""Batched evaluation, sweeps, summaries, the complexity gap (E7) and plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import netstruct as ns
from netstruct.probes import (
    SWEEP_COLUMNS,
    binarize,
    cell_seed,
    complexity_gap,
    evaluate_batch,
    fold50,
    perturb,
    plot_sweep,
    plot_violins,
    predict_batch,
    set_biases,
    summarize,
    sweep,
    task_complexity,
    train_protocol,
)

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def task():
    return ns.datasets.class_pair(ns.datasets.load_digits(), 7, 9)


@pytest.fixture(scope="module")
def runs(task):
    return [train_protocol(task, seed=s, hidden=16, epochs=3) for s in (0, 1)]


@pytest.fixture(scope="module")
def G(runs):
    return runs[0].graph


# ----------------------------------------------------------------------------- batched evaluation
@pytest.mark.parametrize("probe", ["noise", "null-B", "prune-random", "flip-random"])
def test_batched_equals_loop_of_to_torch(G, task, probe):
    from netstruct.training import evaluate, predict

    st = perturb(G, probe, 0.2, n_samples=6, seed=3)
    for stack in (st, st.binarized()):
        batched = evaluate_batch(
            G, task.X_test, task.y_test, weights=stack.weights, biases=stack.biases
        )
        logits = predict_batch(G, task.X_test, weights=stack.weights, biases=stack.biases)
        for k in range(6):
            model = ns.to_torch(stack.graph(k))
            np.testing.assert_allclose(logits[k], predict(model, task.X_test), rtol=1e-5, atol=1e-4)
            assert abs(batched[k] - evaluate(model, task.X_test, task.y_test)) <= 1.0 / len(
                task.y_test
            )


def test_batched_chunking_does_not_change_results(G, task):
    st = perturb(G, "noise", 0.1, n_samples=7, seed=0)
    a = evaluate_batch(G, task.X_test, task.y_test, weights=st.weights, biases=st.biases)
    b = evaluate_batch(
        G, task.X_test, task.y_test, weights=st.weights, biases=st.biases, chunk_bytes=1
    )
    np.testing.assert_array_equal(a, b)


def test_evaluate_batch_without_stacks_is_the_model(G, task, runs):
    acc = evaluate_batch(G, task.X_test, task.y_test)
    assert acc.shape == (1,) and abs(100 * acc[0] - runs[0].accuracy) < 1e-9


def test_evaluator_rejects_what_it_does_not_understand(G, task):
    rnn = ns.from_torch(ns.training.recurrent_classifier("RNN", 8, 4, 2, seed=0))
    with pytest.raises(ns.InvalidParameterError, match="'G' parameter of evaluate_batch.*RNN"):
        evaluate_batch(rnn, np.zeros((3, 8, 8)), np.zeros(3, dtype=int))
    bare = ns.SignedGraph(
        {"name": list("abc")},
        [ns.make_block(name="w", weight=[[1.0, 2.0]], sources=[0, 1], targets=[2])],
    )
    with pytest.raises(ns.InvalidParameterError, match="no architecture spec"):
        sweep(bare, np.zeros((2, 2)), [0, 0], {"prune": [0.5]})
    with pytest.raises(ns.InvalidParameterError, match="'y' parameter of sweep.*labels in 0..1"):
        sweep(G, task.X_test, task.y_test + 1, {"prune": [0.5]})
    with pytest.raises(ns.InvalidParameterError, match="'X' parameter of evaluate_batch"):
        evaluate_batch(G, task.X_test[:, :10], task.y_test)
    with pytest.raises(ns.InvalidParameterError, match="'weights' parameter of evaluate_batch"):
        evaluate_batch(G, task.X_test, task.y_test, weights={0: np.zeros((2, 3, 3))})


# ----------------------------------------------------------------------------- sweep
@pytest.fixture(scope="module")
def table(runs, task):
    probes = {
        "prune": [0.0, 0.5, 0.9],
        "noise": [0.05, 0.2],
        "flip-random": [0.1],
        "null-B": [0.0, 0.5],
    }
    return sweep([r.graph for r in runs], task.X_test, task.y_test, probes, n_repeats=3, seed=7)


def test_sweep_table_shape_and_values(table):
    assert tuple(table.columns) == SWEEP_COLUMNS
    # deterministic prune: 3 levels x 2 runs x 2 metrics; random probes: levels x 2 runs x 3 repeats x 2 metrics
    assert len(table) == 12 + (2 + 1 + 2) * 2 * 3 * 2
    assert table["value"].between(0, 100).all()
    assert set(table["metric"]) == {"acc_full", "acc_sign"}
    assert list(dict.fromkeys(table["probe"])) == [
        "prune-smallest",
        "noise-uniform",
        "flip-random",
        "null-B",
    ]


def test_sweep_level_zero_is_the_original(table, runs, G):
    p0 = table[(table["probe"] == "prune-smallest") & (table["level"] == 0.0)]
    full = p0[p0["metric"] == "acc_full"].set_index("run")["value"]
    assert [abs(full[i] - r.accuracy) < 1e-9 for i, r in enumerate(runs)] == [True, True]


def test_sweep_binarized_null_b_equals_binarized_original_e6(table):
    sign = table[table["metric"] == "acc_sign"]
    orig = sign[(sign["probe"] == "prune-smallest") & (sign["level"] == 0)].set_index("run")[
        "value"
    ]
    b = sign[(sign["probe"] == "null-B") & (sign["level"] == 0)]
    assert np.array_equal(b["value"].to_numpy(), orig.loc[b["run"]].to_numpy())


def test_sweep_seeds_reproduce_rows(table, runs, task):
    row = table[(table["probe"] == "noise-uniform") & (table["metric"] == "acc_full")].iloc[4]
    assert row["seed"] == cell_seed(7, "noise-uniform", row["level"], row["run"])
    st = perturb(
        runs[row["run"]].graph,
        "noise",
        row["level"],
        n_samples=row["repeat"] + 1,
        seed=int(row["seed"]),
    )
    acc = evaluate_batch(
        runs[row["run"]].graph,
        task.X_test,
        task.y_test,
        weights={k: v[-1:] for k, v in st.weights.items()},
        biases={k: v[-1:] for k, v in st.biases.items()},
    )
    assert 100 * acc[0] == row["value"]


def test_sweep_independent_of_scheduling_and_level_order(runs, task, table):
    from joblib import parallel_config

    probes = {"null-B": [0.5, 0.0], "noise": [0.2, 0.05]}
    with parallel_config(backend="threading", n_jobs=2):
        par = sweep([r.graph for r in runs], task.X_test, task.y_test, probes, n_repeats=3, seed=7)
    ref = table[table["probe"].isin(["null-B", "noise-uniform"])]
    key = ["probe", "level", "run", "repeat", "metric"]
    pd.testing.assert_frame_equal(
        par.sort_values(key).reset_index(drop=True), ref.sort_values(key).reset_index(drop=True)
    )


def test_sweep_errors(G, task):
    for probes, match in (
        ({"prune": [1.2]}, "'level' parameter of sweep"),
        ({"noise": [-0.1]}, "'level' parameter of sweep"),
        ({"explode": [0.1]}, "'probe' parameter of sweep"),
        ({}, "'probes' parameter of sweep"),
        ({"prune": [], "flip": [0.1]}, "'probes' parameter of sweep"),
        ({"prune": [0.1], "prune-smallest": [0.2]}, "distinct probes"),
    ):
        with pytest.raises(ns.InvalidParameterError, match=match):
            sweep(G, task.X_test, task.y_test, probes)
    with pytest.raises(ns.InvalidParameterError, match="'n_repeats' parameter of sweep"):
        sweep(G, task.X_test, task.y_test, {"prune": [0.1]}, n_repeats=0)
    with pytest.raises(ns.InvalidParameterError, match="'metrics' parameter of sweep"):
        sweep(G, task.X_test, task.y_test, {"prune": [0.1]}, metrics=["f1"])
    with pytest.raises(ns.InvalidParameterError, match="'graphs' parameter of sweep"):
        sweep([], task.X_test, task.y_test, {"prune": [0.1]})


# ----------------------------------------------------------------------------- summaries, gaps
def test_summarize_runs_then_quantiles(table):
    s = summarize(table)
    assert list(s.columns) == ["probe", "level", "metric", "median", "q25", "q75", "n"]
    assert (s["n"] == 2).all()
    assert (s["q25"] <= s["median"]).all() and (s["median"] <= s["q75"]).all()
    s2 = summarize(table, over="samples")
    assert s2.loc[s2["probe"] == "noise-uniform", "n"].eq(6).all()


def test_fold50_and_gap_e7():
    np.testing.assert_array_equal(fold50([30, 50, 96.02]), [70, 50, 96.02])
    assert complexity_gap([99.70], [96.02]) == pytest.approx(3.68)
    assert complexity_gap([99.7], [30.0]) == pytest.approx(29.7)
    assert complexity_gap([99.7], [30.0], fold=False) == pytest.approx(69.7)
    with pytest.raises(ns.InvalidParameterError, match="'acc_probe' parameter of complexity_gap"):
        complexity_gap([99.0], [])


def test_task_complexity_per_run_values(runs, task, table):
    tc = task_complexity(
        [r.graph for r in runs], task.X_test, task.y_test, probes=("binarize", "B", "E"), seed=7
    )
    pr = tc.per_run
    assert list(pr.columns) == [
        "run",
        "acc_full",
        "acc_binarize",
        "acc_B",
        "acc_E",
        "kept",
        "collapsed_binarize",
    ]
    np.testing.assert_allclose(pr["acc_full"], [r.accuracy for r in runs])
    expect = complexity_gap(pr["acc_full"], pr["acc_binarize"])
    assert tc.gaps["binarize"] == pytest.approx(expect)
    assert tc.gaps_raw["binarize"] == pytest.approx(
        np.median(pr["acc_full"]) - np.median(pr["acc_binarize"])
    )
    assert tc.dropped == ()
    best = float(pr["acc_full"].max())
    tc2 = task_complexity([r.graph for r in runs], task.X_test, task.y_test, min_accuracy=best)
    assert tc2.dropped == tuple(int(r) for r in pr["run"][pr["acc_full"] < best])
    assert tc2.medians["full"] == pytest.approx(best)
    with pytest.raises(
        ns.InvalidParameterError, match="'min_accuracy' parameter of task_complexity"
    ):
        task_complexity(runs[0].graph, task.X_test, task.y_test, min_accuracy=101)
    with pytest.raises(ns.InvalidParameterError, match="'probes' parameter of task_complexity"):
        task_complexity(runs[0].graph, task.X_test, task.y_test, probes=("noise",))


# ----------------------------------------------------------------------------- protocol
def test_bias_policies(G):
    assert set_biases(G, "keep") is G
    z = set_biases(G, "zero")
    assert all(not b.bias.any() for b in z.blocks)
    r = set_biases(G, "reinit", seed=0)
    assert all(np.abs(b.bias).max() <= 1 / np.sqrt(b.shape[1]) for b in r.blocks)
    np.testing.assert_array_equal(r.blocks[0].weight, G.blocks[0].weight)
    with pytest.raises(ns.InvalidParameterError, match="'policy' parameter of set_biases"):
        set_biases(G, "drop")


def test_train_protocol_is_seeded(task, runs):
    again = train_protocol(task, seed=0, hidden=16, epochs=3)
    np.testing.assert_array_equal(again.graph.blocks[0].weight, runs[0].graph.blocks[0].weight)
    assert again.graph.blocks[0].shape == (16, 64) and again.bias == "keep"


# ----------------------------------------------------------------------------- plots
def test_plots_return_figures(table):
    import matplotlib.pyplot as plt

    fig = plot_sweep(table, probes=["prune-smallest"], xlabel="fraction removed")
    assert len(fig.axes[0].lines) == 2
    fig2 = plot_violins(
        table.assign(probe=table["probe"].replace("prune-smallest", "none")), metric="acc_full"
    )
    assert [t.get_text() for t in fig2.axes[0].get_xticklabels()] == ["original", "B"]
    with pytest.raises(ns.InvalidParameterError, match="'probes' parameter of plot_sweep"):
        plot_sweep(table, probes=["flip-smallest"])
    plt.close("all")


def test_binarized_graph_matches_sweep(G, task, table):
    from netstruct.training import evaluate

    b = table[
        (table["probe"] == "prune-smallest")
        & (table["level"] == 0)
        & (table["metric"] == "acc_sign")
        & (table["run"] == 0)
    ]
    assert abs(
        b["value"].iloc[0] - 100 * evaluate(binarize(G), task.X_test, task.y_test)
    ) <= 100 / len(task.y_test)


def test_sweep_generator_seed_is_drawn_once(G, task):
    probes = {"noise": [0.1]}
    a = sweep(G, task.X_test, task.y_test, probes, n_repeats=2, seed=np.random.default_rng(4))
    b = sweep(G, task.X_test, task.y_test, probes, n_repeats=2, seed=np.random.default_rng(4))
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ns.InvalidParameterError, match="'seed' parameter of sweep"):
        sweep(G, task.X_test, task.y_test, probes, seed=-1)

"""Task-complexity headline protocol: enough runs, collapse reported, controls documented."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import netstruct as ns
from netstruct import probes as P

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "probes.ipynb"


def _graph(W2, b2):
    blocks = [
        ns.make_block(
            name="0.weight",
            weight=np.array([[1.0, -1.0], [-1.0, 1.0]]),
            bias=np.zeros(2),
            sources=[0, 1],
            targets=[2, 3],
        ),
        ns.make_block(
            name="2.weight",
            weight=np.asarray(W2, float),
            bias=np.asarray(b2, float),
            sources=[2, 3],
            targets=[4, 5],
        ),
    ]
    G = ns.from_torch(ns.training.mlp([2, 2, 2], seed=0))
    return G.replace_blocks(
        {
            0: {"weight": blocks[0].weight, "bias": blocks[0].bias},
            1: {"weight": blocks[1].weight, "bias": blocks[1].bias},
        }
    )


def test_collapsed_runs_are_the_binarized_constant_predictors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2)).astype(np.float32)
    y = (X[:, 1] > X[:, 0]).astype(np.int64)
    # binarized: logit0 - logit1 = 2 * sum(relu) + 2 > 0 always -> one class
    collapsed = _graph([[0.3, 0.2], [-0.4, -0.1]], [0.5, -0.5])
    # binarized: the sign pattern still separates the two half-planes
    fine = _graph([[0.7, -0.2], [-0.3, 0.9]], [0.0, 0.0])
    tc = P.task_complexity(
        [collapsed, fine, fine, collapsed, collapsed], X, y, probes=("binarize",)
    )
    assert tc.per_run["collapsed_binarize"].tolist() == [True, False, False, True, True]
    assert tc.collapsed == {"binarize": pytest.approx(0.6)}
    assert "binarize" not in P.task_complexity(fine, X, y, probes=("B",)).collapsed
    with pytest.raises(ns.InvalidParameterError, match="collapse_share"):
        P.task_complexity(fine, X, y, probes=("binarize",), collapse_share=0.4)


def test_headline_uses_at_least_50_runs_and_names_both_controls():
    assert P.HEADLINE_RUNS >= 50
    assert set(P.COLLAPSE_CONTROLS) == {"lr 1e-3", "inputs in [0, 1]"}
    assert P.COLLAPSE_CONTROLS["lr 1e-3"]["train"] == {"lr": 1e-3}
    assert P.COLLAPSE_CONTROLS["inputs in [0, 1]"]["unit_interval"] is True


def test_probes_notebook_full_mode_runs_the_headline_protocol():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    full = code.split("if FULL:", 1)[1].split("else:", 1)[0]
    assert "P.HEADLINE_RUNS" in full  # full mode: >= 50 runs per task
    assert (
        "collapsed" in code and "COLLAPSE_CONTROLS" in code
    )  # fraction beside the medians, both controls
    assert "not the headline" in text  # fast mode says so
    assert "| paper's claim |" in "".join(cells[0]["source"])  # the opening verdict table


def test_to_unit_interval_maps_pixels_and_rejects_other_ranges():
    ds = ns.datasets.Dataset(
        "t",
        np.array([[-1.0, 1.0]], np.float32),
        np.array([0]),
        np.array([[0.0, -0.5]], np.float32),
        np.array([1]),
        ("a", "b"),
    )
    out = P.to_unit_interval(ds)
    assert out.X_train.tolist() == [[0.0, 1.0]] and out.X_test.tolist() == [[0.5, 0.25]]
    bad = ns.datasets.Dataset(
        "t",
        np.array([[3.0]], np.float32),
        np.array([0]),
        np.array([[0.0]], np.float32),
        np.array([0]),
        ("a",),
    )
    with pytest.raises(ns.InvalidParameterError, match="data"):
        P.to_unit_interval(bad)

"""Issue 14's smaller holes: labels, widths, recorder, constant series, empty data, threads."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct.causal import LYAPUNOV_STATUS, TrajectoryReader, TrajectoryRecorder, lyapunov
from netstruct.training import evaluate, mlp, predict, train
from tests.reliability._outcomes import classify, record

X = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
Y = np.arange(20) % 3

BAD_TRAIN = {
    "float labels": dict(y=Y + 0.7),
    "nan labels": dict(y=np.where(Y == 0, np.nan, Y)),
    "string labels": dict(y=Y.astype(str)),
    "negative label": dict(y=Y - 1),
    "label beyond outputs": dict(y=Y + 3),
    "2-D labels": dict(y=Y[:, None]),
    "labels too short": dict(y=Y[:5]),
    "X of the wrong width": dict(X=X[:, :3]),
    "X with NaN": dict(X=np.where(X > 1, np.nan, X)),
    "X strings": dict(X=np.full((20, 4), "a")),
    "empty X": dict(X=X[:0], y=Y[:0]),
    "X_test without y_test": dict(X_test=X),
    "y_test beyond outputs": dict(X_test=X, y_test=Y + 5),
    "negative weight decay": dict(weight_decay=-1.0),
    "seed a string": dict(seed="0"),
    "callback not callable": dict(callback=3),
    "epochs 0": dict(epochs=0),
    "lr nan": dict(lr=float("nan")),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_train_refuses_bad_data(case):
    kw = {"X": X, "y": Y, "epochs": 1, "progress": False, **BAD_TRAIN[case]}
    m = mlp([4, 5, 3], seed=0)
    outcome, detail = classify(lambda: train(m, kw.pop("X"), kw.pop("y"), **kw))
    record(f"train: {case}", outcome, detail)
    assert outcome == "clear error", detail


def test_integral_float_labels_train_like_ints():
    a, b = mlp([4, 5, 3], seed=0), mlp([4, 5, 3], seed=0)
    train(a, X, Y, epochs=2, progress=False)
    train(b, X, Y.astype(np.float64), epochs=2, progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_predict_and_evaluate_refuse_wrong_width():
    m = mlp([4, 5, 3], seed=0)
    for name, call in {
        "predict": lambda: predict(m, X[:, :2]),
        "evaluate": lambda: evaluate(m, X[:, :2], Y),
        "evaluate labels": lambda: evaluate(m, X, Y + 9),
    }.items():
        outcome, detail = classify(call)
        record(f"{name}: wrong input", outcome, detail)
        assert outcome == "clear error", detail


def test_recorder_interrupted_inside_with_is_not_complete(tmp_path):
    m = mlp([4, 5, 3], seed=0)
    with pytest.raises(KeyboardInterrupt):
        with TrajectoryRecorder(m, tmp_path / "t") as rec:
            rec.record(loss=1.0)
            raise KeyboardInterrupt
    tr = TrajectoryReader(tmp_path / "t")
    assert not tr.complete and tr.n_rows == 2
    with TrajectoryRecorder(m, tmp_path / "u") as rec:
        rec.record(loss=1.0)
    assert TrajectoryReader(tmp_path / "u").complete
    record("recorder interrupted in with", "correct result")


def test_constant_series_is_flagged_not_a_number():
    res = lyapunov(np.full(200, 0.3), return_divergence=True)
    assert np.isnan(res.exponent[0]) and LYAPUNOV_STATUS[res.status[0]] == "constant"
    assert np.isnan(lyapunov(np.ones((3, 100)))).all()
    record("lyapunov of a constant series", "correct result")


def test_sweep_on_empty_data_is_a_clear_error():
    from netstruct.probes import sweep

    G = ns.from_torch(mlp([4, 5, 3], seed=0))
    for name, (Xe, ye) in {
        "(0, 4)": (X[:0], Y[:0]),
        "[]": ([], []),
        "strings": (np.full((2, 4), "a"), Y[:2]),
    }.items():
        outcome, detail = classify(
            lambda a=Xe, b=ye: sweep(G, a, b, {"prune": [0.5]}, scheduler="serial")
        )
        record(f"sweep on {name} data", outcome, detail)
        assert outcome == "clear error", detail


_THREADS = r"""
import numpy as np, torch, netstruct as ns
from netstruct.training import mlp, train
X = np.random.default_rng(0).standard_normal((256, 32)).astype(np.float32)
y = np.arange(256) % 4
def weights():
    m = mlp([32, 64, 4], seed=0)
    train(m, X, y, epochs=2, progress=False, seed=0)
    return [p.detach().clone() for p in m.parameters()]
n0 = torch.get_num_threads()
before = weights()
G = ns.from_torch(mlp([32, 64, 4], seed=0))
ns.randomize(G, "curveball", seed=0)  # parallel numba kernels (OpenMP layer)
ns.randomize(G, "A", seed=0)
n1 = torch.get_num_threads()
after = weights()
print(n0, n1, all(torch.equal(a, b) for a, b in zip(before, after)))
"""


def test_seeded_training_is_the_same_before_and_after_a_kernel_under_one_thread():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [sys.executable, "-c", _THREADS], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    n0, n1, same = out.stdout.split()[-3:]
    record(
        "torch threads kept by kernels",
        "correct result" if (n0, n1, same) == ("1", "1", "True") else "silent wrong",
    )
    assert (n0, n1, same) == ("1", "1", "True")

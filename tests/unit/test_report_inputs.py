"""``netstruct run`` rejects bad input at the start, before any training (issue: main job)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct import training
from netstruct.cli import main


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything is trained: the errors must come before any work."""

    def boom(*args, **kwargs):
        raise AssertionError("training started before the input was checked")

    monkeypatch.setattr(training, "train", boom)


@pytest.fixture
def iris_npz(tmp_path):
    ds = ns.datasets.load_iris()
    p = tmp_path / "iris.npz"
    np.savez(p, X_train=ds.X_train, y_train=ds.y_train, X_test=ds.X_test, y_test=ds.y_test)
    return p


def _run(tmp_path, capsys, *args):
    out = tmp_path / "rep"
    rc = main(["run", "--out", str(out), "--no-progress", "--quick", "--epochs", "2", *args])
    return rc, capsys.readouterr().err, out


def test_model_that_does_not_fit_the_default_data(tmp_path, capsys, no_training):
    model = tmp_path / "m.nsm"
    ns.save_model(training.mlp([4, 8, 3], seed=0), model)  # 4 inputs; digits has 64 features
    rc, err, out = _run(tmp_path, capsys, "--model", str(model))
    assert rc == 2
    assert "--model" in err and "cannot run on the data" in err and "--data" in err
    assert not out.exists()  # nothing written either


def test_model_with_too_few_outputs(tmp_path, capsys, iris_npz, no_training):
    model = tmp_path / "m.nsm"
    ns.save_model(training.mlp([4, 8, 2], seed=0), model)
    rc, err, _ = _run(tmp_path, capsys, "--model", str(model), "--data", str(iris_npz))
    assert rc == 2 and "2 outputs" in err and "3 classes" in err


def test_recurrent_model_needs_sequences(tmp_path, capsys, iris_npz, no_training):
    model = tmp_path / "lstm.nsm"
    ns.save_model(training.recurrent_classifier("LSTM", 4, 5, 3, seed=0), model)
    rc, err, _ = _run(tmp_path, capsys, "--model", str(model), "--data", str(iris_npz))
    assert rc == 2 and "recurrent" in err and "(n_samples, steps, features)" in err


def test_probes_step_on_recurrent_model_is_rejected_early(tmp_path, capsys, no_training):
    ds = ns.datasets.load_iris()
    p = tmp_path / "seq.npz"
    np.savez(
        p,
        X_train=ds.X_train.reshape(-1, 2, 2),
        y_train=ds.y_train,
        X_test=ds.X_test.reshape(-1, 2, 2),
        y_test=ds.y_test,
    )
    model = tmp_path / "lstm.nsm"
    ns.save_model(training.recurrent_classifier("LSTM", 2, 5, 3, seed=0), model)
    rc, err, _ = _run(
        tmp_path, capsys, "--model", str(model), "--data", str(p), "--steps", "probes"
    )
    assert rc == 2 and "--steps probes" in err and "feed-forward" in err


def test_model_files_netstruct_cannot_read(tmp_path, capsys, no_training, monkeypatch):
    pt = tmp_path / "m.pt"
    torch.save(torch.nn.Linear(4, 3).state_dict(), pt)
    rc, err, _ = _run(tmp_path, capsys, "--model", str(pt))
    assert rc == 2 and "not written by netstruct" in err
    rc, err, _ = _run(tmp_path, capsys, "--model", str(tmp_path / "missing.nsm"))
    assert rc == 2 and "no file" in err
    # a model saved with a custom layer whose handler is not registered in this session
    from netstruct.convert import handlers

    model = tmp_path / "m.nsm"
    ns.save_model(training.mlp([4, 8, 3], seed=0), model)
    monkeypatch.delitem(handlers._BY_NAME, "Linear")
    rc, err, _ = _run(tmp_path, capsys, "--model", str(model))
    assert rc == 2 and "not registered" in err and "register_module_handler" in err


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"X_train": np.zeros((5, 4))}, "lacks arrays"),
        (
            {
                "X_train": np.full((6, 4), np.nan),
                "y_train": np.zeros(6, int),
                "X_test": np.zeros((2, 4)),
                "y_test": np.array([0, 1]),
            },
            "NaN",
        ),
        (
            {
                "X_train": np.zeros((6, 4)),
                "y_train": np.zeros(5, int),
                "X_test": np.zeros((2, 4)),
                "y_test": np.array([0, 1]),
            },
            "one label per row",
        ),
        (
            {
                "X_train": np.zeros((6, 4)),
                "y_train": np.full(6, 0.5),
                "X_test": np.zeros((2, 4)),
                "y_test": np.array([0, 1]),
            },
            "integer class labels",
        ),
        (
            {
                "X_train": np.zeros((6, 4)),
                "y_train": np.zeros(6, int),
                "X_test": np.zeros((2, 3)),
                "y_test": np.array([0, 1]),
            },
            "must match",
        ),
        (
            {
                "X_train": np.zeros(6),
                "y_train": np.zeros(6, int),
                "X_test": np.zeros((2, 3)),
                "y_test": np.array([0, 1]),
            },
            "n_features",
        ),
    ],
)
def test_bad_data_files(tmp_path, capsys, no_training, arrays, match):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    rc, err, _ = _run(tmp_path, capsys, "--data", str(p))
    assert rc == 2 and "--data" in err and match in err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--epochs", "0"], "'epochs' parameter of netstruct run"),
        (["--runs", "0"], "'runs' parameter of netstruct run"),
        (["--seed", "-1"], "'seed' parameter of netstruct run"),
        (["--scheduler", "bogus"], "'scheduler' parameter of netstruct run"),
        (["--steps", "train,bogus"], "--steps: unknown step"),
    ],
)
def test_bad_options_name_the_parameter(tmp_path, capsys, no_training, args, match):
    main(["run", "--out", str(tmp_path / "r"), "--no-progress", *args])
    assert match in capsys.readouterr().err


def test_user_mlp_runs_probes_and_lattice(tmp_path, iris_npz):
    """A user's MLP goes through the probes (one run) and the lattice step."""
    import json

    mlp = training.mlp([4, 8, 3], seed=0)
    training.train(mlp, *_iris_train(), epochs=3, progress=False)
    ns.save_model(mlp, tmp_path / "mlp.nsm")
    out = tmp_path / "r1"
    assert (
        main(
            [
                "run",
                "--out",
                str(out),
                "--no-progress",
                "--quick",
                "--model",
                str(tmp_path / "mlp.nsm"),
                "--data",
                str(iris_npz),
                "--steps",
                "probes,lattice",
            ]
        )
        == 0
    )
    numbers = json.loads((out / "numbers.json").read_text())
    assert numbers["probes"]["model"] == "user" and len(numbers["probes"]["runs"]) == 1
    assert numbers["probes"]["aggregation"] == "samples"
    assert numbers["lattice"]["models"] == ["user"] and numbers["lattice"]["protect_io"] is False


def test_user_lstm_on_sequences(tmp_path):
    """A user's LSTM on sequence data: lattice pruning with protected inputs; probes refused."""
    import json

    ds = ns.datasets.load_iris()
    p = tmp_path / "seq.npz"
    np.savez(
        p,
        X_train=ds.X_train.reshape(-1, 2, 2),
        y_train=ds.y_train,
        X_test=ds.X_test.reshape(-1, 2, 2),
        y_test=ds.y_test,
    )
    ns.save_model(training.recurrent_classifier("LSTM", 2, 6, 3, seed=0), tmp_path / "lstm.nsm")
    out = tmp_path / "r2"
    assert (
        main(
            [
                "run",
                "--out",
                str(out),
                "--no-progress",
                "--quick",
                "--model",
                str(tmp_path / "lstm.nsm"),
                "--data",
                str(p),
                "--steps",
                "probes,lattice",
            ]
        )
        == 2
    )  # probes named: rejected
    assert (
        main(
            [
                "run",
                "--out",
                str(out),
                "--no-progress",
                "--quick",
                "--model",
                str(tmp_path / "lstm.nsm"),
                "--data",
                str(p),
                "--steps",
                "lattice",
            ]
        )
        == 0
    )
    numbers = json.loads((out / "numbers.json").read_text())
    assert numbers["lattice"]["protect_io"] is True and numbers["lattice"]["models"] == ["user"]


def _iris_train():
    ds = ns.datasets.load_iris()
    return ds.X_train, ds.y_train


def test_report_describes_a_users_model_as_theirs(tmp_path, iris_npz):
    """A user's model is "your model", not trained by netstruct; p-values at their floor read < 1/(n+1)."""
    mlp = training.mlp([4, 8, 3], seed=0)
    training.train(mlp, *_iris_train(), epochs=3, progress=False)
    ns.save_model(mlp, tmp_path / "mlp.nsm")
    out = tmp_path / "r3"
    assert main(["run", "--out", str(out), "--no-progress", "--quick", "--model", str(tmp_path / "mlp.nsm"),
                 "--data", str(iris_npz), "--steps", "train,nulls,netsci"]) == 0  # fmt: skip
    html = (out / "report.html").read_text()
    assert "netstruct did not train it" in html and "Adam (lr 0.01)" not in html
    assert "dashed: your model" in html and "trained network" not in html
    assert "One-sided empirical p-values" in html and "your model: p" in html


def test_p_values_at_their_floor_read_below_one_over_n_plus_one():
    from netstruct.report._wording import p_value_text

    assert p_value_text(1 / 6, 5).startswith("p < 1/(n+1) = 0.167")
    assert p_value_text(2 / 6, 5) == "p = 0.333"

"""Training helpers and the netstruct command (export, info, run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import netstruct as ns
from netstruct import datasets, training
from netstruct.cli import main


def test_training_is_seeded_and_learns():
    ds = datasets.load_iris()
    accs = []
    for _ in range(2):
        m = training.mlp([4, 16, 3], seed=0)
        r = training.train(m, ds.X_train, ds.y_train, epochs=20, batch_size=16, seed=1, X_test=ds.X_test, y_test=ds.y_test, progress=False)
        accs.append(r.test_accuracy[-1])
    assert accs[0] == accs[1] and accs[0] > 0.8


def test_training_rejects_bad_input():
    m = training.mlp([4, 3], seed=0)
    with pytest.raises(ns.InvalidParameterError, match="'epochs'"):
        training.train(m, np.zeros((4, 4)), np.zeros(4, int), epochs=0)
    with pytest.raises(ns.InvalidParameterError, match="NaN"):
        training.train(m, np.full((4, 4), np.nan), np.zeros(4, int), epochs=1)


def test_recurrent_classifier_exports():
    m = training.recurrent_classifier("LSTM", 8, 4, 3, seed=0)
    G = ns.from_torch(m)
    assert G.provenance["model_class"] == "netstruct.models.RecurrentClassifier"
    x = torch.randn(2, 5, 8)
    assert torch.allclose(ns.to_torch(G)(x), m(x), atol=1e-6)


def test_cli_export_and_info(tmp_path, capsys):
    model = tmp_path / "m.nsm"
    ns.save_model(training.mlp([4, 3, 2], seed=0), model)
    assert main(["export", str(model), "-o", str(tmp_path / "g.nsg"), "--graphml", str(tmp_path / "g.graphml")]) == 0
    assert (tmp_path / "g.graphml").exists()
    assert main(["info", str(tmp_path / "g.nsg")]) == 0
    out = capsys.readouterr().out
    assert "0.weight" in out and "hidden" in out
    assert main(["info", str(tmp_path / "missing.nsg")]) == 2
    assert "no file" in capsys.readouterr().err


def test_cli_run_small(tmp_path):
    import pandas as pd

    out = tmp_path / "rep"
    assert main(["run", "--out", str(out), "--dataset", "iris", "--epochs", "2", "--no-progress", "--quick",
                 "--steps", "prune,nulls"]) == 0
    numbers = json.loads((out / "numbers.json").read_text())
    assert set(numbers["train"]["accuracy"]) == {"mlp"}
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 4
    assert (out / "graphs" / "mlp.graphml").exists() and (out / "figures" / "pruning_accuracy.pdf").exists()
    # every number in the tables is the one in numbers.json
    table = pd.read_csv(out / "tables" / "pruning.csv")
    pd.testing.assert_frame_equal(table, pd.DataFrame(numbers["prune"]["pruning"]), check_dtype=False)
    nulls = pd.read_csv(out / "tables" / "null_models.csv").set_index("null model")
    for model, v in numbers["nulls"]["null_models"].items():
        assert nulls.loc[model, "median accuracy"] == pytest.approx(v["median"])
    assert f"{numbers['train']['accuracy']['mlp']:.4g}" in html


def test_cli_run_rejects_missing_data_early(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "none.npz")]) == 2
    assert "no file" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "r"), "--steps", "bogus"]) == 2

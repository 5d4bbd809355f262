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
        r = training.train(
            m,
            ds.X_train,
            ds.y_train,
            epochs=20,
            batch_size=16,
            seed=1,
            X_test=ds.X_test,
            y_test=ds.y_test,
            progress=False,
        )
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
    assert (
        main(
            [
                "export",
                str(model),
                "-o",
                str(tmp_path / "g.nsg"),
                "--graphml",
                str(tmp_path / "g.graphml"),
            ]
        )
        == 0
    )
    assert (tmp_path / "g.graphml").exists()
    assert main(["info", str(tmp_path / "g.nsg")]) == 0
    out = capsys.readouterr().out
    assert "0.weight" in out and "hidden" in out
    assert main(["info", str(tmp_path / "missing.nsg")]) == 2
    assert "no file" in capsys.readouterr().err


def test_cli_run_small(tmp_path):
    import pandas as pd

    out = tmp_path / "rep"
    assert (
        main(
            [
                "run",
                "--out",
                str(out),
                "--dataset",
                "iris",
                "--epochs",
                "2",
                "--no-progress",
                "--quick",
                "--steps",
                "prune,nulls",
            ]
        )
        == 0
    )
    numbers = json.loads((out / "numbers.json").read_text())
    assert set(numbers["train"]["accuracy (%)"]) == {"mlp"}
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 4
    assert (out / "graphs" / "mlp.graphml").exists() and (
        out / "figures" / "pruning_accuracy.pdf"
    ).exists()
    # every number in the tables is the one in numbers.json
    table = pd.read_csv(out / "tables" / "pruning.csv")
    pd.testing.assert_frame_equal(
        table, pd.DataFrame(numbers["prune"]["pruning"]), check_dtype=False
    )
    nulls = pd.read_csv(out / "tables" / "null_models.csv").set_index("null model")
    for model, v in numbers["nulls"]["null_models (%)"].items():
        assert nulls.loc[model, "median accuracy (%)"] == pytest.approx(v["median"])
    assert f"{numbers['train']['accuracy (%)']['mlp']:.4g}" in html
    # one accuracy unit (%) throughout: no accuracy column or caption as a fraction
    structured = pd.read_csv(out / "tables" / "structured_pruning.csv")
    pd.testing.assert_frame_equal(
        structured, pd.DataFrame(numbers["prune"]["structured_pruning"]), check_dtype=False
    )
    assert (structured["parameters (shrunk)"] < structured["parameters (dense)"]).all()
    for stem in ("pruning", "structured_pruning", "null_models", "models"):
        cols = pd.read_csv(out / "tables" / f"{stem}.csv").columns
        assert all("(%)" in c for c in cols if "accuracy" in c or c in ("q25", "q75")), (stem, cols)
    assert 1 < numbers["train"]["accuracy (%)"]["mlp"] <= 100


#: CSV tables of the report and where numbers.json holds the same rows
TABLES = {
    "pruning": ("prune", "pruning"),
    "structured_pruning": ("prune", "structured_pruning"),
    "legcnet": ("causal", "legcnet"),
    "probes_runs": ("probes", "runs"),
    "probes_summary": ("probes", "summary"),
    "task_complexity": ("probes", "complexity"),
    "lattice_irreducibles": ("lattice", "irreducibles"),
    "lattice_nulls": ("lattice", "nulls"),
    "lattice_pruning": ("lattice", "pruning"),
}


def _check_report(out):
    """Every table matches numbers.json; every figure is embedded in the HTML as a PNG."""
    import base64
    import re

    import pandas as pd

    numbers = json.loads((out / "numbers.json").read_text())
    html = (out / "report.html").read_text()
    for stem, (step, key) in TABLES.items():
        if step not in numbers:
            continue
        table = pd.read_csv(out / "tables" / f"{stem}.csv")
        expected = pd.DataFrame(numbers[step][key]).reindex(columns=table.columns)
        pd.testing.assert_frame_equal(table, expected, check_dtype=False, obj=stem)
    for model, acc in numbers["train"]["accuracy (%)"].items():
        assert f"{acc:.4g}" in html, model
    # self-contained: one embedded PNG per figure file, no external resources
    stems = sorted(p.stem for p in (out / "figures").glob("*.pdf"))
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == len(stems) > 0
    assert all(base64.b64decode(im)[:8] == b"\x89PNG\r\n\x1a\n" for im in images)
    for stem in stems:
        assert f"figures/{stem}.pdf" in html and (out / "figures" / f"{stem}.svg").exists()
    assert "src='http" not in html and "href='http" not in html
    return numbers, html


def test_cli_run_probes_and_lattice(tmp_path):
    out = tmp_path / "rep"
    assert (
        main(
            [
                "run",
                "--out",
                str(out),
                "--dataset",
                "iris",
                "--epochs",
                "2",
                "--no-progress",
                "--quick",
                "--runs",
                "2",
                "--steps",
                "lattice,probes",
            ]
        )
        == 0
    )
    numbers, html = _check_report(out)
    assert list(numbers["seconds"]) == [
        "train",
        "export",
        "probes",
        "lattice",
    ]  # train/export pulled in
    probes = numbers["probes"]
    assert len(probes["runs"]) == 2 and probes["aggregation"] == "runs"
    assert {r["probe"] for r in probes["summary"]} == {
        "prune-smallest",
        "prune-random",
        "noise-uniform",
        "flip-smallest",
        "flip-random",
        "null-B",
        "null-E",
    }
    assert all(r["full q25"] <= r["full median"] <= r["full q75"] for r in probes["summary"])
    tasks = [r["task"] for r in probes["complexity"]]
    assert (
        tasks[0] == "all classes" and len(tasks) == 3
    )  # iris: three classes, an easy and a hard pair
    assert [r["folded"] for r in probes["complexity"]] == [False, True, True]
    for r in probes["complexity"]:
        assert (
            r["gap binarize"] == pytest.approx(r["full median"] - r["binarized median"])
            or r["folded"]
        )
        assert f"{r['gap binarize']:.4g}" in html
    for stem in (
        "probes_prune",
        "probes_noise",
        "probes_flip",
        "probes_randomize",
        "task_complexity",
        "lattice_pruning",
        "lattice_persistence",
    ):
        assert (out / "figures" / f"{stem}.pdf").exists()
    assert (out / "tables" / "probes_sweep.csv").exists() and (
        out / "tables" / "lattice_nulls.csv"
    ).exists()
    lattice = numbers["lattice"]
    assert lattice["models"] == ["mlp"] and not lattice["failed"]
    rules = {r["rule"] for r in lattice["pruning"]}
    assert {"dense", "lattice, binary (block contexts)", "magnitude, entries (matched)"} <= rules
    for level in (0.5, 0.8):  # baselines are pruned to the lattice rule's realised sparsity
        rows = {r["rule"]: r for r in lattice["pruning"] if r["target sparsity"] == level}
        ref = rows["lattice, binary (block contexts)"]["sparsity"]
        assert rows["magnitude, entries (matched)"]["sparsity"] == pytest.approx(ref, abs=0.02)
        assert all(0 <= r["test accuracy (%)"] <= 100 for r in rows.values())


def test_cli_run_lattice_on_the_lstm(tmp_path):
    out = tmp_path / "rep"
    assert (
        main(
            [
                "run",
                "--out",
                str(out),
                "--dataset",
                "digits",
                "--epochs",
                "2",
                "--no-progress",
                "--quick",
                "--steps",
                "lattice",
            ]
        )
        == 0
    )
    numbers, _ = _check_report(out)
    lattice = numbers["lattice"]
    assert lattice["models"] == ["lstm"] and lattice["protect_io"] is True
    assert {r["model"] for r in lattice["irreducibles"]} == {"mlp", "lstm"}
    structured = [r for r in lattice["pruning"] if "structured" in r["rule"]]
    dense = next(r for r in lattice["pruning"] if r["rule"] == "dense")
    assert structured and all(r["parameters"] <= dense["parameters"] for r in structured)
    for level in (0.5, 0.8):  # the units rule is always shown beside its unit-count controls
        rules = {r["rule"] for r in lattice["pruning"] if r["target sparsity"] == level}
        assert {
            "lattice, units irreducible in every block (shrunk)",
            "random units (matched count, shrunk)",
            "magnitude units (matched count, shrunk)",
        } <= rules


def test_cli_run_all_steps_report_is_consistent(tmp_path):
    out = tmp_path / "rep"
    assert (
        main(
            [
                "run",
                "--out",
                str(out),
                "--dataset",
                "iris",
                "--epochs",
                "2",
                "--no-progress",
                "--quick",
                "--runs",
                "2",
            ]
        )
        == 0
    )
    numbers, _ = _check_report(out)
    assert list(numbers["seconds"]) == [
        "train",
        "export",
        "nulls",
        "probes",
        "lattice",
        "causal",
        "netsci",
        "prune",
    ]
    json.dumps(numbers, allow_nan=False)  # strict JSON: no NaN
    # LEGCNet: both decision rules beside their permutation null, and the chance/magnitude controls
    legcnet = {r["rule"].split(" (")[0].split(":")[0]: r for r in numbers["causal"]["legcnet"]}
    assert legcnet["recommended"]["kept under permuted effect"] is not None
    assert legcnet["LEGCNet-PT, authors' rule"]["kept under permuted effect"] is not None
    assert {"magnitude", "random"} <= set(legcnet)
    assert list(legcnet)[1] == "recommended"  # the calibrated rule is the first (default) one


def test_resolve_steps_pulls_in_what_steps_need():
    from netstruct.report.job import STEPS, resolve_steps

    assert resolve_steps(("prune",)) == ["train", "export", "prune"]
    assert resolve_steps(("probes", "train")) == ["train", "export", "probes"]
    assert resolve_steps(()) == list(STEPS)
    with pytest.raises(ns.InvalidParameterError, match="--steps"):
        resolve_steps(("nope",))


def test_cli_run_rejects_missing_data_early(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "none.npz")]) == 2
    assert "no file" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "r"), "--steps", "bogus"]) == 2

"""The main job never mixes the files of two runs in one output folder (issue 14, item 8)."""

from __future__ import annotations

import json

import pytest

from netstruct.exceptions import InvalidParameterError
from netstruct.report.job import JobOptions, prepare
from tests.reliability._outcomes import record


def test_an_earlier_runs_files_are_removed(tmp_path):
    out = tmp_path / "r"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.pdf").write_text("old")
    (out / "numbers.json").write_text(json.dumps({"netstruct_version": "0"}))
    (out / "notes.txt").write_text("the user's own")
    prepare(
        JobOptions(out=str(out), steps=("train",), quick=True, scheduler="serial", progress=False)
    )
    assert not (out / "figures" / "old.pdf").exists() and not (out / "numbers.json").exists()
    assert (out / "notes.txt").read_text() == "the user's own"
    record("run into a folder of an earlier run", "correct result")


def test_a_folder_with_foreign_outputs_is_refused(tmp_path):
    out = tmp_path / "r"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "mine.csv").write_text("x")
    with pytest.raises(InvalidParameterError, match="mix"):
        prepare(
            JobOptions(
                out=str(out), steps=("train",), quick=True, scheduler="serial", progress=False
            )
        )
    assert (out / "tables" / "mine.csv").exists()
    record("run into a folder with foreign tables", "clear error")

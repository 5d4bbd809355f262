"""The README's Python examples run as written (with fewer training epochs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.torch


def test_readme_python_examples_run(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    code = "\n".join(blocks).replace("epochs=10", "epochs=2")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert (tmp_path / "pruned.nsg").exists() and (tmp_path / "pruned.graphml").exists()
    assert scope["H"].n_edges < scope["G"].n_edges

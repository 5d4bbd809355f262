"""The shrink examples of the README and the docs really shrink (and their queries match).

The first Python block of the README quickstart, of docs/quickstart.md and of docs/index.md
is run as written (training shortened to one epoch); the shrunk module must have fewer
parameters than the masked one. The tour notebook asserts the same in its own cell.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]


def _first_block(path: Path, after: str = "") -> str:
    text = path.read_text(encoding="utf-8")
    text = text[text.index(after) :] if after else text
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


@pytest.mark.parametrize(
    "path, after",
    [("README.md", "## Quickstart"), ("docs/quickstart.md", ""), ("docs/index.md", "")],
)
def test_shrink_example_shrinks(path, after, tmp_path, monkeypatch):
    import netstruct as ns

    code = _first_block(ROOT / path, after).replace("epochs=10", "epochs=1")
    assert "shrink=True" in code
    monkeypatch.chdir(tmp_path)  # the examples write files
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ns.exceptions.EmptySelectionWarning)  # every query matches
        with ns.config_context(progress=False):
            exec(compile(code, path, "exec"), scope)
    H, small = scope["H"], scope["small"]
    masked = ns.to_torch(H)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(small) < n(masked)


def test_readme_structured_pruning_example_hits_its_budget_and_equals_the_masked_model():
    import torch

    import netstruct as ns

    pytest.importorskip("transformers")
    code = _first_block(ROOT / "README.md", "## Structured pruning, physically smaller")
    scope: dict = {"torch": torch, "ns": ns}
    exec(compile(code, "README.md", "exec"), scope)
    GB, plan, smaller, ids = scope["GB"], scope["plan"], scope["smaller"], scope["ids"]
    target = int(0.8 * ns.graph_params(GB))
    assert abs(sum(p.numel() for p in smaller.parameters()) - target) <= 0.01 * target
    with torch.no_grad():
        for a, b in zip(ns.to_torch(plan.apply(GB))(ids), smaller(ids)):
            assert torch.allclose(a, b, atol=1e-5)

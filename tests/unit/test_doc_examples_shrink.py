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

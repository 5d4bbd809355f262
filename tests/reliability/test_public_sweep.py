"""Every public callable of ``netstruct`` refuses a nonsense first argument with a clear error.

A sweep over ``netstruct.__all__``: each function or class that takes a required positional
argument is called with ``object()`` and with ``None`` there (the other required positional
arguments ``None`` too), and must raise a netstruct error with a message — never return, never a
raw ``AttributeError``/``TypeError`` from deep inside. Callables whose required keyword-only
arguments make the call incomplete anyway are left to the per-parameter suite.
"""

from __future__ import annotations

import inspect
import warnings

import pytest

import netstruct as ns
from tests.reliability._outcomes import classify, record


def _targets() -> list[tuple[str, int]]:
    out = []
    for name in ns.__all__:
        f = getattr(ns, name)
        if not callable(f) or (inspect.isclass(f) and issubclass(f, BaseException)):
            continue
        try:
            sig = inspect.signature(f)
        except (TypeError, ValueError):
            continue
        ps = list(sig.parameters.values())
        required = [
            p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty
        ]  # fmt: skip
        kw_required = [p for p in ps if p.kind == p.KEYWORD_ONLY and p.default is p.empty]
        if required and not kw_required:
            out.append((name, len(required)))
    return out


TARGETS = _targets()


def test_the_sweep_covers_the_public_api():
    assert len(TARGETS) >= 40, [n for n, _ in TARGETS]


@pytest.mark.parametrize("name, n_args", TARGETS)
@pytest.mark.parametrize("bad", ["object", "None"])
def test_nonsense_first_argument_gets_a_clear_error(name, n_args, bad):
    value = object() if bad == "object" else None
    f = getattr(ns, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outcome, detail = classify(lambda: f(value, *[None] * (n_args - 1)), timeout=60)
    record(f"{name}({bad}, ...)", outcome, detail)
    assert outcome == "clear error", detail

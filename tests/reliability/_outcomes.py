"""Classify what a call does with bad input, and count the outcomes of the whole suite.

Outcomes
--------
``clear error``     a netstruct error (or FileNotFoundError) with a message
``correct result``  the call returned, and the case's check says the result is right
``silent wrong``    the call returned for input it should have refused, or a wrong result
``hang``            no answer within the case's time limit
``raw traceback``   any other exception (what a user would see as a Python traceback)

The counts are printed at the end of the pytest run (see ``conftest.py``) and written as JSON
to ``$NETSTRUCT_RELIABILITY_COUNTS`` when that variable is set.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from netstruct.exceptions import NetstructError

OUTCOMES = ("clear error", "correct result", "silent wrong", "hang", "raw traceback")
GOOD = ("clear error", "correct result")
COUNTS: Counter[str] = Counter()
DETAILS: list[tuple[str, str, str]] = []


def classify(
    call: Callable[[], Any],
    check: Callable[[Any], bool] | None = None,
    *,
    timeout: float = 30.0,
) -> tuple[str, str]:
    """(outcome, detail) of ``call()``; ``check(result)`` True means the result is right.

    Without ``check`` the input is one the call must refuse, so any result is silently wrong.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - classified below
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return "hang", f"no answer in {timeout:g} s"
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, (NetstructError, FileNotFoundError)) and str(exc):
            return "clear error", f"{type(exc).__name__}: {str(exc)[:160]}"
        return "raw traceback", f"{type(exc).__name__}: {str(exc)[:160]}"
    if check is not None:
        try:
            ok = bool(check(box["value"]))
        except Exception as exc:  # noqa: BLE001
            return "silent wrong", f"check failed: {type(exc).__name__}: {exc}"
        return ("correct result", "") if ok else ("silent wrong", f"result {box['value']!r:.160}")
    return "silent wrong", f"accepted; returned {type(box['value']).__name__}"


def record(case: str, outcome: str, detail: str = "") -> str:
    COUNTS[outcome] += 1
    DETAILS.append((case, outcome, detail))
    return outcome

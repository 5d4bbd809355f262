"""Print (and optionally write) the outcome counts of the bad-input suite at the end of the run."""

from __future__ import annotations

import json
import os

from tests.reliability._outcomes import COUNTS, DETAILS, OUTCOMES


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not COUNTS:
        return
    tr = terminalreporter
    tr.section("netstruct bad-input suite: outcomes")
    for o in OUTCOMES:
        tr.write_line(f"{o:<16}{COUNTS.get(o, 0):>7}")
    tr.write_line(f"{'total':<16}{sum(COUNTS.values()):>7}")
    for case, outcome, detail in DETAILS:
        if outcome not in ("clear error", "correct result"):
            tr.write_line(f"  {outcome}: {case}: {detail}")
    path = os.environ.get("NETSTRUCT_RELIABILITY_COUNTS")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "counts": {o: COUNTS.get(o, 0) for o in OUTCOMES},
                    "not_good": [
                        d for d in DETAILS if d[1] not in ("clear error", "correct result")
                    ],
                },
                fh,
                indent=1,
            )

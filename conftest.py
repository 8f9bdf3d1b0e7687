"""Shared pytest hooks: per-notebook wall times for nbval runs, and nbval's executions for the book.

With ``SPOKENSTYLE_TIMINGS=path.json`` set, the time of every notebook cell that nbval runs
is summed per notebook and written to that file at the end of the session (tools/nbtimes.py
prints and checks it; ``make runtimes`` records it in reports/). With
``SPOKENSTYLE_NB_CACHE=folder`` set, every notebook that passes is stored, outputs and all, in
that jupyter-cache, where the book build finds it instead of running it again
(``tools/nbval_cache.py``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections import defaultdict
from pathlib import Path

pytest_plugins = ["tools.nbval_cache"]

_times: dict[str, float] = defaultdict(float)
_cells: dict[str, int] = defaultdict(int)
_failed: set[str] = set()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if not path.endswith(".ipynb"):
        return
    _times[path] += report.duration  # setup + call + teardown (kernel start is in setup)
    if report.when == "call":
        _cells[path] += 1
    if report.failed:
        _failed.add(path)


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("SPOKENSTYLE_TIMINGS")
    if not target or not _times:
        return
    from spokenstyle import runtime

    device = runtime.get_device()
    out = {
        "device": runtime.device_name(device),
        "profile": runtime.get_profile(),
        "measured": _dt.date.today().isoformat(),
        "command": "make test (nbval phase)",
        "notebooks": {Path(p).name: {"seconds": round(t, 2), "cells": _cells[p], "passed": p not in _failed}
                      for p, t in sorted(_times.items())},
    }
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(out, indent=2) + "\n")

"""A pytest plugin: nbval's one execution of a notebook becomes the book's executed notebook.

    SPOKENSTYLE_NB_CACHE=_build/.jupyter_cache pytest --nbval-lax chapters

``make test`` runs every notebook twice without it: once under nbval (the test) and once more
when Jupyter Book executes it for the HTML, about four of its fifteen minutes. With this plugin
the nbval run executes cells as nbclient does (``store_history=True``), records every message the kernel sends for every cell, feeds them to nbclient's
own output handling (:meth:`nbclient.NotebookClient.process_message`: streams, displays,
``clear_output``, display updates, widget state, exactly what Jupyter Book's executor keeps),
and stores the notebook in Jupyter Book's jupyter-cache. The book build that follows finds it
there (the cache matches a notebook by the hash of its code cells) and does not run it again.

Only a notebook whose every cell passed is stored; one that failed, was skipped, timed out or
opened an Output widget (which needs a live front end) is left for the book build to execute,
so the book never shows outputs that nbval did not fully produce.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ENV = "SPOKENSTYLE_NB_CACHE"

_recorders: dict[str, "Recorder"] = {}


class Recorder:
    """Collects one notebook's outputs from the kernel messages that nbval reads."""

    def __init__(self, path: Path, nb: Any) -> None:
        from nbclient import NotebookClient

        self.path = path
        self.nb = copy.deepcopy(nb)
        # a client that is never started: only its message handling is used
        self.client = NotebookClient(self.nb, record_timing=False, store_widget_state=True)
        self.client.comm_open_handlers = {"jupyter.widget": self._on_widget_open}
        # nbval numbers code cells; nbclient indexes all cells (display updates look cells up by it)
        self.cell_index = [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code"]
        self.code_cells = [self.nb.cells[i] for i in self.cell_index]
        self.current: int | None = None
        self.msg_id: str | None = None
        self.passed: set[int] = set()
        self.spoiled: str | None = None  # why this notebook must not be cached
        self.started = time.perf_counter()

    def _on_widget_open(self, msg: dict[str, Any]) -> None:
        state = msg["content"]["data"].get("state", {})
        if state.get("_model_name") == "OutputModel":
            self.spoiled = "an Output widget needs a live front end"
        return None

    def feed(self, msg: dict[str, Any]) -> None:
        from nbclient.exceptions import CellExecutionComplete

        if self.spoiled or self.current is None or msg.get("parent_header", {}).get("msg_id") != self.msg_id:
            return
        try:
            self.client.process_message(msg, self.code_cells[self.current], self.cell_index[self.current])
        except CellExecutionComplete:
            pass
        except Exception as err:  # a recording problem must never fail the test: the book runs it instead
            self.spoiled = f"recording failed: {type(err).__name__}: {err}"

    def start_cell(self, index: int) -> None:
        """Called before nbval runs code cell ``index``: what nbclient resets per cell."""
        self.current = index
        self.client.clear_before_next_output = False

    def notebook(self) -> Any:
        """The executed notebook, as nbclient would have left it."""
        from ipykernel.ipkernel import IPythonKernel

        self.client.set_widgets_metadata()
        self.nb.metadata["language_info"] = dict(IPythonKernel.language_info)
        return self.nb


def _recorder(item: Any) -> Recorder | None:
    if not os.environ.get(ENV) or not hasattr(item, "cell_num"):
        return None
    return _recorders.get(str(item.parent.fspath))


def pytest_configure(config: Any) -> None:
    if not os.environ.get(ENV):
        return
    from nbval.kernel import RunningKernel
    from nbval.plugin import IPyNbFile

    get_message = IPyNbFile.get_kernel_message

    def execute_cell_input(self, cell_input, allow_stdin=None):
        # as nbval does, but with store_history=True, as nbclient and every notebook front end
        # run cells: IPython's "a trailing ; hides the result" reads the history, and so do
        # execution counts, `_` and Out[]
        self._last_msg_id = self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin,
                                            stop_on_error=False)
        return self._last_msg_id

    def get_kernel_message(self, timeout=None, stream="iopub"):
        msg = get_message(self, timeout=timeout, stream=stream)
        rec = _recorders.get(str(self.fspath))
        if rec is not None and stream == "iopub":
            rec.msg_id = getattr(self.kernel, "_last_msg_id", None)
            rec.feed(msg)
        return msg

    RunningKernel.execute_cell_input = execute_cell_input
    IPyNbFile.get_kernel_message = get_kernel_message


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: Any):
    if os.environ.get(ENV) and hasattr(item, "cell_num"):
        key = str(item.parent.fspath)
        if key not in _recorders:
            _recorders[key] = Recorder(Path(key), item.parent.nb)
        _recorders[key].start_cell(item.cell_num)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any):
    outcome = yield
    rec = _recorder(item)
    if rec is None:
        return
    report = outcome.get_result()
    if report.failed or report.skipped:
        rec.spoiled = rec.spoiled or f"{item.name} {report.outcome} ({report.when})"
    elif report.when == "call":
        rec.passed.add(item.cell_num)


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    target = os.environ.get(ENV)
    if not target or not _recorders:
        return
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(target)
    for key, rec in sorted(_recorders.items()):
        missing = len(rec.code_cells) - len(rec.passed)
        if rec.spoiled is None and missing:
            rec.spoiled = f"{missing} code cells did not run"
        name = Path(key).name
        if rec.spoiled:
            print(f"nbval-cache: {name} not cached ({rec.spoiled}); the book build will execute it", file=sys.stderr)
            continue
        cache.cache_notebook_bundle(
            CacheBundleIn(rec.notebook(), key, data={"execution_seconds": time.perf_counter() - rec.started}),
            check_validity=False, overwrite=True,
        )
        print(f"nbval-cache: {name} stored in {target}", file=sys.stderr)

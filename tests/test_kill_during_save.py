"""A save killed with SIGKILL at every point leaves a checkpoint that loads, old or new.

A child process forks one save per kill point. Each forked save overwrites an existing
checkpoint while counting the calls it makes that change the folder or make it durable
(temporary files, writes, chmods, fsyncs, renames, removals), and sends itself SIGKILL just
before call k; one more is killed after the last call. The test then loads every folder.
(Issue 37, defect 1: before the manifest named versioned files, a kill between the weights
rename and the manifest write lost the old checkpoint.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from spokenstyle import checkpoints

ROOT = Path(__file__).resolve().parents[1]
OLD, NEW = torch.ones(3, 2), torch.full((3, 2), 2.0)

CHILD = textwrap.dedent("""
    import json, os, pathlib, signal, sys, tempfile
    import safetensors.torch, torch
    from spokenstyle import checkpoints

    torch.set_num_threads(1)  # forked saves: no thread pool to inherit
    base, filename = pathlib.Path(sys.argv[1]), sys.argv[2] or None
    calls = []

    def save_killed_at(folder, kill_at):
        def counted(label, fn):
            def wrapper(*args, **kwargs):
                if len(calls) == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                calls.append(label)
                return fn(*args, **kwargs)
            return wrapper

        checkpoints.save_file = counted("write the weights", safetensors.torch.save_file)
        checkpoints.tempfile.mkstemp = counted("create a temporary", tempfile.mkstemp)
        checkpoints.os.chmod = counted("chmod", os.chmod)
        checkpoints.os.fsync = counted("fsync", os.fsync)
        checkpoints.os.replace = counted("rename", os.replace)
        pathlib.Path.unlink = counted("unlink", pathlib.Path.unlink)
        def counted_open(file, mode="r", *args, **kwargs):
            fn = counted("open for writing", open) if "w" in mode else open
            return fn(file, mode, *args, **kwargs)
        checkpoints.open = counted_open
        checkpoints.save_checkpoint(folder, {"w": torch.full((3, 2), 2.0)}, metrics={"v": "new"},
                                    filename=filename)
        if kill_at == len(calls):  # after the last call, before the process ends
            os.kill(os.getpid(), signal.SIGKILL)
        pathlib.Path(folder, "calls.json").write_text(json.dumps(calls))

    def fork(folder, kill_at):
        pid = os.fork()
        if pid == 0:
            try:
                save_killed_at(folder, kill_at)
            finally:
                os._exit(0)
        return os.waitpid(pid, 0)[1]

    status = fork(base / "dry", -1)
    assert status == 0, status
    n = len(json.loads((base / "dry" / "calls.json").read_text()))
    print(json.dumps([os.waitstatus_to_exitcode(fork(base / f"kill-{k}", k)) for k in range(n + 1)]))
""")


@pytest.mark.slow
@pytest.mark.parametrize("filename", [None, "model.safetensors"])
def test_a_kill_at_any_point_of_a_save_leaves_a_loadable_checkpoint(tmp_path, filename):
    calls_path = tmp_path / "dry" / "calls.json"
    checkpoints.save_checkpoint(tmp_path / "dry", {"w": OLD}, metrics={"v": "old"}, filename=filename)
    for k in range(40):  # more old checkpoints than the save has calls
        checkpoints.save_checkpoint(tmp_path / f"kill-{k}", {"w": OLD}, metrics={"v": "old"}, filename=filename)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), filename or ""], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    calls = json.loads(calls_path.read_text())
    assert {"write the weights", "rename", "fsync", "unlink"} <= set(calls) and len(calls) < 40, calls
    statuses = json.loads(run.stdout)
    assert statuses == [-signal.SIGKILL] * (len(calls) + 1), statuses  # every save died where it was told

    outcomes = []
    for k in range(len(calls) + 1):
        folder = tmp_path / f"kill-{k}"
        ckpt = checkpoints.load_checkpoint(folder)  # must not raise: the old or the new checkpoint
        which = ckpt.metrics["v"]
        assert torch.equal(ckpt.tensors["w"], OLD if which == "old" else NEW), k
        outcomes.append((k, calls[k] if k < len(calls) else "(after the last call)", which))
        checkpoints.save_checkpoint(folder, {"w": NEW}, metrics={"v": "again"}, filename=filename)
        names = [p.name for p in folder.iterdir()]  # the next save cleans up what the killed one left
        assert sorted(n for n in names if not n.endswith(".json")) == list(checkpoints.read_manifest(folder)["files"])
    print(json.dumps([{"killed before call": k, "call": c, "loads as": w} for k, c, w in outcomes], indent=1))
    assert outcomes[0][2] == "old" and outcomes[-1][2] == "new"
    order = [w for _, _, w in outcomes]
    assert order == ["old"] * order.count("old") + ["new"] * order.count("new"), f"old, then new: {order}"

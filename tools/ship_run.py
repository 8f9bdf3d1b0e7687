"""Ships a finished training run: copies its checkpoint folder into ``spokenstyle/shipped/checkpoints/NAME``.

A run trains into a scratch folder (``--out /work/exp/...``), so its manifest's command names a path
that means nothing in a checkout. Shipping keeps the weights byte for byte (sha256 verified before and
after the copy), writes the command with its ``--out`` as the shipped folder relative to the checkout,
and keeps the command as it ran under ``extra["command_as_run"]``. The new folder replaces the old one
in one rename, so a reader never sees half a checkpoint::

    python tools/ship_run.py /path/to/scratch/RUN_DIR dcgan_conditional
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spokenstyle.checkpoints import MANIFEST, atomic_write_bytes, load_checkpoint  # noqa: E402

NOTE = ("the command as it ran; the command above is the same run with its --out written as the path of the "
        "shipped folder in the checkout (a scratch folder of the training machine means nothing elsewhere). "
        "Weights untouched (sha256 verified).")


def shipped_command(command: str, out: str) -> str:
    """``command`` with the value of its ``--out`` (``--out DIR`` or ``--out=DIR``) replaced by ``out``."""
    args = shlex.split(command)
    for i, arg in enumerate(args):
        if arg == "--out" and i + 1 < len(args):
            args[i + 1] = out
            break
        if arg.startswith("--out="):
            args[i] = f"--out={out}"
            break
    else:
        raise ValueError(f"the run's command has no --out to rewrite: {command!r}")
    return " ".join(shlex.quote(a) for a in args)


def ship(run: str | Path, name: str, root: str | Path = ROOT) -> Path:
    """Copies the checkpoint in ``run`` to ``root/spokenstyle/shipped/checkpoints/name``; returns the folder."""
    run, root = Path(run), Path(root)
    before = load_checkpoint(run).manifest  # verifies the weights against the manifest's sha256
    relative = Path("spokenstyle") / "shipped" / "checkpoints" / name
    target = root / relative
    staging = target.with_name(f".{name}.shipping")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(run, staging, ignore=shutil.ignore_patterns("run", "*.tmp*"))
    manifest = dict(before)
    manifest["command"] = shipped_command(before["command"], str(relative))
    manifest["extra"] = {**before.get("extra", {}), "command_as_run": {"command": before["command"], "note": NOTE}}
    atomic_write_bytes(staging / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    try:
        load_checkpoint(staging)  # the copy's weights against the (same) sha256 again
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)  # a damaged copy is never left where shipped() would list it
        raise
    old = target.with_name(f".{name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the run's checkpoint folder (its --out)")
    parser.add_argument("name", help="the shipped checkpoint's name, e.g. dcgan_conditional")
    args = parser.parse_args(argv)
    target = ship(args.run, args.name)
    print(f"shipped {args.run} as {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

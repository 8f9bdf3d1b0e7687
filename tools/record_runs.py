"""Keeps the record of training runs whose weights are not shipped: each run's manifest (command,
config, metrics, versions, date, the weights' sha256), without its loss history, in one JSON
report that a chapter can read and check its prose against.

    python tools/record_runs.py --out spokenstyle/shipped/benchmarks/NAME-runs-cpu.json --what "..." LABEL=DIR [LABEL=DIR ...]
    python tools/record_runs.py --append --out spokenstyle/shipped/benchmarks/NAME-runs-cpu.json --what "..." LABEL=DIR

``--append`` keeps the runs the report already holds (their folders may be long gone) and adds the
new ones; a label that is already recorded is refused, and ``--what`` replaces the description.

Chapter 5's ``spokenstyle/shipped/benchmarks/cyclegan-runs-cpu.json`` records the width-16
translators (the shipped ``cyclegan_*`` checkpoints at commit 0707201, then under
``data/checkpoints/``, before they were shipped at width 32) as ``width16_*``, the two
``cycle_noise=0.1`` runs as ``noise_*``, the two ``g_width=48`` runs as ``width48_*`` and a second
draw of the width-32 flat <-> comic recipe as ``rerun32_flat_comic``; each run's ``reproduce``
gives the ``spokenstyle train ... --set`` command that trains it again on today's budget rows.

A run that was tried and not shipped (an ablation, the recipe before a change) is evidence too;
its weights would double the repository, its manifest is a few kilobytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spokenstyle import checkpoints


def record(directory: str | Path) -> dict:
    """``directory``'s manifest, checked against its weights (sha256), without ``extra.history``."""
    if not (Path(directory) / checkpoints.MANIFEST).is_file():
        raise checkpoints.CheckpointError(f"{directory} is not a checkpoint folder: it has no {checkpoints.MANIFEST}")
    checkpoints.load_checkpoint(directory)  # refuses a folder whose weights do not match the manifest
    manifest = checkpoints.read_manifest(directory)
    extra = {k: v for k, v in manifest.get("extra", {}).items() if k != "history"}
    return {**{k: v for k, v in manifest.items() if k != "extra"}, "extra": extra}


def parse_run(text: str) -> tuple[str, Path]:
    label, sep, directory = text.partition("=")
    if not sep or not label or not directory:
        raise argparse.ArgumentTypeError(f"expected LABEL=DIR (a checkpoint folder), got {text!r}")
    return label, Path(directory)


def parse_reproduce(text: str) -> tuple[str, str]:
    label, sep, command = text.partition("=")
    if not sep or not label or not command:
        raise argparse.ArgumentTypeError(f"expected LABEL=COMMAND, got {text!r}")
    return label, command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=parse_run, metavar="LABEL=DIR")
    parser.add_argument("--out", required=True, type=Path, help="the JSON report to write")
    parser.add_argument("--what", required=True, help="one sentence: what the runs compare")
    parser.add_argument("--append", action="store_true",
                        help="keep the runs already in --out and add these (their labels must be new)")
    parser.add_argument("--reproduce", nargs="*", type=parse_reproduce, default=[], metavar="LABEL=COMMAND",
                        help="the command that trains a run again on today's code, where its manifest's own "
                             "command no longer does (the budget rows have changed since)")
    args = parser.parse_args(argv)
    labels = [label for label, _ in args.runs]
    if len(set(labels)) != len(labels):
        parser.error(f"labels must be unique, got {labels}")
    reproduce = dict(args.reproduce)
    if set(reproduce) - set(labels):
        parser.error(f"--reproduce names runs that are not recorded: {sorted(set(reproduce) - set(labels))}")
    kept: dict = {}
    if args.append:
        if not args.out.is_file():
            parser.error(f"--append: {args.out} does not exist (leave out --append to start a report)")
        try:
            kept = json.loads(args.out.read_text())["runs"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            parser.error(f"--append: {args.out} is not a runs report ({err!r}); expected a JSON object with 'runs'")
        if set(kept) & set(labels):
            parser.error(f"--append: already recorded in {args.out}: {sorted(set(kept) & set(labels))}; "
                         "choose new labels")
    for label, directory in args.runs:
        if not (directory / checkpoints.MANIFEST).is_file():
            parser.error(f"{label}={directory}: not a checkpoint folder (no {checkpoints.MANIFEST})")
    runs = {label: record(directory) for label, directory in args.runs}
    for label, command in reproduce.items():
        runs[label]["reproduce"] = command
    report = {"what": args.what, "runs": {**kept, **runs}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.atomic_write_bytes(args.out, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    print(f"wrote {args.out}: {', '.join(labels)}" + (f" (kept {', '.join(kept)})" if kept else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

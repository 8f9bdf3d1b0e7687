"""Prints per-notebook wall times from an nbval run and checks them against a limit.

    python tools/nbtimes.py reports/local/nbval-fast.json --limit 60
    python tools/nbtimes.py reports/local/nbval-fast.json --commit reports/runtimes.json

The limit is the book's budget for one notebook in the fast profile on a 2-core CPU (60 s). A
notebook over it is reported loudly; it fails only with --strict, because wall time depends on
the machine and CI must not fail on a busy one (timings are never asserted in tests).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("timings", type=Path)
    parser.add_argument("--limit", type=float, default=60.0)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a notebook exceeds the limit")
    parser.add_argument("--commit", type=Path, help="copy the timings to this committed report")
    args = parser.parse_args(argv)
    if not args.timings.exists():
        print(f"no timings at {args.timings}: run `make nbval` first")
        return 1
    data = json.loads(args.timings.read_text())
    over = []
    print(f"notebook wall times ({data['profile']} profile, {data['device']}):")
    for name, row in data["notebooks"].items():
        flag = ""
        if row["seconds"] > args.limit:
            flag, _ = f"  OVER the {args.limit:.0f} s budget", over.append(name)
        print(f"  {name:40s} {row['seconds']:7.1f} s  ({row['cells']} cells){flag}")
    print(f"  {'total':40s} {sum(r['seconds'] for r in data['notebooks'].values()):7.1f} s")
    if args.commit:
        shutil.copyfile(args.timings, args.commit)
        print(f"recorded in {args.commit}")
    return 1 if (over and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())

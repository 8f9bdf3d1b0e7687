"""The ``spokenstyle`` command: train the book's models, list shipped checkpoints, show the runtime.

    spokenstyle info                         device, profile, budgets, shipped checkpoints
    spokenstyle train MODEL [--profile full] [--out DIR] [--device cuda]
    spokenstyle checkpoints                  the shipped registry with each manifest's metrics

``spokenstyle train`` runs a *recipe*: a function ``train(out_dir, *, runtime) -> metrics``
that a model family registers in :data:`RECIPES` by module path. A recipe trains through
:class:`spokenstyle.train.Trainer`, evaluates, and saves with
:func:`spokenstyle.checkpoints.save_pretrained`; the command line that ran it is recorded in
the manifest, so every shipped checkpoint says how it was made.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from pathlib import Path
from typing import Callable

from . import checkpoints, runtime

__all__ = ["RECIPES", "main", "command_line"]

# model name -> "module:function"; imported only when asked, so `spokenstyle info` stays fast
RECIPES: dict[str, str] = {
    "features": "spokenstyle.models.features:train",
    "dcgan": "spokenstyle.models.dcgan:train",
}


def command_line() -> str:
    """The command that is running, as a user would type it (recorded in manifests)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("spokenstyle", "__main__.py", "cli.py"):
        argv[0] = "spokenstyle"
    return " ".join(shlex.quote(a) for a in argv)


def _recipe(name: str) -> Callable:
    if name not in RECIPES:
        raise SystemExit(f"spokenstyle train: unknown model {name!r}; choose one of {sorted(RECIPES) or '(none yet)'}")
    module, _, func = RECIPES[name].partition(":")
    return getattr(importlib.import_module(module), func)


def _info(args: argparse.Namespace) -> int:
    rt = runtime.Runtime(device=runtime.get_device(args.device), profile=runtime.get_profile(args.profile), seed=0)
    print(rt)
    print("budgets:", json.dumps({k: rt.budget(k) for k in sorted(runtime.BUDGETS)}, indent=1))
    print("shipped checkpoints:", ", ".join(checkpoints.shipped()) or "none")
    print("train recipes:", ", ".join(sorted(RECIPES)) or "none")
    return 0


def _checkpoints(args: argparse.Namespace) -> int:
    for name, manifest in checkpoints.shipped().items():
        print(f"{name}: {manifest.get('command')}\n    metrics: {json.dumps(manifest.get('metrics', {}))}")
    return 0


def _train(args: argparse.Namespace) -> int:
    recipe = _recipe(args.model)
    rt = runtime.setup(seed=args.seed, device=args.device, profile=args.profile)
    out = Path(args.out) if args.out else runtime.cache_dir() / "runs" / args.model
    metrics = recipe(out, runtime=rt)
    print(json.dumps({"model": args.model, "out": str(out), "metrics": metrics}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spokenstyle", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (("info", _info, "show device, profile, budgets and shipped checkpoints"),
                              ("checkpoints", _checkpoints, "list shipped checkpoints and their metrics"),
                              ("train", _train, "train one of the book's models with its recipe")):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
        p.add_argument("--profile", default=None, choices=runtime.PROFILES, help="fast or full (default: full on CUDA)")
        if name == "train":
            p.add_argument("model", help="which model to train")
            p.add_argument("--out", default=None, help="checkpoint folder (default: the cache's runs/MODEL)")
            p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, checkpoints.CheckpointError) as err:
        print(f"spokenstyle {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

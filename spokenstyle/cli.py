"""The ``spokenstyle`` command: train the book's models, run the pipeline, list shipped checkpoints.

Usage::

    spokenstyle info                         device, profile, budgets, shipped checkpoints
    spokenstyle train MODEL [--profile full] [--out DIR] [--device cuda] [--set ROW.FIELD=VALUE ...]
    spokenstyle checkpoints                  the shipped registry with each manifest's metrics
    spokenstyle run --source A --target B --out OUT.png [--json]
                                             the five-step pipeline on one pair (A, B: image files
                                             or scene:SEED:STYLE)

``spokenstyle train`` runs a *recipe* of :data:`spokenstyle.recipes.RECIPES`: a function
``train(out_dir, *, runtime) -> metrics`` that trains through :class:`spokenstyle.train.Trainer`,
evaluates, and saves; the command line that ran it is recorded in the manifest
(:func:`spokenstyle.checkpoints.command_line`), so every shipped checkpoint says how it was made.
Every argument is checked before a model is loaded or trained: a typo is reported at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import budgets, checkpoints, runtime
from .data import STYLES
from .data.images import SCENE_SPEC
from .pipeline import SpokenStylePipeline
from .recipes import RECIPES

__all__ = ["main", "build_parser", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class UsageError(ValueError):
    """An argument of the command line is wrong; the message says which and what is expected."""


def _info(args: argparse.Namespace) -> int:
    rt = runtime.Runtime(device=runtime.get_device(args.device), profile=runtime.get_profile(args.profile), seed=0)
    print(rt)
    print("budgets:", json.dumps({k: rt.budget(k).to_dict() for k in sorted(budgets.BUDGETS)}, indent=1))
    errors: dict[str, str] = {}
    print("shipped checkpoints:", ", ".join(checkpoints.shipped(errors=errors)) or "none")
    for name, err in errors.items():
        print(f"unreadable shipped checkpoint {name}: {err}")
    print("train recipes:", ", ".join(sorted(RECIPES)) or "none")
    return 0


def _checkpoints(args: argparse.Namespace) -> int:
    errors: dict[str, str] = {}
    for name, manifest in checkpoints.shipped(errors=errors).items():
        print(f"{name}: {manifest.get('command')}\n    metrics: {json.dumps(manifest.get('metrics', {}))}")
    for name, err in errors.items():
        print(f"{name}: unreadable ({err})")
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.model not in RECIPES:
        raise UsageError(f"unknown model {args.model!r}; choose one of {sorted(RECIPES)}")
    overrides = budgets.parse_overrides(args.overrides)
    out = Path(args.out) if args.out else runtime.cache_dir() / "runs" / args.model
    _check_out_folder(out)
    rt = runtime.setup(seed=args.seed, device=args.device, profile=args.profile, overrides=overrides)
    metrics = RECIPES[args.model](out, runtime=rt)
    print(json.dumps({"model": args.model, "out": str(out), "metrics": metrics}, indent=2))
    return 0


def _check_no_file_above(path: Path) -> None:
    """Refuses an --out whose nearest existing parent is a file (no folder can be made there)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {str(path)!r} lies under {str(parent)!r}, which is a file")
            return


def _check_out_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder for the checkpoint")
    _check_no_file_above(out)


RUN_HELP = """Run the five-step pipeline on one (source, target) pair and save the spoken-style picture.

SOURCE and TARGET are image files (any format and size PIL reads), or ShapeScenes renders
written scene:SEED:STYLE (e.g. scene:7:flat; STYLE is one of flat, sketch, watercolour, neon,
pixel, comic; scene:SEED alone takes style SEED % 6). Needs the shipped checkpoints
(captioner_spoken, critic, fusion, and judge or features; shipped CycleGANs re-generate the
source in step 2); a missing one is named with the command that makes it. Example:

    spokenstyle run --source scene:7:flat --target scene:12:neon --out spoken.png --json
"""


def _check_picture_argument(flag: str, value: str) -> None:
    if value.startswith("scene:"):
        match = SCENE_SPEC.fullmatch(value)
        if not match:
            raise UsageError(f"{flag} {value!r} is not scene:SEED or scene:SEED:STYLE (e.g. scene:7:neon)")
        style = match.group(2)
        if style is not None and not (style in STYLES or (style.isdigit() and int(style) < len(STYLES))):
            raise UsageError(f"{flag} {value!r}: unknown style {style!r}; choose one of {', '.join(STYLES)} "
                             f"(or its number, 0 to {len(STYLES) - 1})")
        return
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{flag} {value!r}: no such file (give an image file or scene:SEED:STYLE)")


def _check_run_arguments(args: argparse.Namespace) -> Path:
    """Every check of ``spokenstyle run`` that needs no model, done before any model is loaded."""
    _check_picture_argument("--source", args.source)
    _check_picture_argument("--target", args.target)
    target = Path(args.out)
    if target.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"--out must name an image file ({', '.join(IMAGE_SUFFIXES)}), got {args.out!r}")
    if target.is_dir():
        raise UsageError(f"--out {args.out!r} is a folder; name the image file to write")
    _check_no_file_above(target)
    if not 0 <= args.seed <= runtime.MAX_SEED:
        raise UsageError(f"--seed must be an int from 0 to 2**63 - 1, got {args.seed}")
    runtime.get_profile(args.profile)  # SPOKENSTYLE_PROFILE=bogus fails here, with its name
    runtime.get_device(args.device)
    return target


def _run(args: argparse.Namespace) -> int:
    target = _check_run_arguments(args)
    runtime.seed_everything(args.seed)
    pipe = SpokenStylePipeline.from_pretrained(args.device)
    out = pipe(args.source, args.target, seed=args.seed, layout=args.layout, side=args.side)
    target.parent.mkdir(parents=True, exist_ok=True)
    out.picture.save(target)
    summary = {"source": args.source, "target": args.target, "out": str(target), **out.summary()}
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        print(f"sentence: {summary['sentence']}\nstep 2: {summary['step2']}\n"
              f"style score ({summary['target_style']}): {summary['style_score']:.3f}   "
              f"spoken score: {summary['spoken_score']:.3f}\nsaved {target}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``spokenstyle`` argument parser: one subcommand per task (info, checkpoints, train, run)."""
    parser = argparse.ArgumentParser(prog="spokenstyle", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (("info", _info, "show device, profile, budgets and shipped checkpoints"),
                              ("checkpoints", _checkpoints, "list shipped checkpoints and their metrics"),
                              ("train", _train, "train one of the book's models with its recipe")):
        p = sub.add_parser(name, help=help_)
        p.set_defaults(func=func)
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
        p.add_argument("--profile", default=None, choices=budgets.PROFILES, help="fast or full (default: full on CUDA)")
        if name == "train":
            p.add_argument("model", help=f"which model to train: {', '.join(sorted(RECIPES))}")
            p.add_argument("--out", default=None, help="checkpoint folder (default: the cache's runs/MODEL)")
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="ROW.FIELD=VALUE",
                           help="change a budget field for this run, e.g. --set dcgan_all_styles.width=64 "
                                "(VALUE read as JSON; checked against spokenstyle.budgets.BUDGETS; recorded "
                                "in the manifest's command)")
    run = sub.add_parser("run", help="run the five-step pipeline on a source and a target picture",
                         description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.set_defaults(func=_run)
    run.add_argument("--source", required=True, help="content picture: an image file or scene:SEED:STYLE")
    run.add_argument("--target", required=True, help="style picture: an image file or scene:SEED:STYLE")
    run.add_argument("--out", required=True, help="where to save the composed picture (.png, .jpg, ...)")
    run.add_argument("--json", action="store_true", help="print every result as JSON")
    run.add_argument("--seed", type=int, default=0, help="seeds F's layout (and S's words, when its decoding samples)")
    run.add_argument("--layout", default="bubble", choices=("bubble", "band"), help="speech bubble or caption band")
    run.add_argument("--side", default="auto", choices=("auto", "top", "bottom"),
                     help="where the bubble goes (auto: the side with less drawn on it)")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: best available)")
    run.add_argument("--profile", default=None, choices=budgets.PROFILES, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``) and returns its exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError, checkpoints.CheckpointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"spokenstyle {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The ``spokenstyle`` command: train the book's models, list shipped checkpoints, show the runtime.

    spokenstyle info                         device, profile, budgets, shipped checkpoints
    spokenstyle train MODEL [--profile full] [--out DIR] [--device cuda] [--set ROW.KEY=VALUE ...]
    spokenstyle checkpoints                  the shipped registry with each manifest's metrics
    spokenstyle run --source A --target B --out OUT.png [--json]
                                             the five-step pipeline on one pair (A, B: image files
                                             or scene:SEED:STYLE)

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
    "judge": "spokenstyle.models.judge:train",  # chapter 5: the scene judge that scores translations
    "cyclegan_flat_comic": "spokenstyle.models.cyclegan:train_flat_comic",  # chapter 5: CycleGAN-lite, one per style pair
    "cyclegan_flat_pixel": "spokenstyle.models.cyclegan:train_flat_pixel",
    "cyclegan_photo": "spokenstyle.models.cyclegan:train_photo",  # chapter 5: photos <-> painterly
    "captioner": "spokenstyle.captioning:train",  # chapter 6: S, T, the paired upper bound and the instruments
    "captioner_reader": "spokenstyle.captioning:train_reader_recipe",  # chapter 6's attribute reader R alone
    "fusion": "spokenstyle.models.fusion:train",  # chapter 7: the fusion generator F and its projection discriminator
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
    overrides = runtime.parse_overrides(args.overrides)
    rt = runtime.setup(seed=args.seed, device=args.device, profile=args.profile, overrides=overrides)
    out = Path(args.out) if args.out else runtime.cache_dir() / "runs" / args.model
    metrics = recipe(out, runtime=rt)
    print(json.dumps({"model": args.model, "out": str(out), "metrics": metrics}, indent=2))
    return 0


RUN_HELP = """Run the five-step pipeline on one (source, target) pair and save the spoken-style picture.

SOURCE and TARGET are image files (any format and size PIL reads), or ShapeScenes renders
written scene:SEED:STYLE (e.g. scene:7:flat; STYLE is one of flat, sketch, watercolour, neon,
pixel, comic; scene:SEED alone takes style SEED % 6). Needs the shipped checkpoints
(captioner_paired, critic, fusion, and judge or features; shipped CycleGANs re-generate the
source in step 2); a missing one is named with the command that makes it. Example:

    spokenstyle run --source scene:7:flat --target scene:12:neon --out spoken.png --json
"""


def _run(args: argparse.Namespace) -> int:
    from .pipeline import SpokenStylePipeline

    runtime.seed_everything(args.seed)
    pipe = SpokenStylePipeline.from_pretrained(args.device)
    out = pipe(args.source, args.target, seed=args.seed, layout=args.layout, side=args.side)
    target = Path(args.out)
    if target.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"):
        raise ValueError(f"--out must name an image file (.png, .jpg, ...), got {args.out!r}")
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
            p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="ROW.KEY=VALUE",
                           help="change a budget entry for this run, e.g. --set dcgan_all_styles.width=64 "
                                "(VALUE read as JSON; checked against spokenstyle.runtime.BUDGETS; recorded "
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

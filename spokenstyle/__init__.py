"""spokenstyle: GAN-based spoken-style picture expression transfer, the package behind the book.

The package mirrors the book, and data flows one way through it; no module imports from a layer
above its own (``tests/test_layers.py`` checks every import):

1. **foundations**: :mod:`~spokenstyle.runtime` (device, profile, seeds, the shipped data),
   :mod:`~spokenstyle.budgets` (sizes and steps), :mod:`~spokenstyle.checkpoints` (save and
   load), :mod:`~spokenstyle.data` (ShapeScenes, captions, photos, seed ranges), and the pure
   mathematics: :mod:`~spokenstyle.losses`, :mod:`~spokenstyle.theory`,
   :mod:`~spokenstyle.metrics`, :mod:`~spokenstyle.text_metrics`, :mod:`~spokenstyle.render`;
2. **models**: :mod:`spokenstyle.models` (architectures and inference: generate, translate,
   caption, fuse, judge) and :mod:`~spokenstyle.stylization` (style transfer without a GAN);
3. **training and evaluation**: :mod:`~spokenstyle.train` (the one loop),
   :mod:`~spokenstyle.evaluation` (scorecards);
4. **recipes**: :mod:`spokenstyle.recipes` (what ``spokenstyle train MODEL`` runs);
5. **the pipeline**: :mod:`~spokenstyle.pipeline` (the five steps in one call);
6. **front ends**: :mod:`~spokenstyle.viz`, :mod:`~spokenstyle.widgets`, :mod:`~spokenstyle.cli`.
"""

from . import budgets, checkpoints, runtime, train, viz

__version__ = "0.1.0"

__all__ = ["budgets", "checkpoints", "runtime", "train", "viz", "__version__"]

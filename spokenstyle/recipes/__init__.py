"""How the book's models are trained: one module per model family, each with the training step,
the loop and the recipe that ``spokenstyle train MODEL`` runs.

A recipe is a function ``train(out_dir, *, runtime) -> metrics``: it reads its sizes and steps
from ``runtime.budget(...)`` (:mod:`spokenstyle.budgets`), trains through
:class:`spokenstyle.train.Trainer` (resumable from its run folder), scores the result with
:mod:`spokenstyle.evaluation` and saves it with the model family's ``save_pretrained``; the
manifest records the command line that ran it. :data:`RECIPES` maps the names the command line
accepts to them.

=====================  ======================================  =========================================
``spokenstyle train``  recipe                                  chapter
=====================  ======================================  =========================================
features               :func:`features.train`                  4: the metrics' feature extractor
dcgan                  :func:`dcgan.train`                     4: the image GAN
judge                  :func:`judge.train`                     5: the scene judge
cyclegan_flat_comic    :func:`cyclegan.train_flat_comic`       5: one translator per style pair
cyclegan_flat_pixel    :func:`cyclegan.train_flat_pixel`
cyclegan_photo         :func:`cyclegan.train_photo`            5: photos <-> painterly
captioner              :func:`captioning.train`                6: S, T, the upper bound, the instruments
captioner_reader       :func:`captioning.train_reader_recipe`  6: the attribute reader R alone
fusion                 :func:`fusion.train`                    7: the fusion generator F
fusion_layout          :func:`fusion.train_layout`             7: F's layout prior p(z | sentence)
painter_judge          :func:`painter_judge.train`             9: the classifier of painterly manners
=====================  ======================================  =========================================
"""

from __future__ import annotations

from typing import Any, Callable

from . import captioning, cyclegan, dcgan, features, fusion, judge, painter_judge

__all__ = ["RECIPES", "captioning", "cyclegan", "dcgan", "features", "fusion", "judge", "painter_judge"]

RECIPES: dict[str, Callable[..., dict[str, Any]]] = {
    "features": features.train,
    "dcgan": dcgan.train,
    "judge": judge.train,
    "cyclegan_flat_comic": cyclegan.train_flat_comic,
    "cyclegan_flat_pixel": cyclegan.train_flat_pixel,
    "cyclegan_photo": cyclegan.train_photo,
    "captioner": captioning.train,
    "captioner_reader": captioning.train_reader_recipe,
    "fusion": fusion.train,
    "fusion_layout": fusion.train_layout,
    "painter_judge": painter_judge.train,
}

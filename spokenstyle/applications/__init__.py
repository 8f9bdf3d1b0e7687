"""Chapter 9's applications (source §6, 实际应用场景), built on the package's models, all offline:

* :mod:`~spokenstyle.applications.multimodal`: multimodal fusion of text and picture: a sentence
  read (what was understood, ignored, assumed), drawn by F in a chosen style and typeset; text →
  picture retrieval and picture → words → picture, measured on held-out scenes;
* :mod:`~spokenstyle.applications.painters`: painter-style transfer on the bundled photos:
  CycleGAN-lite, Gram and AdaIN per painterly manner, scored for style, structure and time;
* :mod:`~spokenstyle.applications.advert`: advertisement design: a product photo in a campaign's
  look with a spoken slogan placed where it stays legible (WCAG contrast) and off the product.

Their front ends for Colab are :mod:`spokenstyle.application_widgets`.
"""

from . import advert, multimodal, painters

__all__ = ["advert", "multimodal", "painters"]

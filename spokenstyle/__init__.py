"""spokenstyle: GAN-based spoken-style picture expression transfer, the package behind the book.

The package mirrors the book, and data flows one way through it:
``data`` → ``models`` → ``train`` → ``pipeline`` → ``viz`` / ``widgets`` / ``cli``.
:mod:`spokenstyle.runtime` decides device, profile and seeds for all of them.
"""

from . import checkpoints, runtime, train, viz

__version__ = "0.1.0"

__all__ = ["checkpoints", "runtime", "train", "viz", "__version__"]

"""Interoperability (appendix A): the tools the source's §7 names, and models hosted elsewhere.

The book is written in PyTorch; this subpackage carries its models and its spoken rewrite over
to what the source recommends (TensorFlow, Keras, OpenAI), and swaps in pretrained models for
readers who are online. Every module imports its optional dependency on its own, so importing
this package costs nothing:

* :mod:`spokenstyle.interop.keras_dcgan`: the DCGAN generator written in Keras 3 (PyTorch
  backend), loading the book's PyTorch weights; needs ``keras``.
* :mod:`spokenstyle.interop.chat`: the spoken rewrite of a formal caption through any
  OpenAI-compatible chat-completions server; needs ``openai``.
* :mod:`spokenstyle.interop.pretrained`: a pretrained captioner (BLIP) and sentence encoder
  through ``transformers``, loaded from a hub name when online or from a local folder.

Install the optional dependencies with ``pip install "spokenstyle[tools]"``.
"""

from __future__ import annotations

__all__: list[str] = []

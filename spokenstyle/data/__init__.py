"""The book's data: ShapeScenes (scenes, styles, captions, tokenizer, datasets), real photos and
their painterly versions, and loaders for public datasets (online extras).

Quick tour::

    from spokenstyle.data import sample_scenes, render, caption, parse
    scenes = sample_scenes(range(8))             # a SceneBatch: tensors of attributes
    images = render(scenes, "watercolour", 64)   # (8, 3, 64, 64) float in [0, 1]
    spec = scenes.spec(0)                        # SceneSpec: objects and relations
    text = caption(spec, "spoken", seed=0)       # "whoa, a big red ball right next to ..."
    assert parse(text).matches(spec)
"""

from .captions import (FORMAL_CONSTRUCTIONS, REGISTERS, SPOKEN_CONSTRUCTIONS, ParseError, caption, describe,
                       formal_caption, parse, spoken_caption, try_parse)
from .datasets import (SPLITS, PairedStyles, ShapeScenes, UnpairedStyles, paired_batches, scene_batches,
                       scene_targets, unpaired_batches)
from .photos import (PAINTERLY_FILTERS, PHOTO_CREDITS, PHOTO_NAMES, PhotoPatches, UnpairedPhotos, kuwahara,
                     load_photo, painterly, photo_batches)
from .scenes import (COLOUR_RGB, COLOURS, MAX_OBJECTS, RELATIONS, SHAPES, SIZES, Obj, SceneBatch, SceneSpec,
                     relation_between, sample_scenes)
from .styles import MAX_SIZE, MIN_SIZE, STYLES, colour_masks, render
from .tokenizer import SPECIAL_TOKENS, decode, decode_batch, encode, encode_batch, load_tokenizer

__all__ = [
    # scenes and styles
    "SHAPES", "COLOURS", "COLOUR_RGB", "SIZES", "RELATIONS", "MAX_OBJECTS", "STYLES", "MIN_SIZE", "MAX_SIZE",
    "Obj", "SceneSpec", "SceneBatch", "sample_scenes", "relation_between", "render", "colour_masks",
    # captions
    "REGISTERS", "SPOKEN_CONSTRUCTIONS", "FORMAL_CONSTRUCTIONS", "ParseError", "caption", "formal_caption",
    "spoken_caption", "describe", "parse", "try_parse",
    # tokenizer
    "SPECIAL_TOKENS", "load_tokenizer", "encode", "decode", "encode_batch", "decode_batch",
    # datasets
    "SPLITS", "ShapeScenes", "PairedStyles", "UnpairedStyles", "scene_batches", "paired_batches",
    "unpaired_batches", "scene_targets",
    # photos
    "PHOTO_CREDITS", "PHOTO_NAMES", "PAINTERLY_FILTERS", "load_photo", "kuwahara", "painterly", "PhotoPatches",
    "UnpairedPhotos", "photo_batches",
]

"""The book's data: ShapeScenes (scenes, styles, captions, tokenizer, datasets), every seed range
in one table (``splits``), a scene's content in the format chapter 6's models speak
(``content``), chapter 6's sentences (``corpus``), real photos and their painterly versions,
pictures of any kind as tensors (``images``), and loaders for public datasets (online extras).

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
from .content import (N_PAIR_CLASSES, PAIRS, content_of_specs, content_targets, geometric_pairs, one_hot_content,
                      relation_targets, sentence_slots)
from .datasets import (PairedStyles, ShapeScenes, UnpairedStyles, paired_batches, pool_batches, real_renders,
                       scene_attributes, scene_batches, unpaired_batches)
from .images import IMAGE_SIZE, as_images, scene_picture
from .photos import (PAINTERLY_FILTERS, PHOTO_CREDITS, PHOTO_NAMES, PhotoPatches, UnpairedPhotos, kuwahara,
                     load_photo, painterly, photo_batches)
from .scenes import (COLOUR_RGB, COLOURS, MAX_OBJECTS, N_SLOT_CLASSES, RELATIONS, SHAPES, SIZES, Obj, SceneBatch,
                     SceneSpec, relation_between, sample_scenes, slot_class, slots_of_specs, slots_to_text,
                     split_slots)
from .splits import HELD_OUT, SCENE_RANGES, SPLITS, check_clear, seed_range, walk
from .styles import MAX_SIZE, MIN_SIZE, STYLES, colour_masks, render
from .tokenizer import (MAX_CAPTION_TOKENS, SPECIAL_TOKENS, decode, decode_batch, encode, encode_batch,
                        encode_captions, load_tokenizer, tokenizer_digest)

__all__ = [
    # scenes and styles
    "SHAPES", "COLOURS", "COLOUR_RGB", "SIZES", "RELATIONS", "MAX_OBJECTS", "STYLES", "MIN_SIZE", "MAX_SIZE",
    "Obj", "SceneSpec", "SceneBatch", "sample_scenes", "relation_between", "render", "colour_masks",
    # colour slots and content
    "N_SLOT_CLASSES", "slot_class", "split_slots", "slots_of_specs", "slots_to_text",
    "PAIRS", "N_PAIR_CLASSES", "content_targets", "geometric_pairs", "relation_targets", "content_of_specs",
    "one_hot_content",
    "sentence_slots",
    # captions
    "REGISTERS", "SPOKEN_CONSTRUCTIONS", "FORMAL_CONSTRUCTIONS", "ParseError", "caption", "formal_caption",
    "spoken_caption", "describe", "parse", "try_parse",
    # tokenizer
    "SPECIAL_TOKENS", "MAX_CAPTION_TOKENS", "load_tokenizer", "encode", "decode", "encode_batch", "decode_batch",
    "encode_captions", "tokenizer_digest",
    # seed ranges and datasets
    "SPLITS", "SCENE_RANGES", "HELD_OUT", "seed_range", "walk", "check_clear",
    "ShapeScenes", "PairedStyles", "UnpairedStyles", "scene_batches", "paired_batches", "unpaired_batches",
    "scene_attributes", "real_renders", "pool_batches",
    # pictures of any kind
    "IMAGE_SIZE", "as_images", "scene_picture",
    # photos
    "PHOTO_CREDITS", "PHOTO_NAMES", "PAINTERLY_FILTERS", "load_photo", "kuwahara", "painterly", "PhotoPatches",
    "UnpairedPhotos", "photo_batches",
]

"""Online-extras loaders, tested on tiny fixtures in the real on-disk layouts (no downloads)."""

import numpy as np
import pytest
import torch
from PIL import Image

from spokenstyle.data import extras as E

MODES = ["RGB", "L", "RGBA", "P", "CMYK"]


def _image(path, mode, size=(40, 30), value=100):
    arr = np.full((size[1], size[0], 3), value, dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)


@pytest.fixture
def cyclegan_root(tmp_path):
    root = tmp_path / "horse2zebra"
    for split in ("train", "test"):
        for dom, n in (("A", 3), ("B", 2)):
            folder = root / f"{split}{dom}"
            folder.mkdir(parents=True)
            for i in range(n):
                mode = MODES[i % len(MODES)]
                ext = ".jpg" if mode in ("RGB", "L", "CMYK") else ".png"
                _image(folder / f"{i:03d}{ext}", mode, value=50 + 60 * i)
            (folder / "notes.txt").write_text("not an image")
    return root


def test_cyclegan_folder(cyclegan_root):
    ds = E.CycleGANFolder(cyclegan_root, "train", "A", size=16)
    assert len(ds) == 3
    x = ds[1]["image"]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    pairs = E.UnpairedFolders(cyclegan_root, "test", size=8)
    item = pairs[2]
    assert len(pairs) == 3 and item["image_a"].shape == item["image_b"].shape == (3, 8, 8)


def test_cyclegan_errors(tmp_path, cyclegan_root):
    with pytest.raises(FileNotFoundError, match="trainA"):
        E.CycleGANFolder(tmp_path / "nothing", "train", "A")
    with pytest.raises(ValueError, match="domain"):
        E.CycleGANFolder(cyclegan_root, "train", "C")
    with pytest.raises(ValueError, match="split"):
        E.CycleGANFolder(cyclegan_root, "val", "A")
    (tmp_path / "empty" / "trainA").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        E.CycleGANFolder(tmp_path / "empty", "train", "A")
    with pytest.raises(ValueError, match="unknown CycleGAN dataset"):
        E.download_cyclegan("cats2dogs", tmp_path)


def test_download_cyclegan_fetches_the_named_archive(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(E, "download_and_extract_archive",
                        lambda url, download_root, remove_finished: calls.append((url, download_root, remove_finished)))
    assert E.download_cyclegan("horse2zebra", tmp_path) == tmp_path / "horse2zebra"
    assert calls == [(E.CYCLEGAN_URL.format(name="horse2zebra"), str(tmp_path), True)]
    assert calls[0][0].startswith("https://") and calls[0][0].endswith("horse2zebra.zip")


@pytest.fixture
def flickr_root(tmp_path):
    images = tmp_path / "Flicker8k_Dataset"
    images.mkdir()
    names = ["1000_a.jpg", "1001_b.jpg", "1002_c.jpg"]
    lines = []
    for i, name in enumerate(names):
        _image(images / name, "RGB", size=(50, 40))
        for k in (1, 0, 2):  # out of order on purpose
            lines.append(f"{name}#{k}\tCaption {k} of image {i} .")
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "Flickr_8k.trainImages.txt").write_text("1000_a.jpg\n1002_c.jpg\n", encoding="utf-8")
    return tmp_path


def test_flickr_token_file(flickr_root):
    caps = E.read_flickr_tokens(flickr_root / "Flickr8k.token.txt")
    assert caps["1001_b.jpg"] == ["Caption 0 of image 1 .", "Caption 1 of image 1 .", "Caption 2 of image 1 ."]
    ds = E.FlickrCaptions(flickr_root / "Flickr8k.token.txt", flickr_root / "Flicker8k_Dataset",
                          flickr_root / "Flickr_8k.trainImages.txt", size=24)
    assert len(ds) == 2 and ds[1]["name"] == "1002_c.jpg"
    assert ds[0]["image"].shape == (3, 24, 24) and len(ds[0]["captions"]) == 3


def test_flickr30k_csv_variant(tmp_path):
    f = tmp_path / "results.csv"
    f.write_text("image_name| comment_number| comment\nx.jpg| 1| Second .\nx.jpg| 0| First .\n", encoding="utf-8")
    assert E.read_flickr_tokens(f) == {"x.jpg": ["First .", "Second ."]}


def test_flickr_errors(tmp_path, flickr_root):
    bad = tmp_path / "bad.txt"
    bad.write_text("no tab or hash here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:1"):
        E.read_flickr_tokens(bad)
    with pytest.raises(FileNotFoundError):
        E.read_flickr_tokens(tmp_path / "missing.txt")
    (flickr_root / "Flicker8k_Dataset" / "1001_b.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        E.FlickrCaptions(flickr_root / "Flickr8k.token.txt", flickr_root / "Flicker8k_Dataset")

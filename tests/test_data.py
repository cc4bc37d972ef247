"""ganlib.data: the layout, decoding once, the cache, and every kind of bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from ganlib import data as gdata
from ganlib.data import DataError, find_data_root, load_split, scan_split, to_float, to_uint8

from .conftest import write_layout


def test_scan_parses_case_and_slice_sorted(tiny_data):
    entries = scan_split(tiny_data, "train", with_masks=True)
    assert len(entries) == 16
    assert [(c, s) for c, s, _, _ in entries[:5]] == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0)]
    assert all(m.name == f"seg_{c:03d}_slice_{s}.nii.png" for c, s, _, m in entries)


def test_load_split_tensors_and_dataset(tiny_data):
    s = load_split("train", 64, tiny_data, with_masks=True)
    assert s.images.shape == (16, 1, 64, 64) and s.images.dtype == torch.uint8
    assert s.masks.shape == (16, 1, 64, 64) and set(s.masks.unique().tolist()) <= {0, 1, 2, 3}
    assert s.case_ids.tolist()[:5] == [1, 1, 1, 1, 2] and s.slice_idx.tolist()[:5] == [0, 1, 2, 3, 0]
    image = to_float(s.images[5])
    assert image.shape == (1, 64, 64) and image.min() >= -1 and image.max() <= 1


def test_preprocessing_matches_the_reference_transforms(tiny_data):
    # The reference: PIL open, Grayscale, Resize(128), ToTensor, Normalize(0.5, 0.5).
    from torchvision import transforms as T

    ref = T.Compose([T.Grayscale(), T.Resize((128, 128)), T.ToTensor(), T.Normalize([0.5], [0.5])])
    s = load_split("train", 128, tiny_data)
    with Image.open(s.files[3]) as im:
        expected = ref(im)
    assert torch.allclose(to_float(s.images[3]), expected, atol=1e-6)


def test_uint8_round_trip():
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    assert torch.equal(to_uint8(to_float(x)), x)


def test_cache_is_reused_and_keyed_by_resolution(tiny_data, tmp_path, monkeypatch):
    cache = tmp_path / "c"
    first = load_split("train", 32, tiny_data, cache=cache)
    assert len(list(cache.glob("train-32-*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("a cached split must not decode PNGs again")

    monkeypatch.setattr(gdata, "read_png", no_decoding)
    again = load_split("train", 32, tiny_data, cache=cache)
    assert torch.equal(first.images, again.images) and again.files == first.files
    monkeypatch.undo()
    load_split("train", 64, tiny_data, cache=cache)
    assert len(list(cache.glob("train-*.npz"))) == 2


def test_changed_files_invalidate_the_cache(tiny_data, tmp_path):
    cache = tmp_path / "c"
    before = load_split("train", 32, tiny_data, cache=cache)
    Image.new("L", (256, 256), 0).save(before.files[0])
    after = load_split("train", 32, tiny_data, cache=cache)
    assert after.images[0].max() == 0 and before.images[0].max() > 0


def test_max_images_spreads_over_the_split(tiny_data):
    s = load_split("train", 32, tiny_data, max_images=4)
    assert len(s) == 4 and s.case_ids.tolist() == [1, 2, 3, 4]


# ---------------------------------------------------------------- where the data is


def test_data_root_order(tiny_data, monkeypatch, tmp_path):
    monkeypatch.delenv("GANLIB_DATA", raising=False)
    assert find_data_root(tiny_data) == (tiny_data, "--data")
    monkeypatch.setenv("GANLIB_DATA", str(tiny_data))
    assert find_data_root() == (tiny_data, "GANLIB_DATA")
    monkeypatch.delenv("GANLIB_DATA")
    monkeypatch.setattr(gdata, "REPO_ROOT", tmp_path / "empty_repo")
    root, origin = find_data_root()
    assert origin == "demo" and root == gdata.DEMO_ROOT


def test_demo_fallback_says_so_in_one_line(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("GANLIB_DATA", raising=False)
    monkeypatch.setattr(gdata, "REPO_ROOT", tmp_path)
    with caplog.at_level(logging.WARNING, logger="ganlib"):
        find_data_root()
        find_data_root()  # train and validate both look: still one line
    assert len(caplog.records) == 1 and "demo" in caplog.records[0].getMessage()


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        find_data_root(tmp_path / "nope")


def test_missing_split_folder(tiny_data):
    import shutil

    shutil.rmtree(tiny_data / "keras_png_slices_validate")
    with pytest.raises(DataError, match="missing folder .*keras_png_slices_validate"):
        load_split("validate", 32, tiny_data)


def test_empty_split_folder(tmp_path):
    (tmp_path / "keras_png_slices_train").mkdir()
    with pytest.raises(DataError, match="holds no slices"):
        load_split("train", 32, tmp_path)


def test_unknown_split(tiny_data):
    with pytest.raises(DataError, match="unknown split 'training'"):
        load_split("training", 32, tiny_data)


# ---------------------------------------------------------------- bad files


def test_file_that_is_not_a_png(tiny_data):
    bad = tiny_data / "keras_png_slices_train" / "case_001_slice_0.nii.png"
    Image.new("L", (256, 256)).save(bad, format="JPEG")
    with pytest.raises(DataError, match=r"case_001_slice_0\.nii\.png: is a JPEG file"):
        load_split("train", 32, tiny_data, cache=False)


def test_text_file_named_png(tiny_data):
    bad = tiny_data / "keras_png_slices_train" / "case_002_slice_1.nii.png"
    bad.write_text("hello")
    with pytest.raises(DataError, match=r"case_002_slice_1\.nii\.png: not a readable PNG"):
        load_split("train", 32, tiny_data, cache=False)


def test_truncated_png(tiny_data):
    bad = tiny_data / "keras_png_slices_train" / "case_003_slice_2.nii.png"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DataError, match=r"case_003_slice_2\.nii\.png: not a readable PNG.*replace or delete"):
        load_split("train", 32, tiny_data, cache=False)


def test_rgb_and_16bit_images_are_converted_with_a_warning(tiny_data, caplog):
    folder = tiny_data / "keras_png_slices_train"
    rgb, deep = folder / "case_001_slice_0.nii.png", folder / "case_001_slice_1.nii.png"
    gray = np.asarray(Image.open(rgb))
    Image.fromarray(np.stack([gray] * 3, -1), mode="RGB").save(rgb)
    Image.fromarray(np.asarray(Image.open(deep)).astype(np.uint16) * 256).save(deep)
    assert Image.open(deep).mode.startswith("I")
    with caplog.at_level(logging.WARNING, logger="ganlib"):
        s = load_split("train", 32, tiny_data, cache=False)
    text = caplog.text
    assert "case_001_slice_0.nii.png: RGB image converted to grayscale" in text
    assert "case_001_slice_1.nii.png: 16-bit image converted to 8-bit" in text
    assert s.images[0].float().mean() > 10 and s.images[1].float().mean() > 10


def test_mask_without_image_and_image_without_mask(tiny_data):
    extra = tiny_data / "keras_png_slices_seg_train" / "seg_009_slice_0.nii.png"
    Image.new("L", (256, 256)).save(extra)
    with pytest.raises(DataError, match=r"seg_009_slice_0\.nii\.png has no matching image"):
        scan_split(tiny_data, "train", with_masks=True)
    extra.unlink()
    (tiny_data / "keras_png_slices_seg_train" / "seg_002_slice_3.nii.png").unlink()
    with pytest.raises(DataError, match=r"case_002_slice_3\.nii\.png has no matching mask"):
        scan_split(tiny_data, "train", with_masks=True)


def test_stray_files_are_ignored(tiny_data, caplog):
    folder = tiny_data / "keras_png_slices_train"
    (folder / ".DS_Store").write_bytes(b"\0\1junk")
    (folder / "._case_001_slice_0.nii.png").write_bytes(b"\0\1junk")
    (folder / "Thumbs.db").write_bytes(b"junk")
    (folder / "notes.txt").write_text("a note")
    with caplog.at_level(logging.WARNING, logger="ganlib"):
        s = load_split("train", 32, tiny_data, cache=False)
    assert len(s) == 16
    assert "notes.txt" in caplog.text and ".DS_Store" not in caplog.text


def test_png_with_a_foreign_name_is_an_error(tiny_data):
    Image.new("L", (256, 256)).save(tiny_data / "keras_png_slices_train" / "scan7.png")
    with pytest.raises(DataError, match=r"scan7\.png: unexpected file name"):
        scan_split(tiny_data, "train")


def test_masks_become_class_ids(tmp_path):
    write_layout(tmp_path, {"train": [5]}, slices=1)
    s = load_split("train", 256, tmp_path, with_masks=True, cache=False)
    assert set(s.masks.unique().tolist()) == {0, 1, 2, 3}


# ---------------------------------------------------------------- the real subset


def test_oasis_counts(oasis):
    from ganlib.data import split_counts

    assert split_counts(oasis) == {"train": 5120, "validate": 1120, "test": 544}


def test_oasis_masks_pair_up(oasis):
    for split, n in (("validate", 1120), ("test", 544)):
        entries = scan_split(oasis, split, with_masks=True)
        assert len(entries) == n and all(m is not None for *_, m in entries)


def test_oasis_decode(oasis):
    s = load_split("test", 64, oasis, max_images=64)
    assert s.images.shape == (64, 1, 64, 64) and 441 <= int(s.case_ids.min()) <= int(s.case_ids.max()) <= 457

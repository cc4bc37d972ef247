"""The committed demo set in ganlib/demo: OASIS layout, sane slices and masks, small, reproducible.

Only the last test needs nilearn (it rebuilds one case with scripts/make_demo_data.py); the rest
read the committed PNGs, so they run wherever the package is installed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO_ROOT / "ganlib" / "demo"
DEMO_ROOT = DEMO_DIR / "keras_png_slices_data"
SCRIPT = REPO_ROOT / "scripts" / "make_demo_data.py"
SPLITS = ("train", "validate", "test")
IMAGE_RE = re.compile(r"^case_(\d{3})_slice_(\d+)\.nii\.png$")
MASK_RE = re.compile(r"^seg_(\d{3})_slice_(\d+)\.nii\.png$")
SLICES_PER_CASE = 32
MAX_BYTES = 8_000_000
MASK_VALUES = {0, 85, 170, 255}


def image_dir(split: str) -> Path:
    return DEMO_ROOT / f"keras_png_slices_{split}"


def mask_dir(split: str) -> Path:
    return DEMO_ROOT / f"keras_png_slices_seg_{split}"


def keys(folder: Path, pattern: re.Pattern) -> set[tuple[int, int]]:
    """(case, slice) of every file in folder that matches pattern."""
    return {(int(m[1]), int(m[2])) for p in folder.iterdir() if (m := pattern.match(p.name))}


@cache
def pixels(path: Path) -> tuple[str, tuple[int, int], np.ndarray]:
    """Mode, size and pixels of a PNG, decoded once per test session (there are ~800)."""
    with Image.open(path) as im:
        return im.mode, im.size, np.asarray(im)


@pytest.mark.parametrize("split", SPLITS)
def test_split_folders_exist(split):
    assert image_dir(split).is_dir() and mask_dir(split).is_dir()


@pytest.mark.parametrize("split", SPLITS)
def test_file_names_follow_oasis(split):
    for folder, pattern in ((image_dir(split), IMAGE_RE), (mask_dir(split), MASK_RE)):
        bad = [p.name for p in folder.iterdir() if not pattern.match(p.name)]
        assert not bad, f"{folder.name}: names not in the OASIS pattern: {bad[:5]}"


@pytest.mark.parametrize("split", SPLITS)
def test_every_case_has_32_slices(split):
    found = keys(image_dir(split), IMAGE_RE)
    cases = {c for c, _ in found}
    assert cases, f"no cases in {split}"
    assert found == {(c, s) for c in cases for s in range(SLICES_PER_CASE)}


@pytest.mark.parametrize("split", SPLITS)
def test_every_image_has_its_mask_and_vice_versa(split):
    assert keys(image_dir(split), IMAGE_RE) == keys(mask_dir(split), MASK_RE)


@pytest.mark.parametrize("split", SPLITS)
def test_images_are_256_gray_with_brain(split):
    for path in sorted(image_dir(split).glob("*.png")):
        mode, size, a = pixels(path)
        assert (mode, size) == ("L", (256, 256)), path.name
        # Even the topmost slice shows a few percent of brain; an empty frame means a bad cut.
        assert (a > 0).mean() > 0.02, f"{path.name}: almost no brain"
        assert a[0].max() == a[-1].max() == a[:, 0].max() == a[:, -1].max() == 0, f"{path.name}: brain touches edge"


@pytest.mark.parametrize("split", SPLITS)
def test_masks_are_four_classes_matching_the_brain(split):
    for path in sorted(mask_dir(split).glob("*.png")):
        mode, size, m = pixels(path)
        assert (mode, size) == ("L", (256, 256)), path.name
        assert set(np.unique(m).tolist()) <= MASK_VALUES, path.name
        case, slice_idx = MASK_RE.match(path.name).groups()
        _, _, a = pixels(image_dir(split) / f"case_{case}_slice_{slice_idx}.nii.png")
        # The generator draws both from one warp, so background is the same pixels in each.
        assert np.array_equal(m > 0, a > 0), f"{path.name}: mask and image disagree on the brain"


def test_case_ids_are_disjoint_across_splits():
    cases = {split: {c for c, _ in keys(image_dir(split), IMAGE_RE)} for split in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not cases[a] & cases[b], f"{a} and {b} share cases {sorted(cases[a] & cases[b])}"


def test_demo_is_at_most_8_mb():
    total = sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"ganlib/demo holds {total:,} bytes, over {MAX_BYTES:,}"


def test_notice_says_synthetic_and_carries_the_template_licence():
    text = (DEMO_ROOT / "NOTICE.md").read_text(encoding="utf-8")
    assert "not** from OASIS" in text and "make_demo_data.py" in text
    assert "Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre" in text


def load_script():
    """scripts/ is not a package, so load make_demo_data.py from its path."""
    spec = importlib.util.spec_from_file_location("make_demo_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_rebuilding_one_case_gives_identical_files(tmp_path):
    pytest.importorskip("nilearn", reason="nilearn (the `demo` extra) is needed to rebuild the demo set")
    script = load_script()
    case_id = min(c for c, _ in keys(image_dir("train"), IMAGE_RE))
    written = script.build_subject(case_id, "train", tmp_path)
    assert len(written) == 2 * SLICES_PER_CASE
    for path in written:
        committed = DEMO_ROOT / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), f"{committed.name} differs from a fresh build"

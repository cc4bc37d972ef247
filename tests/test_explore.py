"""ganlib.explore.slices: layout counts on disk, the slice grid, histograms, mean images, preprocessing and overlays."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from ganlib.data import DEMO_ROOT, load_split, read_png, to_float
from ganlib.explore import slices as explore


@pytest.fixture
def tiny(tiny_data):
    return load_split("train", 64, tiny_data, with_masks=True)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_layout_table_counts_files_on_disk(tiny_data):
    rows = {r["split"]: r for r in explore.layout_table(tiny_data)}
    assert rows["train"]["images"] == 16 and rows["train"]["masks"] == 16
    assert rows["train"]["cases"] == 4 and rows["train"]["slices_per_case"] == 4
    assert rows["validate"]["case_ids"] == "402-402" and rows["test"]["images"] == 4
    text = explore.format_layout(list(rows.values()))
    assert text.splitlines()[1].split()[:3] == ["train", "keras_png_slices_train", "16"]


def test_layout_table_of_the_demo_set():
    rows = {r["split"]: r for r in explore.layout_table(DEMO_ROOT)}
    assert [rows[s]["images"] for s in ("train", "validate", "test")] == [288, 64, 64]
    assert [rows[s]["cases"] for s in ("train", "validate", "test")] == [9, 2, 2]


def test_layout_table_with_a_missing_split(tiny_data):
    import shutil

    shutil.rmtree(tiny_data / "keras_png_slices_test")
    rows = {r["split"]: r for r in explore.layout_table(tiny_data)}
    assert rows["test"]["images"] == 0
    assert "test" in explore.format_layout(list(rows.values()))


def test_pick_grid_rows_are_cases_and_columns_go_up_the_stack(tiny):
    grid, cases, targets = explore.pick_grid(tiny, num_cases=3, num_positions=4)
    assert grid.shape == (3, 4) and len(cases) == 3 and targets == [0, 1, 2, 3]
    for r, case in enumerate(cases):
        assert (tiny.case_ids[grid[r]] == case).all()
        assert tiny.slice_idx[grid[r]].tolist() == [0, 1, 2, 3]


def test_pick_grid_on_a_subset_takes_the_nearest_slice(tiny):
    keep = torch.tensor([0, 3, 4, 5, 6])  # case 1: slices 0 and 3 only; case 2: slices 0, 1, 2
    subset = type(tiny)(
        images=tiny.images[keep], case_ids=tiny.case_ids[keep], slice_idx=tiny.slice_idx[keep],
        files=[tiny.files[i] for i in keep], split="train", root=tiny.root, masks=tiny.masks[keep],
    )  # fmt: skip
    grid, cases, _ = explore.pick_grid(subset, num_cases=2, num_positions=4)
    assert cases == [1, 2]
    assert subset.slice_idx[grid[0]].tolist() == [0, 0, 3, 3]
    assert subset.slice_idx[grid[1]].tolist() == [0, 1, 2, 2]


def test_histograms_separate_brain_and_background(tiny):
    h = explore.intensity_histograms(tiny, bins=32)
    assert len(h["edges"]) == 33
    assert h["brain"].sum() == pytest.approx(1) and h["background"].sum() == pytest.approx(1)
    assert h["background"][0] > 0.9  # the synthetic background is black (but for resized edges)
    centres = (h["edges"][:-1] + h["edges"][1:]) / 2
    assert (h["brain"] * centres).sum() > 100


def test_histograms_need_masks(tiny_data):
    with pytest.raises(ValueError, match="with_masks=True"):
        explore.intensity_histograms(load_split("train", 32, tiny_data))


def test_mean_by_position(tiny):
    positions, means = explore.mean_by_position(tiny)
    assert positions == [0, 1, 2, 3] and means.shape == (4, 1, 64, 64)
    expected = tiny.images[tiny.slice_idx == 2].float().mean(0)
    assert torch.allclose(means[2], expected)


def test_preprocessing_ends_where_the_loader_ends(tiny):
    path = tiny.files[5]
    steps = explore.preprocessing_steps(path, 64)
    assert [t.split(":")[0] for t, _ in steps] == ["stored", "grayscale", "resized", "scaled"]
    assert steps[0][1].shape == (256, 256) and steps[2][1].shape == (64, 64)
    assert np.array_equal(steps[2][1], read_png(path, 64))
    assert np.allclose(steps[3][1], to_float(tiny.images[5, 0]).numpy())
    assert steps[3][1].min() >= -1 and steps[3][1].max() <= 1
    lines = explore.describe_steps(steps).splitlines()
    assert len(lines) == 4 and "float32" in lines[3] and "[-1.000," in lines[3]


def test_preprocessing_converts_an_rgb_file(tmp_path):
    rgb = np.zeros((40, 40, 3), dtype=np.uint8)
    rgb[10:30, 10:30] = (200, 100, 50)
    path = tmp_path / "case_001_slice_0.nii.png"
    Image.fromarray(rgb, mode="RGB").save(path)
    steps = explore.preprocessing_steps(path, 32)
    assert "RGB" in steps[0][0] and steps[0][1].shape == (40, 40, 3)
    assert steps[1][1].ndim == 2 and steps[2][1].shape == (32, 32)
    assert np.array_equal(steps[2][1], read_png(path, 32))


def test_overlay_tints_only_the_brain():
    image = np.full((4, 4), 128, dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0], mask[1, 1] = 2, 3
    out = explore.overlay(image, mask, alpha=0.5)
    assert out.shape == (4, 4, 3) and out.min() >= 0 and out.max() <= 1
    assert np.allclose(out[3, 3], 128 / 255)
    assert np.allclose(out[0, 0], 0.5 * 128 / 255 + 0.5 * explore.MASK_COLOURS[2])
    assert not np.allclose(out[0, 0], out[1, 1])


def test_plots_draw_what_they_say(tiny):
    assert len(explore.plot_slice_grid(tiny, 2, 3).axes) == 6
    assert len(explore.plot_intensity_histograms(tiny).axes[0].patches) == 2 * 64
    assert len(explore.plot_mean_by_position(tiny, num_positions=3).axes) == 3
    assert len(explore.plot_preprocessing(explore.preprocessing_steps(tiny.files[0], 32)).axes) == 5  # + colorbar
    assert len(explore.plot_mask_overlays(tiny, [0, 5]).axes) == 6
    with pytest.raises(ValueError, match="with_masks=True"):
        explore.plot_mask_overlays(load_split("train", 32, tiny.root), [0])


def test_tissue_shares_by_position_add_up_and_follow_the_masks(tiny_data):
    s = load_split("train", 32, tiny_data, with_masks=True)
    positions, shares = explore.tissue_share_by_position(s)
    assert positions == sorted(int(p) for p in s.slice_idx.unique()) and shares.shape == (len(positions), 4)
    assert torch.allclose(shares.sum(1), torch.ones(len(positions)))
    first = s.masks[s.slice_idx == positions[0], 0]
    assert shares[0, 0].item() == pytest.approx((first == 0).float().mean().item())
    with pytest.raises(ValueError, match="with_masks=True"):
        explore.tissue_share_by_position(load_split("train", 32, tiny_data))

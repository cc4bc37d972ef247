"""Looking at the data before training on it: the helpers behind notebook 01.

The layout table counts files on disk (so it does not depend on how many slices a notebook
loads); the rest take a `SliceSet` and return arrays or matplotlib figures: a grid of slices
across cases and positions, intensity histograms inside and outside the brain mask, the mean
image per slice position, the preprocessing of one slice step by step, and masks overlaid.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from ..data import SPLITS, SliceSet, read_png, scan_split, split_dirs, to_float

MASK_CLASSES = ("background", "CSF", "grey matter", "white matter")
MASK_COLOURS = np.array([[0, 0, 0], [66, 133, 244], [234, 67, 53], [251, 188, 5]], dtype=np.float32) / 255


def layout_table(root: str | os.PathLike) -> list[dict]:
    """Per split: folder names, image and mask counts, cases and slices per case, counted on disk."""
    rows = []
    for split in SPLITS:
        image_dir, mask_dir = split_dirs(Path(root), split)
        if not image_dir.is_dir():
            rows.append({"split": split, "folder": image_dir.name, "images": 0, "masks": 0, "cases": 0})
            continue
        entries = scan_split(Path(root), split)
        cases = sorted({c for c, _, _, _ in entries})
        per_case = sorted({sum(1 for c2, *_ in entries if c2 == c) for c in cases})
        masks = len(scan_split(Path(root), split, with_masks=True)) if mask_dir.is_dir() else 0
        rows.append(
            {
                "split": split,
                "folder": image_dir.name,
                "images": len(entries),
                "masks": masks,
                "cases": len(cases),
                "slices_per_case": per_case[0] if len(per_case) == 1 else f"{per_case[0]}-{per_case[-1]}",
                "case_ids": f"{cases[0]:03d}-{cases[-1]:03d}",
            }
        )
    return rows


def format_layout(rows: list[dict]) -> str:
    """The rows of `layout_table` as fixed-width text."""
    head = f"{'split':<10}{'folder':<26}{'images':>8}{'masks':>8}{'cases':>7}{'per case':>10}{'case ids':>10}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['split']:<10}{r['folder']:<26}{r['images']:>8}{r['masks']:>8}{r['cases']:>7}"
            f"{r.get('slices_per_case', '-')!s:>10}{r.get('case_ids', '-'):>10}"
        )
    return "\n".join(lines)


def pick_grid(slices: SliceSet, num_cases: int = 4, num_positions: int = 6) -> tuple[np.ndarray, list, list]:
    """Indices (cases x positions) into `slices`: evenly spaced cases, and for each the slice nearest
    to evenly spaced positions through its stack. Returns (indices, case ids, target positions)."""
    case_ids = slices.case_ids.numpy()
    pos = slices.slice_idx.numpy()
    cases = np.unique(case_ids)
    cases = cases[np.linspace(0, len(cases) - 1, min(num_cases, len(cases))).round().astype(int)]
    targets = np.linspace(pos.min(), pos.max(), num_positions).round().astype(int)
    grid = np.zeros((len(cases), num_positions), dtype=int)
    for r, c in enumerate(cases):
        mine = np.flatnonzero(case_ids == c)
        for col, t in enumerate(targets):
            grid[r, col] = mine[np.abs(pos[mine] - t).argmin()]
    return grid, [int(c) for c in cases], [int(t) for t in targets]


def plot_slice_grid(slices: SliceSet, num_cases: int = 4, num_positions: int = 6) -> plt.Figure:
    """Rows are cases, columns positions through the stack: how slices vary across and within cases."""
    grid, cases, _ = pick_grid(slices, num_cases, num_positions)
    fig, axes = plt.subplots(len(cases), num_positions, figsize=(1.6 * num_positions, 1.6 * len(cases)), squeeze=False)
    for r in range(len(cases)):
        for c in range(num_positions):
            i = grid[r, c]
            ax = axes[r, c]
            ax.imshow(slices.images[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"slice {int(slices.slice_idx[i])}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"case {cases[r]:03d}", fontsize=8)
    fig.tight_layout()
    return fig


def intensity_histograms(slices: SliceSet, bins: int = 64) -> dict[str, np.ndarray]:
    """Normalised histograms of pixel values (0..255) inside the brain (mask > 0) and outside it."""
    if slices.masks is None:
        raise ValueError("intensity_histograms needs masks: load the split with with_masks=True")
    pixels = slices.images.flatten().numpy()
    brain = slices.masks.flatten().numpy() > 0
    edges = np.linspace(0, 256, bins + 1)
    out = {"edges": edges}
    for name, sel in (("brain", brain), ("background", ~brain)):
        h, _ = np.histogram(pixels[sel], bins=edges)
        out[name] = h / max(h.sum(), 1)
    return out


def plot_intensity_histograms(slices: SliceSet, bins: int = 64) -> plt.Figure:
    h = intensity_histograms(slices, bins)
    centres = (h["edges"][:-1] + h["edges"][1:]) / 2
    fig, ax = plt.subplots(figsize=(7, 3))
    for name in ("background", "brain"):
        ax.bar(centres, h[name], width=h["edges"][1] - h["edges"][0], alpha=0.6, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("pixel value (uint8)")
    ax.set_ylabel("fraction of pixels")
    ax.legend()
    fig.tight_layout()
    return fig


def mean_by_position(slices: SliceSet) -> tuple[list[int], torch.Tensor]:
    """The slice positions present and the mean image (P, 1, R, R) in [0, 255] at each, over all cases."""
    positions = sorted(int(p) for p in torch.unique(slices.slice_idx))
    means = torch.stack([slices.images[slices.slice_idx == p].float().mean(0) for p in positions])
    return positions, means


def plot_mean_by_position(slices: SliceSet, num_positions: int = 8) -> plt.Figure:
    positions, means = mean_by_position(slices)
    show = np.linspace(0, len(positions) - 1, min(num_positions, len(positions))).round().astype(int)
    fig, axes = plt.subplots(1, len(show), figsize=(1.7 * len(show), 2.0), squeeze=False)
    for ax, i in zip(axes[0], show):
        ax.imshow(means[i, 0].numpy(), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"slice {positions[i]}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def tissue_share_by_position(slices: SliceSet) -> tuple[list[int], torch.Tensor]:
    """The slice positions present and, at each, the mean share of the image each mask class covers (P, 4).

    Columns: background, CSF, grey matter, white matter; 1 - background is how much of the slice is brain.
    """
    if slices.masks is None:
        raise ValueError("tissue shares need the masks: load the split with with_masks=True")
    positions = sorted(int(p) for p in torch.unique(slices.slice_idx))
    masks = slices.masks[:, 0]
    shares = torch.stack([
        torch.stack([(masks[slices.slice_idx == p] == k).float().mean() for k in range(4)]) for p in positions
    ])
    return positions, shares


def plot_tissue_share_by_position(slices: SliceSet) -> plt.Figure:
    """How much of each slice is brain, and of which tissue, at every position: how the stack runs through the head."""
    positions, shares = tissue_share_by_position(slices)
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    for k, (name, colour) in enumerate((("CSF", "tab:blue"), ("grey matter", "tab:orange"), ("white matter", "0.4")),
                                       start=1):
        ax.plot(positions, shares[:, k], color=colour, label=name)
    ax.plot(positions, 1 - shares[:, 0], color="k", lw=2, label="all brain")
    ax.set(xlabel="slice position", ylabel="share of the image", ylim=(0, 1.4 * float((1 - shares[:, 0]).max())),
           title=f"tissue per slice position ({slices.split}, {len(torch.unique(slices.case_ids))} subjects)")
    ax.legend(fontsize=8, ncol=4, loc="upper center")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def preprocessing_steps(path: str | os.PathLike, resolution: int) -> list[tuple[str, np.ndarray]]:
    """One slice as the loader sees it: stored file, grayscale, resized, scaled to [-1, 1].

    The last step equals `to_float(read_png(path, resolution))`, what training indexes.
    """
    with Image.open(path) as im:
        stored = im.copy()
    gray = stored if stored.mode == "L" else stored.convert("L")
    resized = np.asarray(gray.resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)
    scaled = to_float(torch.from_numpy(read_png(Path(path), resolution).copy())).numpy()
    return [
        (f"stored: {stored.size[0]}x{stored.size[1]} {stored.mode}", np.asarray(stored)),
        (f"grayscale: {gray.mode} uint8", np.asarray(gray)),
        (f"resized: {resolution}x{resolution}", resized),
        ("scaled: float [-1, 1]", scaled),
    ]


def describe_steps(steps: list[tuple[str, np.ndarray]]) -> str:
    """One line per step: shape, dtype and value range."""
    return "\n".join(
        f"{title:<28}{str(a.shape):>12}  {str(a.dtype):<8} [{a.min():.3f}, {a.max():.3f}]" for title, a in steps
    )


def plot_preprocessing(steps: list[tuple[str, np.ndarray]]) -> plt.Figure:
    fig, axes = plt.subplots(1, len(steps), figsize=(2.6 * len(steps), 2.9))
    for ax, (title, a) in zip(axes, steps):
        lo, hi = (-1, 1) if a.dtype.kind == "f" else (0, 255)
        shown = ax.imshow(a if a.ndim == 2 else a[..., :3], cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.colorbar(shown, ax=axes[-1], fraction=0.046)
    return fig


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB float image: the grayscale slice with each non-background mask class tinted."""
    gray = np.repeat((image.astype(np.float32) / 255)[..., None], 3, axis=-1)
    tint = MASK_COLOURS[mask]
    a = np.where(mask[..., None] > 0, alpha, 0.0)
    return (1 - a) * gray + a * tint


def plot_mask_overlays(slices: SliceSet, indices: list[int], alpha: float = 0.45) -> plt.Figure:
    """Each chosen slice, its mask, and the two overlaid."""
    if slices.masks is None:
        raise ValueError("plot_mask_overlays needs masks: load the split with with_masks=True")
    fig, axes = plt.subplots(len(indices), 3, figsize=(6.6, 2.2 * len(indices)), squeeze=False)
    for row, i in zip(axes, indices):
        image, mask = slices.images[i, 0].numpy(), slices.masks[i, 0].numpy()
        row[0].imshow(image, cmap="gray", vmin=0, vmax=255)
        row[1].imshow(MASK_COLOURS[mask])
        row[2].imshow(overlay(image, mask, alpha))
        row[0].set_ylabel(f"case {int(slices.case_ids[i]):03d}\nslice {int(slices.slice_idx[i])}", fontsize=8)
        for ax, title in zip(row, ("slice", "mask", "overlay")):
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=MASK_COLOURS[k]) for k in range(1, 4)]
    fig.legend(handles, MASK_CLASSES[1:], loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig

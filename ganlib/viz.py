"""Pictures: sample grids, the loss plot, and `render(G, z)`, the pure function behind the sliders."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import matplotlib

if not os.environ.get("MPLBACKEND") and "ipykernel" not in __import__("sys").modules:
    matplotlib.use("Agg")  # CLI and tests draw to files; notebooks keep their inline backend
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from .data import to_uint8
from .models import sample


def _grid_columns(n: int) -> int:
    return max(1, int(np.ceil(np.sqrt(n))))


def grid_image(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """A batch in [-1, 1] (N, 1, H, W) as one grayscale PIL grid, or RGB (N, 3, H, W) as an RGB one."""
    images = images.detach().cpu().float()
    grid = to_uint8(make_grid(images, nrow=nrow or _grid_columns(len(images)), padding=padding, pad_value=-1.0))
    if images.shape[1] == 3:
        return Image.fromarray(grid.permute(1, 2, 0).numpy(), mode="RGB")
    return Image.fromarray(grid[0].numpy(), mode="L")


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, nrow).save(path)
    return path


def labelled_grid(
    rows: list[torch.Tensor], row_labels: list[str], col_labels: list[str] | None = None, title: str = "",
    size: float | None = None,
) -> plt.Figure:
    """Rows of images (each (C, 1, H, W) or RGB (C, 3, H, W), in [-1, 1]) as one figure, labelled per row and column.

    Labels live in the figure itself, so a saved or committed picture says what its rows and columns are.
    `size` is each image's side in inches; by default its own pixels at the figure's dpi (no resampling).
    """
    ncol = max(len(r) for r in rows)
    size = size or max(0.5, rows[0].shape[-1] / plt.rcParams["figure.dpi"])
    fig, axes = plt.subplots(len(rows), ncol, figsize=(size * ncol + 1.2, size * len(rows) + 0.5), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row):  # grey (1, H, W) or RGB (3, H, W), e.g. `overlay_masks`
                pixels = to_uint8(row[j].detach().cpu())
                pixels = pixels[0] if len(pixels) == 1 else pixels.permute(1, 2, 0)
                ax.imshow(pixels.numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
            if i == 0 and col_labels:
                ax.set_title(col_labels[j], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(wspace=0.03, hspace=0.06, left=0.12, right=0.99, top=0.88 if title else 0.95, bottom=0.02)
    return fig


def architecture_diagram(module: torch.nn.Module, example: torch.Tensor, title: str = "") -> plt.Figure:
    """The network as a row of boxes, one per convolution or linear layer, drawn from `layer_table`.

    A box's height follows the feature map's side and its width the channel count (both on a log scale);
    the label under it is the layer's type and output shape, and the layers between (BatchNorm,
    activations) are named on the arrows, so the picture is the model itself, not a drawing of it.
    """
    from matplotlib.patches import FancyArrowPatch, Rectangle

    from .models import layer_table

    rows = layer_table(module, example)
    main = [i for i, r in enumerate(rows) if r["type"] in ("Conv2d", "ConvTranspose2d", "Linear")]
    fig, ax = plt.subplots(figsize=(1.6 * len(main) + 1, 3.2))
    x = 0.0
    for k, i in enumerate(main):
        shape = rows[i]["output"]
        ch, side = shape[0], (shape[1] if len(shape) > 1 else 1)
        w, h = 0.25 + 0.12 * np.log2(ch + 1), 0.35 + 0.32 * np.log2(side + 1)
        ax.add_patch(Rectangle((x, -h / 2), w, h, facecolor="#cfe2f3", edgecolor="#35688f"))
        kind = rows[i]["type"].replace("Transpose", "T")
        ax.text(x + w / 2, -h / 2 - 0.15, f"{kind}\n{' x '.join(map(str, shape))}", ha="center", va="top", fontsize=7)
        if k + 1 < len(main):
            between = sorted({r["type"] for r in rows[i + 1 : main[k + 1]]})
            ax.add_patch(FancyArrowPatch((x + w + 0.05, 0), (x + w + 0.6, 0), arrowstyle="->", mutation_scale=8))
            ax.text(x + w + 0.33, 0.12, "\n".join(between), ha="center", va="bottom", fontsize=6, color="#555555")
        x += w + 0.65
    tail = [r["type"] for r in rows[main[-1] + 1 :]]
    ax.text(x - 0.35, 0, " ".join(tail), ha="left", va="center", fontsize=7, color="#555555")
    ax.set_xlim(-0.1, x + 0.3)
    ax.set_ylim(-2.9, 2.4)
    ax.axis("off")
    ax.set_title(title or type(module).__name__, fontsize=10)
    fig.tight_layout()
    return fig


# Mask overlay colours (RGB 0-1) for CSF, grey matter, white matter; background is left as it is.
MASK_COLOURS = torch.tensor([[0.2, 0.5, 1.0], [0.2, 0.9, 0.3], [1.0, 0.6, 0.1]])


def overlay_masks(images: torch.Tensor, masks: torch.Tensor, alpha: float = 0.4) -> torch.Tensor:
    """Slices (N, 1, R, R) in [-1, 1] with their class ids (N, 1, R, R) tinted on: RGB (N, 3, R, R) in [-1, 1]."""
    rgb = images.expand(-1, 3, -1, -1) * 0.5 + 0.5
    colours = torch.cat([rgb.new_zeros(1, 3), MASK_COLOURS.to(rgb)])[masks[:, 0].long()].permute(0, 3, 1, 2)
    tinted = torch.where(masks > 0, (1 - alpha) * rgb + alpha * colours, rgb)
    return tinted * 2 - 1


@torch.no_grad()
def render(
    G: torch.nn.Module, z: torch.Tensor, size: int | None = None, position: int | None = None, overlay: bool = False
) -> Image.Image:
    """The generator's image for one latent (z_dim,) or a batch, as a PIL image (a grid for a batch).

    A position-conditioned G draws the slice at `position` (default 0, 1, 2, ... across a batch); with
    `overlay` a paired G's mask is tinted on (CSF blue, grey matter green, white matter orange).
    """
    z = z[None] if z.dim() == 1 else z
    y = None if position is None else torch.full((len(z),), int(position))
    img = overlay_masks(*sample(G, z, y=y, masks=True)) if overlay else sample(G, z, y=y)
    out = grid_image(img, padding=0 if len(z) == 1 else 2)
    return out.resize((size, size), Image.BILINEAR) if size else out


def read_stats(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / "stats.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_losses(stats: list[dict], path: str | os.PathLike | None = None, title: str = "") -> plt.Figure:
    """The game per epoch: G's and D's losses (and D's on validation), D's mean outputs D(x) and D(G(z)),
    and any evaluated metrics beside them.

    D(x) is D's probability that a real slice is real, D(G(z)) that a generated one is; at the game's
    equilibrium both are 0.5. D(x) -> 1 with D(G(z)) -> 0 is a D that wins outright, and G stops learning.
    """
    metric_keys = sorted({k for s in stats for k in s if k.startswith("metric/")})
    has_d = any(s.get("D_x") is not None for s in stats)
    ncols = 1 + has_d + bool(metric_keys)
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.6), squeeze=False)
    epochs = [s["epoch"] for s in stats]

    def lines(ax, keys, ylabel, sub_title):
        for key, label in keys:
            pts = [(e, s[key]) for e, s in zip(epochs, stats) if s.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=label)
        ax.set(xlabel="epoch", ylabel=ylabel, title=sub_title)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)

    lines(axes[0, 0], (("loss_G", "G"), ("loss_D", "D"), ("val_loss_D", "D on validation")), "loss",
          title or "losses")
    if has_d:
        ax = axes[0, 1]
        lines(ax, (("D_x", "D(x), real slices"), ("D_G_z", "D(G(z)), generated")), "mean of D's output",
              "what D says")
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_ylim(-0.02, 1.02)
    if metric_keys:
        ax = axes[0, -1]
        lines(ax, [(k, k.removeprefix("metric/")) for k in metric_keys], "", "evaluation")
        ax.set_yscale("log")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def figure_image(fig: plt.Figure, gray: bool = True) -> Image.Image:
    """A matplotlib figure as a PIL image (grayscale by default: a grid of slices needs one channel, not four)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    image = Image.open(io.BytesIO(buf.getvalue()))
    return image.convert("L") if gray else image


def png_display(image: Image.Image, width: int | None = None):
    """A PIL image as an IPython PNG display object, `width` pixels wide on screen (PIL would add a JPEG copy)."""
    from IPython.display import Image as IPythonImage

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return IPythonImage(data=buf.getvalue(), width=width)

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


def grid_image(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> Image.Image:
    """A batch in [-1, 1] (N, 1, H, W) as one grayscale PIL grid."""
    images = images.detach().cpu().float()
    nrow = nrow or max(1, int(np.ceil(np.sqrt(len(images)))))
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=-1.0)[0]
    return Image.fromarray(to_uint8(grid).numpy(), mode="L")


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, nrow).save(path)
    return path


@torch.no_grad()
def render(G: torch.nn.Module, z: torch.Tensor, size: int | None = None) -> Image.Image:
    """The generator's image for one latent (z_dim,) or a batch, as a PIL image (a grid for a batch)."""
    img = sample(G, z[None] if z.dim() == 1 else z)
    out = grid_image(img, padding=0 if len(img) == 1 else 2)
    return out.resize((size, size), Image.BILINEAR) if size else out


def read_stats(run_dir: str | os.PathLike) -> list[dict]:
    path = Path(run_dir) / "stats.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def plot_losses(stats: list[dict], path: str | os.PathLike | None = None, title: str = "") -> plt.Figure:
    """G and D loss per epoch, D's loss on the validation split, and any evaluated metrics beside them."""
    metric_keys = sorted({k for s in stats for k in s if k.startswith("metric/")})
    ncols = 1 + bool(metric_keys)
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 3.6), squeeze=False)
    ax = axes[0, 0]
    epochs = [s["epoch"] for s in stats]
    for key, label in (("loss_G", "G"), ("loss_D", "D"), ("val_loss_D", "D on validation")):
        pts = [(e, s[key]) for e, s in zip(epochs, stats) if s.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("BCE loss")
    ax.set_title(title or "losses")
    ax.legend()
    ax.grid(alpha=0.3)
    if metric_keys:
        ax2 = axes[0, 1]
        for key in metric_keys:
            pts = [(e, s[key]) for e, s in zip(epochs, stats) if s.get(key) is not None]
            ax2.plot(*zip(*pts), marker="o", ms=3, label=key.removeprefix("metric/"))
        ax2.set_xlabel("epoch")
        ax2.set_title("evaluation")
        ax2.set_yscale("log")
        ax2.legend()
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig


def png_display(image: Image.Image, width: int | None = None):
    """A PIL image as an IPython PNG display object, `width` pixels wide on screen (PIL would add a JPEG copy)."""
    from IPython.display import Image as IPythonImage

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return IPythonImage(data=buf.getvalue(), width=width)

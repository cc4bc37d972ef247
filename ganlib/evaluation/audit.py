"""Memorisation audit: is a generated sample closer to some training slice than real held-out slices are?

For every sample we find its nearest training slice, and do the same for every held-out real slice (not
trained on). A generator that copies would put samples nearer the training set than held-out slices ever
get, so we report the share of samples below the 1st percentile of the held-out distances (about 1% for
a generator that does not copy, see the real floor) and count exact copies.

Two spaces: pixels (RMS difference, intensity in [0, 1]) and a feature space, Inception-v3 pool features
when an extractor is loaded, else "thumbnail": 16x16 area-averaged slices standardised per image (zero
mean, unit norm), which forgives small shifts and brightness/contrast changes that pixel distance punishes.
Distances are computed in blocks, so memory stays bounded whatever the set sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import viz  # noqa: F401  (selects the Agg backend outside notebooks before pyplot loads)
from ..data import to_float

PERCENTILE = 1.0


@dataclass
class SpaceAudit:
    """Nearest-training-slice distances of the samples and of the held-out slices in one space."""

    space: str
    fake_dist: torch.Tensor  # (N,) float64
    fake_index: torch.Tensor  # (N,) index of the nearest training slice
    heldout_dist: torch.Tensor  # (K,)
    threshold: float  # the held-out distances' PERCENTILE-th percentile
    share: float  # fraction of samples strictly closer than the threshold


def pixel_vectors(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, R, R) -> (N, C*R*R), scaled so the Euclidean distance is the RMS difference in [0, 1]."""
    flat = images.flatten(1).float() / 255.0
    return flat / flat.shape[1] ** 0.5


def thumbnail_features(images: torch.Tensor, size: int = 16) -> torch.Tensor:
    """16x16 area-averaged slices, zero mean and unit norm per image: a cheap, weight-free feature."""
    x = F.adaptive_avg_pool2d(to_float(images), size).flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)


def nearest_neighbours(
    queries: torch.Tensor,
    keys: torch.Tensor,
    embed: Callable[[torch.Tensor], torch.Tensor] = lambda x: x.float(),
    block: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row, the distance to and index of its nearest key, `embed`ding rows block by block.

    The search uses |q|^2 + |k|^2 - 2 q.k in float32; the winning pair's distance is then recomputed
    directly in float64, so an exact copy reports exactly 0.
    """
    best_d = torch.full((len(queries),), float("inf"))
    best_i = torch.zeros(len(queries), dtype=torch.long)
    key_blocks = [(start, embed(keys[start : start + 4 * block])) for start in range(0, len(keys), 4 * block)]
    for qs in range(0, len(queries), block):
        q = embed(queries[qs : qs + block])
        q_sq = (q * q).sum(1, keepdim=True)
        for ks, k in key_blocks:
            d2 = q_sq + (k * k).sum(1) - 2 * q @ k.T
            m, i = d2.min(dim=1)
            better = m < best_d[qs : qs + block]
            best_d[qs : qs + block] = torch.where(better, m, best_d[qs : qs + block])
            best_i[qs : qs + block] = torch.where(better, i + ks, best_i[qs : qs + block])
    exact = torch.empty(len(queries), dtype=torch.float64)
    for qs in range(0, len(queries), block):
        idx = best_i[qs : qs + block]
        diff = embed(queries[qs : qs + block]).double() - embed(keys[idx]).double()
        exact[qs : qs + block] = diff.norm(dim=1)
    return exact, best_i


def audit_space(
    space: str,
    fake: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    embed: Callable[[torch.Tensor], torch.Tensor] = lambda x: x.float(),
) -> SpaceAudit:
    """Nearest-neighbour distances of `fake` and `heldout` rows to `train` rows, and the share below p1."""
    fake_dist, fake_index = nearest_neighbours(fake, train, embed)
    heldout_dist, _ = nearest_neighbours(heldout, train, embed)
    threshold = float(torch.quantile(heldout_dist, PERCENTILE / 100))
    share = float((fake_dist < threshold).double().mean())
    return SpaceAudit(space, fake_dist, fake_index, heldout_dist, threshold, share)


def summarise(result: SpaceAudit) -> dict[str, float]:
    s = result.space
    return {
        f"mem_share_{s}": result.share,
        f"mem_threshold_{s}": result.threshold,
        f"mem_min_{s}": float(result.fake_dist.min()),
        f"mem_median_{s}": float(result.fake_dist.median()),
        f"mem_heldout_median_{s}": float(result.heldout_dist.median()),
    }


def run_audit(
    fake: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    features: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    out_dir: str | Path | None = None,
    pairs_dir: str | Path | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """The audit on plain uint8 tensors: (numbers, figures as {caption: file name in out_dir, or a path}).

    Pixels always; beside them the rows of `features` (samples, train, held-out: Inception features, say)
    when given, else the weight-free thumbnail space. Figures are drawn only with `out_dir`. The nearest-pair
    figures show real training slices: `pairs_dir` draws them there instead (outside a repository, say), and
    the figures dict then gives their full path.
    """
    results = [audit_space("pixel", fake, train, heldout, pixel_vectors)]
    if features is not None:
        results.append(audit_space("inception", *features))
    else:
        results.append(audit_space("thumbnail", fake, train, heldout, thumbnail_features))
    out: dict[str, float] = {"mem_exact_copies": float((results[0].fake_dist == 0).sum())}
    for r in results:
        out.update(summarise(r))
    figures: dict[str, str] = {}
    if out_dir is not None:
        keep_out_of_git(Path(pairs_dir or out_dir))
        for r in results:
            name = f"memorization_pairs_{r.space}.png"
            path = Path(pairs_dir or out_dir) / name
            plot_closest_pairs(fake, train, r, path)
            figures[f"Samples closest to a training slice ({r.space} distance)"] = str(path) if pairs_dir else name
        plot_distances(results, Path(out_dir) / "memorization_distances.png")
        figures["Nearest-training-slice distances: samples vs held-out slices"] = "memorization_distances.png"
    return out, figures


PAIRS_PATTERN = "memorization_pairs_*.png"


def keep_out_of_git(folder: Path) -> None:
    """The nearest-pair figures show real training slices (patients): in a git work tree, a .gitignore
    beside them keeps them out of commits, whichever repository the report is written into."""
    folder = folder.absolute()
    if not any((p / ".git").exists() for p in (folder, *folder.parents)):
        return
    folder.mkdir(parents=True, exist_ok=True)
    if already_ignored(folder / "memorization_pairs_pixel.png"):
        return
    ignore = folder / ".gitignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    if PAIRS_PATTERN not in lines:
        why = "# the audit's nearest pairs show real training slices"
        ignore.write_text("\n".join([*lines, why, PAIRS_PATTERN]) + "\n")


def already_ignored(path: Path) -> bool:
    """Whether the repository around `path` already ignores it (`git check-ignore`); False where git cannot tell."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", str(path.parent), "check-ignore", "-q", path.name],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def plot_closest_pairs(fake: torch.Tensor, train: torch.Tensor, result: SpaceAudit, path: Path, k: int = 8) -> Path:
    """The k samples nearest the training set (top) above their nearest training slice (bottom)."""
    import matplotlib.pyplot as plt

    order = torch.argsort(result.fake_dist)[:k].tolist()
    fig, axes = plt.subplots(2, len(order), figsize=(1.6 * len(order), 3.6), squeeze=False)
    for col, i in enumerate(order):
        j = int(result.fake_index[i])
        for row, img in enumerate((fake[i], train[j])):
            axes[row, col].imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255)
            axes[row, col].axis("off")
        axes[0, col].set_title(f"d={result.fake_dist[i]:.3g}\ntrain #{j}", fontsize=8)
    fig.suptitle(f"nearest training slice, {result.space} space (threshold {result.threshold:.3g})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_distances(results: list[SpaceAudit], path: Path) -> Path:
    """Histograms of nearest-training-slice distances, samples beside held-out slices, per space."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.2), squeeze=False)
    for ax, r in zip(axes[0], results):
        both = torch.cat([r.fake_dist, r.heldout_dist]).numpy()
        bins = np.linspace(both.min(), both.max() + 1e-12, 40)
        ax.hist(r.heldout_dist.numpy(), bins=bins, density=True, alpha=0.6, label="held-out real")
        ax.hist(r.fake_dist.numpy(), bins=bins, density=True, alpha=0.6, label="samples")
        ax.axvline(r.threshold, color="k", ls="--", lw=1, label=f"held-out p{PERCENTILE:g}")
        ax.set_xlabel(f"distance to nearest training slice ({r.space})")
        ax.set_title(f"share below threshold: {100 * r.share:.1f}%", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Sample-quality metrics as small named functions in a registry; each returns a dict of numbers.

* `swd`: sliced Wasserstein distance between 7x7 neighbourhoods of Laplacian pyramid levels
  (Karras et al. 2018, Progressive Growing of GANs, appendix D). Needs no pretrained weights.
* `msssim`: diversity, the mean MS-SSIM of random pairs within the generated set beside the same within
  the real set (lower = more diverse; a generator that collapses scores above the real value).
* `fid`, `kid`: Inception-v3 features (see `inception.py`) compared with torchmetrics.
* `memorization`: each sample's nearest training slice against the held-out slices' (see `audit.py`).

`MetricInputs` holds the image sets (uint8, (N, 1, R, R)) and computes Inception features once for all
metrics that want them. `training_metrics` is the light weight-free subset `train()` logs every K epochs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as _ms_ssim

from ..data import SliceSet, to_float, to_uint8
from ..models import sample
from . import audit, inception

METRICS: dict[str, Callable[[MetricInputs], dict[str, float]]] = {}


def register_metric(fn: Callable) -> Callable:
    METRICS[fn.__name__] = fn
    return fn


@dataclass
class MetricInputs:
    """The sets a metric may compare. `fake` stands in for generated samples (real slices for the floor)."""

    fake: torch.Tensor  # uint8 (N, 1, R, R)
    real: torch.Tensor  # the real split the distribution metrics compare against
    train: torch.Tensor | None = None  # the training split, for the memorisation audit
    heldout: torch.Tensor | None = None  # held-out real slices: the audit's scale
    extractor: nn.Module | None = None  # Inception-like: uint8 (N, 3, H, W) -> (N, D)
    audit_features: str = "auto"  # "inception", "thumbnail", or "auto" (Inception when an extractor is given)
    cache_fake_features: bool = False  # True when `fake` is real data (the floor): worth caching
    device: str | torch.device = "cpu"
    batch_size: int = 64
    seed: int = 0
    out_dir: Path | None = None  # where metrics may draw figures
    pair_figures: Path | None = None  # the audit's nearest-pair figures (real training slices): out_dir if None
    figures: dict[str, str] = field(default_factory=dict)  # caption -> file name in out_dir, or a path outside it
    _features: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def features(self, name: str) -> torch.Tensor:
        """Inception features of the set `name` ("fake", "real", "train", "heldout"), computed once."""
        if self.extractor is None:
            raise ValueError("Inception features were asked for but no extractor was loaded (--inception-weights)")
        images = getattr(self, name)
        for other, feats in self._features.items():
            if getattr(self, other) is images:  # the real split doubling as the audit's held-out set
                return feats
        cache = name != "fake" or self.cache_fake_features
        self._features[name] = inception.extract_features(
            self.extractor, images, self.batch_size, self.device, cache=cache
        )
        return self._features[name]


def compute_metrics(names: list[str], inputs: MetricInputs) -> dict[str, float]:
    """Run the named metrics in order and merge their dicts."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"--metrics: unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    results: dict[str, float] = {}
    for name in names:
        results.update(METRICS[name](inputs))
    return results


# ---------------------------------------------------------------- sliced Wasserstein distance

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # the Burt-Adelson 5-tap Gaussian


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _BINOMIAL.to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def _upsample(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = 4 * x  # zeros take 3 of every 4 pixels; x4 keeps the mean after the blur
    return _blur(up)


def laplacian_pyramid(images: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """Band-pass levels from full resolution down to `min_size`; the last level is the low-pass rest."""
    levels, current = [], images.float()
    while current.shape[-1] > min_size:
        down = _blur(current)[..., ::2, ::2]
        levels.append(current - _upsample(down))
        current = down
    levels.append(current)
    return levels


def _neighbourhoods(level: torch.Tensor, per_image: int, patch: int, gen: torch.Generator) -> torch.Tensor:
    """`per_image` random patch x patch neighbourhoods of each image: (N * per_image, C, patch, patch)."""
    n, c, h, w = level.shape
    ys = torch.randint(0, h - patch + 1, (n, per_image, 1, 1), generator=gen)
    xs = torch.randint(0, w - patch + 1, (n, per_image, 1, 1), generator=gen)
    offsets = torch.arange(patch)
    rows, cols = ys + offsets.view(1, 1, patch, 1), xs + offsets.view(1, 1, 1, patch)
    patches = level.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1, 1), rows, cols]  # N, per, p, p, C
    return patches.permute(0, 1, 4, 2, 3).reshape(n * per_image, c, patch, patch)


def _normalise(desc: torch.Tensor) -> torch.Tensor:
    # Per channel over the whole set, as the paper does, so SWD compares patterns rather than contrast.
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
    return ((desc - mean) / std).flatten(1)


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, n_dirs: int = 512, n_repeats: int = 4, gen: torch.Generator | None = None
) -> float:
    """Mean 1-D Wasserstein distance of two point sets (M, D) along random unit directions."""
    gen = gen or torch.Generator().manual_seed(0)
    m = min(len(a), len(b))  # sorted projections are compared element-wise: equal counts
    a = a[torch.randperm(len(a), generator=gen)[:m]]
    b = b[torch.randperm(len(b), generator=gen)[:m]]
    a_t, b_t = a.T.contiguous(), b.T.contiguous()
    chunk = max(1, min(n_dirs, 2**24 // m))  # bounds the projected (chunk, m) matrices to 64 MB each
    total = 0.0
    for _ in range(n_repeats):
        dirs = torch.randn(n_dirs, a.shape[1], generator=gen)
        dirs /= dirs.norm(dim=1, keepdim=True)
        for start in range(0, n_dirs, chunk):
            d = dirs[start : start + chunk]
            # Rows are directions: sorting along the contiguous axis is about twice as fast on CPU.
            pa, pb = (d @ a_t).sort(dim=1).values, (d @ b_t).sort(dim=1).values
            total += float((pa - pb).abs().mean(dim=1).sum())
    return total / (n_dirs * n_repeats)


def swd_levels(
    a: torch.Tensor,
    b: torch.Tensor,
    per_image: int = 128,
    patch: int = 7,
    n_dirs: int = 512,
    n_repeats: int = 4,
    max_descriptors: int = 2**18,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """SWD x 1e3 (the paper's unit) per pyramid level, `swd_<size>`, and their mean, `swd`.

    `a`, `b`: images (N, C, R, R), uint8 or float in [-1, 1]. Descriptors per image shrink so that a
    level holds at most `max_descriptors` (the paper samples 128 from each of 16384 images).
    """
    per_image = max(1, min(per_image, max_descriptors // max(len(a), len(b))))
    sets = []
    for images in (a, b):
        # Both sets draw the same neighbourhood positions (common random numbers): a set against
        # itself scores exactly 0, and comparisons are less noisy than with independent draws.
        gen = torch.Generator().manual_seed(seed)
        per_level: list[list[torch.Tensor]] = []
        for start in range(0, len(images), batch_size):  # pyramids of a batch at a time: bounded memory
            batch = images[start : start + batch_size]
            batch = to_float(batch) if batch.dtype == torch.uint8 else batch.float()
            for i, level in enumerate(laplacian_pyramid(batch)):
                if i == len(per_level):
                    per_level.append([])
                per_level[i].append(_neighbourhoods(level, per_image, patch, gen))
        sets.append([_normalise(torch.cat(chunks)) for chunks in per_level])
    out = {}
    gen = torch.Generator().manual_seed(seed + 1)
    for desc_a, desc_b, size in zip(*sets, [a.shape[-1] >> i for i in range(len(sets[0]))]):
        out[f"swd_{size}"] = 1e3 * sliced_wasserstein(desc_a, desc_b, n_dirs, n_repeats, gen)
    out["swd"] = sum(out.values()) / len(out)
    return out


@register_metric
def swd(inputs: MetricInputs) -> dict[str, float]:
    return swd_levels(inputs.real, inputs.fake, seed=inputs.seed)


# ---------------------------------------------------------------- MS-SSIM diversity

MSSSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, finest scale first


def msssim_scales(resolution: int, kernel_size: int = 11) -> int:
    """How many of the 5 MS-SSIM scales fit: the coarsest must still hold the 11x11 Gaussian window.

    Five scales need more than 160 px; 128 px keeps 4, 64 px keeps 3, 32 px 2, so the coarsest scale is
    16 px throughout. torchmetrics' own size check is (len(betas) - 1)**2, applied here as well.
    """
    for k in range(len(MSSSIM_BETAS), 0, -1):
        if resolution >> (k - 1) >= kernel_size and resolution // max(1, k - 1) ** 2 > kernel_size - 1:
            return k
    raise ValueError(f"images of {resolution} px are too small for MS-SSIM with an {kernel_size}px window")


def msssim_diversity(images: torch.Tensor, n_pairs: int = 1000, seed: int = 0, batch_size: int = 128) -> float:
    """Mean MS-SSIM over `n_pairs` random pairs of distinct images (N, C, R, R), uint8 or float in [-1, 1].

    Scales the size does not allow are dropped and the remaining betas rescaled to sum to 1 (see
    `msssim_scales`); negative contrast-structure terms are clamped at 0 ("relu") so the fractional
    powers stay real.
    """
    if len(images) < 2:
        raise ValueError("MS-SSIM diversity needs at least 2 images")
    k = msssim_scales(images.shape[-1])
    betas = tuple(b / sum(MSSSIM_BETAS[:k]) for b in MSSSIM_BETAS[:k])
    n = len(images)
    if n * (n - 1) // 2 <= n_pairs:  # few images: every pair once, the exact mean
        i, j = torch.triu_indices(n, n, offset=1)
    else:
        gen = torch.Generator().manual_seed(seed)
        i = torch.randint(0, n, (n_pairs,), generator=gen)
        j = (i + torch.randint(1, n, (n_pairs,), generator=gen)) % n  # never i itself
    values = []
    for start in range(0, len(i), batch_size):
        x, y = (images[idx[start : start + batch_size]] for idx in (i, j))
        x, y = ((to_float(t) if t.dtype == torch.uint8 else t.float()).add(1).div(2) for t in (x, y))
        values.append(_ms_ssim(x, y, data_range=1.0, betas=betas, normalize="relu", reduction="none"))
    return float(torch.cat(values).mean())


@register_metric
def msssim(inputs: MetricInputs) -> dict[str, float]:
    fake = msssim_diversity(inputs.fake, seed=inputs.seed)
    real = msssim_diversity(inputs.real, seed=inputs.seed)
    return {"msssim_fake": fake, "msssim_real": real, "msssim_gap": fake - real}


# ---------------------------------------------------------------- Inception metrics and the audit


@register_metric
def fid(inputs: MetricInputs) -> dict[str, float]:
    return {"fid": inception.fid_from_features(inputs.features("real"), inputs.features("fake"))}


@register_metric
def kid(inputs: MetricInputs) -> dict[str, float]:
    return inception.kid_from_features(inputs.features("real"), inputs.features("fake"), seed=inputs.seed)


@register_metric
def memorization(inputs: MetricInputs) -> dict[str, float]:
    """`audit.run_audit` on the inputs' sets, in Inception space when an extractor is there (or asked for)."""
    mode = inputs.audit_features
    if mode not in ("auto", "inception", "thumbnail"):
        raise ValueError(f"--audit-features {mode!r}: choose auto, inception or thumbnail")
    if inputs.train is None or inputs.heldout is None:
        raise ValueError("the memorisation audit needs the training split and a held-out split")
    use_inception = mode == "inception" or (mode == "auto" and inputs.extractor is not None)
    features = tuple(inputs.features(name) for name in ("fake", "train", "heldout")) if use_inception else None
    numbers, figures = audit.run_audit(
        inputs.fake, inputs.train, inputs.heldout, features, inputs.out_dir, pairs_dir=inputs.pair_figures
    )
    inputs.figures.update(figures)
    return numbers


# ---------------------------------------------------------------- during training


@torch.no_grad()
def training_metrics(
    G: nn.Module, train_set: SliceSet, val_set: SliceSet | None, device: str | torch.device, n: int = 256
) -> dict[str, float]:
    """Weight-free metrics for the training log: SWD to the validation slices and MS-SSIM diversity.

    A lighter SWD than the final one (fewer neighbourhoods and projections), so numbers are comparable
    along a run, not with `ganlib evaluate`. Uses its own RNG: training's random stream is untouched.
    """
    reals = (val_set if val_set is not None else train_set).images
    reals = reals[torch.linspace(0, len(reals) - 1, min(n, len(reals))).long()]
    net = getattr(G, "module", G)  # DistributedDataParallel keeps the model in .module
    fakes = to_uint8(sample(G, torch.randn(n, net.z_dim, generator=torch.Generator().manual_seed(1234))))
    out = swd_levels(reals, fakes, per_image=32, n_dirs=128, n_repeats=1)
    out["msssim_fake"] = msssim_diversity(fakes, n_pairs=100)
    out["msssim_real"] = msssim_diversity(reals, n_pairs=100)
    return out

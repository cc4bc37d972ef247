"""Differentiable augmentation for a small data set (DiffAugment, Zhao et al. 2020).

D sees every image, real or generated, through the same random transforms, and G's gradient
flows back through them, so D cannot memorise the few real slices while G still learns
the un-augmented distribution. All transforms run on the training device in one batch.
"""

from __future__ import annotations

import torch


def brightness(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    shift = torch.rand(x.shape[0], 1, 1, 1, generator=g, device=x.device, dtype=x.dtype) - 0.5
    return x + shift * 0.5  # up to a quarter of the [-1, 1] range either way


def contrast(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    scale = torch.rand(x.shape[0], 1, 1, 1, generator=g, device=x.device, dtype=x.dtype) + 0.5
    return (x - mean) * scale + mean


def translation(x: torch.Tensor, g: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size, filling with background (-1)."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=g, device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=g, device=x.device)
    yy = torch.arange(h, device=x.device).view(1, h, 1) - dy  # source row for each output row
    xx = torch.arange(w, device=x.device).view(1, 1, w) - dx
    inside = ((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)).unsqueeze(1)
    flat = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).view(n, 1, h * w)
    moved = x.flatten(2).gather(2, flat.expand(-1, x.shape[1], -1)).view_as(x)
    return torch.where(inside, moved, torch.full_like(moved, -1.0))


def cutout(x: torch.Tensor, g: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    """Blank one square of `ratio` x size per image to background; its centre may sit anywhere."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.randint(0, h, (n, 1, 1), generator=g, device=x.device) - ch // 2
    x0 = torch.randint(0, w, (n, 1, 1), generator=g, device=x.device) - cw // 2
    yy = torch.arange(h, device=x.device).view(1, h, 1)
    xx = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (yy >= y0) & (yy < y0 + ch) & (xx >= x0) & (xx < x0 + cw)
    return torch.where(hole.unsqueeze(1), torch.full_like(x, -1.0), x)


POLICIES = {"brightness": brightness, "contrast": contrast, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
    """'translation,cutout' -> ['translation', 'cutout'], with a clear error for an unknown name."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str, g: torch.Generator | None = None, p: float = 1.0) -> torch.Tensor:
    """Apply the comma-separated transforms of `policy` to a batch; '' returns x unchanged.

    With `p` < 1 each image goes through the whole policy with probability p and is left as it is
    otherwise, so D still sees un-augmented slices (the fixed-probability augmentation of R3GAN).
    """
    names = parse_policy(policy)
    if not names or p <= 0:
        return x
    out = x
    for name in names:
        out = POLICIES[name](out, g)
    if p >= 1:
        return out
    keep = torch.rand(x.shape[0], 1, 1, 1, generator=g, device=x.device) >= p
    return torch.where(keep, x, out)

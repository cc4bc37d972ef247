"""Residual G and D without normalisation layers, after R3GAN (Huang et al., NeurIPS 2024).

Every block is `x + conv1x1(act(grouped_conv3x3(act(conv1x1(x)))))`: expand the channels, mix space in
groups of 16 channels, project back. The last 1x1 of each block starts at zero, so at initialisation every
block is the identity and the network is as deep as its transitions only; the other two layers are scaled
down with the number of blocks (fix-up initialisation) so the sum of blocks keeps unit variance as it
trains. Resolution changes between stages are smooth: bilinear up-sampling in G, a [1, 3, 3, 1] low-pass
filter before stride-2 down-sampling in D. G starts from a learned 4x4 basis modulated by z; D ends with a
learned 4x4 "basis" (a depthwise 4x4 convolution) and a linear layer. No BatchNorm anywhere: each image's
output depends on that image only, which the gradient penalties of `loss="rpgan"` need.

`width` is the channel count at full resolution; each halving of the resolution doubles it, up to 8x.
Shapes in comments are for resolution 64, width 32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .conditional import EMBED_DIM, PositionInput, Projection, split_output
from .config import RESOLUTIONS

GROUP = 16  # channels per group in the 3x3 convolutions
EXPAND = 2  # channel expansion inside a block
SLOPE = 0.2  # leaky ReLU slope


def stage_widths(resolution: int, width: int) -> list[int]:
    """Channels at 4x4, 8x8, ... full resolution: width at full size, doubling per halving, at most 8x."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    n = int(math.log2(resolution)) - 1
    return [width * min(2 ** (n - 1 - i), 8) for i in range(n)]


def _conv(c_in: int, c_out: int, k: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    """A convolution with He initialisation times `gain` (gain 0: zero weights)."""
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=True)
    fan_in = c_in // groups * k * k
    nn.init.normal_(conv.weight, 0.0, gain * math.sqrt(2 / (1 + SLOPE**2) / fan_in))
    nn.init.zeros_(conv.bias)
    return conv


class ResidualBlock(nn.Module):
    """x + 1x1(act(3x3 grouped(act(1x1(x))))), the last 1x1 zero-initialised."""

    def __init__(self, channels: int, num_blocks: int):
        super().__init__()
        inner = channels * EXPAND
        gain = num_blocks ** (-1 / 4)  # fix-up: L^(-1/(2m-2)) with m = 3 layers per branch
        self.expand = _conv(channels, inner, 1, gain=gain)
        self.mix = _conv(inner, inner, 3, groups=max(1, inner // GROUP), gain=gain)
        self.project = _conv(inner, channels, 1, gain=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.expand(x), SLOPE)
        y = F.leaky_relu(self.mix(y), SLOPE)
        return x + self.project(y)


class Upsample(nn.Module):
    """Change channels with a 1x1, then double the size bilinearly."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = _conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.proj(x), scale_factor=2, mode="bilinear", align_corners=False)


class Downsample(nn.Module):
    """Low-pass [1, 3, 3, 1] filter with stride 2, then change channels with a 1x1."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 64).expand(c_in, 1, 4, 4).clone(), persistent=False)
        self.proj = _conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel.to(x.dtype), stride=2, groups=x.shape[1])
        return self.proj(x)


class ResNetGenerator(nn.Module):
    """z (N, z_dim) -> image (N, channels, R, R), roughly in [-1, 1] (no Tanh: `models.sample` clamps)."""

    def __init__(
        self, z_dim: int = 100, resolution: int = 64, width: int = 32, channels: int = 1, blocks: int = 1,
        positions: int = 0, mask_classes: int = 0,
    ):
        super().__init__()
        self.z_dim, self.resolution, self.mask_classes = z_dim, resolution, mask_classes
        self.condition = PositionInput(positions) if positions else None  # z and the position's embedding
        z_in = z_dim + (EMBED_DIM if positions else 0)
        ch = stage_widths(resolution, width)  # 256, 256, 128, 64, 32 at 4, 8, 16, 32, 64 px
        total = blocks * len(ch)
        self.basis = nn.Parameter(torch.randn(ch[0], 4, 4))  # learned 4x4 start: 256 x 4 x 4
        self.modulate = nn.Linear(z_in, ch[0], bias=False)  # z picks a weighting of the basis channels
        nn.init.normal_(self.modulate.weight, 0.0, 1 / math.sqrt(z_in))
        stages = []
        for i, c in enumerate(ch):
            layers = [Upsample(ch[i - 1], c)] if i else []  # 256 x 8 x 8 ... 32 x 64 x 64
            layers += [ResidualBlock(c, total) for _ in range(blocks)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.to_image = _conv(ch[-1], channels + mask_classes, 1)  # 1 x 64 x 64

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], self.z_dim)
        if self.condition is not None:
            z = self.condition(z, y)
        x = self.basis[None] * self.modulate(z)[:, :, None, None]
        return split_output(self.to_image(self.stages(x)), self.mask_classes, squash_image=False)


class ResNetDiscriminator(nn.Module):
    """image (N, channels, R, R) -> probability of being real (N,); `logits()` is the value before the Sigmoid."""

    def __init__(self, resolution: int = 64, width: int = 32, channels: int = 1, blocks: int = 1, positions: int = 0):
        super().__init__()
        ch = stage_widths(resolution, width)[::-1]  # 32, 64, 128, 256, 256 at 64, 32, 16, 8, 4 px
        total = blocks * len(ch)
        self.from_image = _conv(channels, ch[0], 1)  # 32 x 64 x 64
        stages = []
        for i, c in enumerate(ch):
            layers = [ResidualBlock(c, total) for _ in range(blocks)]
            layers += [Downsample(c, ch[i + 1])] if i + 1 < len(ch) else []  # 64 x 32 x 32 ... 256 x 4 x 4
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.basis = nn.Conv2d(ch[-1], ch[-1], 4, groups=ch[-1], bias=False)  # learned 4x4 end: 256 x 1 x 1
        nn.init.normal_(self.basis.weight, 0.0, 1 / 4)
        self.out = nn.Linear(ch[-1], 1)  # 1
        nn.init.normal_(self.out.weight, 0.0, 1 / math.sqrt(ch[-1]))
        nn.init.zeros_(self.out.bias)
        self.project = Projection(positions, ch[-1]) if positions else None  # + <embed(position), features>
        self.sigmoid = nn.Sigmoid()

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = F.leaky_relu(self.from_image(x), SLOPE)
        h = self.basis(self.stages(x)).flatten(1)
        out = self.out(h).flatten()
        return out if self.project is None else out + self.project(h, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.sigmoid(self.logits(x, y))

"""A projected discriminator: D looks at slices through a frozen network trained on brain slices.

Projected GANs (Sauer et al., NeurIPS 2021) put a frozen pretrained feature network under D: D's small heads
judge that network's features at several scales, after a fixed random 1x1 mixing of their channels, and G
gets its gradient back through the frozen network. Their network was trained on ImageNet; this project has
one trained on its own domain, the 4-class U-Net of `ganlib.pairs.segment`, whose encoder knows where CSF,
grey and white matter lie. Switched on by `TrainConfig.d_features`, judged in docs/results.md.

Shapes for the encoder of a width-16 U-Net, slices seen at 64 px (`d_features_res`):

    slice (N, 1, R, R) -> 64 px -> level 0: 16 x 64 x 64 -> level 1: 32 x 32 x 32 -> level 2: 64 x 16 x 16
                                 -> level 3: 128 x 8 x 8
    levels 1-3 -> fixed random 1x1 mixing -> one head each (stride-2 convolutions down to 4 x 4, then a 4 x 4
    convolution to one number) -> the sum of the heads, plus the pixel D's score when `d_pixel` keeps it.

Level 0 (full resolution) gets no head: it is the encoder's costliest output and mostly edges.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .pairs.segment import UNet

FEATURES_DIR = Path(__file__).resolve().parent / "pretrained"
HEAD_LEVELS = (1, 2, 3)  # the encoder levels D's heads judge


def features_path(name: str) -> Path:
    """The U-Net file behind `d_features`: a shipped name ("unet64": ganlib/pretrained/unet64.pt) or a path."""
    p = Path(name)
    return FEATURES_DIR / f"{name}.pt" if p.suffix != ".pt" and len(p.parts) == 1 else p


def save_features(model: UNet, path: str | Path, report: dict) -> None:
    """A trained U-Net as a feature network file: its weights in fp16, its shape, and how it was trained."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    width = model.down[0][0].out_channels
    torch.save({"unet": state, "width": width, "depth": model.depth, "report": report}, path)


def load_features(name: str) -> UNet:
    """The frozen U-Net of a `d_features` name or path, in eval mode; a clear error for a missing or foreign file."""
    path = features_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"d_features={name}: no feature network at {path}; train one with `python -m benchmarks.projected "
            "features`, or give the path of a file it wrote"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = UNet(width=blob["width"], depth=blob["depth"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["unet"].items()})
    except Exception as e:  # a checkpoint of something else, or a damaged file
        raise ValueError(f"d_features={name}: {path} is not a feature network written by ganlib ({e})") from None
    return model.eval().requires_grad_(False)


def _head(channels: int, size: int, width: int, wrap) -> nn.Sequential:
    """One scale's judge: stride-2 convolutions from `size` down to 4 x 4, then one number per image."""
    layers, c = [], channels
    for i in range(int(math.log2(size // 4))):  # width, 2 x width, ... channels, at most 256
        c_out = min(width * 2**i, 256)
        layers += [wrap(nn.Conv2d(c, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        c = c_out
    layers.append(wrap(nn.Conv2d(c, 1, 4, 1, 0)))
    return nn.Sequential(*layers)


class ProjectedDiscriminator(nn.Module):
    """slice (N, 1, R, R) -> logit (N,): heads on a frozen U-Net encoder's features, plus a pixel D if given.

    The encoder never trains: its weights take no gradient and it stays in eval mode (BatchNorm with its
    stored statistics, so each slice's score depends on that slice alone, as the gradient penalties need).
    """

    def __init__(self, features: UNet, feature_res: int = 64, width: int = 32, spectral: bool = False,
                 pixel: nn.Module | None = None, seed: int = 0):
        super().__init__()
        if feature_res % 2 ** features.depth or feature_res // 2 ** features.depth < 4:
            raise ValueError(f"d_features_res={feature_res}: needs a multiple of {2 ** features.depth} of at least "
                             f"{4 * 2 ** features.depth}")
        self.features, self.feature_res, self.pixel = features, feature_res, pixel
        self.features.eval().requires_grad_(False)
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        channels = [features.down[i][0].out_channels for i in HEAD_LEVELS]
        # Fixed random mixing of each level's channels (Projected GAN's cross-channel mixing): a buffer, not
        # a weight, so D cannot learn to look at only the few channels that are easiest to tell apart.
        g = torch.Generator().manual_seed(seed)
        for level, c in zip(HEAD_LEVELS, channels):
            w = torch.empty(c, c, 1, 1)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
            self.register_buffer(f"mix{level}", w)
        self.heads = nn.ModuleList(
            _head(c, feature_res // 2**level, width, wrap) for level, c in zip(HEAD_LEVELS, channels)
        )

    def train(self, mode: bool = True):
        super().train(mode)
        self.features.eval()  # frozen: BatchNorm keeps its stored statistics
        return self

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's outputs at HEAD_LEVELS for slices in [-1, 1] seen at `feature_res`."""
        if x.shape[-1] != self.feature_res:
            x = F.interpolate(x, size=self.feature_res, mode="bilinear", antialias=True, align_corners=False)
        levels = self.features.encode(x, max(HEAD_LEVELS) + 1)
        return [levels[i] for i in HEAD_LEVELS]

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.encode(x[:, :1])
        score = sum(
            head(F.conv2d(f, getattr(self, f"mix{level}").to(f.dtype))).flatten()
            for level, f, head in zip(HEAD_LEVELS, feats, self.heads)
        )
        return score if self.pixel is None else score + self.pixel.logits(x, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(x, y))


def build_projected(config, pixel: nn.Module | None) -> ProjectedDiscriminator:
    """The projected D of a `TrainConfig` with `d_features` set; `pixel` is its pixel D (None: heads only)."""
    refused = {"positions": config.positions, "with_masks": config.with_masks, "grow_from": config.grow_from,
               "arch='resnet'": config.arch == "resnet", "d_norm='batch'": config.d_norm == "batch"}
    for name, value in refused.items():
        if value:
            raise ValueError(f"d_features: the projected D judges unconditioned slices of the DCGAN networks "
                             f"without BatchNorm in D; it cannot be combined with {name}")
    return ProjectedDiscriminator(
        load_features(config.d_features), config.d_features_res, config.d_width, config.d_norm == "spectral",
        pixel, config.seed,
    )

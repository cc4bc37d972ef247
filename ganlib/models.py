"""The seed's DCGAN: a transposed-convolution Generator and a convolutional Discriminator.

Both are parametrised by resolution (a power of two, 32 to 256) and width, so the same code
gives the 128x128 reference model and a small CPU model. Shapes in comments are for the
`reference` preset (resolution 128, width 64).

Growing (`grow_from`, ProGAN's idea): the networks can also run at a lower resolution, using only the
layers of G that lead there and the layers of D that follow from there. G gains a small "to image" layer
and D a "from image" layer at each lower resolution; `set_stage(net, resolution, alpha)` picks the one in
use, and while a new resolution fades in (alpha from 0 to 1) the old path's output is blended with the new
one. At the full resolution with alpha 1 both are the seed's networks exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .conditional import (
    EMBED_DIM,
    NUM_CLASSES,
    PositionInput,
    Projection,
    check_positions,
    default_positions,
    split_output,
)
from .config import RESOLUTIONS
from .resnet import ResNetDiscriminator, ResNetGenerator
from .utils.nets import eval_mode  # also imported from here: `from ganlib.models import eval_mode`


def _num_blocks(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    return int(math.log2(resolution)) - 2  # stages between 4x4 and the full image


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, channels, R, R) in [-1, 1].

    With `positions` > 0, G(z, y) also takes slice positions y (N,) in 0..positions-1 (default: 0, 1, ...);
    with `mask_classes` > 0 it outputs the slice and that many mask probability channels after it
    (`ganlib.conditional`). Both off, it is the seed's DCGAN exactly.
    """

    def __init__(
        self, z_dim: int = 100, resolution: int = 128, width: int = 64, channels: int = 1,
        positions: int = 0, mask_classes: int = 0, grow_from: int = 0,
    ):
        super().__init__()
        self.z_dim, self.resolution, self.mask_classes = z_dim, resolution, mask_classes
        self.stage, self.alpha = resolution, 1.0  # the resolution it draws at (`set_stage`), and the fade-in
        self.condition = PositionInput(positions) if positions else None
        n = _num_blocks(resolution)
        ch = [width * 2 ** (n - 1 - i) for i in range(n)]  # 1024, 512, 256, 128, 64
        z_in = z_dim + (EMBED_DIM if positions else 0)
        layers = [
            nn.ConvTranspose2d(z_in, ch[0], 4, 1, 0, bias=False),  # 1024 x 4 x 4
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(ch[:-1], ch[1:]):  # 512 x 8 x 8 ... 64 x 64 x 64
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], channels + mask_classes, 4, 2, 1, bias=False)]  # 1 x 128 x 128
        layers += [] if mask_classes else [nn.Tanh()]  # with masks, `split_output` does Tanh and softmax
        self.main = nn.Sequential(*layers)
        # Growing: a "to image" layer at each resolution below the full one, from the block before it.
        lower = _lower_resolutions(grow_from, resolution, mask_classes)
        self.to_image = nn.ModuleDict(
            {str(r): nn.ConvTranspose2d(ch[_num_blocks(r) - 1], channels, 4, 2, 1, bias=False) for r in lower}
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], self.z_dim)
        if self.condition is not None:
            z = self.condition(z, y)
        if self.stage != self.resolution or self.alpha < 1:
            return self._grown(z[:, :, None, None])
        x = self.main(z[:, :, None, None])
        return split_output(x, self.mask_classes, squash_image=True) if self.mask_classes else x

    def _image(self, r: int, h: torch.Tensor) -> torch.Tensor:
        """The image at resolution r (before Tanh) from the features of the block before it."""
        return self.main[-2](h) if r == self.resolution else self.to_image[str(r)](h)

    def _grown(self, h: torch.Tensor) -> torch.Tensor:
        """G at a lower resolution, or fading one in: the blocks up to stage/2, then its image layer."""
        n = _num_blocks(self.stage)  # blocks 0..n-1 lead to stage/2 (3 layers each: conv, norm, ReLU)
        h_before = self.main[: 3 * (n - 1)](h)
        x = self._image(self.stage, self.main[3 * (n - 1) : 3 * n](h_before))
        if self.alpha < 1:  # fading in: blend with the last resolution's image, scaled up
            old = F.interpolate(self._image(self.stage // 2, h_before), scale_factor=2, mode="nearest")
            x = torch.lerp(old, x, self.alpha)
        return torch.tanh(x)


class Discriminator(nn.Module):
    """image (N, channels, R, R) -> probability of being real (N,).

    `logits()` gives the value before the Sigmoid: training uses it with a BCE-with-logits
    loss, which equals BCE on the Sigmoid's output but stays finite and runs under autocast.
    """

    def __init__(
        self, resolution: int = 128, width: int = 64, channels: int = 1, norm: str = "batch", positions: int = 0,
        grow_from: int = 0,
    ):
        super().__init__()
        self.resolution, self.stage, self.alpha = resolution, resolution, 1.0
        if norm not in ("batch", "spectral", "none"):
            raise ValueError(f"D's norm must be 'batch', 'spectral' or 'none', got {norm!r}")
        n = _num_blocks(resolution)
        ch = [width * 2**i for i in range(n)]  # 64, 128, 256, 512, 1024
        # Spectral norm bounds each layer's Lipschitz constant instead of normalising activations.
        wrap = nn.utils.parametrizations.spectral_norm if norm == "spectral" else (lambda m: m)
        layers = [wrap(nn.Conv2d(channels, ch[0], 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, True)]  # 64 x 64 x 64
        for c_in, c_out in zip(ch[:-1], ch[1:]):  # 128 x 32 x 32 ... 1024 x 4 x 4
            layers.append(wrap(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)))
            layers += [nn.BatchNorm2d(c_out)] if norm == "batch" else []
            layers.append(nn.LeakyReLU(0.2, True))
        self.block_ends = [2] + [2 + (3 if norm == "batch" else 2) * i for i in range(1, n)]  # ends in `main`
        layers += [wrap(nn.Conv2d(ch[-1], 1, 4, 1, 0, bias=False))]  # 1 x 1 x 1
        self.main = nn.Sequential(*layers)
        # Growing: a "from image" layer at each resolution below the full one, into the block after it.
        self.from_image = nn.ModuleDict({
            str(r): nn.Sequential(wrap(nn.Conv2d(channels, ch[n - _num_blocks(r)], 4, 2, 1, bias=False)),
                                  nn.LeakyReLU(0.2, True))
            for r in _lower_resolutions(grow_from, resolution, channels - 1)
        })
        # Conditioned on the position, the last layer (a linear map of the 1024 x 4 x 4 features) gains a term
        # of its own per position: D's score is (w + embed(y)) . features.
        self.project = Projection(positions, ch[-1] * 16) if positions else None
        self.sigmoid = nn.Sigmoid()

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.stage != self.resolution or self.alpha < 1:
            h = self._grown(x)
        elif self.project is None:
            return self.main(x).flatten()
        else:
            h = self.main[:-1](x)  # 1024 x 4 x 4
        score = self.main[-1](h).flatten()
        return score if self.project is None else score + self.project(h.flatten(1), y)

    def _block(self, i: int) -> nn.Module:
        return self.main[(self.block_ends[i - 1] if i else 0) : self.block_ends[i]]

    def _from(self, r: int, x: torch.Tensor) -> torch.Tensor:
        return self._block(0)(x) if r == self.resolution else self.from_image[str(r)](x)

    def _grown(self, x: torch.Tensor) -> torch.Tensor:
        """D's 4x4 features at a lower resolution, or while one fades in: its "from image" layer, then the
        blocks after it; fading in, blended with the last resolution's path on the image scaled down."""
        first = _num_blocks(self.resolution) - _num_blocks(self.stage)  # the block the stage's image enters
        h = self._from(self.stage, x)
        if self.alpha < 1:
            old = self._from(self.stage // 2, F.avg_pool2d(x, 2))
            h = torch.lerp(old, self._block(first + 1)(h), self.alpha)
            first += 1
        for i in range(first + 1, len(self.block_ends)):
            h = self._block(i)(h)
        return h

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.sigmoid(self.logits(x, y))


def _lower_resolutions(grow_from: int, resolution: int, mask_classes: int) -> list[int]:
    """The resolutions a growing network also runs at: grow_from, 2 x grow_from, ... below `resolution`."""
    if not grow_from:
        return []
    if grow_from not in RESOLUTIONS or grow_from >= resolution:
        raise ValueError(f"grow_from={grow_from}: a resolution of {RESOLUTIONS} below the full {resolution}, or 0")
    if mask_classes:
        raise ValueError("grow_from: growing is for slices alone; train image+mask pairs at their full resolution")
    return [r for r in RESOLUTIONS if grow_from <= r < resolution]


def set_stage(net: nn.Module, resolution: int, alpha: float = 1.0) -> None:
    """Make a growing G or D run at `resolution`, with the new resolution's path blended in at `alpha`."""
    net = getattr(net, "module", net)
    lower = net.to_image if isinstance(net, Generator) else net.from_image
    if resolution != net.resolution and str(resolution) not in lower:
        raise ValueError(f"this network cannot run at {resolution}px (built for {net.resolution}px)")
    net.stage, net.alpha = resolution, float(alpha)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN initialisation: convolutions N(0, std), BatchNorm scale N(1, std) and shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            # Under spectral norm the raw weight is `parametrizations.weight.original`.
            weight = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(weight, 0.0, std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


ARCHS = ("dcgan", "resnet")


def build_generator(config) -> nn.Module:
    """G for a `TrainConfig`: the seed's DCGAN or the residual network of `ganlib.resnet` (not initialised)."""
    extra = {"positions": config.positions, "mask_classes": NUM_CLASSES if config.with_masks else 0}
    if config.arch == "resnet":
        if config.grow_from:
            raise ValueError("grow_from: growing is built for the DCGAN networks (arch='dcgan')")
        return ResNetGenerator(config.z_dim, config.resolution, config.g_width, **extra)
    if config.arch != "dcgan":
        raise ValueError(f"arch must be one of {ARCHS}, got {config.arch!r}")
    return Generator(config.z_dim, config.resolution, config.g_width, grow_from=config.grow_from, **extra)


def build_models(config) -> tuple[nn.Module, nn.Module]:
    """G and D for a `TrainConfig` (uses the global torch RNG).

    DCGAN is initialised as its paper does; the residual networks initialise themselves (fix-up).
    """
    G = build_generator(config)
    extra = {"positions": config.positions, "channels": 1 + (NUM_CLASSES if config.with_masks else 0)}
    if config.arch == "resnet":
        return G, ResNetDiscriminator(config.resolution, config.d_width, **extra)
    D = Discriminator(config.resolution, config.d_width, norm=config.d_norm, grow_from=config.grow_from, **extra)
    init_weights(G)
    init_weights(D)
    if config.d_features:  # heads on a frozen feature network, the pixel D beside them if kept
        from .projected import build_projected

        D = build_projected(config, D if config.d_pixel else None)
        init_weights(D.heads)
    return G, D


@torch.no_grad()
def sample(
    G: nn.Module, z: torch.Tensor, batch_size: int = 256, y: torch.Tensor | None = None, masks: bool = False
):
    """G's images for latents `z` in eval mode (BatchNorm's running statistics), as float in [-1, 1] on the CPU.

    Clamped to [-1, 1]: DCGAN's Tanh stays inside anyway; the residual G has a linear output.
    A position-conditioned G takes slice positions `y` (N,) (default: 0, 1, ..., 31, 0, ...); a paired G's
    masks come back too with `masks=True`, as class ids (N, 1, R, R): then the result is (images, masks).

    The one way samples are drawn everywhere (training grids, evaluation, sliders): each image depends on
    its own latent only, and G's training mode is restored afterwards.
    """
    net = getattr(G, "module", G)  # DistributedDataParallel keeps the model in .module
    device = next(net.parameters()).device
    condition = getattr(net, "condition", None)
    if condition is not None:
        y = default_positions(len(z), condition.positions) if y is None else torch.as_tensor(y).reshape(-1)
        check_positions(y, condition.positions)
    if masks and not getattr(net, "mask_classes", 0):
        raise ValueError("this generator makes slices only (trained without with_masks): no masks to sample")
    chunks = []
    with eval_mode(G):
        for i in range(0, len(z), batch_size):
            args = (y[i : i + batch_size].to(device),) if condition is not None else ()
            chunks.append(G(z[i : i + batch_size].to(device, torch.float32), *args).float().cpu())
    out = torch.cat(chunks)
    images = out[:, :1].clamp(-1, 1)
    return (images, out[:, 1:].argmax(1, keepdim=True)) if masks else images


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def layer_table(module: nn.Module, example: torch.Tensor) -> list[dict]:
    """One row per leaf layer: name, type, output shape (without batch) and parameter count."""
    rows: list[dict] = []
    hooks = []
    for name, m in module.named_modules():
        if len(list(m.children())) == 0:

            def hook(mod, inp, out, name=name):
                rows.append(
                    {
                        "layer": name,
                        "type": type(mod).__name__,
                        "output": tuple(out.shape[1:]),
                        "params": count_params(mod),
                    }
                )

            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in hooks:
            h.remove()
    return rows


def format_layer_table(rows: list[dict]) -> str:
    """The rows of `layer_table` as fixed-width text, with a total."""
    lines = [f"{'layer':<10}{'type':<18}{'output':>18}{'params':>12}"]
    for r in rows:
        shape = " x ".join(str(s) for s in r["output"]) or "scalar"
        lines.append(f"{r['layer']:<10}{r['type']:<18}{shape:>18}{r['params']:>12,}")
    lines.append(f"{'total':<46}{sum(r['params'] for r in rows):>12,}")
    return "\n".join(lines)

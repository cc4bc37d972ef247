"""The seed's DCGAN: a transposed-convolution Generator and a convolutional Discriminator.

Both are parametrised by resolution (a power of two, 32 to 256) and width, so the same code
gives the 128x128 reference model and a small CPU model. Shapes in comments are for the
`seed` preset (resolution 128, width 64).
"""

from __future__ import annotations

import math

import torch
from torch import nn

RESOLUTIONS = (32, 64, 128, 256)


def _num_blocks(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    return int(math.log2(resolution)) - 2  # stages between 4x4 and the full image


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, channels, R, R) in [-1, 1]."""

    def __init__(self, z_dim: int = 100, resolution: int = 128, width: int = 64, channels: int = 1):
        super().__init__()
        self.z_dim, self.resolution = z_dim, resolution
        n = _num_blocks(resolution)
        ch = [width * 2 ** (n - 1 - i) for i in range(n)]  # 1024, 512, 256, 128, 64
        layers = [
            nn.ConvTranspose2d(z_dim, ch[0], 4, 1, 0, bias=False),  # 1024 x 4 x 4
            nn.BatchNorm2d(ch[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(ch[:-1], ch[1:]):  # 512 x 8 x 8 ... 64 x 64 x 64
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ch[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]  # 1 x 128 x 128
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """image (N, channels, R, R) -> probability of being real (N,).

    `logits()` gives the value before the Sigmoid: training uses it with a BCE-with-logits
    loss, which equals BCE on the Sigmoid's output but stays finite and runs under autocast.
    """

    def __init__(self, resolution: int = 128, width: int = 64, channels: int = 1, norm: str = "batch"):
        super().__init__()
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
        layers += [wrap(nn.Conv2d(ch[-1], 1, 4, 1, 0, bias=False))]  # 1 x 1 x 1
        self.main = nn.Sequential(*layers)
        self.sigmoid = nn.Sigmoid()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.logits(x))


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
    if config.arch == "resnet":
        from .resnet import ResNetGenerator

        return ResNetGenerator(config.z_dim, config.resolution, config.g_width, blocks=config.res_blocks)
    if config.arch != "dcgan":
        raise ValueError(f"arch must be one of {ARCHS}, got {config.arch!r}")
    return Generator(config.z_dim, config.resolution, config.g_width)


def build_models(config) -> tuple[nn.Module, nn.Module]:
    """G and D for a `TrainConfig` (uses the global torch RNG).

    DCGAN is initialised as its paper does; the residual networks initialise themselves (fix-up).
    """
    G = build_generator(config)
    if config.arch == "resnet":
        from .resnet import ResNetDiscriminator

        return G, ResNetDiscriminator(config.resolution, config.d_width, blocks=config.res_blocks)
    D = Discriminator(config.resolution, config.d_width, norm=config.d_norm)
    init_weights(G, config.init_std)
    init_weights(D, config.init_std)
    return G, D


@torch.no_grad()
def sample(G: nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """G's images for latents `z` in eval mode (BatchNorm's running statistics), as float in [-1, 1] on the CPU.

    Clamped to [-1, 1]: DCGAN's Tanh stays inside anyway; the residual G has a linear output.

    The one way samples are drawn everywhere (training grids, evaluation, sliders): each image depends on
    its own latent only, and G's training mode is restored afterwards.
    """
    net = getattr(G, "module", G)  # DistributedDataParallel keeps the model in .module
    device = next(net.parameters()).device
    was_training = G.training
    G.eval()
    try:
        chunks = [
            G(z[i : i + batch_size].to(device, torch.float32)).float().clamp(-1, 1).cpu()
            for i in range(0, len(z), batch_size)
        ]
    finally:
        G.train(was_training)
    return torch.cat(chunks)


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

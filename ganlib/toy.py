"""The GAN game on a toy problem: numbers on a line, trained in seconds on a CPU, before any MRI.

The data are numbers from a mixture of two bumps; G turns noise z ~ N(0, 1) into a number, D scores a number.
They play with the very `d_step` and `g_step` that train the MRI GAN (`ganlib.losses`), so what a learner
watches here (G's samples moving onto the data, D's verdict flattening towards 1/2) is the update the real
run takes, on something small enough to draw whole.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import nn

from .losses import d_step, g_step

MODES = ((-2.0, 0.35, 0.5), (2.0, 0.5, 0.5))  # the data's two bumps: (mean, std, share)


def sample_data(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n numbers from the two-bump mixture, shape (n, 1)."""
    shares = torch.tensor([share for _, _, share in MODES])
    which = torch.multinomial(shares, n, replacement=True, generator=generator)
    mean = torch.tensor([m for m, _, _ in MODES])[which]
    std = torch.tensor([s for _, s, _ in MODES])[which]
    return (mean + std * torch.randn(n, generator=generator))[:, None]


def data_density(x: torch.Tensor) -> torch.Tensor:
    """The mixture's probability density at x, to draw beside the histograms."""
    dens = [share * torch.exp(-0.5 * ((x - m) / s) ** 2) / (s * (2 * torch.pi) ** 0.5) for m, s, share in MODES]
    return sum(dens)


def mlp(n_in: int, n_out: int, width: int = 32) -> nn.Sequential:
    """Two hidden layers with LeakyReLU: G is mlp(1, 1), D is mlp(1, 1) whose output is a logit."""
    return nn.Sequential(nn.Linear(n_in, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
                         nn.Linear(width, n_out))


class ToyD(nn.Module):
    """D for numbers: one logit per number, (N, 1) -> (N,)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = mlp(1, 1, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def train_toy(steps: int = 3000, batch: int = 256, snapshots: tuple[int, ...] = (0, 300, 1000, 3000), seed: int = 0,
              lr: float = 1e-3) -> list[dict]:
    """Train G and D on the two bumps; returns what they were at the `snapshots` steps.

    Each snapshot holds G's samples for a fixed batch of noise and D's probability "real" along the line.
    """
    torch.manual_seed(seed)
    G, D = mlp(1, 1), ToyD()
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    data_gen = torch.Generator().manual_seed(seed)
    fixed_z = torch.randn(2000, 1, generator=torch.Generator().manual_seed(seed + 1))
    line = torch.linspace(-5, 5, 201)[:, None]
    out = []
    for step in range(steps + 1):
        if step in snapshots:
            with torch.no_grad():
                out.append({"step": step, "fake": G(fixed_z).flatten(), "x": line.flatten(),
                            "D": torch.sigmoid(D(line))})
        if step == steps:
            break
        real = sample_data(batch, data_gen)
        fake = G(torch.randn(batch, 1, generator=data_gen))
        d_step(D, opt_D, real, fake)  # update D: real numbers towards 'real', G's towards 'fake'
        g_step(D, opt_G, fake)  # update G: make D call its numbers real
    return out


def plot_toy(snaps: list[dict]) -> plt.Figure:
    """One panel per snapshot: the data's density, a histogram of G's samples, and D's verdict along the line."""
    fig, axes = plt.subplots(1, len(snaps), figsize=(3.2 * len(snaps), 2.8), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], snaps):
        x = s["x"]
        ax.fill_between(x, data_density(x), color="0.8", label="data")
        ax.hist(s["fake"].clamp(-5, 5), bins=80, range=(-5, 5), density=True, color="tab:orange", alpha=0.7,
                label="G's samples")
        ax.plot(x, s["D"], color="tab:blue", label="D: P(real)")
        ax.axhline(0.5, color="tab:blue", ls=":", lw=0.8)
        ax.set(title=f"after {s['step']:,} steps", xlabel="x", ylim=(0, 1.3), xlim=(-5, 5))
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig

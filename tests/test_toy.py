"""ganlib.toy: the GAN game on numbers, played by the library's own d_step and g_step, learns the two bumps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ganlib import toy


def distance_to_the_data(x: torch.Tensor) -> float:
    """Mean distance of numbers to the nearer of the data's two bump centres."""
    centres = torch.tensor([m for m, _, _ in toy.MODES])
    return (x[:, None] - centres[None]).abs().min(1).values.mean().item()


def test_g_moves_onto_both_bumps_and_d_stops_being_sure():
    snaps = toy.train_toy(steps=1500, snapshots=(0, 1500), seed=0)
    start, end = snaps[0]["fake"], snaps[1]["fake"]
    assert distance_to_the_data(end) < 0.5 * distance_to_the_data(start)
    assert 0.2 < (end < 0).float().mean().item() < 0.8  # both bumps, not one
    near_data = (snaps[1]["x"] - 2.0).abs() < 0.5
    assert (snaps[1]["D"][near_data] - 0.5).abs().max() < 0.3  # where the data is, D is far from sure


def test_the_data_and_the_figure():
    x = toy.sample_data(20_000, torch.Generator().manual_seed(0))
    assert abs((x < 0).float().mean().item() - 0.5) < 0.02 and abs(x[x < 0].mean().item() + 2.0) < 0.05
    line = torch.linspace(-6, 6, 1201)
    assert abs(toy.data_density(line).sum().item() * 0.01 - 1.0) < 1e-3  # a density: integrates to 1
    fig = toy.plot_toy(toy.train_toy(steps=2, snapshots=(0, 2)))
    assert len(fig.axes) == 2
    plt.close(fig)

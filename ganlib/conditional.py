"""Slice-position control and image+mask pairs: the pieces both architectures share.

Every OASIS slice has a position (0-31, from its file name) and a 4-class mask (background, CSF, grey
matter, white matter). Two switches of `TrainConfig` use them:

- `positions=32`: G takes a position beside z (a learned embedding, concatenated to z) and D is told the
  position too, by projection (Miyato & Koyama 2018): D's score gains the inner product of a learned
  embedding of the position with D's last feature vector, so D judges "is this a real slice *at this
  position*" without a second network. Asking for slice 16 then means G(z, 16).
- `with_masks=True`: G outputs the slice and its mask together, 1 + 4 channels: the slice in [-1, 1] and the
  mask as one-hot channels of the most likely class (a softmax over 4 channels, passed straight through:
  D sees one-hot masks from G as from the data, G learns through the softmax). D sees slice and mask
  together, so it can reject a slice whose mask does not fit it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import NUM_CLASSES

EMBED_DIM = 32  # size of G's position embedding, concatenated to z


def default_positions(n: int, positions: int, device=None) -> torch.Tensor:
    """Positions 0, 1, ..., positions-1, 0, 1, ... for n samples: every position equally often, as in OASIS."""
    return torch.arange(n, device=device) % positions


def check_positions(y: torch.Tensor, positions: int) -> None:
    """Refuse positions outside 0..positions-1 with one line (an Embedding would raise an index error)."""
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= positions):
        raise ValueError(f"slice positions must be 0 to {positions - 1}, got {int(y.min())} to {int(y.max())}")


def one_hot_masks(masks: torch.Tensor) -> torch.Tensor:
    """Class ids (N, 1, R, R) -> one-hot float channels (N, 4, R, R), as real masks go into D."""
    return F.one_hot(masks[:, 0].long(), NUM_CLASSES).permute(0, 3, 1, 2).float()


def masks_to_float(masks: torch.Tensor) -> torch.Tensor:
    """Class ids (N, 1, R, R) -> grey levels in [-1, 1] (background black, white matter white), for grids."""
    return masks.float() / (NUM_CLASSES - 1) * 2 - 1


def split_output(x: torch.Tensor, mask_classes: int, squash_image: bool) -> torch.Tensor:
    """G's last layer -> its output: the image channel (Tanh if `squash_image`) and the mask's probabilities."""
    if not mask_classes:
        return torch.tanh(x) if squash_image else x
    image, probs = x[:, :1], x[:, 1:].float().softmax(1)
    # Straight-through: D sees a one-hot mask, as real masks are (soft probabilities would give fakes away
    # by their softness alone), while G's gradient flows as if through the softmax.
    hard = F.one_hot(probs.argmax(1), mask_classes).permute(0, 3, 1, 2).to(probs.dtype)
    mask = hard + probs - probs.detach()
    return torch.cat([torch.tanh(image) if squash_image else image, mask.to(x.dtype)], 1)


class PositionInput(nn.Module):
    """G's conditioning: z (N, z_dim) and positions (N,) -> [z, embedding(position)] (N, z_dim + EMBED_DIM).

    `strength` scales the embedding (1: conditioned; 0: G ignores the position), see `set_condition_strength`.
    """

    def __init__(self, positions: int):
        super().__init__()
        self.positions, self.strength = positions, 1.0
        self.embed = nn.Embedding(positions, EMBED_DIM)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            y = default_positions(len(z), self.positions, z.device)
        return torch.cat([z, self.strength * self.embed(y).to(z.dtype)], 1)


class Projection(nn.Module):
    """D's conditioning: the inner product of a learned embedding of the position with D's features h (N, C)."""

    def __init__(self, positions: int, features: int):
        super().__init__()
        self.strength = 1.0  # as PositionInput's
        self.embed = nn.Embedding(positions, features)
        nn.init.normal_(self.embed.weight, 0.0, features**-0.5)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("this discriminator is conditioned on slice positions: pass them as y")
        return self.strength * (self.embed(y).to(h.dtype) * h).sum(1)


def set_condition_strength(nets, strength: float) -> None:
    """Weigh the position in G's input and D's score by `strength` (0 to 1) in every net given.

    Transitional training (Shahbazi et al., "Collapse by conditioning", ICLR 2023): with a few hundred slices
    per position, a GAN conditioned from the start tends to draw one slice per position whatever z is; trained
    without the condition first, it learns the variety of the whole set, and the condition then comes in
    gradually (`TrainConfig.condition_kimg`). Sampling uses full strength, the value every run ends at.
    """
    for net in nets:
        for m in net.modules() if net is not None else ():
            if isinstance(m, (PositionInput, Projection)):
                m.strength = float(strength)

"""ganlib.augment: each transform keeps shapes, moves or blanks what it says, and passes gradients."""

from __future__ import annotations

import pytest
import torch

from ganlib.augment import cutout, diff_augment, parse_policy, translation


def test_translation_moves_content_and_fills_background():
    x = torch.full((64, 1, 16, 16), -1.0)
    x[:, :, 6:10, 6:10] = 1.0
    y = translation(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert torch.all((y == 1).sum(dim=(1, 2, 3)) <= 16)  # never more bright pixels than before
    moved = [not torch.equal(a, b) for a, b in zip(x, y)]
    assert sum(moved) > 40  # most images moved (2/25 draws are the zero shift)


def test_cutout_blanks_a_square():
    x = torch.ones(32, 1, 16, 16)
    y = cutout(x, torch.Generator().manual_seed(0))
    blank = (y == -1).sum(dim=(1, 2, 3))
    assert torch.all(blank <= 64) and torch.all(blank > 0)


def test_empty_policy_is_identity_and_gradients_flow():
    x = torch.randn(4, 1, 8, 8, requires_grad=True)
    assert diff_augment(x, "") is x
    diff_augment(x, "translation,cutout,brightness,contrast", torch.Generator().manual_seed(1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_generator_state_same_augmentation():
    x = torch.randn(8, 1, 16, 16)
    a = diff_augment(x, "translation,cutout", torch.Generator().manual_seed(3))
    b = diff_augment(x, "translation,cutout", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_unknown_policy():
    with pytest.raises(ValueError, match="unknown augmentation \\['flip'\\]"):
        parse_policy("translation,flip")

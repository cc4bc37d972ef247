"""ganlib.pairs.segment: U-Net shapes, Dice against hand-computed cases, and a short fit that learns."""

from __future__ import annotations

import pytest
import torch

from ganlib.pairs.segment import UNet, dice_per_class, predict, segmentation_loss, soft_dice_loss


def test_dice_hand_computed():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 3, 3]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 2, 2, 3]]])
    # class 0: P={0}, T={0,1}: 2*1/(1+2); class 1: P={1,2,3}, T={2,3}: 2*2/(3+2); class 2: P={4,5,6}, T={4,5}:
    # 2*2/(3+2); class 3: P={7}, T={6,7}: 2*1/(1+2).
    assert dice_per_class(pred, target).tolist() == pytest.approx([2 / 3, 4 / 5, 4 / 5, 2 / 3])
    assert dice_per_class(target, target).tolist() == [1.0, 1.0, 1.0, 1.0]
    # A class absent from both counts as 1, one missed entirely as 0.
    assert dice_per_class(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).tolist() == [1.0, 1.0, 1.0, 1.0]
    assert dice_per_class(torch.zeros(1, 1, 2), torch.tensor([[[0, 3]]]))[3].item() == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        dice_per_class(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))


def test_soft_dice_is_zero_for_a_confident_right_answer():
    target = torch.tensor([[[0, 1], [2, 3]]])
    logits = torch.nn.functional.one_hot(target, 4).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-3)
    assert soft_dice_loss(-logits, target).item() > 0.6  # (0 + 1) / (2 + 1) per class with the smoothing eps = 1


@pytest.mark.parametrize("size", [32, 64, 128])
def test_unet_shapes(size):
    net = UNet(width=4)
    assert net(torch.zeros(2, 1, size, size)).shape == (2, 4, size, size)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 1, 36, 36))


def test_a_short_fit_learns_a_simple_segmentation():
    """Bright discs on dark ground with a ring: 60 steps take Dice of every class well above chance."""
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    masks, images = [], []
    for i in range(16):
        cy, cx, r = 12 + i % 8, 12 + (i * 3) % 8, 6 + i % 4
        d = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
        m = torch.zeros(32, 32, dtype=torch.long)
        m[d < r + 3], m[d < r + 1.5], m[d < r] = 1, 2, 3
        masks.append(m)
        images.append(torch.tensor([-1.0, -0.2, 0.3, 0.9])[m] + 0.05 * torch.randn(32, 32))
    x, y = torch.stack(images)[:, None], torch.stack(masks)
    net = UNet(width=8, depth=2)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    before = dice_per_class(predict(net, x), y).mean().item()
    for _ in range(60):
        opt.zero_grad()
        segmentation_loss(net(x), y).backward()
        opt.step()
    after = dice_per_class(predict(net, x), y)
    assert after.min().item() > 0.8 and after.mean().item() > before + 0.3, (before, after)


def test_class_proportions_per_position_by_hand():
    from ganlib.pairs.segment import class_proportions

    masks = torch.tensor([[[[0, 1], [2, 3]]], [[[3, 3], [3, 0]]], [[[1, 1], [1, 1]]]])
    props = class_proportions(masks, torch.tensor([0, 0, 2]), n_positions=3)
    assert props.tolist() == [[0.25, 0.125, 0.125, 0.5], [0, 0, 0, 0], [0, 1, 0, 0]]

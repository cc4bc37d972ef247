"""A small 2D U-Net for the 4-class OASIS masks, and Dice per class: the yardstick for synthetic data.

Issue 14 asks whether synthetic image+mask pairs help a segmentation model on real patients. This module is
that model and its score: `UNet` maps a slice (N, 1, R, R) in [-1, 1] to class logits (N, 4, R, R) for
background, CSF, grey matter and white matter; `dice_per_class` compares predicted and true class maps.
Dice of a class is 2|P & T| / (|P| + |T|) over all pixels of the set (1.0 when the class is absent from both,
so an empty class does not count as a failure).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data import NUM_CLASSES, to_float
from ..utils.device import autocast, bf16_supported
from ..utils.nets import eval_mode

CLASS_NAMES = ("background", "CSF", "grey matter", "white matter")


def dice_per_class(pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Dice of each class between two class-id maps of the same shape (N, H, W), over the whole set: (C,)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    scores = []
    for c in range(num_classes):
        p, t = pred == c, target == c
        both = (p & t).sum().item()
        total = p.sum().item() + t.sum().item()
        scores.append(1.0 if total == 0 else 2.0 * both / total)
    return torch.tensor(scores)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over classes, from logits (N, C, H, W) and class ids (N, H, W)."""
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return 1.0 - ((2 * inter + eps) / (total + eps)).mean()


def class_proportions(masks: torch.Tensor, positions: torch.Tensor, n_positions: int = 32) -> torch.Tensor:
    """Share of each class's pixels per slice position: (positions, classes), from class ids (N, 1, R, R)
    and positions (N,).

    The check that generated masks have at each position the anatomy real ones have (a position with no
    slices keeps zeros).
    """
    out = torch.zeros(n_positions, NUM_CLASSES)
    for p in range(n_positions):
        m = masks[positions == p]
        if len(m):
            out[p] = torch.bincount(m.flatten().long(), minlength=NUM_CLASSES).float() / m.numel()
    return out


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice: CE for every pixel, Dice so the small CSF class still counts."""
    return F.cross_entropy(logits.float(), target.long()) + soft_dice_loss(logits, target)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with BatchNorm and ReLU, the U-Net's unit."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """slice (N, 1, R, R) -> class logits (N, classes, R, R); R divisible by 2**depth.

    Shapes for width 16, depth 3 at 64 px: 16 x 64 x 64 -> 32 x 32 x 32 -> 64 x 16 x 16 -> 128 x 8 x 8
    (bottom) and back up, each level concatenating the encoder's features of the same size.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = NUM_CLASSES, width: int = 16, depth: int = 3):
        super().__init__()
        ch = [width * 2**i for i in range(depth + 1)]  # 16, 32, 64, 128
        self.depth = depth
        self.down = nn.ModuleList([_block(in_channels, ch[0])] + [_block(ch[i], ch[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(depth))])
        self.merge = nn.ModuleList([_block(2 * ch[i], ch[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(ch[0], num_classes, 1)

    def encode(self, x: torch.Tensor, levels: int | None = None) -> list[torch.Tensor]:
        """The encoder's output at each level, full size first (the first `levels` only, if given)."""
        out = []
        for i, block in enumerate(self.down[:levels]):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2**self.depth or x.shape[-2] % 2**self.depth:
            raise ValueError(f"slice size {tuple(x.shape[-2:])} must be divisible by {2**self.depth}")
        skips = self.encode(x)
        x = skips.pop()  # the bottom
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Class ids (N, H, W) for slices (N, 1, H, W) in [-1, 1], in eval mode, on the model's device."""
    device = next(model.parameters()).device
    with eval_mode(model):
        out = [
            model(images[i : i + batch_size].to(device, torch.float32)).argmax(1).cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(out)


def train_segmenter(
    images: torch.Tensor,
    masks: torch.Tensor,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 16,
    device: str | torch.device = "cpu",
) -> UNet:
    """A U-Net trained on slices (N, 1, R, R) uint8 and their masks (N, 1, R, R) class ids, for `steps` steps.

    The same number of steps whatever the set's size, so settings with more data get no more compute.
    Batches are drawn with replacement from a generator seeded by `seed`, which also seeds the weights.
    """
    if len(images) != len(masks) or len(images) == 0:
        raise ValueError(f"need as many masks as slices, and some: got {len(images)} slices, {len(masks)} masks")
    torch.manual_seed(seed)
    model = UNet(width=width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x = to_float(images[idx].to(device))
        loss = segmentation_loss(model(x), masks[idx, 0].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


TISSUES = (1, 2, 3)  # CSF, grey and white matter: the mean Dice that counts (background is easy)


def mean_tissue_dice(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> float:
    """The mean Dice over CSF, grey and white matter of `model` on slices (uint8) and masks (class ids)."""
    dice = dice_per_class(predict(model, to_float(images)), masks[:, 0])
    return float(dice[list(TISSUES)].mean())


def train_until_stalled(
    sources: list[tuple[torch.Tensor, torch.Tensor]],
    val: tuple[torch.Tensor, torch.Tensor],
    start: nn.Module | None = None,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 16,
    eval_every: int = 100,
    patience: int = 5,
    max_steps: int = 2000,
    device: str | torch.device = "cpu",
) -> tuple[UNet, dict]:
    """A U-Net trained until its Dice on the validation pairs `val` stops rising (early stopping).

    Each batch takes an equal share from every (slices uint8, masks) set in `sources` (two sets: mixed 1:1).
    Every `eval_every` steps the mean tissue Dice on `val` is measured; training stops after `patience`
    measurements without a better one, or at `max_steps`, and the best weights are kept. `start` (a trained
    U-Net) is fine-tuned instead of a new one. Returns the model and {"steps", "best_step", "val_dice"}.
    Speed switches as in GAN training: bf16 autocast where the device supports it, channels-last memory.
    """
    if not sources or any(len(x) != len(m) or len(x) == 0 for x, m in sources):
        raise ValueError("every source needs as many masks as slices, and some")
    torch.manual_seed(seed)
    device = torch.device(device)
    model = UNet(width=width) if start is None else start
    model = model.to(device, memory_format=torch.channels_last).train()
    use_bf16 = bf16_supported(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    shares = [batch_size // len(sources) + (i < batch_size % len(sources)) for i in range(len(sources))]
    best, best_state, best_step, stalled, step = -1.0, None, 0, 0, 0
    while step < max_steps and stalled < patience:
        xs, ms = [], []
        for (images, masks), share in zip(sources, shares):
            idx = torch.randint(len(images), (share,), generator=g)
            xs.append(images[idx]), ms.append(masks[idx, 0])
        x = to_float(torch.cat(xs).to(device)).contiguous(memory_format=torch.channels_last)
        m = torch.cat(ms).to(device)
        with autocast(device, use_bf16):
            logits = model(x)
        loss = segmentation_loss(logits, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0 or step == max_steps:
            score = mean_tissue_dice(model, *val)
            model.train()
            if score > best:
                best, best_step, stalled = score, step, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stalled += 1
    model.load_state_dict(best_state)
    return model.eval(), {"steps": step, "best_step": best_step, "val_dice": round(best, 4)}

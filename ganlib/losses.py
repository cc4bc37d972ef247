"""The GAN objective in one place: D's and G's losses, and one update step of each.

D is trained to tell real slices (label 1) from generated ones (label 0); G is trained to make D call its
slices real. With `loss="bce"` (the seed, as DCGAN) this is binary cross-entropy on D's logits, and G uses
the non-saturating form: it maximises log D(G(z)) rather than minimising log(1 - D(G(z))), whose gradient
vanishes exactly when G is bad and D is sure. `loss="hinge"` is the hinge form of SAGAN and BigGAN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE of D's Sigmoid output against 1 (real) or 0 (fake), computed stably from logits."""
    target = torch.full_like(logits, 1.0 if real else 0.0, dtype=torch.float32)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def d_loss(out: torch.Tensor, real: bool, kind: str) -> torch.Tensor:
    """D's loss on one half of its batch: the seed's BCE, or the hinge loss."""
    if kind == "hinge":
        return F.relu(1.0 - out.float()).mean() if real else F.relu(1.0 + out.float()).mean()
    return bce(out, real)


def g_loss(out: torch.Tensor, kind: str) -> torch.Tensor:
    """G's loss: non-saturating BCE (D should call fakes real), or the hinge generator loss."""
    return -out.float().mean() if kind == "hinge" else bce(out, real=True)


def r1_penalty(out_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: the mean squared norm of D's gradient at real slices, |grad_x D(x)|^2 (Mescheder et al. 2018)."""
    (grad,) = torch.autograd.grad(out_real.float().sum(), real, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def d_step(D, opt_D, real, fake, amp_ctx, config, aug=lambda x: x, r1: bool = False):
    """Push D(real) towards 'real' and D(fake) towards 'fake'; returns (loss, mean D(x), mean D(G(z))).

    `fake` is detached: this step changes D only, so no gradient needs to flow back into G.
    With `r1`, adds gamma/2 * R1 on the real half (scaled by the lazy interval).
    """
    opt_D.zero_grad(set_to_none=True)
    if r1:
        real = real.detach().requires_grad_(True)
    with amp_ctx():
        out_real = D(aug(real))
    loss_real = d_loss(out_real, True, config.loss)
    if r1:
        penalty = r1_penalty(out_real, real) * (config.r1_gamma / 2 * config.r1_every)
        (loss_real + penalty).backward()
    else:
        loss_real.backward()
    with amp_ctx():
        out_fake = D(aug(fake.detach()))
    loss_fake = d_loss(out_fake, False, config.loss)
    loss_fake.backward()
    opt_D.step()
    return (
        (loss_real + loss_fake).detach(),
        out_real.detach().float().sigmoid().mean(),
        out_fake.detach().float().sigmoid().mean(),
    )


def g_step(D, opt_G, fake, amp_ctx, config, aug=lambda x: x) -> torch.Tensor:
    """Push D(G(z)) towards 'real' (the non-saturating loss of the DCGAN paper, or hinge).

    The gradient flows through D into G, but D's own weights are frozen for the step: only opt_G steps,
    and computing D's weight gradients would be wasted work (and would leak into D's next step).
    """
    opt_G.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    with amp_ctx():
        out = D(aug(fake))
    loss = g_loss(out, config.loss)
    loss.backward()
    D.requires_grad_(True)
    opt_G.step()
    return loss.detach()

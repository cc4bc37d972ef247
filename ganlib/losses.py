"""The GAN objective in one place: D's and G's losses, and one update step of each.

D is trained to tell real slices (label 1) from generated ones (label 0); G is trained to make D call its
slices real. With `loss="bce"` (the seed, as DCGAN) this is binary cross-entropy on D's logits, and G uses
the non-saturating form: it maximises log D(G(z)) rather than minimising log(1 - D(G(z))), whose gradient
vanishes exactly when G is bad and D is sure. `loss="hinge"` is the hinge form of SAGAN and BigGAN.
`loss="rpgan"` is the relativistic pairing loss of R3GAN: D judges each real slice against a generated
one, softplus(D(fake) - D(real)), and G the other way round, so neither can win by moving all of D's
outputs at once. With the R1 and R2 gradient penalties (on real and generated slices) it converges where
the other two can cycle (Huang et al. 2024).
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


def d_pair_loss(out_real: torch.Tensor, out_fake: torch.Tensor, kind: str) -> torch.Tensor:
    """D's loss on a batch of real slices and as many generated ones (paired one to one for "rpgan")."""
    if kind == "rpgan":
        return F.softplus(out_fake.float() - out_real.float()).mean()
    return d_loss(out_real, True, kind) + d_loss(out_fake, False, kind)


def g_loss(out: torch.Tensor, kind: str, out_real: torch.Tensor | None = None) -> torch.Tensor:
    """G's loss: non-saturating BCE (D should call fakes real), the hinge generator loss, or RpGAN's."""
    if kind == "rpgan":
        return F.softplus(out_real.float() - out.float()).mean()
    return -out.float().mean() if kind == "hinge" else bce(out, real=True)


def gradient_penalty(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The mean squared norm of D's gradient at its inputs, |grad_x D(x)|^2.

    At real slices this is R1 (Mescheder et al. 2018), at generated ones R2: both keep D flat where the data
    and the samples are, so G gets gradients that point somewhere rather than oscillating.
    """
    (grad,) = torch.autograd.grad(out.float().sum(), x, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def d_step(D, opt_D, real, fake, amp_ctx, config, aug=lambda x: x, r1: bool = False):
    """Push D(real) towards 'real' and D(fake) towards 'fake'; returns (loss, mean D(x), mean D(G(z))).

    `fake` is detached: this step changes D only, so no gradient needs to flow back into G.
    With `r1` (a step where the lazy schedule asks for them), adds gamma/2 * R1 on the real slices and
    gamma/2 * R2 on the generated ones, for the penalties whose gamma is set, scaled by the lazy interval.
    """
    opt_D.zero_grad(set_to_none=True)
    pen_real = r1 and config.r1_gamma > 0
    pen_fake = r1 and config.r2_gamma > 0
    real = real.detach().requires_grad_(True) if pen_real else real
    fake = fake.detach().requires_grad_(pen_fake)
    with amp_ctx():
        out_real = D(aug(real))
        out_fake = D(aug(fake))
    loss = d_pair_loss(out_real, out_fake, config.loss)
    total = loss
    if pen_real:
        total = total + gradient_penalty(out_real, real) * (config.r1_gamma / 2 * config.r1_every)
    if pen_fake:
        total = total + gradient_penalty(out_fake, fake) * (config.r2_gamma / 2 * config.r1_every)
    total.backward()
    opt_D.step()
    return (
        loss.detach(),
        out_real.detach().float().sigmoid().mean(),
        out_fake.detach().float().sigmoid().mean(),
    )


def g_step(D, opt_G, fake, amp_ctx, config, aug=lambda x: x, real=None) -> torch.Tensor:
    """Push D(G(z)) towards 'real' (the non-saturating loss of the DCGAN paper, hinge, or RpGAN's).

    The gradient flows through D into G, but D's own weights are frozen for the step: only opt_G steps,
    and computing D's weight gradients would be wasted work (and would leak into D's next step).
    RpGAN compares each generated slice with a real one, so it needs `real` too (D on it takes no gradient).
    """
    opt_G.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    out_real = None
    with amp_ctx():
        out = D(aug(fake))
        if config.loss == "rpgan":
            with torch.no_grad():
                out_real = D(aug(real))
    loss = g_loss(out, config.loss, out_real)
    loss.backward()
    D.requires_grad_(True)
    opt_G.step()
    return loss.detach()

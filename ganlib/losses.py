"""The GAN objective in one place: the losses as the papers write them, and one update of D and of G.

D is trained to tell real slices from generated ones; G is trained to make D call its slices real. The
losses take D's logits (its score before the Sigmoid):

- `bce` (the seed, as DCGAN): D minimises -log D(x) - log(1 - D(G(z))); G uses the non-saturating form
  and minimises -log D(G(z)) rather than log(1 - D(G(z))), whose gradient vanishes exactly when G is bad
  and D is sure.
- `rpgan` (R3GAN, Huang et al. 2024): the relativistic pairing loss. D judges each real slice against a
  generated one, softplus(D(G(z)) - D(x)), and G the other way round, so neither can win by moving all of
  D's scores at once. With the R1 and R2 gradient penalties it converges where the seed's loss can cycle.

`d_step` and `g_step` are the reference recipe's update, whatever the loss. On the steps where the R1/R2
gradient penalties are due, the loop calls `d_step_penalised` instead of `d_step`: D's loss and the penalties
in one update, as stylegan2-ada's "Dboth" phase does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------- the losses


def bce_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The seed's D loss: -log D(x) - log(1 - D(G(z))), as BCE against 1 and 0, computed stably from logits."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    real_term = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake_term = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real_term + fake_term


def bce_g_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """The seed's G loss, non-saturating: -log D(G(z)). (`real_logits` is not used; RpGAN's G loss needs it.)"""
    fake_logits = fake_logits.float()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def rpgan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """RpGAN's D loss: softplus(D(G(z)) - D(x)), each real slice paired with one generated slice."""
    return F.softplus(fake_logits.float() - real_logits.float()).mean()


def rpgan_g_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor) -> torch.Tensor:
    """RpGAN's G loss: softplus(D(x) - D(G(z))), the same pairs judged the other way round."""
    return F.softplus(real_logits.float() - fake_logits.float()).mean()


# `TrainConfig.loss` -> (D's loss, G's loss)
LOSSES = {"bce": (bce_d_loss, bce_g_loss), "rpgan": (rpgan_d_loss, rpgan_g_loss)}


# ---------------------------------------------------------------- one update of each network


def d_step(D, opt_D, real, fake, d_loss=bce_d_loss):
    """Update D: push D(x) towards 'real' and D(G(z)) towards 'fake'. Returns (loss, mean D(x), mean D(G(z)))."""
    real_logits = D(real)
    fake_logits = D(fake.detach())  # G is not trained in this step: no gradient flows back into it
    loss = d_loss(real_logits, fake_logits)
    loss.backward()
    opt_D.step()
    opt_D.zero_grad(set_to_none=True)  # the gradients are used once; the next step starts from nothing
    return loss.detach(), real_logits.detach().float().sigmoid().mean(), fake_logits.detach().float().sigmoid().mean()


def g_step(D, opt_G, fake, g_loss=bce_g_loss, real=None, extra=None) -> torch.Tensor:
    """Update G: push D(G(z)) towards 'real'. The gradient flows through D into G; only G's weights step.

    D's weights are frozen meanwhile: their gradients would be wasted work and would leak into D's next step.
    RpGAN's loss compares each generated slice with a real one, so it is given `real` too. `extra`, a term
    of G's own (the mode-seeking one), is added to the loss before the backward pass.
    """
    trainable = [p for p in D.parameters() if p.requires_grad]  # not a frozen feature network (ganlib.projected)
    for p in trainable:
        p.requires_grad_(False)
    fake_logits = D(fake)
    real_logits = D(real).detach() if real is not None else None
    loss = g_loss(fake_logits, real_logits)
    (loss if extra is None else loss + extra).backward()
    for p in trainable:
        p.requires_grad_(True)
    opt_G.step()
    opt_G.zero_grad(set_to_none=True)
    return loss.detach()


def mode_seeking_loss(a: torch.Tensor, b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                      cap: float) -> torch.Tensor:
    """Mode seeking, for G to minimise: minus the mean over pairs of min(|G(z_a, y) - G(z_b, y)| / |z_a - z_b|,
    cap), from pairs of outputs at the same condition y (mean absolute differences).

    MSGAN (Mao et al., CVPR 2019) minimises 1 / ratio, which grows without bound as two slices become alike and,
    at weight 1 here, pulled G to noise. The cap (as DSGAN, Yang et al., ICLR 2019) stops the push once two
    latents give slices as far apart as the cap asks: variety up to real's, not beyond.
    """
    ratio = (a.float() - b.float()).abs().mean(dim=(1, 2, 3)) / (z_a.float() - z_b.float()).abs().mean(dim=1)
    return -ratio.clamp(max=cap).mean()


# ---------------------------------------------------------------- the gradient penalties


def gradient_penalty(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The mean squared norm of D's gradient at its inputs, |grad_x D(x)|^2.

    At real slices this is R1 (Mescheder et al. 2018), at generated ones R2: both keep D flat where the data
    and the samples are, so G gets gradients that point somewhere rather than oscillating.
    """
    (grad,) = torch.autograd.grad(logits.float().sum(), x, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def d_step_penalised(D, opt_D, real, fake, d_loss, r1_gamma: float, r2_gamma: float, every: int = 1):
    """D's update on a step where the R1/R2 penalties are due: `d_step` with gamma/2 * R1 on the real slices
    and gamma/2 * R2 on the generated ones added to the loss. Returns what `d_step` returns.

    The penalties need D's gradient at its inputs, so the inputs take gradients here. Lazy regularisation
    (every `every` steps) scales the penalties up by `every` to match.
    """
    real = real.detach().requires_grad_(r1_gamma > 0)
    fake = fake.detach().requires_grad_(r2_gamma > 0)
    real_logits, fake_logits = D(real), D(fake)
    loss = d_loss(real_logits, fake_logits)
    total = loss
    for x, logits, gamma in ((real, real_logits, r1_gamma), (fake, fake_logits, r2_gamma)):
        if gamma > 0:
            total = total + gradient_penalty(logits, x) * (gamma / 2 * every)
    total.backward()
    opt_D.step()
    opt_D.zero_grad(set_to_none=True)
    return loss.detach(), real_logits.detach().float().sigmoid().mean(), fake_logits.detach().float().sigmoid().mean()

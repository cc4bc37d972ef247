"""The speed switches change how fast a step runs, never what it computes: channels_last, bf16 autocast, logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlib.config import get_preset
from ganlib.losses import d_step, g_step
from ganlib.models import build_models
from ganlib.train import DiscriminatorView, _Logits
from ganlib.utils.device import autocast, bf16_supported

CPU = torch.device("cpu")
CONFIG = get_preset("smoke", resolution=64, g_width=16, d_width=16)


def batch(config=CONFIG, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    real = torch.rand(n, 1, config.resolution, config.resolution, generator=g) * 2 - 1
    return real, torch.randn(n, config.z_dim, generator=g)


def one_step(real, z, channels_last: bool, amp: bool, config=CONFIG, dtype=torch.float32) -> dict:
    """One training step as ganlib.train's loop takes it; returns the losses and the gradients each optimiser took.
    `dtype=torch.float64` takes the same step (the same initial weights) in double precision: the reference."""
    torch.manual_seed(config.seed)
    G, D = (m.to(dtype) for m in build_models(config))
    real, z = real.to(dtype), z.to(dtype)
    if channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
        real = real.contiguous(memory_format=torch.channels_last)
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr, betas=config.betas, foreach=True)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr, betas=config.betas, foreach=True)
    grads = {}  # what each optimiser steps with (the steps clear .grad afterwards)
    for net, m, opt in (("G", G, opt_G), ("D", D, opt_D)):
        names = {p: f"{net}.{k}" for k, p in m.named_parameters()}
        opt.register_step_pre_hook(lambda o, *_, names=names: grads.update({names[p]: p.grad.clone() for p in names}))
    with autocast(CPU, amp):
        fake = G(z)
        loss_D, d_x, d_gz = d_step(DiscriminatorView(_Logits(D)), opt_D, real, fake)
    with autocast(CPU, amp):
        loss_G = g_step(DiscriminatorView(_Logits(D)), opt_G, fake)
    return {"loss_D": loss_D.item(), "loss_G": loss_G.item(), "D_x": d_x.item(), "D_G_z": d_gz.item(), **grads}


def test_channels_last_computes_the_same_step():
    """channels_last (the layout ganlib trains in) and the default layout both take the step of a float64 reference
    of it. The losses agree to float32 rounding. The gradients agree to rounding too, except where rounding moves a
    pre-activation that lies within rounding of a ReLU's or LeakyReLU's kink to its other side: that element's slope
    changes (1 against 0 or 0.2), which moves the weight gradients before it by far more than rounding, in either
    layout, depending on the batch and the CPU's kernels. So they are compared in norm, with a bound that such a
    flip stays under and that a real layout error (channels or pixels mixed up) would exceed many times."""
    real, z = batch()
    ref = one_step(real, z, channels_last=False, amp=False, dtype=torch.float64)
    for channels_last in (True, False):
        step = one_step(real, z, channels_last=channels_last, amp=False)
        for key in ("loss_D", "loss_G", "D_x", "D_G_z"):
            assert step[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), (channels_last, key)
        for key in (k for k in ref if k.startswith(("G.", "D."))):
            error = (step[key].double() - ref[key]).norm() / ref[key].norm()
            assert error < 0.1, (channels_last, key, error.item())


@pytest.mark.skipif(not bf16_supported(CPU), reason="this CPU has no bf16 support")
def test_bf16_autocast_stays_close_to_float32():
    real, z = batch()
    full, half = one_step(real, z, channels_last=True, amp=False), one_step(real, z, channels_last=True, amp=True)
    # bf16 keeps 8 bits of mantissa (~0.4% per rounding); averaged over a batch the losses move ~0.15% here.
    for key in ("loss_D", "loss_G", "D_x", "D_G_z"):
        assert half[key] == pytest.approx(full[key], rel=0.01), key
    assert half["loss_D"] != full["loss_D"], "autocast should really run in bf16"


def test_d_step_loss_is_bce_on_the_sigmoid():
    """BCE-with-logits on D.logits equals nn.BCELoss on D's Sigmoid output, for real and fake halves."""
    real, z = batch()
    torch.manual_seed(0)
    G, D = build_models(CONFIG)
    opt_D = torch.optim.Adam(D.parameters(), lr=CONFIG.lr, betas=CONFIG.betas)
    with torch.no_grad():
        fake = G(z)
        p_real, p_fake = D(real), D(fake)  # train mode: batch statistics, as in d_step
    expected = nn.BCELoss()(p_real, torch.ones_like(p_real)) + nn.BCELoss()(p_fake, torch.zeros_like(p_fake))
    loss_D, d_x, d_gz = d_step(_Logits(D), opt_D, real, fake)
    assert loss_D.item() == pytest.approx(expected.item(), rel=1e-5)
    assert (d_x.item(), d_gz.item()) == pytest.approx((p_real.mean().item(), p_fake.mean().item()), rel=1e-5)


def test_g_step_loss_is_bce_on_the_sigmoid():
    real, z = batch()
    torch.manual_seed(0)
    G, D = build_models(CONFIG)
    opt_G = torch.optim.Adam(G.parameters(), lr=CONFIG.lr, betas=CONFIG.betas)
    fake = G(z)
    with torch.no_grad():
        p = D(fake)
    loss_G = g_step(_Logits(D), opt_G, fake)
    assert loss_G.item() == pytest.approx(nn.BCELoss()(p, torch.ones_like(p)).item(), rel=1e-5)
    assert all(p.requires_grad and p.grad is None for p in D.parameters()), "G's step leaves D trainable, grad-free"
    assert all(p.grad is None for p in G.parameters()), "G's step clears G's gradients after using them"

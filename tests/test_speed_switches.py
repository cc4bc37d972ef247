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
    """ganlib trains channels_last: its step is the float64 reference's to float32 rounding. The losses of the
    default layout agree too; its gradients are not compared: on some CPUs (an AVX2-only AMD EPYC) torch's float32
    kernels in that layout lose far more precision in D's backward (BatchNorm's) than channels_last's do."""
    real, z = batch()
    ref = one_step(real, z, channels_last=False, amp=False, dtype=torch.float64)
    fast, plain = one_step(real, z, channels_last=True, amp=False), one_step(real, z, channels_last=False, amp=False)
    for key in ("loss_D", "loss_G", "D_x", "D_G_z"):
        assert fast[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key
        assert plain[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key
    # float32 sums the convolutions with rounding: compare each tensor scaled to its largest entry.
    for key in ref:
        if key.startswith(("G.", "D.")):
            expected = ref[key].float()
            torch.testing.assert_close(fast[key], expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item(), msg=key)


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

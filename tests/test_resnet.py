"""ganlib.resnet and the R3GAN switches: shapes, fix-up init, RpGAN values, R1/R2 against finite differences,
the EMA half-life, augmentation probability, and a short run that learns."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ganlib.augment import diff_augment
from ganlib.config import TrainConfig, get_preset
from ganlib.losses import bce_d_loss, gradient_penalty, rpgan_d_loss, rpgan_g_loss
from ganlib.models import build_models, count_params, sample
from ganlib.resnet import ResNetDiscriminator, ResNetGenerator, stage_widths
from ganlib.train import ema_beta, train


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_shapes_at_every_resolution(resolution):
    G, D = ResNetGenerator(100, resolution, width=8), ResNetDiscriminator(resolution, width=8)
    x = G(torch.randn(2, 100))
    assert x.shape == (2, 1, resolution, resolution)
    assert D.logits(x).shape == (2,)
    assert stage_widths(resolution, 8)[-1] == 8 and max(stage_widths(resolution, 8)) <= 64


def test_blocks_start_as_the_identity_and_the_preset_counts():
    G, D = build_models(get_preset("r3gan"))
    blocks = [m for m in G.modules() if type(m).__name__ == "ResidualBlock"]
    assert blocks and all(b.project.weight.abs().sum() == 0 for b in blocks)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(blocks[-1](x), x)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in [*G.modules(), *D.modules()])
    assert 100_000 < count_params(G) < 1_000_000 and 100_000 < count_params(D) < 1_000_000


def test_each_output_depends_on_its_own_input_only():
    """No normalisation across the batch: a slice's D score and sample do not change with its neighbours."""
    G, D = build_models(get_preset("r3gan", resolution=32))
    z = torch.randn(4, 100)
    assert torch.allclose(sample(G, z)[:1], sample(G, z[:1]), atol=1e-5)
    x = torch.randn(4, 1, 32, 32)
    assert torch.allclose(D.logits(x)[:1], D.logits(x[:1]), atol=1e-5)


def test_rpgan_loss_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    softplus = torch.nn.functional.softplus
    sp = lambda v: softplus(torch.tensor(v)).item()  # noqa: E731
    assert rpgan_d_loss(real, fake).item() == pytest.approx((sp(-2.0) + sp(1.0)) / 2)  # fake - real
    assert rpgan_g_loss(fake, real).item() == pytest.approx((sp(2.0) + sp(-1.0)) / 2)  # real - fake
    # The seed's D loss is the sum of its two halves.
    assert bce_d_loss(real, fake).item() == pytest.approx(
        (torch.nn.functional.binary_cross_entropy_with_logits(real, torch.ones(2))
         + torch.nn.functional.binary_cross_entropy_with_logits(fake, torch.zeros(2))).item()
    )


def test_r1_r2_penalty_matches_finite_differences():
    """|grad_x D(x)|^2 per image, averaged, against central differences of D in float64.

    D has no normalisation across the batch, so all 2 x 1,024 perturbed copies of each image go through
    D as one batch.
    """
    torch.manual_seed(0)
    D = ResNetDiscriminator(32, width=8).double()
    for p in D.parameters():  # move the zero-initialised layers so every path carries gradient
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 1, 32, 32, dtype=torch.float64, requires_grad=True)
    penalty = gradient_penalty(D.logits(x), x).item()
    eps = 1e-6
    basis = torch.eye(32 * 32, dtype=torch.float64).view(-1, 1, 32, 32) * eps
    with torch.no_grad():
        fd = torch.stack([(D.logits(xi + basis) - D.logits(xi - basis)) / (2 * eps) for xi in x.detach()])
    assert penalty == pytest.approx(fd.square().sum(dim=1).mean().item(), rel=1e-6)


def test_penalty_gradient_reaches_d_weights():
    """The penalty is differentiable in D's weights (create_graph): its own gradient is not zero."""
    D = ResNetDiscriminator(32, width=8)
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    gradient_penalty(D.logits(x), x).backward()
    assert sum(p.grad.abs().sum() for p in D.parameters() if p.grad is not None) > 0


def test_ema_half_life_in_images_with_ramp_up():
    c = TrainConfig(batch_size=64, ema_kimg=10.0, ema_rampup=0.05)
    assert ema_beta(c, step=100_000) == pytest.approx(0.5 ** (64 / 10_000))
    assert ema_beta(c, step=99) == pytest.approx(0.5 ** (64 / (100 * 64 * 0.05)))  # 320 images of half-life
    assert ema_beta(dataclasses.replace(c, ema_rampup=0.0), step=0) == ema_beta(c, step=100_000)
    # 10k images of half-life: the weights of 156 steps (10,000 images) ago count half.
    beta = ema_beta(c, step=100_000)
    assert beta ** (10_000 / 64) == pytest.approx(0.5)


def test_augment_probability():
    x = torch.zeros(2000, 1, 8, 8)
    out = diff_augment(x, "brightness", torch.Generator().manual_seed(0), p=0.3)
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.25 < changed < 0.35
    assert torch.equal(diff_augment(x, "brightness", p=0.0), x)


def test_bad_choices_are_refused_in_one_line():
    bad = ((dict(loss="wgan"), "loss='wgan'"), (dict(arch="vit"), "arch='vit'"), (dict(augment_p=1.5), "augment_p"))
    for kw, match in bad:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kw)


def test_r3gan_run_learns_and_resumes_exactly(tiny_data, tmp_path):
    """A short RpGAN + R1 + R2 run on the tiny slices: D separates, G moves towards the data; resume is exact."""
    from ganlib.checkpoint import load_generator
    from ganlib.data import load_split, to_float

    config = get_preset(
        "r3gan", resolution=32, g_width=8, d_width=8, batch_size=16, num_epochs=8, epoch_images=320,
        max_images=32, n_fixed=16, log_every=5, amp=False, ema_kimg=0.5,
    )
    real_mean = to_float(load_split("train", 32, tiny_data).images).mean(0)
    z = torch.randn(64, 100, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(config.seed)
    G0, _ = build_models(config)
    before = (sample(G0, z).mean(0) - real_mean).square().mean().sqrt().item()
    run = train(config, data=tiny_data, out=tmp_path / "a", progress=False, device="cpu")
    G, _ = load_generator(run)
    after = (sample(G, z).mean(0) - real_mean).square().mean().sqrt().item()
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert after < 0.6 * before, (before, after)
    assert stats[-1]["loss_D"] < 0.69, stats[-1]  # softplus(0) = 0.693: D tells real from fake
    short = dataclasses.replace(config, num_epochs=6)
    part = train(short, data=tiny_data, out=tmp_path / "b", progress=False, device="cpu")
    train(config, data=tiny_data, resume=part, progress=False, device="cpu")
    a = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "latest.pt", weights_only=True)
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net


def test_penalised_d_step_without_penalties_is_the_plain_d_step():
    """With both gammas 0, d_step_penalised computes d_step's update; with R1 on, D's update differs."""
    from ganlib.losses import d_step, d_step_penalised, rpgan_d_loss

    results = []
    for step, gammas in ((d_step, None), (d_step_penalised, (0.0, 0.0)), (d_step_penalised, (5.0, 0.0))):
        torch.manual_seed(0)
        D = ResNetDiscriminator(32, width=8)
        for p in D.parameters():  # move the zero-initialised layers so the penalty has a gradient to give
            p.data.add_(0.05 * torch.randn_like(p))
        opt = torch.optim.SGD(D.parameters(), lr=0.1)
        real, fake = torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)
        logits = D.logits
        args = (logits, opt, real, fake, rpgan_d_loss) + ((*gammas,) if gammas else ())
        loss = step(*args)[0]
        results.append((loss.item(), torch.cat([p.detach().flatten() for p in D.parameters()])))
    assert results[1][0] == pytest.approx(results[0][0]) and torch.allclose(results[1][1], results[0][1])
    assert results[2][0] == pytest.approx(results[0][0]) and not torch.allclose(results[2][1], results[0][1])

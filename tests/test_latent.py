"""ganlib.explore.latent and .widgets: paths, truncation, principal directions, neighbours, renderer, widgets."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image
from torch import nn

from ganlib.config import get_preset
from ganlib.explore import latent
from ganlib.explore.widgets import IMAGE_CLASS, SLIDER_CLASS, InterpolationExplorer, LatentExplorer
from ganlib.models import Generator, build_models


class LinearG(nn.Module):
    """G(z) = A z as a 1 x 8 x 8 image: its Jacobian is A everywhere, so the right answers are known."""

    def __init__(self, A: torch.Tensor):
        super().__init__()
        self.z_dim = A.shape[1]
        self.linear = nn.Linear(self.z_dim, A.shape[0], bias=False)
        self.linear.weight.data.copy_(A)

    def forward(self, z):
        return self.linear(z).view(len(z), 1, 8, 8)


@pytest.fixture
def G():
    torch.manual_seed(0)
    return Generator(z_dim=16, resolution=32, width=8).eval()


def test_seed_latent_is_repeatable_and_batched():
    assert torch.equal(latent.seed_latent(3, 100), latent.seed_latent(3, 100))
    assert not torch.equal(latent.seed_latent(3, 100), latent.seed_latent(4, 100))
    assert latent.seed_latent(3, 100, n=5).shape == (5, 100)


def test_lerp_and_slerp_end_points_and_norms():
    z0, z1 = latent.seed_latent(0, 100), latent.seed_latent(1, 100)
    for method in ("lerp", "slerp"):
        path = latent.interpolate(z0, z1, 7, method)
        assert path.shape == (7, 100)
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    # slerp interpolates the norm linearly; lerp's midpoint is much shorter (nearly orthogonal latents).
    slerp_norms = latent.interpolate(z0, z1, 5, "slerp").norm(dim=1)
    assert torch.allclose(slerp_norms, torch.linspace(z0.norm(), z1.norm(), 5), atol=1e-4)
    mid = latent.lerp(z0, z1, 0.5)
    assert torch.allclose(mid, (z0 + z1) / 2, atol=1e-6)
    assert mid.norm() < 0.8 * min(z0.norm(), z1.norm())
    # The slerp midpoint is equally far (in angle) from both ends.
    s = latent.slerp(z0, z1, 0.5)
    cos = lambda a, b: (a @ b / a.norm() / b.norm()).item()
    assert cos(s, z0) == pytest.approx(cos(s, z1), abs=1e-5)


def test_slerp_of_parallel_latents_is_lerp():
    z = latent.seed_latent(0, 10)
    assert torch.allclose(latent.slerp(z, 2 * z, 0.5), 1.5 * z, atol=1e-5)


def test_unknown_interpolation():
    with pytest.raises(ValueError, match="lerp or slerp"):
        latent.interpolate(torch.zeros(3), torch.ones(3), 4, "cubic")


def test_truncation_and_edit():
    z = latent.seed_latent(0, 8)
    assert torch.equal(latent.truncate(z, 1.0), z)
    assert torch.equal(latent.truncate(z, 0.0), torch.zeros(8))
    assert torch.allclose(latent.truncate(z, 0.5, mean=torch.ones(8)), 1 + 0.5 * (z - 1))
    directions = torch.eye(8)[:2]
    edited = latent.edit_latent(z, directions, [2.0, -1.0], psi=0.5)
    assert torch.allclose(edited, 0.5 * z + torch.tensor([2.0, -1.0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="3 amounts for 2 directions"):
        latent.edit_latent(z, directions, [1, 2, 3])


def test_principal_directions_of_a_linear_generator():
    # A with singular values 8, 4, 2, 1, 0.5, 0.25: the top directions are A's top right singular vectors.
    torch.manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(64, 6))
    V, _ = torch.linalg.qr(torch.randn(6, 6))
    sv = torch.tensor([8.0, 4, 2, 1, 0.5, 0.25])
    A = U @ torch.diag(sv) @ V.T
    directions, strengths = latent.principal_directions(LinearG(A), num_latents=512, k=3, probes=8, batch_size=100)
    assert directions.shape == (3, 6) and strengths.shape == (3,)
    assert torch.allclose(directions @ directions.T, torch.eye(3), atol=1e-5)
    for i in range(3):
        assert abs(directions[i] @ V[:, i]) > 0.98, f"direction {i} is not A's singular vector {i}"
    # Strength: the RMS change per pixel of a unit step, sigma_i / sqrt(64).
    assert torch.allclose(strengths, sv[:3] / 8, rtol=0.1)
    assert (strengths[:-1] > strengths[1:]).all()


def test_principal_directions_leave_G_as_it_was(G):
    G.train()
    flags = [p.requires_grad for p in G.parameters()]
    d1, s1 = latent.principal_directions(G, num_latents=32, k=4, probes=2, batch_size=16)
    d2, _ = latent.principal_directions(G, num_latents=32, k=4, probes=2, batch_size=16)
    assert G.training and [p.requires_grad for p in G.parameters()] == flags
    assert all(p.grad is None for p in G.parameters())
    assert torch.equal(d1, d2), "same seed, same directions (signs fixed)"
    assert (s1 > 0).all()


def test_direction_sweep_and_generate(G):
    z = latent.seed_latent(0, 16)
    directions = torch.eye(16)[:3]
    sweep = latent.direction_sweep(G, z, directions, [-1, 0, 1])
    assert sweep.shape == (9, 1, 32, 32)
    # The middle column is z itself, the same image for every direction.
    assert torch.allclose(sweep[1], sweep[4], atol=1e-6) and torch.allclose(sweep[1], latent.generate(G, z[None])[0])
    assert not torch.allclose(sweep[0], sweep[2])
    assert latent.sweep_image(G, z, directions, [-1, 0, 1]).size == (3 * 34 + 2, 3 * 34 + 2)


def test_nearest_real_finds_the_copy():
    reals = torch.rand(10, 1, 16, 16) * 2 - 1
    fakes = reals[[3, 7]] + 0.01 * torch.randn(2, 1, 16, 16)
    idx, dist = latent.nearest_real(fakes, reals)
    assert idx.tolist() == [3, 7] and (dist < 0.02).all()
    # uint8 reals at twice the resolution are scaled to [-1, 1] and resized first.
    big = torch.zeros(4, 1, 32, 32, dtype=torch.uint8)
    big[2] = 255
    idx, dist = latent.nearest_real(torch.ones(1, 1, 16, 16), big)
    assert idx.tolist() == [2] and dist.item() == pytest.approx(0.0, abs=1e-4)


def test_pairs_interleaves():
    a, b = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    p = latent.pairs(a, b)
    assert p.shape == (6, 1, 2, 2) and p[::2].eq(0).all() and p[1::2].eq(1).all()


def test_render_png_is_the_edited_latent(G):
    directions = torch.eye(16)[:2]
    data = latent.render_png(G, 5, [0.0, 0.0], 1.0, directions, size=64)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (64, 64)
    assert latent.render_latent(G, 5, [0, 0], 1.0, directions, size=None).size == (32, 32)
    assert data != latent.render_png(G, 5, [3.0, 0.0], 1.0, directions, size=64)
    assert data != latent.render_png(G, 6, [0.0, 0.0], 1.0, directions, size=64)
    # psi = 0 with no offsets is the mean latent, whatever the seed.
    assert latent.render_png(G, 5, [0, 0], 0.0, directions) == latent.render_png(G, 9, [0, 0], 0.0, directions)


def test_render_interpolation_ends_at_the_seeds(G):
    start = latent.render_interpolation(G, 1, 2, 0.0, "lerp", size=None)
    assert start.tobytes() == latent.render_latent(G, 1, [], 1.0, torch.zeros(0, 16), size=None).tobytes()
    with pytest.raises(ValueError, match="lerp or slerp"):
        latent.render_interpolation(G, 1, 2, 0.5, "nearest")


def test_latent_explorer_renders_what_render_png_gives(G):
    directions, strengths = latent.principal_directions(G, num_latents=32, k=3, probes=2)
    ex = LatentExplorer(G, directions, strengths, seed=4, size=64)
    first = ex.image.value
    assert first == latent.render_png(G, 4, [0, 0, 0], 1.0, directions, 64)
    assert IMAGE_CLASS in ex.image._dom_classes
    assert all(SLIDER_CLASS in s._dom_classes for s in ex.sliders)
    assert "ganlib-direction-0" in ex.sliders[0]._dom_classes
    ex.sliders[1].value = 2.0
    assert ex.image.value != first
    assert ex.image.value == latent.render_png(G, 4, [0, 2.0, 0], 1.0, directions, 64)
    ex.psi.value = 0.5
    ex.seed.value = 7
    assert ex.image.value == latent.render_png(G, 7, [0, 2.0, 0], 0.5, directions, 64)
    ex._reset()
    assert ex.amounts == [0, 0, 0] and ex.psi.value == 1.0
    assert ex.image.value == latent.render_png(G, 7, [0, 0, 0], 1.0, directions, 64)
    assert "3 direction sliders" in repr(ex) and len(repr(ex)) < 200
    # The seed box re-renders as it is typed, and psi stays where G's latents live (|z| ~ 10 in training).
    assert ex.seed.continuous_update and ex.psi.min == 0.25


def test_interpolation_explorer(G):
    ex = InterpolationExplorer(G, 1, 2, size=48)
    start = ex.image.value
    ex.t.value = 1.0
    assert ex.image.value == latent.png_bytes(latent.render_interpolation(G, 1, 2, 1.0, "slerp", 48))
    ex.t.value = 0.0
    assert ex.image.value == start
    assert len(repr(ex)) < 200


def test_direction_effects_measure_what_a_direction_does():
    """A toy G whose head grows with z[0] and brightens with z[1]: the measured effects say so."""
    from torch import nn

    class Toy(nn.Module):
        z_dim, resolution = 2, 32

        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(1))  # `sample` finds the device from G's parameters

        def forward(self, z):
            yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
            r = torch.sqrt((yy - 15.5) ** 2 + (xx - 15.5) ** 2)
            radius = (8 + 2 * z[:, 0]).view(-1, 1, 1)
            head = (r[None] < radius).float()
            level = (0.2 * z[:, 1]).view(-1, 1, 1).clamp(-0.5, 0.5)
            return (head * (1 + level) - 1).unsqueeze(1) * 0.999

    G = Toy()
    effects = latent.direction_effects(G, torch.eye(2), torch.zeros(4, 2), amount=1.0)
    assert effects[0]["area"] > 0.1 and abs(effects[0]["brightness"]) < 0.05
    assert effects[1]["brightness"] > 0.3 and abs(effects[1]["area"]) < 1e-6
    assert abs(effects[0]["centre_y"]) < 0.5  # grows in place
    assert latent.describe_effects(effects, 1.0)[0].startswith("direction 1, from -1 to +1: head area +")


def test_explorer_of_a_paired_conditional_generator_has_position_and_mask_controls():
    torch.manual_seed(0)
    G = Generator(z_dim=16, resolution=32, width=8, positions=32, mask_classes=4).eval()
    directions, strengths = latent.principal_directions(G, num_latents=16, k=2, probes=1)
    ex = LatentExplorer(G, directions, strengths, seed=3, size=64)
    assert ex.position.max == 31 and "ganlib-position-slider" in ex.position._dom_classes
    assert ex.image.value == latent.render_png(G, 3, [0, 0], 1.0, directions, 64, position=16)
    ex.position.value = 4
    at_4 = latent.render_png(G, 3, [0, 0], 1.0, directions, 64, position=4)
    assert ex.image.value == at_4 != latent.render_png(G, 3, [0, 0], 1.0, directions, 64, position=16)
    ex.overlay.value = True
    assert ex.image.value == latent.render_png(G, 3, [0, 0], 1.0, directions, 64, position=4, overlay=True)
    assert Image.open(io.BytesIO(ex.image.value)).mode == "RGB"
    # The plain generator's explorer has neither control.
    plain = LatentExplorer(Generator(z_dim=16, resolution=32, width=8).eval(), directions, seed=3, size=64)
    assert plain.position is None and plain.overlay is None


def test_overlay_tints_only_the_labelled_pixels():
    from ganlib.viz import MASK_COLOURS, overlay_masks

    images = torch.zeros(1, 1, 2, 2)  # mid grey
    masks = torch.tensor([[[[0, 1], [2, 3]]]])
    rgb = overlay_masks(images, masks, alpha=0.5) * 0.5 + 0.5
    assert torch.allclose(rgb[0, :, 0, 0], torch.full((3,), 0.5))  # background untouched
    for k, (i, j) in enumerate(((0, 1), (1, 0), (1, 1))):
        assert torch.allclose(rgb[0, :, i, j], 0.25 + 0.5 * MASK_COLOURS[k])


def test_farthest_pair_names_the_two_seeds_whose_samples_differ_most():
    G, _ = build_models(get_preset("smoke"))
    seeds = list(range(6))
    a, b = latent.farthest_pair(G, seeds)
    images = latent.generate(G, torch.stack([latent.seed_latent(s, G.z_dim) for s in seeds])).flatten(1)
    d = torch.cdist(images, images)
    assert a < b and d[a, b] == d.max()

"""Walking G's latent space: interpolation, truncation, principal directions, nearest real slices.

Everything here is a plain function of tensors, so notebook 04 and its sliders (`ganlib.explore.widgets`)
share one tested implementation. `render_latent` / `render_png` are the renderer behind the
widget: seed, slider amounts and truncation in, image out.

Principal directions: the latent directions that change G's image most are the top eigenvectors
of E_z[J(z)^T J(z)], where J = dG(z)/dz is the Jacobian of the flattened image. A unit step along
an eigenvector v changes the image by sqrt(eigenvalue) in L2 (RMS over latents), so the eigenvalues
rank the directions; `principal_directions` reports that change per pixel. The matrix is estimated
from z-gradients of random projections of the image (E_u[J^T u u^T J] = J^T J for u ~ N(0, I)):
one backward pass per probe, no full Jacobian. This is PCA of G's output *changes* mapped into
latent space, which suits sliders better than PCA of the outputs themselves (that needs a second
regression back to z).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from ..data import to_float
from ..evaluation.audit import nearest_neighbours
from ..models import eval_mode, sample
from ..viz import grid_image, render


def seed_latent(seed: int, z_dim: int, n: int | None = None) -> torch.Tensor:
    """The latent (z_dim,) - or a batch (n, z_dim) - that `seed` stands for: N(0, I), CPU generator."""
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1 if n is None else n, z_dim, generator=g)
    return z[0] if n is None else z


def farthest_pair(G: torch.nn.Module, seeds: Sequence[int]) -> tuple[int, int]:
    """Of `seeds`, the two whose samples differ most in pixels: end points for a walk worth watching."""
    z = torch.stack([seed_latent(s, getattr(G, "module", G).z_dim) for s in seeds])
    images = generate(G, z).flatten(1)
    d = torch.cdist(images, images)
    i, j = divmod(int(d.argmax()), len(seeds))
    return seeds[min(i, j)], seeds[max(i, j)]


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Straight line from z0 (t=0) to z1 (t=1); t may be a vector of steps (returns one row each)."""
    t = torch.as_tensor(t, dtype=z0.dtype)
    t = t[:, None] if t.dim() == 1 else t
    return z0 + t * (z1 - z0)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Great-circle path from z0 to z1 with the norm interpolated linearly.

    A Gaussian latent lives near the sphere of radius sqrt(z_dim); the straight line between two
    such points cuts through the lower-norm inside, where G rarely looked during training.
    """
    t = torch.as_tensor(t, dtype=z0.dtype)
    t = t[:, None] if t.dim() == 1 else t
    n0, n1 = z0.norm(), z1.norm()
    u0, u1 = z0 / n0, z1 / n1
    omega = torch.arccos((u0 * u1).sum().clamp(-1 + eps, 1 - eps))
    if omega.abs() < 1e-4:  # (nearly) the same direction: slerp is lerp
        return lerp(z0, z1, t)
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return direction * (n0 + t * (n1 - n0))


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """`steps` latents from z0 to z1 inclusive, (steps, z_dim), by "lerp" or "slerp"."""
    paths = {"lerp": lerp, "slerp": slerp}
    if method not in paths:
        raise ValueError(f"unknown interpolation {method!r}; choose lerp or slerp")
    return paths[method](z0, z1, torch.linspace(0, 1, steps))


def truncate(z: torch.Tensor, psi: float, mean: torch.Tensor | None = None) -> torch.Tensor:
    """The truncation trick for a DCGAN: pull z towards the mean latent by psi (1 = unchanged).

    psi < 1 trades variety for typicality: psi = 0 gives G's "average" image G(mean).
    """
    mean = torch.zeros_like(z) if mean is None else mean
    return mean + psi * (z - mean)


def edit_latent(
    z: torch.Tensor, directions: torch.Tensor, amounts: Sequence[float] | torch.Tensor, psi: float = 1.0
) -> torch.Tensor:
    """Truncate z by psi, then step `amounts[i]` (in latent standard deviations) along direction i."""
    amounts = torch.as_tensor(amounts, dtype=z.dtype)
    if len(amounts) != len(directions):
        raise ValueError(f"{len(amounts)} amounts for {len(directions)} directions")
    return truncate(z, psi) + amounts @ directions.to(z.dtype)


def principal_directions(
    G: torch.nn.Module,
    num_latents: int = 512,
    k: int = 8,
    probes: int = 4,
    seed: int = 0,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k unit latent directions that change G's image most, (k, z_dim), and their strengths (k,).

    Eigenvectors of E_z[J^T J] estimated from `num_latents` latents with `probes` random
    projections each (see the module docstring); strength = RMS pixel change per unit step.
    G runs in eval mode, so each image depends on its own latent only.
    """
    z_dim = G.z_dim
    needs_grad = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    gram = torch.zeros(z_dim, z_dim, dtype=torch.float64)
    num_pixels = 1
    try:
        with eval_mode(G):
            for start in range(0, num_latents, batch_size):
                n = min(batch_size, num_latents - start)
                z = torch.randn(n, z_dim, generator=gen).to(device).requires_grad_(True)
                x = G(z)[:, :1].flatten(1)  # the slice (a paired G's mask channels come after it)
                num_pixels = x.shape[1]
                for p in range(probes):
                    u = torch.randn(x.shape, generator=gen).to(device)
                    (grad,) = torch.autograd.grad(x, z, u, retain_graph=p < probes - 1)
                    gram += (grad.T @ grad).double().cpu()
    finally:
        for param, flag in zip(G.parameters(), needs_grad):
            param.requires_grad_(flag)
    gram /= num_latents * probes
    evals, evecs = torch.linalg.eigh(gram)  # ascending
    order = torch.argsort(evals, descending=True)[:k]
    directions = evecs[:, order].T.float()
    # An eigenvector's sign is arbitrary; fix it so the largest component is positive.
    signs = torch.sign(directions.gather(1, directions.abs().argmax(1, keepdim=True)))
    return directions * signs, (evals[order].clamp_min(0) / num_pixels).sqrt().float()


@torch.no_grad()
def direction_sweep(
    G: torch.nn.Module, z: torch.Tensor, directions: torch.Tensor, amounts: Sequence[float]
) -> torch.Tensor:
    """G's images for z moved by each amount along each direction: (len(directions) * len(amounts), 1, R, R)."""
    steps = torch.as_tensor(amounts, dtype=z.dtype)
    zs = z[None, None] + steps[None, :, None] * directions[:, None, :].to(z.dtype)
    return generate(G, zs.reshape(-1, z.shape[-1]))


def direction_effects(
    G: torch.nn.Module, directions: torch.Tensor, z: torch.Tensor, amount: float = 2.0, background: float = -0.8
) -> list[dict]:
    """What moving along each direction does, measured on the images of latents `z` (N, z_dim).

    For each direction, the mean change from -amount to +amount of: the head's area (share of pixels
    brighter than `background`), the mean brightness inside the head, and the head's vertical and
    horizontal centre (in pixels, + = down/right). The numbers behind a sentence like "direction 1 makes
    the head larger", so a description of the sliders is measured rather than guessed.
    """

    def measure(images):
        head = images > background
        area = head.float().mean(dim=(1, 2, 3))
        inside = (images * head).sum(dim=(1, 2, 3)) / head.sum(dim=(1, 2, 3)).clamp_min(1)
        size = images.shape[-1]
        grid = torch.arange(size, dtype=images.dtype)
        w = head.float()[:, 0]
        total = w.sum(dim=(1, 2)).clamp_min(1)
        cy = (w.sum(dim=2) * grid).sum(1) / total
        cx = (w.sum(dim=1) * grid).sum(1) / total
        return torch.stack([area, inside, cy, cx], 1)

    out = []
    for d in directions:
        lo = measure(generate(G, z - amount * d.to(z.dtype)))
        hi = measure(generate(G, z + amount * d.to(z.dtype)))
        change = (hi - lo).mean(0).tolist()
        out.append(dict(zip(("area", "brightness", "centre_y", "centre_x"), change)))
    return out


def describe_effects(effects: list[dict], amount: float = 2.0) -> list[str]:
    """One line per direction naming its largest measured effects, from `direction_effects`."""
    lines = []
    for i, e in enumerate(effects):
        parts = [
            f"head area {e['area'] * 100:+.1f} points",
            f"brightness inside the head {e['brightness']:+.3f}",
            f"head centre {e['centre_y']:+.1f} px down, {e['centre_x']:+.1f} px right",
        ]
        lines.append(f"direction {i + 1}, from -{amount:g} to +{amount:g}: " + "; ".join(parts))
    return lines


def generate(G: torch.nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """G(z) in eval mode on G's device, returned on the CPU in [-1, 1] (`models.sample`)."""
    return sample(G, z, batch_size)


def nearest_real(fakes: torch.Tensor, reals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of each fake's nearest real image by pixel L2, and that distance (RMS per pixel in [-1, 1]).

    `reals` may be the uint8 images of a `SliceSet`; they are resized to the fakes' resolution. The search
    is the memorisation audit's (`audit.nearest_neighbours`).
    """
    if reals.dtype == torch.uint8:
        reals = to_float(reals)
    if reals.shape[-1] != fakes.shape[-1]:
        reals = F.interpolate(reals.float(), size=fakes.shape[-2:], mode="bilinear", antialias=True)
    dist, idx = nearest_neighbours(fakes.flatten(1).float(), reals.flatten(1).float())
    return idx, (dist / math.sqrt(fakes[0].numel())).float()


def pairs(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Interleave two equal batches (a0, b0, a1, b1, ...) so a grid with an even row shows them side by side."""
    return torch.stack([left, right], dim=1).flatten(0, 1)


def render_latent(
    G: torch.nn.Module,
    seed: int,
    amounts: Sequence[float],
    psi: float,
    directions: torch.Tensor,
    size: int | None = 256,
    position: int | None = None,
    overlay: bool = False,
) -> Image.Image:
    """The image the latent explorer shows: the seed's latent, truncated by psi, moved by `amounts`
    (at slice `position` for a position-conditioned G; with its mask tinted on with `overlay`)."""
    z = edit_latent(seed_latent(seed, G.z_dim), directions, amounts, psi)
    return render(G, z, size=size, position=position, overlay=overlay)


def render_interpolation(
    G: torch.nn.Module, seed0: int, seed1: int, t: float, method: str = "slerp", size: int | None = 256
) -> Image.Image:
    """The image a fraction t of the way from seed0's latent to seed1's, by "lerp" or "slerp"."""
    if method not in ("lerp", "slerp"):
        raise ValueError(f"unknown interpolation {method!r}; choose lerp or slerp")
    z0, z1 = seed_latent(seed0, G.z_dim), seed_latent(seed1, G.z_dim)
    return render(G, (lerp if method == "lerp" else slerp)(z0, z1, float(t)), size=size)


def png_bytes(image: Image.Image) -> bytes:
    """A PIL image as PNG file bytes (what an `ipywidgets.Image` displays)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def render_png(
    G: torch.nn.Module,
    seed: int,
    amounts: Sequence[float],
    psi: float,
    directions: torch.Tensor,
    size: int | None = 256,
    position: int | None = None,
    overlay: bool = False,
) -> bytes:
    """`render_latent` as PNG bytes."""
    return png_bytes(render_latent(G, seed, amounts, psi, directions, size, position, overlay))


def sweep_image(G: torch.nn.Module, z: torch.Tensor, directions: torch.Tensor, amounts: Sequence[float]) -> Image.Image:
    """A grid with one row per direction and one column per amount: what each slider does."""
    return grid_image(direction_sweep(G, z, directions, amounts), nrow=len(amounts))

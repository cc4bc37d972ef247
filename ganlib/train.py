"""One readable training loop for the DCGAN, with run folders, checkpoints and exact resume.

The split lives on the training device as uint8 and batches are indexed there. Every
epoch draws its shuffle and its latents from generators seeded by (seed, epoch), so a run
resumed from its last checkpoint repeats exactly what an uninterrupted run would do.
Under torchrun each rank takes its own slice of every global batch; rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import distributed as dist
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from .augment import diff_augment
from .config import TrainConfig
from .data import REPO_ROOT, SliceSet, load_split, to_float
from .distributed import sync_batchnorm
from .models import build_models
from .viz import plot_losses, save_grid


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


# ---------------------------------------------------------------- set-up helpers


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here; use --device cpu")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return False


def autocast(device: torch.device, enabled: bool):
    if enabled:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def new_run_dir(out: str | os.PathLike | None, name: str) -> Path:
    """runs/00007-cpu: the next free number under `out` (default <repo>/runs)."""
    root = Path(out) if out is not None else REPO_ROOT / "runs"
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:5]) for p in root.iterdir() if p.name[:5].isdigit()]
    run_dir = root / f"{max(numbers, default=-1) + 1:05d}-{name}"
    run_dir.mkdir()
    return run_dir


def epoch_generators(seed: int, epoch: int, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
    """CPU generator for the shuffle, device generator for latents; both fixed by (seed, epoch)."""
    g_cpu = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    g_dev = torch.Generator(device).manual_seed(seed * 1_000_003 + epoch + 500_009)
    return g_cpu, g_dev


def epoch_order(n: int, epoch_images: int, g: torch.Generator) -> torch.Tensor:
    """Indices for one epoch: whole shuffled passes over the split, cut to `epoch_images`."""
    passes = [torch.randperm(n, generator=g) for _ in range(-(-epoch_images // n))]
    return torch.cat(passes)[:epoch_images]


def fixed_latents(config: TrainConfig, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(config.seed + 12345)
    return torch.randn(config.n_fixed, config.z_dim, generator=g).to(device)


# ---------------------------------------------------------------- one step each


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


def d_step(D, opt_D, real, fake, amp_ctx, config, aug=lambda x: x, r1: bool = False):
    """Push D(real) towards 'real' and D(fake) towards 'fake'; returns (loss, mean D(x), mean D(G(z))).

    With `r1`, adds the R1 penalty gamma/2 * |grad_x D(x)|^2 on the real half (scaled by the lazy interval).
    """
    opt_D.zero_grad(set_to_none=True)
    if r1:
        real = real.detach().requires_grad_(True)
    with amp_ctx():
        out_real = D(aug(real))
    loss_real = d_loss(out_real, True, config.loss)
    if r1:
        (grad,) = torch.autograd.grad(out_real.float().sum(), real, create_graph=True)
        penalty = grad.square().sum(dim=(1, 2, 3)).mean() * (config.r1_gamma / 2 * config.r1_every)
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


def g_step(D_core, opt_G, fake, amp_ctx, config, aug=lambda x: x) -> torch.Tensor:
    """Push D(G(z)) towards 'real' (the non-saturating loss of the DCGAN paper, or hinge)."""
    opt_G.zero_grad(set_to_none=True)
    D_core.requires_grad_(False)  # D's weight gradients are not needed here
    with amp_ctx():
        out = D_core(aug(fake))
    loss = g_loss(out, config.loss)
    loss.backward()
    D_core.requires_grad_(True)
    opt_G.step()
    return loss.detach()


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G; BatchNorm statistics are copied."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


class _Logits(torch.nn.Module):
    """D's logits as forward(), so DistributedDataParallel and torch.compile see the training call."""

    def __init__(self, D):
        super().__init__()
        self.D = D

    def forward(self, x):
        return self.D.logits(x)


@torch.no_grad()
def val_loss_d(G, D, val: torch.Tensor, config: TrainConfig, device, amp_ctx) -> float:
    """D's loss on the validation split (reals vs as many fakes), both nets in eval mode."""
    G.eval(), D.eval()
    g = torch.Generator(device).manual_seed(config.seed + 99991)
    total, n = 0.0, 0
    for i in range(0, len(val), config.batch_size):
        real = to_float(val[i : i + config.batch_size].to(device))
        z = torch.randn(len(real), config.z_dim, generator=g, device=device)
        with amp_ctx():
            lr_, lf_ = D.logits(real), D.logits(G(z))
        total += (d_loss(lr_, True, config.loss) + d_loss(lf_, False, config.loss)).item() * len(real)
        n += len(real)
    G.train(), D.train()
    return total / max(n, 1)


@torch.no_grad()
def sample(G, z: torch.Tensor) -> torch.Tensor:
    """G's images for `z` in eval mode (BatchNorm running statistics), as in `ganlib sample`."""
    was = G.training
    G.eval()
    out = G(z).float()
    G.train(was)
    return out


# ---------------------------------------------------------------- the loop


def train(
    config: TrainConfig,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    device: str | None = None,
    callback=None,
    train_set: SliceSet | None = None,
    val_set: SliceSet | None = None,
    eval_every: int = 0,
    progress: bool = True,
    checkpoint_every: int = 1,
) -> Path:
    """Train G and D as `config` says; returns the run folder (None on ranks other than 0).

    `resume` takes a run folder (or checkpoint) and continues it to `config.num_epochs`.
    Stats and the sample grid are written every epoch; the loss plot and the checkpoint every
    `checkpoint_every` epochs and after the last (on a fast GPU, writing them every epoch costs
    as much as the epoch itself).
    `callback(state)` is called after every epoch with the epoch's stats, the models and the
    fixed-latent samples, so a notebook can draw while it trains.
    """
    dev = pick_device(device)
    rank, world = dist_info()
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} does not split over {world} processes")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    use_amp = config.amp and bf16_supported(dev)
    amp_ctx = lambda: autocast(dev, use_amp)  # noqa: E731

    # Resume: the checkpoint's config wins, except for how many epochs to run.
    state = None
    if resume is not None:
        state = ckpt_io.load(resume)
        stored = TrainConfig.from_dict(state["config"])
        config = TrainConfig.from_dict({**stored.to_dict(), "num_epochs": config.num_epochs})
        run_dir = ckpt_io.resolve_checkpoint(resume).parents[1]
    elif rank == 0:
        run_dir = new_run_dir(out, config.name)
    else:
        run_dir = None
    main = rank == 0

    # Data: the split as uint8 on the device, decoded once.
    if train_set is None:
        train_set = load_split(config.split, config.resolution, data, max_images=config.max_images)
    if val_set is None and config.val_split:
        val_set = load_split(config.val_split, config.resolution, data, max_images=config.max_images)
    if train_set.images.shape[-1] != config.resolution:
        raise ValueError(f"data is {train_set.images.shape[-1]}px but the config wants {config.resolution}px")
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"the {train_set.split} split has {len(train_set)} slices, fewer than batch size {config.batch_size}"
        )
    images = train_set.images.to(dev)
    val_images = val_set.images if val_set is not None else None
    epoch_images = config.epoch_images or len(images)
    steps_per_epoch = epoch_images // config.batch_size
    local_batch = config.batch_size // world

    # Models, optimisers, schedule: the seed's recipe.
    torch.manual_seed(config.seed)
    G, D = build_models(config)
    G, D = G.to(dev), D.to(dev)
    if config.sync_bn and world > 1:
        G, D = sync_batchnorm(G, dev), sync_batchnorm(D, dev)
    if config.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = {"fused": True} if dev.type == "cuda" else {"foreach": True}
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas, **fused)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas, **fused)
    sched_G = torch.optim.lr_scheduler.StepLR(opt_G, config.lr_step_epochs, config.lr_gamma)
    sched_D = torch.optim.lr_scheduler.StepLR(opt_D, config.lr_step_epochs, config.lr_gamma)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if config.ema_beta > 0 else None
    G_eval = G_ema if G_ema is not None else G  # what samples, metrics and callbacks see
    start_epoch, step, stats = 0, 0, []
    if state is not None:
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"])
        if G_ema is not None:
            G_ema.load_state_dict(state["G_ema"])
        opt_G.load_state_dict(state["opt_G"]), opt_D.load_state_dict(state["opt_D"])
        sched_G.load_state_dict(state["sched_G"]), sched_D.load_state_dict(state["sched_D"])
        start_epoch, step, stats = state["epoch"], state["step"], json.loads(state["stats"])
        ckpt_io.set_rng_state(state["rng"])

    # The training-time views: DDP for gradient averaging, compile for speed.
    G_train, D_train = G, _Logits(D)
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel
        ids = [dev.index] if dev.type == "cuda" else None
        G_train, D_train = ddp(G, device_ids=ids), ddp(D_train, device_ids=ids)
    D_core = _Logits(D)  # G's step needs D's logits but no gradient averaging for D
    if config.compile:
        G_train, D_train, D_core = torch.compile(G_train), torch.compile(D_train), torch.compile(D_core)

    fixed_z = fixed_latents(config, dev)
    if main:
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        save_grid(to_float(train_set.images[: config.n_fixed]), run_dir / "reals.png")
        (run_dir / "stats.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats))

    for epoch in range(start_epoch, config.num_epochs):
        g_cpu, g_dev = epoch_generators(config.seed, epoch, dev)
        order = epoch_order(len(images), epoch_images, g_cpu).to(dev)
        aug = functools.partial(diff_augment, policy=config.augment, g=g_dev)
        sums = torch.zeros(4, device=dev)  # loss_D, loss_G, D(x), D(G(z)), summed on the device
        t0 = time.perf_counter()
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{config.num_epochs}",
            disable=not (main and progress),
            leave=False,
        )
        for i in bar:
            # This rank's part of the global batch, and the matching part of the global latents.
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            idx = idx[rank * local_batch : (rank + 1) * local_batch]
            z = torch.randn(config.batch_size, config.z_dim, generator=g_dev, device=dev)
            z = z[rank * local_batch : (rank + 1) * local_batch]
            real = to_float(images[idx])
            if config.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)

            # Update D: real slices towards 1, generated ones towards 0.
            with amp_ctx():
                fake = G_train(z)
            r1 = config.r1_gamma > 0 and step % config.r1_every == 0
            loss_D, d_x, d_gz = d_step(D_train, opt_D, real, fake, amp_ctx, config, aug, r1)

            # Update G: make D call its slices real.
            loss_G = g_step(D_core, opt_G, fake, amp_ctx, config, aug)

            # Update EMA: the slowly moving average of G that samples and evaluation use.
            if G_ema is not None:
                # Warm-up: early on the average would be mostly the random initial weights.
                update_ema(G_ema, G, min(config.ema_beta, (1 + step) / (10 + step)))
            step += 1
            sums += torch.stack([loss_D, loss_G, d_x, d_gz])

            # Log: the only host sync, every `log_every` steps.
            if (i + 1) % config.log_every == 0 or i + 1 == steps_per_epoch:
                means = (sums / (i + 1)).tolist()
                if not all(math.isfinite(v) for v in means):
                    bar.close()
                    raise TrainingDiverged(
                        f"loss became {means[0]:.4g} (D) / {means[1]:.4g} (G) in epoch {epoch + 1}; "
                        f"stopped, the last good checkpoint is {_last_ckpt_text(run_dir)}; "
                        "lower the learning rate and resume from it or start again"
                    )
                bar.set_postfix(loss_D=f"{means[0]:.3f}", loss_G=f"{means[1]:.3f}")
        bar.close()
        sched_G.step(), sched_D.step()

        # Snapshot: stats, samples, the plot and a checkpoint, on rank 0 only.
        if not main:
            continue
        means = (sums / steps_per_epoch).tolist()
        seconds = time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "step": step,
            "images_seen": step * config.batch_size,
            "loss_D": means[0],
            "loss_G": means[1],
            "D_x": means[2],
            "D_G_z": means[3],
            "val_loss_D": val_loss_d(G, D, val_images, config, dev, amp_ctx) if val_images is not None else None,
            "lr": opt_G.param_groups[0]["lr"],
            "seconds": round(seconds, 3),
            "images_per_s": round(steps_per_epoch * config.batch_size / seconds, 1),
        }
        fakes = sample(G_eval, fixed_z)
        if eval_every and (epoch + 1) % eval_every == 0:
            from .metrics import training_metrics

            metrics = training_metrics(G_eval, train_set, val_set, dev)
            record.update({f"metric/{k}": v for k, v in metrics.items()})
        stats.append(record)
        save_grid(fakes, run_dir / "samples" / f"fakes_{epoch + 1:04d}.png")
        with open(run_dir / "stats.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if (epoch + 1) % checkpoint_every == 0 or epoch + 1 == config.num_epochs:
            plot_losses(stats, run_dir / "losses.png", title=f"{run_dir.name}")
            ckpt_io.save_atomic(
                {
                    "G": G.state_dict(),
                    "G_ema": G_ema.state_dict() if G_ema is not None else None,
                    "D": D.state_dict(),
                    "opt_G": opt_G.state_dict(),
                    "opt_D": opt_D.state_dict(),
                    "sched_G": sched_G.state_dict(),
                    "sched_D": sched_D.state_dict(),
                    "epoch": epoch + 1,
                    "step": step,
                    "config": config.to_dict(),
                    "rng": ckpt_io.rng_state(),
                    "stats": json.dumps(stats),
                },
                run_dir / "checkpoints" / "latest.pt",
            )
        if callback is not None:
            callback({"epoch": epoch + 1, "stats": stats, "G": G_eval, "D": D, "fakes": fakes, "run_dir": run_dir})
    return run_dir if main else None  # rank 0 alone owns the run folder


def _last_ckpt_text(run_dir: Path | None) -> str:
    p = run_dir / "checkpoints" / "latest.pt" if run_dir is not None else None
    return str(p) if p is not None and p.exists() else "none (no epoch finished)"

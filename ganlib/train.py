"""One readable training loop for the GAN, with run folders, checkpoints and exact resume.

The split lives on the training device as uint8 and batches are indexed there. Every epoch draws its
shuffle and its latents from generators seeded by (seed, epoch), so a run resumed from its last
checkpoint repeats exactly what an uninterrupted run would do. Under torchrun each rank takes its own
slice of every global batch; rank 0 alone writes. The objective itself lives in `ganlib.losses`.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import math
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from .augment import diff_augment
from .conditional import masks_to_float, one_hot_masks
from .config import TrainConfig, check_resume
from .data import (
    DataError,
    SliceSet,
    find_data_root,
    load_split,
    shown_path,
    split_dirs,
    subject_subset,
    to_float,
)
from .device import autocast, bf16_supported, dist_info, pick_device
from .distributed import sync_batchnorm
from .losses import d_pair_loss, d_step, g_step
from .models import build_models, sample
from .runs import lock_run_dir, new_run_dir
from .viz import plot_losses, save_grid

log = logging.getLogger("ganlib")

__all__ = ["train", "TrainingDiverged", "epoch_order", "pick_device", "sample"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a notebook's "interrupt kernel") during training; the message says how to go on."""

    def __init__(self, run_dir: Path):
        super().__init__(
            f"interrupted; the last checkpoint is {_last_ckpt_text(run_dir)}; continue with: "
            f"ganlib train --resume {run_dir}"
        )
        self.run_dir = run_dir


# ---------------------------------------------------------------- helpers of the loop


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


def ema_beta(config: TrainConfig, step: int) -> float:
    """The EMA's decay for this step: from the half-life in images (`ema_kimg`) or `ema_beta`.

    A half-life of H images means the weights of H images ago count half: beta = 0.5 ** (batch / H).
    Early on the average would be mostly the random initial weights, so it ramps up: with `ema_rampup` the
    half-life is at most that fraction of the images seen so far, and `ema_beta` is capped at (1+t)/(10+t).
    """
    if config.ema_kimg > 0:
        half_life = config.ema_kimg * 1000
        if config.ema_rampup > 0:
            half_life = min(half_life, (step + 1) * config.batch_size * config.ema_rampup)
        return 0.5 ** (config.batch_size / max(half_life, 1e-8))
    return min(config.ema_beta, (1 + step) / (10 + step))


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

    def forward(self, x, y=None):
        return self.D.logits(x, y)


class _AtPositions(torch.nn.Module):
    """D told this batch's slice positions: what `d_step` and `g_step` call as D(x) in conditional training.

    A module (not a closure) so that `g_step` can freeze D's weights through it.
    """

    def __init__(self, D, y):
        super().__init__()
        self.D, self.y = D, y

    def forward(self, x):
        return self.D(x, self.y)


def on_device(split: SliceSet, config: TrainConfig, dev: torch.device) -> SimpleNamespace:
    """What the loop indexes: the slices (uint8) and, where the config uses them, masks and positions."""
    return SimpleNamespace(
        images=split.images.to(dev),
        masks=split.masks.to(dev) if config.with_masks else None,
        y=split.slice_idx.to(dev) if config.positions else None,
    )


def real_batch(split: SimpleNamespace, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The real input D sees for indices `idx`: slices in [-1, 1] (with their one-hot masks), and positions."""
    real = to_float(split.images[idx])
    if split.masks is not None:
        real = torch.cat([real, one_hot_masks(split.masks[idx])], 1)
    return real, (split.y[idx] if split.y is not None else None)


@torch.no_grad()
def val_loss_d(G, D, val: SimpleNamespace, config: TrainConfig, device, amp_ctx) -> float:
    """D's loss on the validation split (reals vs as many fakes), both nets in eval mode."""
    G.eval(), D.eval()
    g = torch.Generator(device).manual_seed(config.seed + 99991)
    total, n = 0.0, 0
    for i in range(0, len(val.images), config.batch_size):
        real, y = real_batch(val, torch.arange(i, min(i + config.batch_size, len(val.images)), device=device))
        z = torch.randn(len(real), config.z_dim, generator=g, device=device)
        with amp_ctx():
            lr_, lf_ = D.logits(real, y), D.logits(G(z, y), y)
        total += d_pair_loss(lr_, lf_, config.loss).item() * len(real)
        n += len(real)
    G.train(), D.train()
    return total / max(n, 1)


def load_data(config: TrainConfig, data, train_set, val_set) -> tuple[SliceSet, SliceSet | None]:
    """The training split and, where the data has one, the validation split, decoded at the config's size."""
    masks = config.with_masks
    if train_set is None:
        train_set = load_split(config.split, config.resolution, data, max_images=config.max_images, with_masks=masks)
    if config.subject_share < 1:  # the scarce-data setting: a fixed share of the subjects
        chosen = subject_subset(train_set.case_ids, config.subject_share)
        train_set = train_set.subset(torch.isin(train_set.case_ids, chosen))
    if val_set is None and config.val_split:
        root, _ = find_data_root(data)
        if split_dirs(root, config.val_split)[0].is_dir():
            val_set = load_split(
                config.val_split, config.resolution, data, max_images=config.max_images, with_masks=masks
            )
        else:
            log.info("no %s split beside the training slices: training without a validation loss", config.val_split)
    if train_set.images.shape[-1] != config.resolution:
        raise ValueError(f"data is {train_set.images.shape[-1]}px but the config wants {config.resolution}px")
    for s in (train_set, val_set) if val_set is not None else (train_set,):
        if masks and s.masks is None:
            raise ValueError(f"with_masks: the {s.split} split was loaded without masks; load it with with_masks=True")
        if config.positions and int(s.slice_idx.max()) >= config.positions:
            raise ValueError(
                f"the {s.split} split has slice positions up to {int(s.slice_idx.max())}, but positions="
                f"{config.positions}: set positions to at least {int(s.slice_idx.max()) + 1}"
            )
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"the {train_set.split} split has {len(train_set)} slices, fewer than batch size {config.batch_size}"
        )
    return train_set, val_set


def build_parts(config: TrainConfig, dev: torch.device, world: int) -> dict:
    """G, D (initialised as DCGAN, from config.seed), G's EMA copy or None, their Adams and StepLR schedules."""
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
    return {
        "G": G,
        "G_ema": copy.deepcopy(G).eval().requires_grad_(False) if config.ema_beta > 0 or config.ema_kimg > 0 else None,
        "D": D,
        "opt_G": opt_G,
        "opt_D": opt_D,
        "sched_G": torch.optim.lr_scheduler.StepLR(opt_G, config.lr_step_epochs, config.lr_gamma),
        "sched_D": torch.optim.lr_scheduler.StepLR(opt_D, config.lr_step_epochs, config.lr_gamma),
    }


def training_views(G, D, config: TrainConfig, dev: torch.device, world: int) -> SimpleNamespace:
    """What the steps call: `.G`, `.D` (D's logits) and `.D_for_G`, wrapped in DDP and compiled as asked.

    They share their weights with G and D. G's step goes through D without DDP, since D's weights take no
    gradient there; on one process without compile `.D_for_G` is `.D`.
    """
    G_train, D_train = G, _Logits(D)
    D_for_G = D_train
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel
        ids = [dev.index] if dev.type == "cuda" else None
        G_train, D_train = ddp(G, device_ids=ids), ddp(D_train, device_ids=ids)
    if config.compile:
        G_train, D_train, D_for_G = torch.compile(G_train), torch.compile(D_train), torch.compile(D_for_G)
    return SimpleNamespace(G=G_train, D=D_train, D_for_G=D_for_G)


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
    force_data: bool = False,
) -> Path | None:
    """Train G and D as `config` says; returns the run folder (None on ranks other than 0).

    `resume` takes a run folder (or checkpoint) and continues it to `config.num_epochs`: `config` must be
    the run's stored one except for the epoch count and speed switches (`config.check_resume`), and the
    data must be the same slices unless `force_data`. Stats and the sample grid are written every epoch;
    the loss plot and the checkpoint every `checkpoint_every` epochs and after the last.
    `callback(state)` is called after every epoch with the epoch's stats, the models and the
    fixed-latent samples, so a notebook can draw while it trains.
    """
    dev = pick_device(device)
    rank, world = dist_info()
    main = rank == 0
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} does not split over {world} processes")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    use_amp = config.amp and bf16_supported(dev)
    amp_ctx = lambda: autocast(dev, use_amp)  # noqa: E731

    # Resume: the stored run decides what is computed; only the epoch count and speed switches may change.
    saved, run_dir = None, None
    if resume is not None:
        saved = ckpt_io.load_training_state(resume)
        config = check_resume(TrainConfig.from_dict(saved["config"]), config)
        run_dir = ckpt_io.resolve_checkpoint(resume).parents[1]
        stored_root = saved.get("data_root")
        if data is None and train_set is None and stored_root and Path(stored_root).is_dir():
            data = stored_root  # where the run was trained, unless told otherwise
            if rank == 0:
                log.info("--resume: training on %s, the run's own data (--data to give another)", shown_path(data))

    # Data: the split as uint8 on the device, decoded once; a resumed run must see the same slices.
    train_set, val_set = load_data(config, data, train_set, val_set)
    fingerprint = train_set.fingerprint()
    if saved is not None and saved.get("data_fingerprint") not in (None, fingerprint) and not force_data:
        raise DataError(
            f"--resume {run_dir}: the training slices differ from the ones this run was trained on "
            f"(fingerprint {fingerprint}, stored {saved['data_fingerprint']}); give the same --data, "
            "or --force-data to continue on these"
        )
    train_dev = on_device(train_set, config, dev)
    val_dev = on_device(val_set, config, dev) if val_set is not None else None
    images = train_dev.images
    epoch_images = config.epoch_images or len(images)
    steps_per_epoch = epoch_images // config.batch_size
    local_batch = config.batch_size // world

    # Models, optimisers, schedule: the seed's recipe, and an EMA copy of G when asked for.
    parts = build_parts(config, dev, world)
    G, G_ema, D, opt_G, opt_D = (parts[k] for k in ("G", "G_ema", "D", "opt_G", "opt_D"))
    start_epoch, step, stats = 0, 0, []
    if saved is not None:
        ckpt_io.restore_training_state(saved, parts)
        start_epoch, step, stats = saved["epoch"], saved["step"], json.loads(saved["stats"])
    views = training_views(G, D, config, dev, world)
    G_show = G_ema if G_ema is not None else G  # what samples, metrics and callbacks see

    # Run folder: numbered and created now that the data has loaded, locked while this process trains in it.
    if main and run_dir is None:
        run_dir = new_run_dir(out, config.name)
    with lock_run_dir(run_dir) if main else contextlib.nullcontext():
        if main:
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
            save_grid(to_float(train_set.images[: config.n_fixed]), run_dir / "reals.png")
            if config.with_masks:
                save_grid(masks_to_float(train_set.masks[: config.n_fixed]), run_dir / "reals_masks.png")
            (run_dir / "stats.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats))
        fixed_z = fixed_latents(config, dev)
        say = tqdm.write if main and progress else (lambda text: None)
        if main:  # other ranks have no run folder
            say(
                f"{config.name}: training in {shown_path(run_dir)}, epochs {start_epoch + 1} to {config.num_epochs} "
                f"of {steps_per_epoch} steps x {config.batch_size} slices"
            )

        # One progress bar for the whole run (a notebook keeps one line, not one per epoch).
        bar = tqdm(
            total=(config.num_epochs - start_epoch) * steps_per_epoch,
            unit="step",
            disable=not (main and progress),
            dynamic_ncols=True,
        )
        try:
            for epoch in range(start_epoch, config.num_epochs):
                g_cpu, g_dev = epoch_generators(config.seed, epoch, dev)
                order = epoch_order(len(images), epoch_images, g_cpu).to(dev)
                aug = functools.partial(diff_augment, policy=config.augment, g=g_dev, p=config.augment_p)
                sums = torch.zeros(4, device=dev)  # loss_D, loss_G, D(x), D(G(z)), summed on the device
                t0 = time.perf_counter()
                bar.set_description(f"epoch {epoch + 1}/{config.num_epochs}")
                for i in range(steps_per_epoch):
                    # This rank's part of the global batch, and the matching part of the global latents.
                    idx = order[i * config.batch_size : (i + 1) * config.batch_size]
                    idx = idx[rank * local_batch : (rank + 1) * local_batch]
                    z = torch.randn(config.batch_size, config.z_dim, generator=g_dev, device=dev)
                    z = z[rank * local_batch : (rank + 1) * local_batch]
                    real, y = real_batch(train_dev, idx)  # y: the slices' positions, if G and D take them
                    if config.channels_last:
                        real = real.contiguous(memory_format=torch.channels_last)
                    D_now, D_now_for_G = views.D, views.D_for_G
                    if y is not None:
                        D_now, D_now_for_G = _AtPositions(views.D, y), _AtPositions(views.D_for_G, y)

                    # Update D: real slices towards 1, generated ones towards 0.
                    with amp_ctx():
                        fake = views.G(z, y)  # at the real batch's positions
                    r1 = config.r1_gamma > 0 and step % config.r1_every == 0
                    loss_D, d_x, d_gz = d_step(D_now, opt_D, real, fake, amp_ctx, config, aug, r1)

                    # Update G: make D call its slices real.
                    loss_G = g_step(D_now_for_G, opt_G, fake, amp_ctx, config, aug, real)

                    # Update EMA: the slowly moving average of G that samples and evaluation use.
                    if G_ema is not None:
                        update_ema(G_ema, G, ema_beta(config, step))
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
                        bar.set_postfix(loss_D=f"{means[0]:.3f}", loss_G=f"{means[1]:.3f}", refresh=False)
                    bar.update(1)
                parts["sched_G"].step(), parts["sched_D"].step()
                if not main:
                    continue

                # Snapshot: stats and samples every epoch; the plot and a checkpoint every `checkpoint_every`.
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
                    "val_loss_D": val_loss_d(G, D, val_dev, config, dev, amp_ctx) if val_dev else None,
                    "lr": opt_G.param_groups[0]["lr"],
                    "seconds": round(seconds, 3),
                    "images_per_s": round(steps_per_epoch * config.batch_size / seconds, 1),
                }
                if config.with_masks:  # the slices and, in a grid of their own, their masks
                    fakes, fake_masks = sample(G_show, fixed_z, masks=True)
                    save_grid(masks_to_float(fake_masks), run_dir / "samples" / f"masks_{epoch + 1:04d}.png")
                else:
                    fakes = sample(G_show, fixed_z)
                if eval_every and (epoch + 1) % eval_every == 0:
                    from .metrics import training_metrics

                    metrics = training_metrics(G_show, train_set, val_set, dev)
                    record.update({f"metric/{k}": v for k, v in metrics.items()})
                stats.append(record)
                save_grid(fakes, run_dir / "samples" / f"fakes_{epoch + 1:04d}.png")
                with open(run_dir / "stats.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                if (epoch + 1) % checkpoint_every == 0 or epoch + 1 == config.num_epochs:
                    plot_losses(stats, run_dir / "losses.png", title=f"{config.name}, {run_dir.name}")
                    ckpt_io.save_training_state(
                        run_dir / "checkpoints" / "latest.pt",
                        parts,
                        epoch=epoch + 1,
                        step=step,
                        config=config.to_dict(),
                        stats=json.dumps(stats),
                        data_fingerprint=fingerprint,
                        data_root=str(train_set.root),
                    )
                left = config.num_epochs - epoch - 1
                if epoch == start_epoch and left:
                    minutes = seconds * left / 60
                    say(f"epoch {epoch + 1} took {seconds:.0f} s: about {minutes:.1f} min for the other {left}")
                if callback is not None:
                    callback(
                        {"epoch": epoch + 1, "stats": stats, "G": G_show, "D": D, "fakes": fakes, "run_dir": run_dir}
                    )
        except KeyboardInterrupt:
            if not main:
                raise
            raise TrainingInterrupted(run_dir) from None  # one line naming the run and the resume command
        finally:
            bar.close()
    return run_dir if main else None  # rank 0 alone owns the run folder


def _last_ckpt_text(run_dir: Path | None) -> str:
    p = run_dir / "checkpoints" / "latest.pt" if run_dir is not None else None
    return str(p) if p is not None and p.exists() else "none (no epoch finished)"

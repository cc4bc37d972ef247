"""One readable training loop for the GAN, with run folders, checkpoints and exact resume.

`train()` wires everything once (device, data, networks, optimisers, DistributedDataParallel, compile,
mixed precision, the EMA, the run folder), then its loop reads: update D, update G, update the EMA, and
after each epoch a snapshot. The updates themselves, and the objective, live in `ganlib.losses`.

The split lives on the training device as uint8 and batches are indexed there. Every epoch draws its
shuffle, latents and augmentations from generators seeded by (seed, epoch), so a run resumed from its last
checkpoint repeats exactly what an uninterrupted run would do. Under torchrun each rank takes its own
slice of every global batch; rank 0 alone writes.
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
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import checkpoint as ckpt_io
from .augment import diff_augment
from .checkpoint import Resume, resolve_resume
from .conditional import masks_to_float, one_hot_masks, set_condition_strength
from .config import TrainConfig, condition_strength, growth_stage
from .data import DataError, SliceSet, find_data_root, load_split, shown_path, split_dirs, subject_subset, to_float
from .losses import LOSSES, d_step, d_step_penalised, g_step, mode_seeking_loss
from .models import build_models, sample, set_stage
from .utils.device import autocast, bf16_supported, dist_info, pick_device
from .utils.distributed import sync_batchnorm
from .utils.runs import lock_run_dir, new_run_dir
from .viz import plot_losses, save_grid

log = logging.getLogger("ganlib")

__all__ = ["train", "TrainingDiverged", "TrainingInterrupted", "epoch_order"]


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
    """The EMA's decay for this step, from its half-life in images: beta = 0.5 ** (batch / half-life).

    A half-life of H images means the weights of H images ago count half. Early on the average would be
    mostly the random initial weights, so with `ema_rampup` the half-life is at most that fraction of the
    images seen so far.
    """
    half_life = config.ema_kimg * 1000
    if config.ema_rampup > 0:
        half_life = min(half_life, (step + 1) * config.batch_size * config.ema_rampup)
    return 0.5 ** (config.batch_size / max(half_life, 1e-8))


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


class DiscriminatorView(torch.nn.Module):
    """D as the update steps call it: D(x) is D's logits for x after augmentation.

    Built once before the loop; the loop sets `.augment` each epoch and, for a position-conditioned run,
    the batch's slice positions `.y` each step. A module, so that `g_step` can freeze D's weights through it.
    """

    def __init__(self, logits: torch.nn.Module):
        super().__init__()
        self.logits = logits
        self.augment, self.y = (lambda x: x), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.augment(x), self.y)


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


def at_resolution(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Slices scaled down by area averaging to `resolution` (what a growing run's D sees of the real ones)."""
    factor = x.shape[-1] // resolution
    return F.avg_pool2d(x, factor) if factor > 1 else x


def grow(config: TrainConfig, step: int, nets) -> int:
    """Put the growing networks at the stage of this step (see `config.growth_stage`); returns its resolution."""
    resolution, alpha = growth_stage(config, step * config.batch_size)
    for net in nets:
        if net is not None:
            set_stage(net, resolution, alpha)
    return resolution


@torch.no_grad()
def val_loss_d(G, D, val: SimpleNamespace, config: TrainConfig, device, amp_ctx) -> float:
    """D's loss on the validation split (reals vs as many fakes), both nets in eval mode."""
    G.eval(), D.eval()
    g = torch.Generator(device).manual_seed(config.seed + 99991)
    total, n = 0.0, 0
    for i in range(0, len(val.images), config.batch_size):
        real, y = real_batch(val, torch.arange(i, min(i + config.batch_size, len(val.images)), device=device))
        real = at_resolution(real, getattr(G, "stage", config.resolution))
        z = torch.randn(len(real), config.z_dim, generator=g, device=device)
        with amp_ctx():
            lr_, lf_ = D.logits(real, y), D.logits(G(z, y), y)
        total += LOSSES[config.loss][0](lr_, lf_).item() * len(real)
        n += len(real)
    G.train(), D.train()
    return total / max(n, 1)


def load_data(config: TrainConfig, data, train_set, val_set) -> tuple[SliceSet, SliceSet | None]:
    """The training split and, where the data has one, the validation split, decoded at the config's size."""
    masks = config.with_masks
    if train_set is None:
        train_set = load_split("train", config.resolution, data, max_images=config.max_images, with_masks=masks)
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
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr, betas=config.betas, **fused)
    opt_D = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=config.lr, betas=config.betas, **fused)
    return {
        "G": G,
        "G_ema": copy.deepcopy(G).eval().requires_grad_(False) if config.ema_kimg > 0 else None,
        "D": D,
        "opt_G": opt_G,
        "opt_D": opt_D,
        "sched_G": torch.optim.lr_scheduler.StepLR(opt_G, config.lr_step_epochs, config.lr_gamma),
        "sched_D": torch.optim.lr_scheduler.StepLR(opt_D, config.lr_step_epochs, config.lr_gamma),
    }


def training_views(G, D, config: TrainConfig, dev: torch.device, world: int) -> SimpleNamespace:
    """What the loop calls: `.G`, and D as `.D` (for D's update) and `.D_for_G` (for G's), wired once.

    They share their weights with G and D, wrapped in DistributedDataParallel and compiled as asked. G's
    step goes through D without DDP, since D's weights take no gradient there.
    """
    G_train, D_train = G, _Logits(D)
    D_for_G = D_train
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel
        ids = [dev.index] if dev.type == "cuda" else None
        G_train, D_train = ddp(G, device_ids=ids), ddp(D_train, device_ids=ids)
    if config.compile:
        G_train, D_train, D_for_G = torch.compile(G_train), torch.compile(D_train), torch.compile(D_for_G)
    return SimpleNamespace(
        G=G_train, D=DiscriminatorView(D_train), D_for_G=DiscriminatorView(D_for_G)
    )


# ---------------------------------------------------------------- the loop


def train(
    config: TrainConfig | None,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | Resume | None = None,
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

    `resume` takes a run folder or checkpoint (or the `Resume` that `checkpoint.resolve_resume` made of one)
    and continues it to `config.num_epochs` with its stored config (`config` may be None then); the data
    must be the same slices unless `force_data`. Stats and the sample grid are written every epoch; the
    loss plot and the checkpoint every `checkpoint_every` epochs and after the last. `callback(state)` is
    called after every epoch with the epoch's stats, the models and the fixed-latent samples, so a notebook
    can draw while it trains.
    """
    # Resume: the stored run decides what is computed; only the epoch count and speed switches may change.
    if resume is not None and not isinstance(resume, Resume):
        resume = resolve_resume(resume, config)
    if resume is not None:
        config = resume.config
        if data is None and train_set is None and Path(resume.state.get("data_root") or "").is_dir():
            data = resume.state["data_root"]  # where the run was trained, unless told otherwise
            if dist_info()[0] == 0:
                log.info("--resume: training on %s, the run's own data (--data to give another)", shown_path(data))

    # Device and precision.
    dev = pick_device(device)
    rank, world = dist_info()
    main = rank == 0
    if config.mode_seeking and world > 1:
        raise ValueError("mode_seeking: G's second forward pass is not built for torchrun; train on one process")
    if config.batch_size % world:
        raise ValueError(f"batch size {config.batch_size} does not split over {world} processes")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    use_amp = config.amp and bf16_supported(dev)
    amp_ctx = lambda: autocast(dev, use_amp)  # noqa: E731

    # Data: the split as uint8 on the device, decoded once; a resumed run must see the same slices.
    train_set, val_set = load_data(config, data, train_set, val_set)
    fingerprint = train_set.fingerprint()
    stored = resume.state.get("data_fingerprint") if resume is not None else None
    if stored not in (None, fingerprint) and not force_data:
        raise DataError(
            f"--resume {resume.run_dir}: the training slices differ from the ones this run was trained on "
            f"(fingerprint {fingerprint}, stored {stored}); give the same --data, or --force-data to continue on these"
        )
    train_dev = on_device(train_set, config, dev)
    val_dev = on_device(val_set, config, dev) if val_set is not None else None
    epoch_images = config.epoch_images or len(train_dev.images)
    steps_per_epoch = epoch_images // config.batch_size
    local_batch = config.batch_size // world

    # Networks, optimisers, schedules and G's average, restored from the checkpoint on resume; then the
    # views the loop calls, wrapped in DDP and compiled as asked.
    parts = build_parts(config, dev, world)
    G, G_ema, D, opt_G, opt_D = (parts[k] for k in ("G", "G_ema", "D", "opt_G", "opt_D"))
    start_epoch, step, stats = 0, 0, []
    if resume is not None:
        ckpt_io.restore_training_state(resume.state, parts)
        start_epoch, step, stats = resume.state["epoch"], resume.state["step"], json.loads(resume.state["stats"])
    views = training_views(G, D, config, dev, world)
    d_loss, g_loss = LOSSES[config.loss]
    penalised = config.r1_gamma > 0 or config.r2_gamma > 0
    G_show = G_ema if G_ema is not None else G  # what samples, metrics and callbacks see
    fixed_z = fixed_latents(config, dev)

    # Run folder: numbered and created now that the data has loaded, locked while this process trains in it.
    run_dir = resume.run_dir if resume is not None else new_run_dir(out, config.name) if main else None
    say = tqdm.write if main and progress else (lambda text: None)
    with lock_run_dir(run_dir) if main else contextlib.nullcontext():
        if main:
            start_run_folder(run_dir, config, train_set, stats)
            say(
                f"{config.name}: training in {shown_path(run_dir)}, epochs {start_epoch + 1} to {config.num_epochs} "
                f"of {steps_per_epoch} steps x {config.batch_size} slices"
            )
        # One progress bar for the whole run (a notebook keeps one line, not one per epoch).
        bar = tqdm(
            total=(config.num_epochs - start_epoch) * steps_per_epoch, unit="step", disable=not (main and progress),
            dynamic_ncols=True,
        )
        try:
            for epoch in range(start_epoch, config.num_epochs):
                g_cpu, g_dev = epoch_generators(config.seed, epoch, dev)
                order = epoch_order(len(train_dev.images), epoch_images, g_cpu).to(dev)
                augment = functools.partial(diff_augment, policy=config.augment, g=g_dev, p=config.augment_p)
                views.D.augment = views.D_for_G.augment = augment
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
                    if config.condition_kimg:  # transitional conditioning: the position's weight at this step
                        set_condition_strength((G, D, G_ema), condition_strength(config, step * config.batch_size))
                    if config.grow_from:  # a growing run: the networks and real slices at this step's resolution
                        real = at_resolution(real, grow(config, step, (G, D, G_ema)))
                    if config.channels_last:
                        real = real.contiguous(memory_format=torch.channels_last)
                    views.D.y = views.D_for_G.y = y
                    with amp_ctx():
                        fake = views.G(z, y)  # at the real batch's positions

                    # Update D: real slices towards 'real', generated ones towards 'fake'; with the R1/R2
                    # penalties on the steps their schedule names. One autocast region per update: D's
                    # weights are cast to bf16 once for both of its calls.
                    with amp_ctx():
                        if penalised and step % config.r1_every == 0:
                            gammas = config.r1_gamma, config.r2_gamma
                            loss_D, d_x, d_gz = d_step_penalised(
                                views.D, opt_D, real, fake, d_loss, *gammas, every=config.r1_every
                            )
                        else:
                            loss_D, d_x, d_gz = d_step(views.D, opt_D, real, fake, d_loss)

                    # Update G: make D call its slices real (and, mode seeking, draw two slices for two latents).
                    with amp_ctx():
                        extra = None
                        if config.mode_seeking:
                            m = config.mode_seeking_n
                            z2 = torch.randn(m, config.z_dim, generator=g_dev, device=dev)
                            other = views.G(z2, y[:m] if y is not None else None)
                            ms = mode_seeking_loss(fake[:m], other, z[:m], z2, config.mode_seeking_cap)
                            extra = config.mode_seeking * ms
                        loss_G = g_step(views.D_for_G, opt_G, fake, g_loss, real if config.loss == "rpgan" else None,
                                        extra)

                    # Update EMA: the slowly moving average of G that samples and evaluation use.
                    if G_ema is not None:
                        update_ema(G_ema, G, ema_beta(config, step))
                    step += 1
                    sums += torch.stack([loss_D, loss_G, d_x, d_gz])

                    # Log: the only host sync, every `log_every` steps.
                    if (i + 1) % config.log_every == 0 or i + 1 == steps_per_epoch:
                        means = (sums / (i + 1)).tolist()
                        if not all(math.isfinite(v) for v in means):
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
                seconds = time.perf_counter() - t0
                if config.with_masks:  # the fixed latents' slices (and masks): the epoch's picture
                    fakes, fake_masks = sample(G_show, fixed_z, masks=True)
                else:
                    fakes, fake_masks = sample(G_show, fixed_z), None
                record = {
                    "epoch": epoch + 1,
                    "step": step,
                    "images_seen": step * config.batch_size,
                    **dict(zip(("loss_D", "loss_G", "D_x", "D_G_z"), (sums / steps_per_epoch).tolist())),
                    "val_loss_D": val_loss_d(G, D, val_dev, config, dev, amp_ctx) if val_dev else None,
                    "lr": opt_G.param_groups[0]["lr"],
                    "seconds": round(seconds, 3),
                    "images_per_s": round(steps_per_epoch * config.batch_size / seconds, 1),
                    "sample_spread": sample_spread(fakes, to_float(train_set.images[: config.n_fixed])),
                }
                if config.grow_from:
                    record.update(resolution=G.stage, fade_in=round(G.alpha, 4))
                if config.condition_kimg:  # the position's weight in the epoch's last step
                    record["condition_strength"] = round(G.condition.strength, 4)
                if eval_every and (epoch + 1) % eval_every == 0:
                    from .evaluation.metrics import training_metrics  # evaluation sits above training

                    metrics = training_metrics(G_show, train_set, val_set, dev)
                    record.update({f"metric/{k}": v for k, v in metrics.items()})
                stats.append(record)
                snapshot(run_dir, config, parts, stats, fakes, fake_masks, fingerprint, train_set.root,
                         write_checkpoint=(epoch + 1) % checkpoint_every == 0 or epoch + 1 == config.num_epochs)
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


# Below this share of the real slices' spread, G's samples are called collapsed (nearly one image).
COLLAPSED_BELOW = 0.3


def sample_spread(fakes: torch.Tensor, reals: torch.Tensor) -> float:
    """How varied G's samples are: their mean pairwise distance over that of as many real slices.

    About 1 when the samples vary as much as the data; near 0 when G has collapsed to drawing one image.
    """

    def mean_distance(x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).float()
        return torch.cdist(x, x).sum() / max(len(x) * (len(x) - 1), 1)

    reals = at_resolution(reals, fakes.shape[-1])  # a growing run's samples are smaller until it is grown
    return round((mean_distance(fakes) / mean_distance(reals).clamp_min(1e-8)).item(), 4)


def spread_verdict(spread: float) -> str:
    """One line on the last samples' variety, with what to do when they look collapsed."""
    if spread < COLLAPSED_BELOW:
        return (f"samples look collapsed: their spread is {spread:.2f} of the real slices' (G draws nearly one "
                "image): train again with another --seed, or with --preset dcgan-rp-constlr, which keeps D level")
    return f"samples look varied: their spread is {spread:.2f} of the real slices' (1 = as varied as the data)"


def start_run_folder(run_dir: Path, config: TrainConfig, train_set: SliceSet, stats: list[dict]) -> None:
    """config.json, the real slices' grid and the stats so far: what a run folder holds before its first epoch."""
    (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    save_grid(to_float(train_set.images[: config.n_fixed]), run_dir / "reals.png")
    if config.with_masks:
        save_grid(masks_to_float(train_set.masks[: config.n_fixed]), run_dir / "reals_masks.png")
    (run_dir / "stats.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats))


def snapshot(run_dir, config, parts, stats, fakes, fake_masks, fingerprint, data_root, write_checkpoint: bool):
    """After an epoch: its stats line and the fixed-latent samples; the loss plot and checkpoint when due."""
    epoch = stats[-1]["epoch"]
    save_grid(fakes, run_dir / "samples" / f"fakes_{epoch:04d}.png")
    if fake_masks is not None:  # the slices' masks, in a grid of their own
        save_grid(masks_to_float(fake_masks), run_dir / "samples" / f"masks_{epoch:04d}.png")
    with open(run_dir / "stats.jsonl", "a") as f:
        f.write(json.dumps(stats[-1]) + "\n")
    if write_checkpoint:
        plot_losses(stats, run_dir / "losses.png", title=f"{config.name}, {run_dir.name}")
        ckpt_io.save_training_state(
            run_dir / "checkpoints" / "latest.pt", parts, epoch=epoch, step=stats[-1]["step"],
            config=config.to_dict(), stats=json.dumps(stats), data_fingerprint=fingerprint, data_root=str(data_root),
        )

def _last_ckpt_text(run_dir: Path | None) -> str:
    p = run_dir / "checkpoints" / "latest.pt" if run_dir is not None else None
    return str(p) if p is not None and p.exists() else "none (no epoch finished)"

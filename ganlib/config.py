"""Training configurations: one dataclass, named presets as values.

`reference` is the reference design (the project's seed recipe, DCGAN 2015), reproduced exactly; every other
preset is a `dataclasses.replace` of it that names only what it changes, and why. `seed`, its old name, still
works. Override a field with `get_preset("cpu", num_epochs=3)` or, on the
command line, `--set num_epochs=3`. What each recipe measured is in docs/results.md, not here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

RESOLUTIONS = (32, 64, 128, 256)  # powers of two: the DCGAN stack grows by one block per doubling


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs to be reproduced; stored as config.json and in every checkpoint."""

    name: str = "reference"
    # Data: grayscale slices of the training split, resized, scaled to [-1, 1].
    resolution: int = 128
    val_split: str = "validate"  # D's loss on these slices each epoch; "" for none
    max_images: int | None = None  # use only the first N slices of the split (smoke runs)
    subject_share: float = 1.0  # train on this share of the split's subjects (a fixed random choice)
    # Model. `arch`: "dcgan" (the seed's networks) or "resnet" (R3GAN-style residual networks without
    # normalisation, ganlib.resnet). `width` is the channel count of G's last hidden layer and D's first.
    arch: str = "dcgan"
    z_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    # Useful data (ganlib.conditional): G and D conditioned on the slice position 0..positions-1 (0 = off),
    # and G making the slice with its 4-class mask, D judging both (off: slices only).
    positions: int = 0
    with_masks: bool = False
    # Transitional conditioning (ganlib.conditional.set_condition_strength): the position's weight in G and D
    # rises from 0 to 1 between these two counts of thousands of images; () = conditioned from the start.
    condition_kimg: tuple[float, ...] = ()
    # Mode seeking (ganlib.losses.mode_seeking_loss): G's loss gains this weight x minus the distance between
    # the slices of two latents at one position over the latents' distance, capped at `mode_seeking_cap`; the
    # second latent is drawn for the first `mode_seeking_n` slices of each batch; 0 = off.
    mode_seeking: float = 0.0
    mode_seeking_cap: float = 0.08  # about the real slices' own figure at 64 px (docs/results.md)
    mode_seeking_n: int = 16
    # Growing (ProGAN): train at `grow_from` px first (0 = off), for grow_kimg[0] thousand images, then at twice
    # that for grow_kimg[1], ... up to `resolution` for the rest; each new resolution fades in over
    # `grow_fade_kimg` thousand images. DCGAN networks, slices alone.
    grow_from: int = 0
    grow_kimg: tuple[float, ...] = ()
    grow_fade_kimg: float = 0.0
    # A projected D (ganlib.projected): heads on the features of a frozen U-Net trained on brain slices ("" =
    # off; "unet64" = the shipped one, or a file's path), which sees the slices at `d_features_res` px;
    # `d_pixel` keeps the pixel D beside it, the two scores summed.
    d_features: str = ""
    d_features_res: int = 64
    d_pixel: bool = True
    # The objective and what keeps D in check; the seed's values switch each one off.
    loss: str = "bce"  # "bce": the seed's non-saturating BCE; "rpgan": relativistic pairing (ganlib.losses)
    d_norm: str = "batch"  # "batch": BatchNorm in D as DCGAN; "spectral": spectral norm; "none": neither
    augment: str = ""  # DiffAugment policy for D's inputs, e.g. "translation,cutout"
    augment_p: float = 1.0  # probability that each image (real or fake) goes through the policy
    r1_gamma: float = 0.0  # R1 gradient penalty on real slices; 0 = off
    r2_gamma: float = 0.0  # R2 gradient penalty on generated slices; 0 = off
    r1_every: int = 16  # lazy R1/R2: every this many steps, scaled up to match; 1 = every step
    ema_kimg: float = 0.0  # an EMA of G's weights with this half-life in thousands of images; 0 = off
    ema_rampup: float = 0.0  # early on, the half-life is at most this fraction of the images seen so far
    # Optimisation: Adam for G and D alike, StepLR multiplying the rate by lr_gamma every lr_step_epochs.
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 64
    num_epochs: int = 50
    epoch_images: int | None = None  # images per epoch; None = one pass over the split
    lr_step_epochs: int = 10
    lr_gamma: float = 0.5
    # Reproducibility and bookkeeping.
    seed: int = 0  # the training seed: weights, shuffles, latents and augmentation all follow from it
    n_fixed: int = 64  # the fixed latent batch behind every sample grid
    log_every: int = 20  # steps between host syncs for the progress bar and NaN check
    # Speed switches: they change how fast, never what is computed.
    amp: bool = True  # bf16 autocast where the device supports it
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False  # BatchNorm statistics over all torchrun processes

    def __post_init__(self):
        choices = {"loss": tuple(LOSS_NAMES), "arch": ("dcgan", "resnet"), "d_norm": ("batch", "spectral", "none")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r}: choose one of {', '.join(allowed)}")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution={self.resolution}: choose one of {', '.join(map(str, RESOLUTIONS))}")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"augment_p={self.augment_p}: a probability, between 0 and 1")
        if self.r1_every < 1:
            raise ValueError(f"r1_every={self.r1_every}: must be at least 1")
        if not 0 < self.subject_share <= 1:
            raise ValueError(f"subject_share={self.subject_share}: a share of the subjects, above 0 and at most 1")
        if self.grow_from:
            stages = int(math.log2(self.resolution // self.grow_from)) if self.grow_from in RESOLUTIONS else -1
            if stages < 1:
                raise ValueError(f"grow_from={self.grow_from}: one of {RESOLUTIONS} below resolution={self.resolution}")
            if len(self.grow_kimg) != stages or min(self.grow_kimg) <= 0:
                raise ValueError(
                    f"grow_kimg={','.join(map(str, self.grow_kimg))}: give {stages} positive budget(s), thousands of "
                    f"images at each resolution from {self.grow_from} below {self.resolution}"
                )
        if self.condition_kimg and (
            len(self.condition_kimg) != 2 or not 0 <= self.condition_kimg[0] <= self.condition_kimg[1]
            or not self.positions
        ):
            raise ValueError(
                f"condition_kimg={','.join(map(str, self.condition_kimg))}: give START,END (thousands of images, "
                "0 <= START <= END) between which the slice position comes in, with positions > 0"
            )
        if self.mode_seeking < 0 or self.mode_seeking_n < 1 or (
            self.mode_seeking and self.mode_seeking_n > self.batch_size
        ):
            raise ValueError(f"mode_seeking={self.mode_seeking}, mode_seeking_n={self.mode_seeking_n}: a weight of "
                             f"at least 0, and 1 to batch_size ({self.batch_size}) slices")
        if self.positions < 0:
            raise ValueError(f"positions={self.positions}: the number of slice positions (32 for OASIS), or 0 for none")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in TUPLE_FIELDS:  # JSON has lists
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = _upgrade(dict(d))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known: {sorted(known)}")
        for key in TUPLE_FIELDS:
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


LOSS_NAMES = ("bce", "rpgan")
TUPLE_FIELDS = ("betas", "grow_kimg", "condition_kimg")


def _upgrade(d: dict) -> dict:
    """A config stored by an older ganlib, in today's fields (shipped checkpoints and old runs keep loading).

    Fields that were removed because no preset or result used another value go when they hold that value;
    EMA's per-step decay `ema_beta` becomes the same half-life in images; `lr_g` and `lr_d` become `lr`.
    """
    for key, only in (("res_blocks", 1), ("split", "train"), ("init_std", 0.02)):
        if key in d and d.pop(key) != only:
            raise ValueError(f"{key}: this ganlib no longer has the option (only {only!r} was ever used)")
    if "lr_g" in d or "lr_d" in d:
        lr_g, lr_d = d.pop("lr_g", None), d.pop("lr_d", None)
        if lr_g is not None and lr_d is not None and lr_g != lr_d:
            raise ValueError(f"lr_g={lr_g}, lr_d={lr_d}: this ganlib trains G and D at one rate, lr")
        d["lr"] = lr_g if lr_g is not None else lr_d
    beta = d.pop("ema_beta", 0.0)
    if beta > 0 and not d.get("ema_kimg"):
        d["ema_kimg"] = ema_half_life_kimg(beta, d.get("batch_size", 64))
        d["ema_rampup"] = d.get("ema_rampup") or 0.05
    return d


def growth_stage(config: TrainConfig, images: int) -> tuple[int, float]:
    """The resolution a growing run trains at after `images` images, and how far it has faded in (0 to 1)."""
    if not config.grow_from:
        return config.resolution, 1.0
    resolution, start = config.grow_from, 0.0
    for kimg in config.grow_kimg:
        if images < start + kimg * 1000:
            break
        resolution, start = resolution * 2, start + kimg * 1000
    if resolution == config.grow_from or config.grow_fade_kimg <= 0:
        return resolution, 1.0
    return resolution, min(1.0, (images - start) / (config.grow_fade_kimg * 1000))


def condition_strength(config: TrainConfig, images: int) -> float:
    """How much the slice position counts after `images` images: 0 before condition_kimg[0], 1 after [1]."""
    if not config.condition_kimg:
        return 1.0
    start, end = (k * 1000 for k in config.condition_kimg)
    return 1.0 if images >= end else 0.0 if images < start else (images - start) / (end - start)


def ema_half_life_kimg(beta: float, batch_size: int) -> float:
    """The half-life, in thousands of images, of an EMA that decays by `beta` per step of `batch_size`."""
    return round(batch_size * math.log(0.5) / math.log(beta) / 1000, 2)


REFERENCE = TrainConfig()

# A small 64x64 model for 2 CPU cores: the seed's recipe at half the resolution, with a narrow D. At equal
# widths D wins within a few hundred steps on the small demo set and G collapses; a quarter-width D keeps
# the game going longer.
CPU = dataclasses.replace(REFERENCE, name="cpu", resolution=64, d_width=16, epoch_images=4096, num_epochs=30)

# Seconds: tests and CI. Tiny model, a handful of slices.
SMOKE = dataclasses.replace(
    REFERENCE, name="smoke", resolution=32, g_width=8, d_width=8, batch_size=8, num_epochs=2, lr_step_epochs=1,
    max_images=32, n_fixed=16, log_every=2,
)

# The seed plus the two techniques that paid first in the 64x64 ablation: differentiable augmentation of
# D's inputs (so D cannot memorise a few thousand training slices) and an average of G's weights for
# sampling (a decay of 0.999 per 64-image step: a 44k-image half-life).
MODERN = dataclasses.replace(
    REFERENCE, name="modern", augment="translation,cutout", ema_kimg=ema_half_life_kimg(0.999, 64), ema_rampup=0.05
)

# R3GAN's recipe (Huang et al. 2024) at CPU size: residual networks without normalisation, the relativistic
# pairing loss with R1 and R2 every step, Adam with beta1 = 0, an EMA with a 20k-image half-life ramped up
# over the first 5% of training, and augmentation of half of D's inputs. gamma 2, as R3GAN starts at 64 px.
R3GAN = dataclasses.replace(
    REFERENCE, name="r3gan", arch="resnet", resolution=64, g_width=16, d_width=16, loss="rpgan", r1_gamma=2.0,
    r2_gamma=2.0, r1_every=1, betas=(0.0, 0.99), ema_kimg=20.0, ema_rampup=0.05, augment="translation,cutout",
    augment_p=0.5,
)

# R3GAN's objective, optimiser, EMA and augmentation on the seed's DCGAN networks, which train several times
# more images per second on a CPU than the residual ones. D loses its BatchNorm (a gradient penalty needs each
# image's score to depend on that image only); the penalties come every 4 steps.
DCGAN_RP = dataclasses.replace(R3GAN, name="dcgan-rp", arch="dcgan", g_width=64, d_width=64, d_norm="none", r1_every=4)

# `dcgan-rp` at a constant learning rate, the recipe to train with. The seed's schedule halves the rate four
# times in any budget, so the last 40% of the images train at 1/8 to 1/16 of it; with the penalties holding D
# level and the EMA doing the averaging, the halvings only slow G down.
DCGAN_RP_CONSTLR = dataclasses.replace(DCGAN_RP, name="dcgan-rp-constlr", lr_gamma=1.0)

# What `make demo` trains: the recipe to train with (`dcgan-rp-constlr`), sized for a first run on 2 CPU cores.
# The `cpu` preset, the 2015 recipe at 64 px, collapses on some machines and training seeds (D wins and G draws
# one blob); the relativistic loss with its penalties keeps the game level instead. G and D at half width
# train many more images per minute, so 30 short epochs fit in minutes (timings: docs/results.md).
DEMO = dataclasses.replace(
    DCGAN_RP_CONSTLR, name="demo", g_width=32, d_width=32, epoch_images=4096, num_epochs=30
)

# The paired generator: `dcgan-rp` conditioned on the slice position (0-31), making each slice with its
# 4-class mask (background, CSF, grey matter, white matter); D judges slice and mask together.
PAIRS = dataclasses.replace(DCGAN_RP, name="pairs", positions=32, with_masks=True)

PRESETS: dict[str, TrainConfig] = {
    c.name: c for c in (REFERENCE, CPU, SMOKE, MODERN, R3GAN, DCGAN_RP, DCGAN_RP_CONSTLR, DEMO, PAIRS)
}
# Old names that still work: `seed` was the reference preset's name (a word that also names training seeds).
ALIASES = {"seed": "reference"}

# The ablation of notebook 05 and benchmarks/ablation.py: one switch at a time on the seed, then all.
ABLATION: dict[str, dict] = {
    "seed": {},
    "+spectral_norm": {"d_norm": "spectral"},
    "+diffaugment": {"augment": MODERN.augment},
    "+ema": {"ema_kimg": MODERN.ema_kimg, "ema_rampup": MODERN.ema_rampup},
    "+narrow_d": {"d_width": 16},  # the cpu preset's fix: a quarter-width D
    "modern": {"augment": MODERN.augment, "ema_kimg": MODERN.ema_kimg, "ema_rampup": MODERN.ema_rampup},
    "modern+narrow_d": {
        "augment": MODERN.augment, "ema_kimg": MODERN.ema_kimg, "ema_rampup": MODERN.ema_rampup, "d_width": 16
    },
}


def ablation_config(variant: str, base: TrainConfig, total_images: int, epochs: int = 10) -> TrainConfig:
    """`base` with one ablation variant's switches, trained for `total_images` in `epochs` epochs.

    The StepLR schedule keeps the seed's shape whatever the budget: halvings at 1/5, 2/5, 3/5, 4/5.
    """
    if variant not in ABLATION:
        raise ValueError(f"unknown ablation variant {variant!r}; choose from {', '.join(ABLATION)}")
    return dataclasses.replace(
        base,
        **ABLATION[variant],
        name=f"ablation-{variant.lstrip('+')}",
        num_epochs=epochs,
        epoch_images=total_images // epochs,
        lr_step_epochs=max(1, epochs // 5),
    )


# Fields that change how fast a run goes, never what it computes: a resumed run may change them.
SPEED_FIELDS = ("amp", "channels_last", "compile", "sync_bn", "log_every")


def parse_set(items: list[str] | tuple[str, ...]) -> dict:
    """`["lr_g=1e-4", "augment=translation"]` -> {"lr_g": 0.0001, ...}, each value checked against its field's type.

    Behind `--set key=value`: any `TrainConfig` field from the command line without a flag of its own.
    """
    fields = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise ValueError(f"--set {item!r}: expected key=value with key one of {', '.join(sorted(fields))}")
        kind = fields[key]
        try:
            if text.lower() == "none" and "None" in kind:
                value = None
            elif kind.startswith("bool"):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError("expected true or false")
                value = text.lower() in ("true", "1")
            elif kind.startswith("int"):
                value = int(text)
            elif kind.startswith("float"):
                value = float(text)
            elif kind.startswith("tuple"):
                value = tuple(float(v) for v in text.split(","))
            else:
                value = text
        except ValueError as e:
            raise ValueError(f"--set {item!r}: {key} takes a value of type {kind} ({e})") from None
        out[key] = value
    return out


def preset_name(name: str) -> str:
    """A preset's name, with an old alias (`seed`) turned into today's (`reference`)."""
    return ALIASES.get(name, name)


def get_preset(name: str, **overrides) -> TrainConfig:
    """The named preset with `overrides` applied; a clear error for an unknown name or field."""
    if preset_name(name) not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[preset_name(name)], **overrides)

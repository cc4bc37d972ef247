"""Training configurations: one dataclass, named presets as values.

`seed` is the reference design, reproduced exactly; every other preset is a
`dataclasses.replace` of it. Override a field with `get_preset("cpu", num_epochs=3)`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs to be reproduced; stored as config.json and in every checkpoint."""

    name: str = "seed"
    # Data: grayscale slices, resized, scaled to [-1, 1].
    resolution: int = 128
    split: str = "train"
    val_split: str = "validate"
    max_images: int | None = None  # use only the first N slices of the split (smoke runs)
    subject_share: float = 1.0  # train on this share of the split's subjects (a fixed random choice)
    # Model. `arch`: "dcgan" (the seed's networks) or "resnet" (R3GAN-style residual networks without
    # normalisation, ganlib.resnet). `width` is the channel count of G's last hidden layer and D's first.
    arch: str = "dcgan"
    z_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    init_std: float = 0.02  # DCGAN's initialisation; the residual networks use fix-up initialisation
    res_blocks: int = 1  # residual blocks per resolution (arch="resnet")
    # Useful data (issue 14, ganlib.conditional): G and D conditioned on the slice position 0..positions-1
    # (0 = off), and G making the slice with its 4-class mask, D judging both (off: slices only).
    positions: int = 0
    with_masks: bool = False
    # Improvements over the seed (issue 6); the seed's values switch each one off.
    loss: str = "bce"  # "bce": non-saturating BCE as DCGAN; "hinge": hinge loss; "rpgan": relativistic pairing
    d_norm: str = "batch"  # "batch": BatchNorm in D as DCGAN; "spectral": spectral norm; "none": neither
    augment: str = ""  # DiffAugment policy for D's inputs, e.g. "translation,cutout"
    augment_p: float = 1.0  # probability that each image (real or fake) goes through the policy
    r1_gamma: float = 0.0  # R1 gradient penalty on real slices; 0 = off
    r2_gamma: float = 0.0  # R2 gradient penalty on generated slices; 0 = off
    r1_every: int = 16  # lazy R1/R2: every this many steps, scaled up to match; 1 = every step
    ema_beta: float = 0.0  # exponential moving average of G's weights per step; 0 = off
    ema_kimg: float = 0.0  # or: the EMA's half-life in thousands of images (overrides ema_beta when > 0)
    ema_rampup: float = 0.0  # with ema_kimg: half-life at most this fraction of the images seen so far
    # Optimisation.
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 64
    num_epochs: int = 50
    epoch_images: int | None = None  # images per epoch; None = one pass over the split
    lr_step_epochs: int = 10
    lr_gamma: float = 0.5
    # Reproducibility and bookkeeping.
    seed: int = 0
    n_fixed: int = 64  # the fixed latent batch behind every sample grid
    log_every: int = 20  # steps between host syncs for the progress bar and NaN check
    # Speed switches: they change how fast, never what is computed.
    amp: bool = True  # bf16 autocast where the device supports it
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False  # SyncBatchNorm across torchrun processes

    def __post_init__(self):
        choices = {
            "loss": ("bce", "hinge", "rpgan"),
            "arch": ("dcgan", "resnet"),
            "d_norm": ("batch", "spectral", "none"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r}: choose one of {', '.join(allowed)}")
        if not 0.0 <= self.augment_p <= 1.0:
            raise ValueError(f"augment_p={self.augment_p}: a probability, between 0 and 1")
        if self.r1_every < 1 or self.res_blocks < 1:
            raise ValueError("r1_every and res_blocks must be at least 1")
        if not 0 < self.subject_share <= 1:
            raise ValueError(f"subject_share={self.subject_share}: a share of the subjects, above 0 and at most 1")
        if self.positions < 0:
            raise ValueError(f"positions={self.positions}: the number of slice positions (32 for OASIS), or 0 for none")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known: {sorted(known)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


SEED = TrainConfig()

# A small 64x64 model that gives recognisable slices on 2 CPU cores in about 5 minutes. The seed's
# recipe with a wide G and a narrow D: at equal widths D wins within a few hundred steps on the
# small demo set (loss_D -> 0, G collapses); a narrow D keeps the game balanced.
CPU = dataclasses.replace(
    SEED,
    name="cpu",
    resolution=64,
    g_width=64,
    d_width=16,
    epoch_images=4096,  # the same work per epoch on the small demo set and on OASIS
    num_epochs=30,
)

# Seconds: tests and CI. Tiny model, a handful of slices.
SMOKE = dataclasses.replace(
    SEED,
    name="smoke",
    resolution=32,
    g_width=8,
    d_width=8,
    batch_size=8,
    num_epochs=2,
    lr_step_epochs=1,
    max_images=32,
    n_fixed=16,
    log_every=2,
)

# The seed's architecture, optimiser and budget with the two techniques that paid at short budgets in the
# 64x64 OASIS ablation (benchmarks/results/ablation-cpu64*): differentiable augmentation of D's inputs, so D
# cannot memorise ~10k training slices, and an EMA of G's weights for sampling. At the seed's full 50 epochs
# the seed itself was better there (FID 49.6 against 81.5), so this is a short-run recipe until a 128x128 run
# says more. Spectral norm in D is a switch too but left out: with the seed's Adam (2e-4, betas 0.5/0.999)
# it made FID worse, and with SN-GAN's two-timescale Adam (G 1e-4, D 4e-4, betas 0/0.9) it learned too
# slowly for a CPU budget.
MODERN = dataclasses.replace(SEED, name="modern", augment="translation,cutout", ema_beta=0.999)

# R3GAN's recipe (Huang et al. 2024) at CPU size: residual networks without normalisation, the relativistic
# pairing loss with R1 and R2 penalties every step, Adam with beta1 = 0, an EMA with a 20k-image half-life
# (ramped up over the first 5% of training), and augmentation of half of D's inputs. gamma: R3GAN starts
# at 2 for 64x64 RGB (decaying to 0.2); at 0.5 D won clearly in a pilot run here (loss_D ~0.3).
R3GAN = dataclasses.replace(
    SEED,
    name="r3gan",
    arch="resnet",
    resolution=64,
    g_width=16,  # 16 channels at 64x64 ... 128 at 4x4: at width 32 this CPU trains 2.5x fewer images/s
    d_width=16,
    loss="rpgan",
    r1_gamma=2.0,
    r2_gamma=2.0,
    r1_every=1,
    betas=(0.0, 0.99),
    ema_kimg=20.0,
    ema_rampup=0.05,
    augment="translation,cutout",
    augment_p=0.5,
)

# R3GAN's objective, optimiser, EMA and augmentation on the seed's DCGAN networks, with D's BatchNorm taken
# out (the gradient penalties need each image's score to depend on that image only) and the penalties every
# 4 steps. On this CPU it trains 4.4x the images per minute of `r3gan`'s residual networks (170 against 38
# images/s at 64x64, benchmarks/results/equal-compute-cpu64/rates.json). At equal minutes of this CPU it beat
# the seed at 15 minutes (FID 63.5 against 89.6) and 90 (19.0 against 30.8), and was level within the spread
# of training seeds at 45 (25.9 against 29.8, two seeds each): the seed stops improving, this keeps going.
DCGAN_RP = dataclasses.replace(
    R3GAN, name="dcgan-rp", arch="dcgan", g_width=64, d_width=64, d_norm="none", r1_every=4, init_std=0.02
)

# `dcgan-rp` at a constant learning rate: the best recipe measured here. The seed's StepLR schedule halves the
# rate four times in any budget, so the last 40% of the images are trained at 1/8 to 1/16 of it; with the
# penalties holding D level (its loss sits at ln 2) and the EMA doing the averaging, the halvings only slow G.
# At 45 minutes of this CPU at 64x64 it reaches FID 17.1 and 17.4 (two training seeds) against `dcgan-rp`'s
# 27.3 and 24.6 and the seed's 27.6 and 31.9 (benchmarks/results/equal-compute-cpu64); at 128x128 in 90 minutes
# (G 48 wide, the shipped oasis128_cpu) 28.0 against 65.5 with the halvings (benchmarks/results/cpu128).
DCGAN_RP_CONSTLR = dataclasses.replace(DCGAN_RP, name="dcgan-rp-constlr", lr_gamma=1.0)

# Issue 14's paired generator: `dcgan-rp` conditioned on the slice position (0-31) and making each slice
# with its 4-class mask (background, CSF, grey matter, white matter); D judges slice and mask together.
PAIRS = dataclasses.replace(DCGAN_RP, name="pairs", positions=32, with_masks=True)

PRESETS: dict[str, TrainConfig] = {
    c.name: c for c in (SEED, CPU, SMOKE, MODERN, R3GAN, DCGAN_RP, DCGAN_RP_CONSTLR, PAIRS)
}

# The ablation of notebook 05 and benchmarks/ablation.py: one switch at a time on the seed, then all.
ABLATION: dict[str, dict] = {
    "seed": {},
    "+spectral_norm": {"d_norm": "spectral"},
    "+diffaugment": {"augment": MODERN.augment},
    "+ema": {"ema_beta": MODERN.ema_beta},
    "+narrow_d": {"d_width": 16},  # the cpu preset's fix: a quarter-width D
    "modern": {"augment": MODERN.augment, "ema_beta": MODERN.ema_beta},
    "modern+narrow_d": {"augment": MODERN.augment, "ema_beta": MODERN.ema_beta, "d_width": 16},
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


def check_resume(stored: TrainConfig, requested: TrainConfig) -> TrainConfig:
    """The config a resumed run continues with: `stored`, with `requested`'s epoch count and speed switches.

    Any other difference would change what the run computes, so it is refused with a one-line reason.
    """
    fixed = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("num_epochs", *SPEED_FIELDS)]
    diff = [k for k in fixed if getattr(stored, k) != getattr(requested, k)]
    if diff:
        was = ", ".join(f"{k}={getattr(stored, k)!r}" for k in diff)
        asked = ", ".join(f"{k}={getattr(requested, k)!r}" for k in diff)
        raise ValueError(
            f"--resume: the run was trained with {was}, not {asked}; a resumed run keeps its own config "
            f"(only the epoch count and the speed switches {', '.join(SPEED_FIELDS)} may change): "
            "start a new run for a different one"
        )
    return dataclasses.replace(
        stored, num_epochs=requested.num_epochs, **{k: getattr(requested, k) for k in SPEED_FIELDS}
    )


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


def get_preset(name: str, **overrides) -> TrainConfig:
    """The named preset with `overrides` applied; a clear error for an unknown name or field."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)

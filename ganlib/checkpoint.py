"""Checkpoints: state dicts plus the config, written atomically, loaded with weights_only=True.

A training checkpoint (`save_training_state`) holds every part a run needs to continue; an exported
generator (`export_generator`) only G in fp16 with its config, small enough to ship.
"""

from __future__ import annotations

import dataclasses
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import SPEED_FIELDS, TrainConfig
from .models import build_generator
from .utils.files import write_atomic

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
# What `--checkpoint pretrained` means, best first (their model cards beside them give their scores): the
# 128x128 OASIS model trained on a GPU, the one trained within 90 minutes of this project's 2-core CPU, then
# the demo model trained on the bundled demo set. Each can also be named: `--checkpoint oasis128_cpu`.
PRETRAINED = ("oasis128.pt", "oasis128_cpu.pt", "cpu_demo.pt")
PAIRS = "oasis64_pairs.pt"  # the position-conditioned slice+mask generator: `--checkpoint pretrained-pairs`


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """torch.save through `files.write_atomic`: a killed process or a full disk never leaves half a file."""
    buf = io.BytesIO()
    torch.save(obj, buf)  # in memory first, so that a write error is Python's own OSError with its errno
    write_atomic(path, buf.getbuffer())


def rng_state() -> dict:
    """torch's CPU and CUDA generators, in a form `torch.load(weights_only=True)` accepts.

    The loop draws shuffles, latents and augmentations from generators seeded by (seed, epoch), so these
    are kept only for code outside it that draws from the global generator (metrics during training).
    """
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# The parts of a run that a checkpoint holds, each saved as its state_dict (G_ema may be None).
TRAINING_PARTS = ("G", "G_ema", "D", "opt_G", "opt_D", "sched_G", "sched_D")


def save_training_state(path: str | os.PathLike, parts: dict, **info) -> None:
    """Every training part's state dict plus `info` (epoch, step, config, stats...) and the RNG, atomically."""
    state = {k: (m.state_dict() if m is not None else None) for k, m in parts.items()}
    save_atomic({**state, **info, "rng": rng_state()}, path)


def load_training_state(path: str | os.PathLike, mmap: bool = False) -> dict:
    """A training checkpoint to resume from; a clear error for anything else."""
    state = load(path, mmap=mmap)
    missing = [k for k in (*TRAINING_PARTS, "epoch", "step", "config") if k not in state]
    if missing:
        raise ValueError(
            f"{resolve_checkpoint(path)}: not a ganlib training checkpoint (no {', '.join(missing)}); "
            "resume from a run folder's checkpoints/latest.pt"
        )
    return state


@dataclass
class Resume:
    """A run to continue: its folder, its last checkpoint's state, and the config it continues with."""

    run_dir: Path
    state: dict
    config: TrainConfig

    @property
    def epoch(self) -> int:
        return self.state["epoch"]


def resolve_resume(path: str | os.PathLike, requested: TrainConfig | dict | None = None) -> Resume:
    """The one place a resume is worked out: what `ganlib train --resume` and `train(resume=...)` continue.

    `requested` is a whole config or overrides of the stored one. The stored config decides what is
    computed: only the epoch count and the speed switches may change; anything else is refused in one line.
    """
    state = load_training_state(path)
    stored = TrainConfig.from_dict(state["config"])
    if isinstance(requested, dict):
        requested = dataclasses.replace(stored, **requested)
    config = stored
    if requested is not None:
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
        config = dataclasses.replace(
            stored, num_epochs=requested.num_epochs, **{k: getattr(requested, k) for k in SPEED_FIELDS}
        )
    return Resume(resolve_checkpoint(path).parents[1], state, config)


def restore_training_state(state: dict, parts: dict) -> None:
    """Load `state` into the parts built from its config; weights that do not fit say so in one line."""
    for key, part in parts.items():
        if part is None:
            continue
        try:
            part.load_state_dict(state[key])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"checkpoint part {key} does not fit the run's config ({_first_line(e)})") from None
    if "rng" in state:
        set_rng_state(state["rng"])


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """A checkpoint dict, with a clear error for a missing or damaged file."""
    path = resolve_checkpoint(path)
    try:
        # mmap: tensors stay on disk until read, so a caller that wants the config alone reads little
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises several types for a damaged file or a pickle it will not run
        raise ValueError(f"{path}: not a readable ganlib checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: not a ganlib checkpoint (it holds a {type(ckpt).__name__}, not a dict)")
    return ckpt


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file from a file path, a run folder (its latest checkpoint), 'pretrained' or a shipped name."""
    p = Path(path)
    if str(path) in {Path(n).stem for n in PRETRAINED} and (PRETRAINED_DIR / f"{path}.pt").exists():
        return PRETRAINED_DIR / f"{path}.pt"  # a shipped generator by name: "oasis128", "oasis128_cpu", "cpu_demo"
    if str(path) == "pretrained-pairs":
        if (PRETRAINED_DIR / PAIRS).exists():
            return PRETRAINED_DIR / PAIRS
        raise FileNotFoundError(
            f"no paired generator in {PRETRAINED_DIR} ({PAIRS}); train one with `ganlib train --preset pairs`"
        )
    if str(path) == "pretrained":
        for name in PRETRAINED:
            if (PRETRAINED_DIR / name).exists():
                return PRETRAINED_DIR / name
        raise FileNotFoundError(f"no pretrained checkpoint in {PRETRAINED_DIR}; train one with `ganlib train`")
    if p.is_dir():
        latest = p / "checkpoints" / "latest.pt"
        if latest.exists():
            return latest
        raise FileNotFoundError(f"{p} is a folder without checkpoints/latest.pt; pass a run folder or a .pt file")
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} does not exist")
    return p


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True):
    """The generator of a checkpoint, rebuilt from its stored config, in eval mode: (G, config)."""
    ckpt = load(path, map_location=device)
    where = resolve_checkpoint(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("G"), dict):
        raise ValueError(
            f"{where}: not a ganlib checkpoint (it holds no generator with its config); "
            "pass a file written by `ganlib train` (checkpoints/latest.pt) or an exported generator"
        )
    try:
        config = TrainConfig.from_dict(ckpt["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: its config is not one this ganlib knows ({_first_line(e)})") from None
    G = build_generator(config)
    state = ckpt.get("G_ema") if ema and ckpt.get("G_ema") is not None else ckpt["G"]
    try:
        G.load_state_dict({k: v.float() for k, v in state.items()})
    except (RuntimeError, AttributeError) as e:
        raise ValueError(
            f"{where}: the generator's weights do not fit its config ({_first_line(e)}); the file is damaged "
            "or was edited"
        ) from None
    return G.to(device).eval(), config


def export_generator(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """A training checkpoint's generator (its EMA if it has one) in fp16 with config and stats: a small file to ship."""
    ckpt = load(path)
    G = ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"]
    small = {
        "G": {k: v.half() if v.is_floating_point() else v for k, v in G.items()},
        "config": ckpt["config"],
        "epoch": ckpt["epoch"],
        "step": ckpt["step"],
        "stats": ckpt.get("stats", "[]"),
    }
    save_atomic(small, out)
    return Path(out)

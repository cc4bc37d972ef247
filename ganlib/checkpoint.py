"""Checkpoints: state dicts plus the config, written atomically, loaded with weights_only=True."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .models import Generator

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
# What `--checkpoint pretrained` means, best first: the 128x128 OASIS model trained on a GPU
# (issue 6, not trained yet), then the `cpu` preset trained on the bundled demo set by `make demo`.
PRETRAINED = ("oasis128.pt", "cpu_demo.pt")


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """torch.save to a temporary name, then rename: a killed process never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    """Every RNG a run touches, in a form `torch.load(weights_only=True)` accepts."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": repr(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import ast

    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(ast.literal_eval(state["python"])))
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy"]["pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint dict, with a clear error for a missing or damaged file."""
    path = resolve_checkpoint(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for a damaged file
        raise ValueError(f"{path}: not a readable ganlib checkpoint ({type(e).__name__}: {e})") from None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file from a file path, a run folder (its latest checkpoint) or 'pretrained'."""
    p = Path(path)
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
    config = TrainConfig.from_dict(ckpt["config"])
    G = Generator(config.z_dim, config.resolution, config.g_width)
    state = ckpt.get("G_ema") if ema and ckpt.get("G_ema") is not None else ckpt["G"]
    G.load_state_dict({k: v.float() for k, v in state.items()})
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

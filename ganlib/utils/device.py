"""Where training runs: the device, bf16 autocast, and joining or leaving a torchrun group."""

from __future__ import annotations

import contextlib
import os

import torch
from torch import distributed as dist


def pick_device(device: str | None = None) -> torch.device:
    """`cuda` when one is there and nothing else is asked for; a clear error for cuda without CUDA."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available here; use --device cpu")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return False


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` when enabled, else a context that does nothing."""
    if enabled:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def dist_info() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed() -> torch.device | None:
    """Join the torchrun group when launched by torchrun; returns the device for this rank (None otherwise)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return torch.device("cuda", local_rank)
    dist.init_process_group("gloo")
    return torch.device("cpu")


def teardown_distributed() -> None:
    """Wait for rank 0's last snapshot, then close the group: a process leaving an open gloo group aborts."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

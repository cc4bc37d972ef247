"""FLOPs of one DCGAN training image, counted from the convolution shapes, and the device's peak FLOP/s.

Counting rule. A multiply-accumulate (MAC) is 2 FLOPs. Only convolutions are counted: BatchNorm, activations,
the loss and Adam are elementwise and together well under 1% of the work. With G and D the forward MACs of one
image through each net, and G1, D1 those of their first layers:

- forward: G once (the fakes are reused), D three times (reals and fakes for D's step, fakes again for G's step);
- backward of a convolution = its weight gradient (1x forward) + its input gradient (1x forward); an input
  gradient is skipped where the input needs none (z into G's first layer; reals and detached fakes into D's first
  layer), and D's weight gradients are skipped in G's step, where ganlib freezes D (`g_step`).

ganlib's step:  G + (3D - D1) + (3D - D1) + (2D + 2G - G1)  =  3G - G1 + 8D - 2 D1  MACs per image.
The reference step (PyTorch DCGAN tutorial) also computes D's weight gradients in G's step: one more D.
`counted_flops` runs a step under `torch.utils.flop_counter.FlopCounterMode`, which counts the same ops.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Dense bf16 tensor-core and TF32 peaks (NVIDIA data sheets, SXM parts, no sparsity).
GPU_PEAKS = {"H100": {"bf16": 989e12, "fp32": 494e12}, "H200": {"bf16": 989e12, "fp32": 494e12}}


def conv_macs(net: nn.Module, example: torch.Tensor) -> list[int]:
    """Forward MACs per image of each convolution of `net`, in order, for an input like `example` (batch 1)."""
    macs: list[int] = []

    def hook(m, inputs, out):
        k = m.kernel_size[0] * m.kernel_size[1] // m.groups
        if isinstance(m, nn.ConvTranspose2d):  # every input pixel is scattered to out_channels x k x k outputs
            macs.append(inputs[0][0].numel() * m.out_channels * k)
        else:  # every output pixel gathers in_channels x k x k inputs
            macs.append(out[0].numel() * m.in_channels * k)

    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(hook) for m in convs]
    was = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(example)
    finally:
        net.train(was)
        for h in handles:
            h.remove()
    return macs


def training_flops(G: nn.Module, D: nn.Module, z_dim: int, resolution: int) -> dict:
    """FLOPs per training image by the counting rule above, for ganlib's step and the reference step."""
    g = conv_macs(G, torch.randn(1, z_dim))
    d = conv_macs(D, torch.randn(1, 1, resolution, resolution))
    G_, D_, G1, D1 = sum(g), sum(d), g[0], d[0]
    ganlib = 3 * G_ - G1 + 8 * D_ - 2 * D1
    return {
        "G_forward_macs": G_,
        "D_forward_macs": D_,
        "G_first_layer_macs": G1,
        "D_first_layer_macs": D1,
        "ganlib_flops_per_image": 2 * ganlib,
        "reference_flops_per_image": 2 * (ganlib + D_),
    }


def counted_flops(step, batch: int) -> float:
    """FLOPs per image that FlopCounterMode sees in one call of `step()` on a batch of `batch`."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch


def cpu_info() -> dict:
    """Model, flags of interest, frequency and core count from /proc/cpuinfo (empty values where unreadable)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {
        "model": fields.get("model name", "unknown"),
        "mhz": float(fields.get("cpu MHz", 0) or 0),
        "cores": cores,
        "flags": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
    }


def cpu_peak(info: dict, threads: int | None = None) -> dict:
    """Peak FLOP/s = cores used (one per torch thread) x frequency x FLOPs per cycle, with the assumptions.

    fp32: AVX-512 with two FMA units per core = 2 x 16 lanes x 2 = 64 FLOPs/cycle (AVX2+FMA: 32).
    bf16: AMX = one 16x32 by 32x16 tile multiply (8192 MACs) per 16 cycles = 1024 FLOPs/cycle; AVX512_BF16
    without AMX: 2 units x 16 pairs x 2 x 2 = 128. The frequency is /proc/cpuinfo's `cpu MHz` (no turbo), and
    every logical CPU is taken as a core: under a hypervisor two vCPUs may share a physical core, halving the peak.
    """
    flags = set(info["flags"])
    fp32_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 8
    bf16_cycle = 1024 if "amx_bf16" in flags else 128 if "avx512_bf16" in flags else fp32_cycle
    cores = min(threads or info["cores"], info["cores"])
    hz = info["mhz"] * 1e6 * cores
    return {
        "fp32": hz * fp32_cycle,
        "bf16": hz * bf16_cycle,
        "assumption": f"{cores} core(s) x {info['mhz']:.0f} MHz x {fp32_cycle} fp32 / {bf16_cycle} bf16 FLOPs per "
        "cycle (AVX-512 with 2 FMA units; AMX 1024 bf16 FLOPs/cycle); a vCPU counted as a core",
    }


def gpu_peak(name: str) -> dict:
    """Data-sheet peaks for a known GPU name (dense bf16; fp32 = TF32 tensor cores, which cuDNN uses)."""
    for key, peak in GPU_PEAKS.items():
        if key in name:
            return {
                **peak,
                "assumption": f"{key} SXM data sheet: dense bf16 {peak['bf16'] / 1e12:.0f} TFLOP/s, "
                f"TF32 {peak['fp32'] / 1e12:.0f} TFLOP/s",
            }
    return {"fp32": None, "bf16": None, "assumption": f"no peak on file for {name}"}

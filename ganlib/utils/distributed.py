"""Synchronised BatchNorm for torchrun processes, on GPUs and on CPUs.

torch's SyncBatchNorm runs on CUDA only; on CPU (gloo) `AllReduceBatchNorm2d` does the same job:
training statistics summed over every rank, with gradients flowing back through the shared sums.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class AllReduceSum(torch.autograd.Function):
    """all_reduce that autograd sees through: the gradient of a sum over ranks is that sum of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover every rank: a CPU stand-in for torch's GPU-only SyncBatchNorm.

    Sums and counts are all-reduced with `AllReduceSum`, so in backward each rank's inputs get the gradient of
    every rank's loss through the shared statistics, as SyncBatchNorm's do.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        c, xd = x.shape[1], x.double()  # float64 sums, so E[x^2] - E[x]^2 does not cancel badly
        count = torch.full((1,), x.numel() / c, dtype=torch.float64)
        stats = AllReduceSum.apply(torch.cat([xd.sum((0, 2, 3)), xd.square().sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c : 2 * c] / n - mean.square()
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            self.running_mean.lerp_(mean.float(), self.momentum)
            self.running_var.lerp_((var * n / (n - 1)).float(), self.momentum)
        shape = (1, c, 1, 1)
        y = (xd - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return (y * self.weight.view(shape) + self.bias.view(shape)).to(x.dtype)


def convert_to_all_reduce(module: nn.Module, process_group=None) -> nn.Module:
    """`SyncBatchNorm.convert_sync_batchnorm`'s contract, with `AllReduceBatchNorm2d`."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            new = AllReduceBatchNorm2d(child.num_features, child.eps, child.momentum)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_to_all_reduce(child, process_group)
    return module


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d of `module` with statistics over all ranks: torch's SyncBatchNorm on CUDA, else ours."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_to_all_reduce(module)

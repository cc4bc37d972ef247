"""A helper for any network, below the models that use it (the U-Net of ganlib.pairs as well as G and D)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """`net` in eval mode (BatchNorm's running statistics: each output depends on its own input only), with its
    training mode restored afterwards, also when the body raises."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)

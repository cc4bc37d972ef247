"""ganlib.models: shapes at every resolution, the DCGAN layer types, init and the layer table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlib.config import get_preset
from ganlib.models import Discriminator, Generator, build_models, count_params, format_layer_table, layer_table


@pytest.mark.parametrize("resolution", [64, 128, 256])
def test_output_shapes(resolution):
    G, D = Generator(100, resolution, width=8), Discriminator(resolution, width=8)
    x = G(torch.randn(3, 100))
    assert x.shape == (3, 1, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    p = D(x)
    assert p.shape == (3,) and (p > 0).all() and (p < 1).all()
    assert torch.allclose(D.logits(x).sigmoid(), p)


def test_unsupported_resolution():
    with pytest.raises(ValueError, match="resolution must be one of"):
        Generator(100, 100)


def test_seed_architecture_is_the_reference_dcgan():
    G, D = build_models(get_preset("seed"))
    kinds_G = {type(m) for m in G.modules()}
    kinds_D = {type(m) for m in D.modules()}
    assert nn.ConvTranspose2d in kinds_G and nn.ReLU in kinds_G and isinstance(G.main[-1], nn.Tanh)
    assert nn.Conv2d in kinds_D and nn.LeakyReLU in kinds_D and isinstance(D.sigmoid, nn.Sigmoid)
    assert nn.Conv2d not in kinds_G and nn.ConvTranspose2d not in kinds_D
    # 4x4 -> 128x128 through 5 stride-2 transposed convolutions, 1024 channels at 4x4.
    assert G.main[0].out_channels == 1024 and G.main[-2].out_channels == 1
    # 100*1024*16 + 1024*512*16 + ... + 64*1*16 conv weights, plus BatchNorm scale and shift.
    assert count_params(G) == 12_784_512 and count_params(D) == 11_162_368


def test_dcgan_init():
    torch.manual_seed(0)
    G, D = build_models(get_preset("seed"))
    w = torch.cat([m.weight.flatten() for m in D.modules() if isinstance(m, nn.Conv2d)])
    assert abs(w.mean().item()) < 1e-3 and abs(w.std().item() - 0.02) < 1e-3
    bn = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(m.bias == 0) for m in bn)
    assert abs(torch.cat([m.weight for m in bn]).mean().item() - 1.0) < 5e-3


def test_layer_table_rows_and_total():
    G = Generator(100, 64, width=8)
    rows = layer_table(G, torch.randn(2, 100))
    assert rows[0]["output"] == (64, 4, 4) and rows[-1]["output"] == (1, 64, 64)
    assert sum(r["params"] for r in rows) == count_params(G)
    text = format_layer_table(rows)
    assert "ConvTranspose2d" in text and f"{count_params(G):,}" in text


def test_eval_mode_restores_training_mode_even_when_the_body_raises():
    from ganlib.models import eval_mode

    G = Generator(resolution=32, width=8)
    with eval_mode(G):
        assert not G.training and not any(m.training for m in G.modules())
    assert G.training
    G.eval()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(G):
        raise RuntimeError("boom")
    assert not G.training  # it was in eval mode before, so it stays there
    G.train()
    with pytest.raises(RuntimeError), eval_mode(G):
        raise RuntimeError("boom")
    assert G.training and all(m.training for m in G.modules())

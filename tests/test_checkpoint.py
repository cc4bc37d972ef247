"""ganlib.checkpoint: atomic writes, RNG round trip, path resolution, the small exported generator."""

from __future__ import annotations

import pytest
import torch

from ganlib import checkpoint as ck
from ganlib.config import get_preset
from ganlib.train import train


def test_save_atomic_leaves_no_temporary(tmp_path):
    ck.save_atomic({"x": torch.arange(3)}, tmp_path / "a" / "c.pt")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["c.pt"]
    assert torch.equal(torch.load(tmp_path / "a" / "c.pt", weights_only=True)["x"], torch.arange(3))


def test_rng_state_round_trip(tmp_path):
    torch.manual_seed(1)
    ck.save_atomic({"rng": ck.rng_state()}, tmp_path / "r.pt")
    expected = torch.rand(3)
    ck.set_rng_state(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    assert torch.equal(expected, torch.rand(3))


def test_resolve_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ck.resolve_checkpoint(tmp_path / "none.pt")
    with pytest.raises(FileNotFoundError, match="without checkpoints/latest.pt"):
        ck.resolve_checkpoint(tmp_path)


def test_export_is_small_fp16_and_loads_like_the_original(tiny_data, tmp_path):
    run = train(get_preset("smoke", num_epochs=1, ema_kimg=0.5), data=tiny_data, out=tmp_path, progress=False)
    small = ck.export_generator(run, tmp_path / "g.pt")
    assert small.stat().st_size < (run / "checkpoints" / "latest.pt").stat().st_size / 3
    G_full, config = ck.load_generator(run)
    G_small, _ = ck.load_generator(small)
    z = torch.randn(4, config.z_dim)
    with torch.no_grad():
        assert torch.allclose(G_full(z), G_small(z), atol=2e-2)
    assert torch.load(small, weights_only=True)["G"]["main.0.weight"].dtype == torch.float16


def test_pretrained_resolves_to_a_shipped_generator():
    G, config = ck.load_generator("pretrained")
    assert G(torch.randn(2, config.z_dim)).shape == (2, 1, config.resolution, config.resolution)


def test_shipped_generators_by_name():
    assert ck.resolve_checkpoint("cpu_demo") == ck.PRETRAINED_DIR / "cpu_demo.pt"
    assert ck.resolve_checkpoint("pretrained") == ck.PRETRAINED_DIR / "oasis128.pt"  # the best one by FID
    G, config = ck.load_generator("oasis128_cpu")  # trained on this project's CPU (benchmarks/cpu128.py)
    assert config.resolution == 128 and config.g_width == 48 and config.loss == "rpgan"
    assert G(torch.randn(2, config.z_dim)).shape == (2, 1, 128, 128)
    assert ck.resolve_checkpoint("oasis128_cpu").stat().st_size <= 20e6  # the limit for a shipped file
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ck.resolve_checkpoint("no_such_model")


def test_checkpoint_every_k_epochs_and_after_the_last(tiny_data, tmp_path):
    seen = []
    config = get_preset("smoke", num_epochs=3)
    run = train(config, data=tiny_data, out=tmp_path, progress=False, checkpoint_every=2, callback=seen.append)
    assert torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["epoch"] == 3
    assert len((run / "stats.jsonl").read_text().splitlines()) == 3 and len(seen) == 3

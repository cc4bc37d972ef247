"""Slice-position control and image+mask pairs (issue 14): shapes, refusals, a short run that learns both,
and `ganlib sample --slice --with-masks` writing a set the loader reads back."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganlib.cli import main as cli_main
from ganlib.conditional import NUM_CLASSES, masks_to_float, one_hot_masks
from ganlib.config import TrainConfig, get_preset
from ganlib.data import load_split
from ganlib.models import build_models, count_params, sample
from ganlib.train import train


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_shapes_probabilities_and_conditioning(arch):
    config = get_preset("smoke", arch=arch, positions=32, with_masks=True)
    torch.manual_seed(0)
    G, D = build_models(config)
    z = torch.randn(6, config.z_dim)
    y = torch.tensor([0, 5, 31, 16, 16, 2])
    out = G(z, y)
    assert out.shape == (6, 1 + NUM_CLASSES, 32, 32)
    assert torch.allclose(out[:, 1:].sum(1), torch.ones(6, 32, 32), atol=1e-5)  # mask channels: probabilities
    assert D.logits(out, y).shape == (6,)
    # The position reaches both networks: same z at another position gives another slice and another score.
    other = torch.tensor([1, 6, 30, 17, 15, 3])
    assert (G(z, other) - out).abs().amax() > 1e-4
    assert (D.logits(out, other) - D.logits(out, y)).abs().amax() > 1e-6
    # sample(): images clamped, masks as class ids, positions 0, 1, 2, ... when none are given.
    images, masks = sample(G, z, y=y, masks=True)
    assert images.shape == (6, 1, 32, 32) and masks.shape == (6, 1, 32, 32)
    assert masks.dtype == torch.int64 and int(masks.min()) >= 0 and int(masks.max()) < NUM_CLASSES
    assert torch.equal(sample(G, z), sample(G, z, y=torch.arange(6)))


def test_switches_off_leave_the_seed_networks_as_they_were():
    plain, _ = build_models(get_preset("seed"))
    assert count_params(plain) == 12_784_512  # the seed's G, unchanged by the conditional code
    cond, _ = build_models(get_preset("seed", positions=32, with_masks=True))
    # + a 32 x 32 embedding, 32 more inputs to the first layer (x 1024 x 4 x 4), 4 more output channels (x 64 x 4 x 4)
    assert count_params(cond) - count_params(plain) == 32 * 32 + 32 * 1024 * 16 + 4 * 64 * 16


def test_refusals_are_one_line():
    config = get_preset("smoke", positions=4, with_masks=True)
    G, D = build_models(config)
    x = torch.zeros(2, 5, 32, 32)
    with pytest.raises(ValueError, match="conditioned on slice positions: pass them"):
        D.logits(x)
    with pytest.raises(ValueError, match="slice positions must be 0 to 3, got 0 to 7"):
        sample(G, torch.randn(2, config.z_dim), y=torch.tensor([0, 7]))
    plain, _ = build_models(get_preset("smoke"))
    with pytest.raises(ValueError, match="makes slices only"):
        sample(plain, torch.randn(2, 100), masks=True)
    with pytest.raises(ValueError, match="positions=-1"):
        TrainConfig(positions=-1)


def test_mask_encodings():
    masks = torch.tensor([[[[0, 1], [2, 3]]]])
    onehot = one_hot_masks(masks)
    assert onehot.shape == (1, 4, 2, 2) and torch.equal(onehot.argmax(1, keepdim=True), masks)
    assert masks_to_float(masks).flatten().tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1])


def band_data(root, positions=4, cases=24, size=32):
    """Slices whose position decides where a bright band lies (rows 8p to 8p+8), mask class 3 on the band."""
    rng = np.random.default_rng(0)
    for split, ids in (("train", range(cases)), ("validate", range(100, 102))):
        img_dir, seg_dir = root / f"keras_png_slices_{split}", root / f"keras_png_slices_seg_{split}"
        img_dir.mkdir(parents=True), seg_dir.mkdir(parents=True)
        for c in ids:
            for p in range(positions):
                image = np.zeros((size, size), np.uint8)
                mask = np.zeros((size, size), np.uint8)
                rows = slice(8 * p, 8 * p + 8)
                image[rows] = rng.integers(160, 255)
                mask[rows] = 255  # class 3
                Image.fromarray(image, mode="L").save(img_dir / f"case_{c:03d}_slice_{p}.nii.png")
                Image.fromarray(mask, mode="L").save(seg_dir / f"seg_{c:03d}_slice_{p}.nii.png")
    return root


def test_a_short_conditional_paired_run_learns_position_and_mask(tmp_path):
    data = band_data(tmp_path / "bands")
    config = get_preset(
        "pairs", resolution=32, positions=4, g_width=16, d_width=16, batch_size=32, num_epochs=8,
        epoch_images=640, lr_step_epochs=100, n_fixed=16, ema_kimg=0.5, log_every=5,
        lr=1e-3,  # 5x the preset's rates: 160 steps are enough (at 2e-4 positions can stay swapped)
    )
    run = train(config, data=data, out=tmp_path / "runs", progress=False, device="cpu")
    assert (run / "reals_masks.png").exists() and (run / "samples" / "masks_0008.png").exists()
    from ganlib.checkpoint import load_generator

    G, _ = load_generator(run)
    z = torch.randn(64, config.z_dim, generator=torch.Generator().manual_seed(1))
    hits, agree = [], []
    for p in range(4):
        images, masks = sample(G, z, y=torch.full((64,), p), masks=True)
        band_brightness = images[:, 0].reshape(64, 4, 8, 32).mean(dim=(2, 3))  # mean of each 8-row band
        hits.append((band_brightness.argmax(1) == p).float().mean().item())
        agree.append(((masks[:, 0] == 3) == (images[:, 0] > 0)).float().mean().item())
    assert min(hits) > 0.8, hits  # asked for position p, the band is at p
    assert min(agree) > 0.85, agree  # the mask marks the band the image draws


def test_cli_sample_writes_a_set_the_loader_reads(tmp_path, capsys):
    config = dataclasses.replace(get_preset("smoke", positions=32, with_masks=True), num_epochs=1)
    torch.manual_seed(0)
    G, _ = build_models(config)
    ckpt = tmp_path / "g.pt"
    torch.save({"G": G.state_dict(), "config": config.to_dict()}, ckpt)
    out = tmp_path / "synthetic"
    assert cli_main(["sample", "--checkpoint", str(ckpt), "--slice", "16", "--with-masks", "--n", "6",
                     "--out", str(out)]) == 0
    assert "wrote 6 samples with masks" in capsys.readouterr().out
    synthetic = load_split("train", 32, out, with_masks=True)
    assert len(synthetic) == 6 and synthetic.slice_idx.tolist() == [16] * 6
    assert set(np.unique(np.asarray(Image.open(next((out / "keras_png_slices_seg_train").iterdir()))))) <= {
        0, 85, 170, 255}
    images, masks = sample(G, torch.randn(6, config.z_dim, generator=torch.Generator().manual_seed(0)),
                           y=torch.full((6,), 16), masks=True)
    assert torch.equal(synthetic.masks, masks.to(torch.uint8))
    # Bad requests: one line each, naming the option.
    assert cli_main(["sample", "--checkpoint", str(ckpt), "--slice", "40", "--out", str(out)]) != 0
    assert "--slice 40: this generator knows positions 0 to 31" in capsys.readouterr().err
    plain = dataclasses.replace(get_preset("smoke"))
    torch.save({"G": build_models(plain)[0].state_dict(), "config": plain.to_dict()}, tmp_path / "p.pt")
    assert cli_main(["sample", "--checkpoint", str(tmp_path / "p.pt"), "--with-masks", "--out", str(out)]) != 0
    assert "--with-masks" in capsys.readouterr().err
    assert cli_main(["sample", "--checkpoint", str(tmp_path / "p.pt"), "--slice", "3", "--out", str(out)]) != 0
    assert "--slice: " in capsys.readouterr().err


def test_pretrained_pairs_is_shipped_small_and_makes_pairs(tmp_path, capsys):
    from ganlib.checkpoint import PRETRAINED_DIR, load_generator, resolve_checkpoint

    path = resolve_checkpoint("pretrained-pairs")
    assert path == PRETRAINED_DIR / "oasis64_pairs.pt" and path.stat().st_size < 20 * 2**20
    assert (PRETRAINED_DIR / "oasis64_pairs.md").exists()  # its report beside it
    G, config = load_generator("pretrained-pairs")
    assert config.positions == 32 and config.with_masks and config.resolution == 64
    out = tmp_path / "syn"
    assert cli_main(["sample", "--checkpoint", "pretrained-pairs", "--slice", "16", "--with-masks", "--n", "8",
                     "--out", str(out)]) == 0
    synthetic = load_split("train", 64, out, with_masks=True)
    assert len(synthetic) == 8 and set(synthetic.slice_idx.tolist()) == {16}
    # A trained paired G draws masks with all four classes, and brain where its mask says brain.
    images, masks = synthetic.images.float() / 127.5 - 1, synthetic.masks
    assert set(masks.unique().tolist()) == {0, 1, 2, 3}
    assert images[masks > 0].mean() > images[masks == 0].mean() + 0.5


def test_transitional_conditioning_ramps_the_position_in(tiny_data, tmp_path):
    """condition_kimg: the position counts for nothing before START (G ignores y, D's score too), fully after END,
    linearly between; the run records it per epoch and resumes exactly across the ramp."""
    from ganlib.conditional import set_condition_strength
    from ganlib.config import condition_strength

    c = get_preset("pairs", condition_kimg=(1.0, 3.0))
    assert [condition_strength(c, i) for i in (0, 999, 1000, 2000, 2999, 3000, 10**6)] == [0, 0, 0, 0.5, 0.9995, 1, 1]
    assert condition_strength(get_preset("pairs"), 0) == 1.0
    for bad in ((3.0, 1.0), (1.0,), (-1.0, 2.0)):
        with pytest.raises(ValueError, match="condition_kimg="):
            get_preset("pairs", condition_kimg=bad)
    with pytest.raises(ValueError, match="with positions > 0"):
        get_preset("dcgan-rp", condition_kimg=(1.0, 2.0))

    G, D = build_models(dataclasses.replace(c, g_width=8, d_width=8))
    G.eval(), D.eval()
    z, x = torch.randn(2, 100).repeat(2, 1), torch.rand(4, 5, 64, 64)
    y = torch.tensor([0, 0, 7, 7])  # the same two latents at positions 0 and 7
    with torch.no_grad():
        set_condition_strength((G, D), 0.0)
        assert torch.equal(G(z, y)[:2], G(z, y)[2:]) and torch.equal(D.logits(x, y), D.logits(x, torch.zeros(4).long()))
        set_condition_strength((G, D), 1.0)
        assert not torch.equal(G(z, y)[:2], G(z, y)[2:])

    config = dataclasses.replace(get_preset("smoke"), positions=4, with_masks=True, d_norm="none", num_epochs=3,
                                 condition_kimg=(0.0, 0.016))
    full = train(config, data=tiny_data, out=tmp_path / "a", progress=False)
    stats = [json.loads(line) for line in (full / "stats.jsonl").read_text().splitlines()]
    # 2 steps of 8 slices an epoch; each epoch records the strength of its last step (after 8, 24, 40 images)
    assert [s["condition_strength"] for s in stats] == [0.5, 1.0, 1.0]
    part = train(dataclasses.replace(config, num_epochs=1), data=tiny_data, out=tmp_path / "b", progress=False)
    train(config, data=tiny_data, resume=part, progress=False)
    a, b = (torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for r in (full, part))
    for net in ("G", "D"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net


def test_mode_seeking_rewards_two_slices_for_two_latents(tiny_data, tmp_path):
    """The mode-seeking term falls as two latents' slices at one position differ, down to its cap; a paired run
    with it trains G differently from one without, and resumes exactly."""
    from ganlib.losses import mode_seeking_loss

    a, z_a, z_b = torch.rand(4, 5, 8, 8), torch.zeros(4, 100), torch.ones(4, 100)
    loss = [float(mode_seeking_loss(a, a + d, z_a, z_b, cap=0.08)) for d in (0.0, 0.05, 0.5)]
    assert loss == pytest.approx([0.0, -0.05, -0.08])  # the distance per unit of latent distance, capped
    with pytest.raises(ValueError, match="mode_seeking=-1"):
        get_preset("pairs", mode_seeking=-1.0)

    config = dataclasses.replace(get_preset("smoke"), positions=4, with_masks=True, d_norm="none", num_epochs=2,
                                 mode_seeking=1.0, mode_seeking_n=4)
    full = train(config, data=tiny_data, out=tmp_path / "a", progress=False)
    plain = train(dataclasses.replace(config, mode_seeking=0.0), data=tiny_data, out=tmp_path / "c", progress=False)
    part = train(dataclasses.replace(config, num_epochs=1), data=tiny_data, out=tmp_path / "b", progress=False)
    train(config, data=tiny_data, resume=part, progress=False)
    a, b, c = (torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for r in (full, part, plain))
    assert all(torch.equal(a["G"][k], b["G"][k]) for k in a["G"])
    assert not all(torch.equal(a["G"][k], c["G"][k]) for k in a["G"])

"""Growing the resolution (ProGAN's way, `grow_from`): shapes at every stage, a fade-in that starts where the
last stage ended, the seed's networks at the end, and exact resume across a growth step."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from ganlib.config import get_preset, growth_stage
from ganlib.models import build_models, set_stage
from ganlib.train import train
from tests.conftest import assert_in_results_document


def growing(**overrides):
    base = dict(resolution=128, g_width=8, d_width=8, grow_from=32, grow_kimg=(1.0, 2.0), grow_fade_kimg=0.5)
    return get_preset("dcgan-rp-constlr", **{**base, **overrides})


@pytest.mark.parametrize("d_norm", ["none", "batch"])
def test_shapes_at_every_stage_and_fade(d_norm):
    G, D = build_models(growing(d_norm=d_norm))
    G.eval(), D.eval()
    z = torch.randn(3, 100)
    for resolution, alpha in [(32, 1.0), (64, 0.0), (64, 0.5), (64, 1.0), (128, 0.3), (128, 1.0)]:
        set_stage(G, resolution, alpha), set_stage(D, resolution, alpha)
        x = G(z)
        assert x.shape == (3, 1, resolution, resolution)
        assert x.abs().max() <= 1
        assert D.logits(x).shape == (3,)


def test_a_fade_in_starts_where_the_last_stage_ended():
    """At alpha 0 the new resolution's G draws the last stage's image scaled up, and D scores an image as the
    last stage's D scores it scaled down: growing changes nothing until the new layers fade in."""
    G, D = build_models(growing())
    G.eval(), D.eval()
    z = torch.randn(4, 100)
    with torch.no_grad():
        set_stage(G, 32), set_stage(D, 32)
        small = G(z)
        x = torch.rand(4, 1, 64, 64) * 2 - 1
        score_small = D.logits(F.avg_pool2d(x, 2))
        set_stage(G, 64, 0.0), set_stage(D, 64, 0.0)
        assert torch.allclose(G(z), F.interpolate(small, scale_factor=2), atol=1e-6)
        assert torch.allclose(D.logits(x), score_small, atol=1e-5)


def test_grown_networks_are_the_seeds_networks():
    """At the full resolution a growing G and D compute what the plain ones do with the same weights."""
    plain = get_preset("dcgan-rp-constlr", resolution=128, g_width=8, d_width=8)
    torch.manual_seed(0)
    G0, D0 = build_models(plain)
    torch.manual_seed(0)
    G1, D1 = build_models(growing())
    for a, b in ((G0, G1), (D0, D1)):
        extra = b.load_state_dict(a.state_dict(), strict=False)
        assert not extra.unexpected_keys and all(k.startswith(("to_image", "from_image")) for k in extra.missing_keys)
    z = torch.randn(2, 100)
    with torch.no_grad():
        assert torch.equal(G0(z), G1(z))
        assert torch.equal(D0.logits(G0(z)), D1.logits(G0(z)))


def test_growth_schedule_and_its_errors():
    c = growing()
    assert [growth_stage(c, i) for i in (0, 999, 1000, 1250, 1500, 2999, 3000, 10**6)] == [
        (32, 1.0), (32, 1.0), (64, 0.0), (64, 0.5), (64, 1.0), (64, 1.0), (128, 0.0), (128, 1.0)]
    with pytest.raises(ValueError, match="grow_kimg=1.0: give 2 positive"):
        growing(grow_kimg=(1.0,))
    with pytest.raises(ValueError, match="grow_from=128"):
        growing(grow_from=128, grow_kimg=())
    with pytest.raises(ValueError, match="image\\+mask pairs"):
        build_models(growing(positions=32, with_masks=True))
    with pytest.raises(ValueError, match="arch='dcgan'"):
        build_models(growing(arch="resnet"))
    G, _ = build_models(growing(grow_from=64, grow_kimg=(1.0,)))
    with pytest.raises(ValueError, match="cannot run at 32px"):
        set_stage(G, 32)


def test_resume_across_a_growth_step_is_exact(tiny_data, tmp_path):
    """Two steps of 8 slices an epoch: epoch 1 at 32 px, the growth to 64 px in epoch 2, its fade-in over one
    step: a run stopped after epoch 1 and resumed ends with the same weights, EMA and optimiser state as one that
    ran through."""
    config = dataclasses.replace(
        get_preset("smoke"), resolution=64, num_epochs=4, grow_from=32, grow_kimg=(0.024,), grow_fade_kimg=0.008,
        ema_kimg=0.5,
    )
    full = train(config, data=tiny_data, out=tmp_path / "a", progress=False)
    part = train(dataclasses.replace(config, num_epochs=1), data=tiny_data, out=tmp_path / "b", progress=False)
    after_one = torch.load(part / "checkpoints" / "latest.pt", weights_only=True)["G"]
    train(config, data=tiny_data, resume=part, progress=False)
    a = torch.load(full / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "latest.pt", weights_only=True)
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    for opt in ("opt_G", "opt_D"):
        for i, state in a[opt]["state"].items():
            assert all(torch.equal(v, b[opt]["state"][i][k]) for k, v in state.items()), (opt, i)
    stats = [json.loads(line) for line in (full / "stats.jsonl").read_text().splitlines()]
    assert [(s["resolution"], s["fade_in"]) for s in stats] == [(32, 1.0), (64, 0.0), (64, 1.0), (64, 1.0)]
    # At 32 px only G's 32 px image layer and the blocks before it train; the 64 px layers wait for their stage.
    torch.manual_seed(config.seed)
    G0, _ = build_models(config)
    untrained = G0.state_dict()
    assert torch.equal(after_one["main.12.weight"], untrained["main.12.weight"])  # the 64 px image layer
    assert not torch.equal(after_one["to_image.32.weight"], untrained["to_image.32.weight"])
    assert not torch.equal(a["G"]["main.12.weight"], untrained["main.12.weight"])


def test_the_arms_spend_equal_minutes_at_their_measured_rates(tmp_path, capsys):
    """benchmarks.grow: each stage trains minutes x 60 x its rate images (the fade-in at its own rate)."""
    from benchmarks import grow

    rates = {k: {"images_per_s": v, "cpu": "test"} for k, v in
             {"128": 20.0, "32": 40.0, "64": 30.0, "64-fade": 25.0, "128-fade": 16.0}.items()}
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    flat, grown = grow.arm_config("flat", 0, rates), grow.arm_config("grow-15-30-45", 1, rates)
    assert flat.num_epochs * flat.epoch_images == 90 * 60 * 20 // 640 * 640 and not flat.grow_from
    fade64_s, fade128_s = 20_000 / 25.0, 20_000 / 16.0
    assert grown.grow_kimg == (15 * 60 * 40 / 1000, round((20_000 + (30 * 60 - fade64_s) * 30) / 1000, 1))
    images_128 = 20_000 + (45 * 60 - fade128_s) * 20
    assert abs(grown.num_epochs * grown.epoch_images - (sum(grown.grow_kimg) * 1000 + images_128)) < 640
    assert (grown.seed, grown.grow_from, grown.grow_fade_kimg) == (1, 32, grow.FADE_KIMG)
    grow.main(["configs", "--out", str(tmp_path), "--to", str(tmp_path / "configs"), "--seeds", "0"])
    assert sorted(p.name for p in (tmp_path / "configs").iterdir()) == [
        "flat-s0.json", "grow-10-20-60-s0.json", "grow-15-30-45-s0.json"]
    with pytest.raises(SystemExit, match="unknown run 'nope'"):
        grow.main(["train", "nope", "--out", str(tmp_path)])


def test_the_table_says_what_each_arm_took_here(tmp_path):
    """The budget is set in images; the table shows the minutes a run trained here really logged, '-' for an
    arm trained elsewhere (a lent GPU), so a slower or busier machine shows instead of hiding."""
    from benchmarks import grow
    from benchmarks.common import loop_minutes

    run = tmp_path / "runs" / "flat-s0" / "00000-flat-s0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"")
    (run / "stats.jsonl").write_text("".join(json.dumps({"epoch": e, "seconds": 600.0}) + "\n" for e in (1, 2, 3)))
    assert loop_minutes(run / "checkpoints" / "latest.pt") == 30.0
    (tmp_path / "generators").mkdir()  # a generator trained elsewhere: no run of this machine behind it
    assert loop_minutes(tmp_path / "generators" / "grow-15-30-45-s0.pt") is None
    row = {"images": 640, "fid": 30.0, "fid_over_floor": 5.0, "kid": 0.03, "swd": 10.0, "exact_copies": 0.0,
           "share_near_train_pixel": 0.01}
    results = {"flat-s0": {**row, "loop_minutes": 30.0}, "grow-15-30-45-s0": row}
    grow.write_table(tmp_path, results, {"128": {"images_per_s": 20.0, "cpu": "test"}},
                     {"fid": 6.0, "mem_share_pixel": 0.03})
    table = (tmp_path / "table.md").read_text()
    assert "| flat-s0 | 640 | 30.0 | 30.0 | 5.0 |" in table and "| grow-15-30-45-s0 | 640 | - | 30.0 |" in table


def test_the_results_document_carries_the_saved_growth_table():
    """docs/results.md shows table.md's rows as `score` wrote them, so its growth figures come from the repository."""
    from benchmarks import grow

    assert_in_results_document(grow.OUT / "table.md", keep="body")

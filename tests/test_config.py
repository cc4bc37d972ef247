"""ganlib.config: the seed preset is the reference design, exactly; presets round-trip through JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ganlib.config import ABLATION, PRESETS, TrainConfig, ablation_config, get_preset


def test_seed_is_the_reference_design():
    c = get_preset("seed")
    assert (c.resolution, c.z_dim, c.g_width, c.d_width) == (128, 100, 64, 64)
    assert (c.lr, c.betas) == (2e-4, (0.5, 0.999))
    assert (c.batch_size, c.num_epochs, c.epoch_images) == (64, 50, None)
    assert (c.loss, c.lr_step_epochs, c.lr_gamma) == ("bce", 10, 0.5)
    assert (c.val_split, c.max_images) == ("validate", None)


def test_presets_exist_and_differ_only_where_meant():
    assert {"reference", "cpu", "smoke"} <= set(PRESETS)
    # `seed`, the reference preset's old name, still works: old commands run unchanged.
    assert get_preset("seed") == PRESETS["reference"] and PRESETS["reference"].name == "reference"
    cpu = get_preset("cpu")
    assert cpu.resolution == 64 and cpu.loss == "bce" and cpu.betas == (0.5, 0.999)
    # modern is the seed (model, optimiser, schedule, budget) with DiffAugment and an EMA of G, nothing else.
    seed, modern = get_preset("seed").to_dict(), get_preset("modern").to_dict()
    changed = {k for k in seed if seed[k] != modern[k]}
    assert changed == {"name", "augment", "ema_kimg", "ema_rampup"}


def test_ablation_variants_share_the_budget_and_the_schedule_shape():
    base = get_preset("seed", resolution=64)
    configs = {v: ablation_config(v, base, 30_000, epochs=10) for v in ABLATION}
    for variant, c in configs.items():
        assert (c.num_epochs, c.epoch_images, c.lr_step_epochs) == (10, 3_000, 2), variant
        assert all(getattr(c, k) == v for k, v in ABLATION[variant].items()), variant
    budget_only = dict(name="ablation-seed", num_epochs=10, epoch_images=3_000, lr_step_epochs=2)
    assert configs["seed"] == dataclasses.replace(base, **budget_only)
    with pytest.raises(ValueError, match="unknown ablation variant 'x'"):
        ablation_config("x", base, 30_000)


def test_overrides_and_errors():
    assert get_preset("cpu", num_epochs=3).num_epochs == 3
    with pytest.raises(ValueError, match="unknown preset 'big'"):
        get_preset("big")
    with pytest.raises(TypeError):
        get_preset("seed", no_such_field=1)


def test_the_constant_rate_preset_is_dcgan_rp_without_its_halvings():
    import dataclasses

    best, base = get_preset("dcgan-rp-constlr"), get_preset("dcgan-rp")
    assert best.lr_gamma == 1.0 and base.lr_gamma == 0.5
    assert dataclasses.replace(best, name=base.name, lr_gamma=base.lr_gamma) == base


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name):
    c = PRESETS[name]
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_unknown_stored_field_is_reported():
    with pytest.raises(ValueError, match="unknown config fields \\['colour'\\]"):
        TrainConfig.from_dict({**get_preset("seed").to_dict(), "colour": "blue"})


def test_configs_stored_by_an_older_ganlib_still_load():
    """Shipped checkpoints and old runs hold fields that were merged or dropped; they load as today's fields."""
    old = {**get_preset("modern").to_dict(), "lr_g": 2e-4, "lr_d": 2e-4, "ema_beta": 0.999, "res_blocks": 1,
           "init_std": 0.02, "split": "train"}
    for key in ("lr", "ema_kimg", "ema_rampup"):
        old.pop(key)
    c = TrainConfig.from_dict(old)
    assert c.lr == 2e-4 and c.ema_kimg == pytest.approx(44.34) and c.ema_rampup == 0.05
    assert c == get_preset("modern")  # the preset is that EMA, as a half-life
    with pytest.raises(ValueError, match="one rate, lr"):
        TrainConfig.from_dict({**old, "lr_g": 1e-4})
    with pytest.raises(ValueError, match="res_blocks: this ganlib no longer has the option"):
        TrainConfig.from_dict({**old, "res_blocks": 2})


def test_every_field_is_used_by_a_preset_or_is_bookkeeping():
    """An option earns its place: each field differs from the seed in some preset, or is the seed's own recipe."""
    seed = get_preset("seed").to_dict()
    varied = {k for c in PRESETS.values() for k, v in c.to_dict().items() if v != seed[k]}
    # The seed's recipe (its values are the design), and switches set by a recorded run rather than a preset.
    recipe = {"z_dim", "batch_size", "lr", "lr_step_epochs"}
    recorded = {"subject_share", "val_split", "compile", "sync_bn", "channels_last", "amp", "seed", "num_epochs"}
    recorded |= {"grow_from", "grow_kimg", "grow_fade_kimg"}  # benchmarks.grow's arms
    recorded |= {"d_features", "d_features_res", "d_pixel"}  # benchmarks.projected's arms
    recorded |= {"condition_kimg", "mode_seeking", "mode_seeking_cap", "mode_seeking_n"}  # sharing.py
    assert set(seed) == varied | recipe | recorded, set(seed) - varied - recipe - recorded

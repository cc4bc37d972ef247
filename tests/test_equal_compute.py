"""benchmarks.equal_compute: the budget in images follows from the measured rate, and the "best" recipe is
the new recipe with the lowest FID at 15 minutes."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ec():
    from benchmarks import equal_compute

    return equal_compute


def test_budget_fills_the_minutes_in_whole_batches(ec):
    config = ec.job_config("dcgan-rp", 15, 1, rate=170.5)
    total = config.num_epochs * config.epoch_images
    assert total == 152_960 and config.epoch_images % config.batch_size == 0  # 170.5 * 900 = 153,450
    assert 170.5 * 900 - total < config.batch_size * config.num_epochs
    assert config.seed == 1 and config.name == "dcgan-rp-15min-s1" and config.val_split == ""
    assert config.lr_step_epochs == 2  # four halvings, as the seed's 50 epochs have
    # The preset behind the recipe is unchanged apart from the budget fields.
    assert config.loss == "rpgan" and config.arch == "dcgan" and config.d_norm == "none"


def test_best_recipe_is_the_lowest_new_fid_at_15_minutes(ec):
    results = {
        "floor-heldout-n2000": {"metrics": {"fid": 5.0}},
        "seed-15min-s0": {"recipe": "seed", "minutes": 15, "seed": 0, "metrics": {"fid": 40.0}},
        "modern-15min-s0": {"recipe": "modern", "minutes": 15, "seed": 0, "metrics": {"fid": 41.0}},
        "r3gan-15min-s0": {"recipe": "r3gan", "minutes": 15, "seed": 0, "metrics": {"fid": 90.0}},
        "dcgan-rp-15min-s0": {"recipe": "dcgan-rp", "minutes": 15, "seed": 0, "metrics": {"fid": 60.0}},
        "r3gan-45min-s0": {"recipe": "r3gan", "minutes": 45, "seed": 0, "metrics": {"fid": 10.0}},
    }
    assert ec.best_recipe(results) == "dcgan-rp"  # seed and modern are the baselines, 45-minute runs don't count
    with pytest.raises(SystemExit, match="no new recipe"):
        ec.best_recipe({"seed-15min-s0": results["seed-15min-s0"]})


def _generator_file(path: Path, config, images: int) -> Path:
    """An exported generator as gpu_run.py equal returns them: fp16 weights, config and stats inside."""
    import json

    import torch

    from ganlib.models import build_generator

    G = build_generator(config)
    stats = [{"epoch": config.num_epochs, "images_seen": images, "seconds": 1.0}]
    torch.save({"G": {k: v.half() for k, v in G.state_dict().items()}, "config": config.to_dict(),
                "epoch": config.num_epochs, "step": 1, "stats": json.dumps(stats)}, path)
    return path


@pytest.mark.parametrize("fault", ["budget", "recipe", "unfinished", "foreign"])
def test_score_refuses_a_generator_that_is_not_its_jobs(ec, tmp_path, fault):
    """A generator trained elsewhere is scored only if it is exactly its job: the recipe, the image budget the
    CPU's rate gives, and all of it trained; anything else is one clear refusal and nothing is written."""
    import argparse
    import dataclasses
    import shutil

    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(ec.OUT / "rates.json", out / "rates.json")
    rate = ec.read_json(out / "rates.json")["seed"]["images_per_s"]
    config = ec.job_config("seed", 15, 1, rate)
    images = config.num_epochs * config.epoch_images
    if fault == "budget":
        config = dataclasses.replace(config, epoch_images=config.epoch_images * 2)
    elif fault == "recipe":
        config = dataclasses.replace(config, d_norm="spectral")
    elif fault == "foreign":  # a generator of some other run: its config does not name a job
        config = dataclasses.replace(config, name="seed")
    else:
        images //= 2
    (tmp_path / "gens").mkdir()
    _generator_file(tmp_path / "gens" / "seed-15min-s1.pt", config, images)
    args = argparse.Namespace(out=out, generators=tmp_path / "gens", runs=tmp_path / "runs", data=None,
                              inception_weights=None, trained_on="test")
    expected = {"unfinished": "of its budget", "foreign": "'seed' is not an equal-compute job's config"}.get(
        fault, "its config is not the seed-15min-s1 job's")
    with pytest.raises(SystemExit, match=expected):
        ec.score(args)
    assert not (out / "results.json").exists()


def test_job_key_is_its_configs_name(ec):
    job = ec.Job("dcgan-rp-g48", 90, 1)
    assert job.key == "dcgan-rp-g48-90min-s1" and ec.Job.from_key(job.key) == job
    assert job.config({"dcgan-rp-g48": {"images_per_s": 41.1}}).name == job.key
    with pytest.raises(SystemExit, match="no measured rate for dcgan-rp-g48"):
        job.config({})


def test_levers_are_one_switch_each_on_their_base_and_have_rates(ec):
    import dataclasses

    rates = ec.read_json(ec.OUT / "rates.json")
    for levers, base_name in ((ec.LEVERS, "dcgan-rp"), (ec.CONSTLR_LEVERS, "dcgan-rp-constlr")):
        base = ec.get_preset(base_name)
        for name, switches in levers.items():
            assert ec.RECIPES[name] == dataclasses.replace(base, **switches) != base
            assert name in rates, f"{name}: measure its rate here first (equal_compute.py measure --recipes {name})"
    became_a_preset = ec.get_preset("dcgan-rp-constlr")  # the lever that paid, under its own name
    assert ec.RECIPES["dcgan-rp-constlr"] == dataclasses.replace(became_a_preset, name="dcgan-rp")
    assert sorted(ec.LEVER_JOBS) == sorted((name, 45, seed) for name in ec.CONSTLR_LEVERS for seed in (0, 1))


def test_summary_gives_mean_and_spread_over_seeds(ec, tmp_path):
    results = {
        "floor-heldout-n2000": {"metrics": {"fid": 5.0, "kid_mean": 0.001, "swd": 9.0}},
        "seed-45min-s0": {"recipe": "seed", "minutes": 45, "seed": 0, "metrics": {"fid": 40.0}},
        "seed-45min-s1": {"recipe": "seed", "minutes": 45, "seed": 1, "metrics": {"fid": 50.0}},
        "dcgan-rp-15min-s0": {"recipe": "dcgan-rp", "minutes": 15, "seed": 0, "metrics": {"fid": 60.0}},
    }
    rows = ec.summarise(results)
    assert [(r["recipe"], r["minutes"], r["seeds"]) for r in rows] == [("dcgan-rp", 15, 1), ("seed", 45, 2)]
    assert rows[1]["fid_mean"] == 45.0 and rows[1]["fid_spread"] == 10.0 and rows[1]["fid_max"] == 50.0
    for r in results.values():
        if "recipe" in r:
            r.update(images=1, rate_images_per_s=1.0, trained_on="NVIDIA H100 (gpu_run.py equal)")
            r["metrics"].update(kid_mean=0.1, swd=10.0)
    ec.write_report(tmp_path, results)
    table = (tmp_path / "table.md").read_text()
    assert "| seed | 45 | 1 | 1 | 1.0 | H100 | 50.0 | 10.0x |" in table  # a run, and where it trained
    assert "| seed | 45 | 2 | 45.0 | 10.0 | 10.0x |" in table  # the recipe at 45 minutes over its two seeds
    assert (tmp_path / "fid_vs_minutes.png").stat().st_size > 0


def test_the_machine_is_named_by_its_vector_unit(monkeypatch):
    """Budgets come from measured rates, so results name the CPU with what sets its speed on this code: two
    'AMD EPYC, 2 cores' machines, one with bf16 units and one with AVX2 only, are different machines."""
    from benchmarks import common, flops

    def machine(flags):
        monkeypatch.setattr(flops, "cpu_info", lambda: {"model": "AMD EPYC", "mhz": 0.0, "cores": 2, "flags": flags})
        return common.cpu_name()

    assert machine(["avx2", "fma"]) == "AMD EPYC, 2 cores, AVX2"
    assert machine(["avx2", "avx512f", "avx512_bf16"]) == "AMD EPYC, 2 cores, AVX-512 bf16"
    assert machine(["avx2", "avx512f", "amx_bf16", "amx_tile"]) == "AMD EPYC, 2 cores, AMX"
    monkeypatch.setattr(flops, "cpu_info", lambda: {"model": "unknown", "mhz": 0.0, "cores": 2, "flags": []})
    assert common.cpu_name() == ""

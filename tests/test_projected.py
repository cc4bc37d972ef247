"""The projected D (`d_features`): heads on a frozen U-Net. The U-Net never changes while D trains, G's gradient
reaches it through the frozen network, a run resumes exactly, and a missing or foreign feature file is refused
in one line."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch

from ganlib.config import get_preset
from ganlib.models import build_models
from ganlib.pairs.segment import UNet
from ganlib.projected import HEAD_LEVELS, ProjectedDiscriminator, load_features, save_features
from ganlib.train import train
from tests.conftest import assert_in_results_document
from tests.test_evaluate import tiny_weights  # noqa: F401  (a fixture: a small TorchScript "Inception")


@pytest.fixture
def features_file(tmp_path):
    """A small U-Net (random weights: what matters here is that it stays as it is) as a feature network file."""
    torch.manual_seed(5)
    unet = UNet(width=4)
    for m in unet.modules():  # BatchNorm statistics that are not the defaults, so eval mode shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "unet.pt"
    save_features(unet, path, {"note": "test"})
    return path


def projected(features_file, **overrides):
    base = dict(d_norm="none", loss="rpgan", r1_gamma=1.0, r2_gamma=1.0, r1_every=2, betas=(0.0, 0.99),
                d_features=str(features_file), d_features_res=32)
    return dataclasses.replace(get_preset("smoke"), **{**base, **overrides})


@pytest.mark.parametrize("pixel", [True, False])
def test_the_feature_network_stays_frozen_and_the_heads_learn(features_file, tiny_data, tmp_path, pixel):
    config = projected(features_file, d_pixel=pixel)
    run = train(config, data=tiny_data, out=tmp_path / "runs", progress=False)
    D = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["D"]
    frozen = load_features(str(features_file)).state_dict()
    assert all(torch.equal(D[f"features.{k}"], v) for k, v in frozen.items())  # weights and BatchNorm statistics
    torch.manual_seed(config.seed)
    _, D0 = build_models(config)
    start = D0.state_dict()
    heads = [k for k in D if k.startswith("heads.")]
    assert heads and all(not torch.equal(D[k], start[k]) for k in heads if k.endswith("weight"))
    assert any(k.startswith("pixel.") for k in D) == pixel
    assert all(torch.equal(D[f"mix{level}"], start[f"mix{level}"]) for level in HEAD_LEVELS)  # fixed mixing


def test_gs_gradient_reaches_it_through_the_frozen_network(features_file):
    """With the heads alone (no pixel D), G's loss has a gradient for every G weight, and none for the U-Net."""
    G, D = build_models(projected(features_file, d_pixel=False))
    assert isinstance(D, ProjectedDiscriminator) and D.pixel is None
    D.train()
    assert not D.features.training  # BatchNorm keeps its stored statistics while D trains
    loss = -D.logits(G(torch.randn(4, 100))).mean()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert all(p.grad is None for p in D.features.parameters())
    assert all(p.grad is not None for p in D.heads.parameters())


def test_resume_is_exact(features_file, tiny_data, tmp_path):
    config = projected(features_file, num_epochs=2)
    full = train(config, data=tiny_data, out=tmp_path / "a", progress=False)
    part = train(dataclasses.replace(config, num_epochs=1), data=tiny_data, out=tmp_path / "b", progress=False)
    train(config, data=tiny_data, resume=part, progress=False)
    a, b = (torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for r in (full, part))
    for net in ("G", "D"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert json.loads(a["stats"])[-1]["loss_D"] == json.loads(b["stats"])[-1]["loss_D"]


def test_missing_foreign_and_unsupported_are_refused(features_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="d_features=.*nope.pt: no feature network at .*benchmarks.projected"):
        build_models(projected(tmp_path / "nope.pt"))
    torch.save({"G": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="foreign.pt is not a feature network written by ganlib"):
        build_models(projected(tmp_path / "foreign.pt"))
    with pytest.raises(ValueError, match="cannot be combined with d_norm='batch'"):
        build_models(projected(features_file, d_norm="batch"))
    with pytest.raises(ValueError, match="cannot be combined with positions"):
        build_models(projected(features_file, positions=32))
    with pytest.raises(ValueError, match="d_features_res=20"):
        build_models(projected(features_file, d_features_res=20))


def test_the_cli_refuses_a_missing_feature_network_in_one_line(tiny_data, capsys):
    from ganlib.cli import main

    code = main(["train", "--preset", "smoke", "--data", str(tiny_data), "--set", "d_norm=none",
                 "--set", "d_features=no_such_net"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "d_features=no_such_net: no feature network at" in err


def test_the_benchmark_trains_a_feature_network_and_budgets_its_arms(tiny_data, tmp_path, capsys):
    """benchmarks.projected: `features` writes a U-Net file a run can use; each arm trains its minutes x 60 x its
    measured rate images."""
    from benchmarks import projected as bench

    out = tmp_path / "unet64.pt"
    bench.main(["features", "--data", str(tiny_data), "--max-steps", "2", "--features-out", str(out)])
    report = torch.load(out, weights_only=True)["report"]
    assert report["steps"] == 2 and 0 <= report["test_dice"] <= 1 and "4 training subjects" in report["trained_on"]
    assert "test subjects" in out.with_suffix(".md").read_text()
    assert isinstance(load_features(str(out)), UNet)

    rates = {name: {"images_per_s": 10.0 * (i + 1), "cpu": "test"} for i, name in enumerate(bench.ARMS)}
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    bench.main(["configs", "--out", str(tmp_path), "--to", str(tmp_path / "configs"), "--seeds", "0"])
    configs = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "configs").iterdir()}
    assert sorted(configs) == sorted(f"{name}-s0" for name in bench.ARMS if name not in bench.RATE_ONLY)
    for name, (base, minutes) in bench.ARMS.items():
        if name in bench.RATE_ONLY:
            continue
        c = configs[f"{name}-s0"]
        assert abs(c["num_epochs"] * c["epoch_images"] - minutes * 60 * rates[name]["images_per_s"]) < 10 * 64
        assert (c["d_features"], c["d_pixel"], c["resolution"]) == (base.d_features, base.d_pixel, base.resolution)
    with pytest.raises(SystemExit, match="unknown run 'nope'"):
        bench.main(["train", "nope", "--out", str(tmp_path)])
    rates["constlr128"]["scaled_to"] = "flat"  # as scale-rates writes it: then constlr128 is benchmarks.grow's arm
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    with pytest.raises(SystemExit, match="constlr128-s0: not trained here; .* benchmarks.grow train flat-s0"):
        bench.main(["train", "constlr128-s0", "--out", str(tmp_path)])


def test_score_rates_an_arm_trained_elsewhere_against_its_floor(tiny_data, tmp_path, tiny_weights):  # noqa: F811
    """`score --generators DIR` scores NAME.pt files (a lent GPU's), writes results.json and the table, and skips
    what is neither there nor trained here."""
    from benchmarks import projected as bench
    from ganlib.checkpoint import export_generator

    rates = {name: {"images_per_s": 50.0, "cpu": "test CPU"} for name in bench.ARMS}
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    run = train(dataclasses.replace(get_preset("smoke"), num_epochs=1), data=tiny_data, out=tmp_path / "gan",
                progress=False)
    (tmp_path / "gens").mkdir()
    export_generator(run / "checkpoints" / "latest.pt", tmp_path / "gens" / "constlr64-s0.pt")
    bench.main(["score", "--data", str(tiny_data), "--out", str(tmp_path), "--runs", str(tmp_path / "runs"),
                "--generators", str(tmp_path / "gens"), "--inception-weights", str(tiny_weights), "--n", "8",
                "--seeds", "0", "--trained-on", "a test"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["constlr64-s0"]
    row = results["constlr64-s0"]
    assert row["fid"] > 0 and row["fid_over_floor"] == row["fid"] / row["floor_fid"] and row["trained_on"] == "a test"
    assert (row["resolution"], row["minutes_here"]) == (64, 45) and "loop_minutes" not in row  # not trained here
    assert "| constlr64-s0 | 64 | 45 |" in (tmp_path / "table.md").read_text()
    # the audit's nearest-pair figures show training slices: kept out of the results folder
    assert not list((tmp_path / "constlr64-s0").glob("memorization_pairs_*")) and not list(
        (tmp_path / "floor-64").glob("memorization_pairs_*"))
    assert list((tmp_path / "runs" / "audit-pairs").rglob("memorization_pairs_*"))
    assert (tmp_path / "samples-constlr64-s0.png").exists()


def test_training_one_arm_needs_only_its_own_rate(tiny_data, tmp_path):
    """`train constlr64-s0` before the other arms' rates are measured goes on to training (here it stops at the
    tiny data's 16 slices, fewer than a batch) instead of refusing for want of proj128's rate; an arm without a
    rate is refused by name."""
    from benchmarks import projected as bench

    (tmp_path / "rates.json").write_text(json.dumps({"constlr64": {"images_per_s": 100.0, "cpu": "test"}}))
    with pytest.raises(ValueError, match="fewer than batch size 64"):
        bench.main(["train", "constlr64-s0", "--data", str(tiny_data), "--out", str(tmp_path),
                    "--runs", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match="no rate for proj64; run"):
        bench.main(["train", "proj64-s0", "--data", str(tiny_data), "--out", str(tmp_path)])


def test_the_128px_rates_are_scaled_to_the_flat_arms_budget(tmp_path):
    """`scale-rates` takes constlr128 and proj128 measured on one machine and scales both so that constlr128 trains
    flat-s0's images (benchmarks.grow's 128 px rate): proj128 keeps its measured ratio, so it gets fewer images by
    what its heads cost per step. A folder without both rates is refused in one line."""
    from benchmarks import grow
    from benchmarks import projected as bench
    from benchmarks.common import RESULTS

    flat = json.loads((RESULTS / "grow-cpu128" / "rates.json").read_text())["128"]["images_per_s"]
    here = tmp_path / "machine"
    here.mkdir()
    (here / "rates.json").write_text(json.dumps({"constlr128": {"images_per_s": 5.0, "cpu": "test"},
                                                 "proj128": {"images_per_s": 4.0, "cpu": "test", "why": "there"}}))
    bench.main(["scale-rates", "--rates-from", str(here), "--out", str(tmp_path)])
    rates = json.loads((tmp_path / "rates.json").read_text())
    assert rates["constlr128"]["images_per_s"] == flat and rates["proj128"]["images_per_s"] == round(flat * 0.8, 1)
    assert rates["proj128"]["measured_images_per_s"] == 4.0 and "why" not in rates["proj128"]  # the source's reason
    assert bench.rate_said(rates["proj128"]) == f"{round(flat * 0.8, 1)} (scaled from 4.0 on test)"
    configs = bench.arm_configs(argparse.Namespace(out=tmp_path, arms=["constlr128", "proj128"], seeds=[0],
                                                   minutes=None))
    assert configs[1].num_epochs * configs[1].epoch_images < configs[0].num_epochs * configs[0].epoch_images
    flat_s0 = grow.arm_config("flat", 0, json.loads((RESULTS / "grow-cpu128" / "rates.json").read_text()))
    assert configs[0].num_epochs * configs[0].epoch_images == flat_s0.num_epochs * flat_s0.epoch_images

    (here / "rates.json").write_text(json.dumps({"proj128": {"images_per_s": 4.0}}))
    with pytest.raises(SystemExit, match="no rate for constlr128"):
        bench.main(["scale-rates", "--rates-from", str(here), "--out", str(tmp_path)])


def test_a_slower_machine_compares_the_128px_arms_at_minutes_of_its_own(tmp_path, monkeypatch):
    """With both 128 px rates measured on one machine (not scaled to flat-s0's), `--minutes` trains constlr128 and
    proj128 for those minutes of that machine, each at its own rate, in a runs folder named after `--out`: the
    comparison a machine too slow for 90 minutes' worth of flat-s0's images can make."""
    from benchmarks import projected as bench

    out = tmp_path / "projected-slow"
    out.mkdir()
    rates = {"constlr128": {"images_per_s": 6.9, "cpu": "test"}, "proj128": {"images_per_s": 6.6, "cpu": "test"}}
    (out / "rates.json").write_text(json.dumps(rates))
    seen = {}
    monkeypatch.setattr(bench, "train_named", lambda configs, name, runs, data: seen.update(
        {name: ({c.name: c for c in configs}[name], runs)}))
    for arm in ("constlr128-s0", "proj128-s0"):
        bench.main(["train", arm, "--minutes", "44", "--out", str(out)])
    for arm, rate in (("constlr128-s0", 6.9), ("proj128-s0", 6.6)):
        config, runs = seen[arm]
        assert 0 <= 44 * 60 * rate - config.num_epochs * config.epoch_images < config.num_epochs * config.batch_size
        assert config.resolution == 128 and runs == bench.RUNS / "projected-slow"
    assert (seen["constlr128-s0"][0].d_features, seen["proj128-s0"][0].d_features) == ("", bench.FEATURES)


def test_the_results_document_carries_the_scored_tables_as_score_wrote_them():
    """docs/results.md shows the rows of every projected results folder's table.md as `score` wrote them from
    results.json (each `--out` folder that was scored: 64 px on the faster machine, 128 px on the AVX2 one)."""
    from benchmarks import projected as bench

    tables = sorted(bench.RESULTS.glob("projected*/table.md"))
    assert bench.RESULTS / "projected" / "table.md" in tables, tables
    for table in tables:
        assert_in_results_document(table)

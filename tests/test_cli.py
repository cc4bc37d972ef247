"""The `ganlib` command: each subcommand's happy path and its one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganlib.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganlib", *args], capture_output=True, text=True, cwd=REPO)


def test_help_for_every_subcommand():
    for sub in ("train", "sample", "info", "evaluate"):
        r = run_cli(sub, "--help")
        assert r.returncode == 0 and "usage: ganlib " + sub in r.stdout


def test_train_then_sample(tiny_data, tmp_path, capsys):
    assert main(["train", "--preset", "smoke", "--data", str(tiny_data), "--out", str(tmp_path / "runs"),
                 "--epochs", "1", "--export", str(tmp_path / "img")]) == 0  # fmt: skip
    run = tmp_path / "runs" / "00000-smoke"
    assert f"run folder: {run}" in capsys.readouterr().out
    assert (tmp_path / "img" / "smoke_samples.png").exists() and (tmp_path / "img" / "smoke_losses.png").exists()
    assert main(["sample", "--checkpoint", str(run), "--n", "5", "--seed", "3", "--out", str(tmp_path / "s")]) == 0
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == ["grid.png"] + [f"sample_{i:04d}.png" for i in range(5)]
    assert Image.open(tmp_path / "s" / "sample_0000.png").size == (32, 32)


def test_info_counts_the_splits(tiny_data):
    r = run_cli("info", "--data", str(tiny_data))
    assert r.returncode == 0
    assert re.search(r"train\s+16 slices", r.stdout) and re.search(r"test\s+4 slices", r.stdout)
    assert "torch 2." in r.stdout


def test_info_on_the_demo_set_says_so(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-m", "ganlib", "info"], capture_output=True, text=True, cwd=tmp_path, env=env)
    if (REPO / "keras_png_slices_data" / "keras_png_slices_train").is_dir():
        pytest.skip("this checkout has OASIS in keras_png_slices_data/")
    assert r.returncode == 0 and "bundled demo set" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "huge"], "invalid choice: 'huge'"),
        (["train", "--epochs", "0"], "expected a positive whole number, got '0'"),
        (["train", "--data", "/no/such/folder"], "--data points to /no/such/folder, which is not a folder"),
        (["sample", "--checkpoint", "/no/such.pt", "--out", "x"], "checkpoint /no/such.pt does not exist"),
        (["info", "--data", "/no/such/folder"], "which is not a folder"),
    ],
)
def test_bad_options_give_one_line(args, message):
    r = run_cli(*args)
    assert r.returncode != 0 and message in r.stderr
    assert "Traceback" not in r.stderr


def test_broken_data_is_named(tiny_data):
    bad = tiny_data / "keras_png_slices_train" / "case_004_slice_2.nii.png"
    bad.write_bytes(b"not an image")
    r = run_cli("train", "--preset", "smoke", "--data", str(tiny_data), "--out", str(tiny_data.parent / "runs"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip().splitlines()[-1].startswith("ganlib train: error: ") and "case_004_slice_2.nii.png" in r.stderr
    )


def test_damaged_checkpoint_is_named(tmp_path):
    bad = tmp_path / "latest.pt"
    bad.write_bytes(b"garbage")
    r = run_cli("sample", "--checkpoint", str(bad), "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "not a readable ganlib checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_resume_of_a_folder_without_checkpoint(tmp_path):
    r = run_cli("train", "--preset", "smoke", "--resume", str(tmp_path))
    assert r.returncode == 2 and "without checkpoints/latest.pt" in r.stderr


def test_sample_streams_in_batches_and_draws_what_one_batch_would(tiny_data, tmp_path):
    """More samples than one batch: every file written, the same images as one pass over one latent stream."""
    import torch

    from ganlib.checkpoint import load_generator
    from ganlib.cli import SAMPLE_BATCH
    from ganlib.data import to_uint8
    from ganlib.models import sample

    n = SAMPLE_BATCH + 44
    assert main(["sample", "--checkpoint", "cpu_demo", "--n", str(n), "--seed", "2", "--out", str(tmp_path / "s")]) == 0
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == ["grid.png"] + [f"sample_{i:04d}.png" for i in range(n)]
    G, config = load_generator("cpu_demo")
    expected = to_uint8(sample(G, torch.randn(n, config.z_dim, generator=torch.Generator().manual_seed(2))))
    for i in (0, SAMPLE_BATCH - 1, SAMPLE_BATCH, n - 1):
        written = torch.from_numpy(np.asarray(Image.open(tmp_path / "s" / f"sample_{i:04d}.png")))
        assert torch.equal(written, expected[i, 0]), i
    assert Image.open(tmp_path / "s" / "grid.png").size == (8 * 66 + 2, 8 * 66 + 2)  # the first 64, 8 by 8


def test_sample_refuses_up_front_what_the_disk_cannot_hold(tmp_path, capsys):
    """A billion samples: one line naming the sizes, nothing written, no traceback."""
    out = tmp_path / "huge"
    assert main(["sample", "--checkpoint", "cpu_demo", "--n", "1000000000", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganlib sample: error: --n 1000000000: up to") and "GB free" in err
    assert len(err.splitlines()) == 1 and not out.exists()

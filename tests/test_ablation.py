"""benchmarks/ablation.py end to end on the bundled demo set: a table that grows across invocations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ganlib.data import DEMO_ROOT

REPO = Path(__file__).resolve().parents[1]


def ablation(out: Path, runs: Path, variants: str) -> subprocess.CompletedProcess:
    args = ["--data", str(DEMO_ROOT), "--resolution", "32", "--kimg", "1", "--epochs", "2", "--n", "32"]
    args += ["--metrics", "swd,msssim", "--variants", variants, "--out", str(out), "--runs", str(runs)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "benchmarks.ablation", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


def test_ablation_keeps_done_variants_and_every_command(tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    first = ablation(out, runs, "seed")
    assert first.returncode == 0, first.stderr[-2000:]
    table = json.loads((out / "ablation.json").read_text())
    assert list(table["results"]) == ["seed"]
    seed_run = table["results"]["seed"]["run"]
    assert (runs / seed_run / "checkpoints" / "latest.pt").is_file()
    assert table["results"]["seed"]["config"]["epoch_images"] == 500

    second = ablation(out, runs, "seed,modern")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "seed already done, kept" in second.stdout
    table = json.loads((out / "ablation.json").read_text())
    assert list(table["results"]) == ["seed", "modern"]
    assert table["results"]["seed"]["run"] == seed_run  # not retrained
    modern = table["results"]["modern"]["config"]
    assert (modern["augment"], modern["ema_kimg"]) == ("translation,cutout", 44.34)
    assert len(table["meta"]["commands"]) == 2 and "--variants seed,modern" in table["meta"]["commands"][1]
    assert {"swd", "msssim_gap"} <= set(table["results"]["modern"]["metrics"])
    md = (out / "ablation.md").read_text().splitlines()
    assert md[2].startswith("| seed |") and md[3].startswith("| modern |")
    assert (out / "samples.png").is_file() and not list(out.glob("*/report.json"))


def test_ablation_rejects_an_unknown_variant(tmp_path):
    r = ablation(tmp_path / "out", tmp_path / "runs", "seed,+nonsense")
    assert r.returncode == 2 and "unknown variants ['+nonsense']" in r.stderr
    assert not (tmp_path / "out" / "ablation.json").exists()

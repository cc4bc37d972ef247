"""benchmarks/epoch_vs_step.py on tiny data: both parts run and the accounting adds up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_layout

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "epoch_vs_step.py"


def test_step_alone_and_real_epochs_on_tiny_data(tmp_path):
    data = write_layout(tmp_path / "data", {"train": [1, 2, 3, 4], "validate": [402]}, slices=8)
    out = tmp_path / "r.json"
    args = ["--preset", "smoke", "--data", str(data), "--epochs", "2", "--steps", "2", "--warmup", "1"]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["step_alone"]["images_per_s"] > 0 and r["step_alone"]["steps"] == 2
    epochs = r["real_epochs"]
    assert [e["epoch"] for e in epochs["epochs"]] == [1, 2] and "--preset smoke --epochs 2" in epochs["command"]
    assert epochs["process_wall_s"] >= epochs["training_loop_s"] > 0
    assert abs(epochs["outside_the_loop_s"] - (epochs["process_wall_s"] - epochs["training_loop_s"])) < 0.11

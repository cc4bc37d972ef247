"""benchmarks/determinism.py on tiny data: the same run repeated on one thread is bit-identical, and the
script reports every comparison it promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import write_layout

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "determinism.py"


def test_repeats_on_one_thread_are_identical(tmp_path):
    data = write_layout(tmp_path / "data", {"train": [1, 2], "validate": [402]}, slices=8)
    out = tmp_path / "d.json"
    args = ["--preset", "smoke", "--data", str(data), "--images", "16", "--json", str(out)]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = {(d["a"], d["b"]): d["max_abs_weight_diff"] for d in json.loads(out.read_text())["comparisons"]}
    assert len(diffs) == 5 and all(v >= 0 for v in diffs.values())
    assert diffs[("1 thread, bf16", "1 thread, bf16 (again)")] == 0.0
    assert diffs[("1 thread, bf16", "1 thread, float32")] > 0  # bf16 autocast changes the arithmetic

"""benchmarks.split_table on tiny data: the documented commands run for two seeds, the table collects them, a
second call skips finished jobs and resumes a training whose report is missing."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import split_table
from tests.conftest import write_layout

CHEAP = ["--metrics", "swd,msssim,memorization"]  # no Inception weights in this test


def test_two_seeds_a_floor_and_a_resume(tmp_path, monkeypatch, capfd):
    data = write_layout(tmp_path / "data", {"train": [1, 2, 3, 4], "validate": [401], "test": [402, 403]}, slices=8)
    monkeypatch.setattr(split_table, "JOBS", {"smoke": (["--preset", "smoke", "--epochs", "1"], ["--n", "16", *CHEAP])})
    monkeypatch.setattr(split_table, "FLOORS", {"floor32": ["--resolution", "32", "--n", "8", *CHEAP]})
    args = ["--data", str(data), "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]
    split_table.main(args)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(results) == ["floor32", "smoke-s0", "smoke-s1"]
    assert results["smoke-s0"]["swd"] > 0 and results["smoke-s0"]["mem_exact_copies"] == 0
    assert results["smoke-s0"]["swd"] != results["smoke-s1"]["swd"]  # two training seeds, two generators
    table = (tmp_path / "out" / "table.md").read_text().splitlines()
    assert table[0].startswith("| job | fid |") and len(table) == 2 + 3
    assert "--seed 1" in capfd.readouterr().out
    assert not list((tmp_path / "out").rglob("memorization_pairs_*.png"))  # they show real (training) slices
    assert (tmp_path / "runs" / "smoke-s0" / "audit-figures" / "memorization_pairs_pixel.png").exists()

    (tmp_path / "out" / "smoke-s1" / "report.json").unlink()
    split_table.main(args)
    out = capfd.readouterr().out
    assert out.count("$ ganlib train") == 1 and "--resume" in out and out.count("$ ganlib evaluate") == 1
    assert sorted(json.loads((tmp_path / "out" / "results.json").read_text())) == sorted(results)


def test_the_jobs_are_the_results_documents_commands():
    """The table's commands are the ones docs/results.md gives a reader to reproduce it."""
    lines = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text().splitlines()
    for train_args, eval_args in split_table.JOBS.values():
        assert any(line.startswith("ganlib train " + " ".join(train_args) + " ") for line in lines)
        assert any(line.startswith("ganlib evaluate --checkpoint") and " ".join(eval_args) in line for line in lines)
    for floor_args in split_table.FLOORS.values():
        assert any(line.startswith("ganlib evaluate --real-floor " + " ".join(floor_args)) for line in lines)

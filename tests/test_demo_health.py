"""benchmarks.demo_health on tiny data: every run is counted, a collapsed one is called so, finished runs are kept."""

from __future__ import annotations

import json

from benchmarks import demo_health
from tests.conftest import write_layout


def test_runs_are_counted_kept_and_drawn(tmp_path, monkeypatch, capsys):
    data = write_layout(tmp_path / "data", {"train": [1, 2, 3, 4], "validate": [401]}, slices=8)
    args = ["--presets", "smoke", "--seeds", "0", "1", "--epochs", "1", "--data", str(data),
            "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]
    demo_health.main(args)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(k for k in results if k != "meta") == ["smoke-s0", "smoke-s1"]
    for r in (results["smoke-s0"], results["smoke-s1"]):
        assert r["epochs"] == 1 and r["images"] > 0
        assert r["collapsed"] == (r["sample_spread"] < demo_health.COLLAPSED_BELOW)
    # One epoch of the tiny smoke model draws nearly the same image for every latent: collapsed, and said so.
    assert results["smoke-s0"]["collapsed"] and results["smoke-s1"]["collapsed"]
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| `smoke` | 1 |" in table and "- `smoke`: 2 of 2 runs collapsed" in table
    assert (tmp_path / "out" / "samples.png").exists()
    # A second call trains nothing: the finished runs are kept.
    monkeypatch.setattr(demo_health, "train_or_resume", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    demo_health.main(args)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["smoke-s0"] == results["smoke-s0"]

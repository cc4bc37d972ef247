"""benchmarks.cpu128: the 128x128 model trained for an image budget fixed from this CPU's rate, resumable,
then scored beside the floor, audited and exported; it refuses to ship a run that has not finished."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganlib.checkpoint import PRETRAINED_DIR, load_generator
from tests.conftest import write_layout
from tests.test_evaluate import tiny_weights  # noqa: F401  (a fixture: a small TorchScript "Inception")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cpu128():
    from benchmarks import cpu128

    return cpu128


@pytest.mark.slow
def test_train_resume_finish_on_tiny_data(cpu128, tmp_path, tiny_weights, monkeypatch):  # noqa: F811
    data = write_layout(tmp_path / "data", {"train": [1, 2, 3, 4], "validate": [402], "test": [441]}, slices=16)
    out, runs = tmp_path / "out", tmp_path / "runs"
    out.mkdir()
    (out / "rate.json").write_text(json.dumps({"dcgan-rp": {"images_per_s": 1.1}}))  # 10 epochs of one batch
    common = ["--data", str(data), "--out", str(out), "--runs", str(runs), "--minutes", "10", "--recipe", "dcgan-rp"]

    with pytest.raises(SystemExit, match="0 of 10 epochs trained; run `train` again first"):
        cpu128.main(["finish", *common])
    cpu128.main(["train", *common, "--epochs", "3"])  # stopped early, as a session that runs out of time does
    with pytest.raises(SystemExit, match="3 of 10 epochs trained"):
        cpu128.main(["finish", *common])
    cpu128.main(["train", *common])  # resumes at epoch 4
    (run,) = (runs / "dcgan-rp-10min-s0").glob("0*")
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 10 and stats[-1]["images_seen"] == 640
    cpu128.main(["train", *common])  # finished: run again, it trains nothing more
    assert len((run / "stats.jsonl").read_text().splitlines()) == 10

    # --ship copies the generator into ganlib/pretrained only if it fits the limit: this one (the 128 px DCGAN
    # G, 64 wide, 12.8M parameters in fp16) does not, so it stays in its run folder.
    # (into a stand-in for ganlib/pretrained: the repository's own oasis128_cpu.pt is never touched by a test)
    monkeypatch.setattr("ganlib.checkpoint.PRETRAINED_DIR", tmp_path / "pretrained")
    (tmp_path / "pretrained").mkdir()
    shipped = tmp_path / "pretrained" / "oasis128_cpu.pt"
    real = (PRETRAINED_DIR / "oasis128_cpu.pt").read_bytes()
    cpu128.main(["finish", *common, "--ship", "--n", "16", "--inception-weights", str(tiny_weights)])
    results = out / "dcgan-rp-10min-s0"  # one folder per run, the floor beside them
    summary = json.loads((results / "summary.json").read_text())
    assert summary["images"] == 640 and summary["fid"] > 0 and summary["floor_fid"] >= 0
    assert summary["exact_copies"] == 0 and Path(summary["file"]) == run / "oasis128_cpu.pt"  # not in the repo
    assert summary["file_mb"] > cpu128.MAX_SHIPPED_MB and not shipped.exists()
    G, config = load_generator(run / "oasis128_cpu.pt")
    assert config.resolution == 128 and config.loss == "rpgan" and (results / "samples.png").exists()
    card = (results / "model_card.md").read_text()  # the model card beside the weights
    words = " ".join(card.split())  # its bullets are rewrapped to 115 columns
    assert "640 images (10 epochs of 64)" in words and f"| oasis128_cpu | {summary['fid']:.1f} |" in card
    assert " ".join(cpu128.describe(config).split()) in words  # the recipe in words is the trained config's
    long = [line for line in card.splitlines()  # (a path longer than a line stays whole)
            if line.startswith(("- ", "  ")) and len(line) > 115 and len(line.split()) > 1]
    assert not long, long
    # The audit's nearest pairs show real training slices: drawn beside the run, not in the results (committed).
    assert not list(out.rglob("memorization_pairs_*.png")) and (out / "floor" / "memorization_distances.png").exists()
    assert sorted(p.name for p in (run / "audit").iterdir()) == ["memorization_pairs_inception.png",
                                                                  "memorization_pairs_pixel.png"]
    report = (results / "eval" / "report.md").read_text()
    assert "](memorization_pairs" not in report and f"`{run / 'audit' / 'memorization_pairs_pixel.png'}`" in report

    # Within the limit it is shipped, with its model card beside it.
    monkeypatch.setattr(cpu128, "MAX_SHIPPED_MB", 100)
    cpu128.main(["finish", *common, "--ship", "--n", "16", "--inception-weights", str(tiny_weights)])
    assert shipped.exists() and (PRETRAINED_DIR / "oasis128_cpu.pt").read_bytes() == real
    assert (tmp_path / "pretrained" / "oasis128_cpu.md").read_text() == (results / "model_card.md").read_text()


def test_the_model_card_describes_the_trained_recipe(cpu128):
    from ganlib.config import get_preset

    seed, g48 = cpu128.describe(get_preset("seed")), cpu128.describe(get_preset("dcgan-rp", g_width=48))
    assert seed.startswith("non-saturating BCE loss;") and "BatchNorm in D" in seed and "EMA" not in seed
    assert "RpGAN" in g48 and "R1 (gamma 2) and R2 (gamma 2) every 4 steps" in g48 and "G 48 and D 64 wide" in g48
    assert "residual networks" in cpu128.describe(get_preset("r3gan"))
    assert "learning rate x0.5 every 10 epochs" in seed and "constant" not in seed
    assert "at a constant learning rate" in cpu128.describe(get_preset("dcgan-rp", lr_gamma=1.0))
    pairs = cpu128.describe(get_preset("pairs", condition_kimg=(50.0, 150.0), mode_seeking=1.0))
    assert "from 50k to 150k images" in pairs and "mode seeking (weight 1" in pairs
    assert "mode seeking" not in seed and "position" not in cpu128.describe(get_preset("pairs"))


def test_committed_results_name_paths_without_this_machines_home(cpu128):
    """Paths in committed reports read the same on every machine: from the repository, else from ~."""
    assert cpu128.shown(REPO / "ganlib" / "pretrained" / "x.pt") == "ganlib/pretrained/x.pt"
    assert cpu128.shown(Path.home() / "ganlib-runs" / "cpu128" / "audit") == "~/ganlib-runs/cpu128/audit"
    assert cpu128.shown(Path("/elsewhere/run")) == "/elsewhere/run"

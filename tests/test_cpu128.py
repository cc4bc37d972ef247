"""benchmarks/cpu128.py: the 128x128 model trained for an image budget fixed from this CPU's rate, resumable,
then scored beside the floor, audited and exported; it refuses to ship a run that has not finished."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ganlib.checkpoint import PRETRAINED_DIR, load_generator
from tests.conftest import write_layout
from tests.test_evaluate import tiny_weights  # noqa: F401  (a fixture: a small TorchScript "Inception")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cpu128():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("cpu128", REPO / "benchmarks" / "cpu128.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_train_resume_finish_on_tiny_data(cpu128, tmp_path, tiny_weights):  # noqa: F811
    data = write_layout(tmp_path / "data", {"train": [1, 2, 3, 4], "validate": [402], "test": [441]}, slices=16)
    out, runs = tmp_path / "out", tmp_path / "runs"
    out.mkdir()
    (out / "rate.json").write_text(json.dumps({"dcgan-rp": {"images_per_s": 1.1}}))  # 10 epochs of one batch
    common = ["--data", str(data), "--out", str(out), "--runs", str(runs), "--minutes", "10"]

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
    shipped = PRETRAINED_DIR / "oasis128_cpu.pt"
    assert not shipped.exists()
    cpu128.main(["finish", *common, "--ship", "--n", "16", "--inception-weights", str(tiny_weights)])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 640 and summary["fid"] > 0 and summary["floor_fid"] >= 0
    assert summary["exact_copies"] == 0 and Path(summary["file"]) == run / "oasis128_cpu.pt"  # not in the repo
    assert summary["file_mb"] > cpu128.MAX_SHIPPED_MB and not shipped.exists()
    G, config = load_generator(run / "oasis128_cpu.pt")
    assert config.resolution == 128 and config.loss == "rpgan" and (out / "samples.png").exists()
    card = (out / "model_card.md").read_text()  # the model card beside the weights
    assert "640 images (10 epochs of 64)" in card and f"| oasis128_cpu | {summary['fid']:.1f} |" in card

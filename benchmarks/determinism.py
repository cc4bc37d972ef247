"""Where run-to-run determinism ends on a CPU: the same short training run repeated with the same and with
other thread counts, with and without bf16 autocast, compared weight by weight (issue 11).

Each run is `ganlib.train` of the `cpu` preset (64x64) for a few hundred images in a fresh process with
OMP_NUM_THREADS set; the result is the largest absolute difference between two runs' generator weights
after training (0.0 means bit-identical). A GAN amplifies any difference, so a non-zero number here grows
into a different generator, and a different FID, over a full run.

    python benchmarks/determinism.py --data ../shared/oasis/keras_png_slices_data
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ganlib.files import write_json

RESULTS = Path(__file__).resolve().parent / "results"
# (label, torch threads, bf16 autocast)
SETTINGS = [("1 thread, bf16", 1, True), ("1 thread, bf16 (again)", 1, True), ("2 threads, bf16", 2, True),
            ("2 threads, bf16 (again)", 2, True), ("1 thread, float32", 1, False), ("2 threads, float32", 2, False)]


def one_run(data: str | None, threads: int, amp: bool, images: int, preset: str, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "ganlib", "train", "--preset", preset, "--out", str(folder), "--checkpoint-every", "1",
           "--set", f"max_images={images}", "--set", "num_epochs=2", "--set", "val_split="]
    cmd += (["--data", data] if data else []) + ([] if amp else ["--no-amp"])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GANLIB_CACHE": str(folder.parent / "cache")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"ganlib train failed: {proc.stderr[-2000:]}")
    (run,) = folder.glob(f"*-{preset}")
    return run / "checkpoints" / "latest.pt"


def max_diff(a: Path, b: Path) -> float:
    ga, gb = (torch.load(p, map_location="cpu", weights_only=False)["G"] for p in (a, b))
    return max((ga[k].double() - gb[k].double()).abs().max().item() for k in ga if ga[k].is_floating_point())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="folder holding keras_png_slices_train/ (default: ganlib's own search)")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--images", type=int, default=512, help="training slices (each of the 2 epochs sees them all)")
    p.add_argument("--json", type=Path, help="where to write the results (default: benchmarks/results/)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = {label: one_run(args.data, t, amp, args.images, args.preset, Path(tmp) / str(i))
                 for i, (label, t, amp) in enumerate(SETTINGS)}
        pairs = [(SETTINGS[0][0], SETTINGS[1][0]), (SETTINGS[2][0], SETTINGS[3][0]), (SETTINGS[0][0], SETTINGS[2][0]),
                 (SETTINGS[4][0], SETTINGS[5][0]), (SETTINGS[0][0], SETTINGS[4][0])]
        diffs = [{"a": a, "b": b, "max_abs_weight_diff": max_diff(ckpts[a], ckpts[b])} for a, b in pairs]
    result = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "preset": args.preset,
              "images": args.images, "epochs": 2, "comparisons": diffs}
    for d in diffs:
        print(f"{d['a']:<24} vs {d['b']:<24} max |G weight diff| {d['max_abs_weight_diff']:.3g}")
    out = args.json or RESULTS / f"determinism-cpu-{result['date']}.json"
    print(f"wrote {write_json(out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

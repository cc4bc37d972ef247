"""Why a real epoch of `ganlib train` runs slower than benchmarks/throughput.py's step (issue 11).

A new user's `ganlib train --preset seed --epochs 1` at 128x128 trained at 19.8 images/s where throughput.py
said 35.8. This runs both on the same machine, one after the other, and times what lies between them:

  1. the step alone, as throughput.py times it (ganlib's own step functions, warm-up steps not timed);
  2. the user's command, `ganlib train --preset seed --epochs E --data D`, in a fresh process with no decode
     cache (a fresh clone has none): the epochs' own images/s from stats.jsonl (the training steps only),
     and the whole process's wall clock (start-up, decoding the split, validation loss, snapshots, checkpoint);
  3. the load average before and after each part: the number that explains most (see benchmarks/README.md).

    python benchmarks/epoch_vs_step.py --data ../shared/oasis/keras_png_slices_data   # a quiet machine
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import throughput  # noqa: E402  (benchmarks/ is not a package)

from ganlib.files import write_json  # noqa: E402

RESULTS = HERE / "results"


def step_alone(preset: str, data: str | None, steps: int, warmup: int) -> dict:
    from ganlib.config import get_preset
    from ganlib.data import load_split

    config = get_preset(preset)
    images = load_split("train", config.resolution, data).images
    b = config.batch_size
    step, _ = throughput.ganlib_step_fn(config, images, b, torch.device("cpu"), config.amp, (warmup + steps) * b)
    for _ in range(warmup):
        step()
    load = os.getloadavg()[0]
    wall, cpu = throughput.time_turn(step, steps, torch.device("cpu"))
    return {"images_per_s": round(steps * b / wall, 1), "steps": steps, "cpu_s_per_wall_s": round(cpu / wall, 2),
            "load1_before": round(load, 2), "load1_after": round(os.getloadavg()[0], 2)}


def real_epochs(preset: str, data: str | None, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GANLIB_CACHE": str(Path(tmp) / "cache")}  # no decode cache, as on a fresh clone
        cmd = [sys.executable, "-m", "ganlib", "train", "--preset", preset, "--epochs", str(epochs), "--out", tmp]
        cmd += ["--data", data] if data else []
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(f"ganlib train failed: {proc.stderr[-2000:]}")
        (run,) = Path(tmp).glob(f"*-{preset}")
        stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    loop = sum(s["seconds"] for s in stats)
    return {
        "command": " ".join(["ganlib", *cmd[3:]]),
        "epochs": [{"epoch": s["epoch"], "images_per_s": s["images_per_s"], "seconds": s["seconds"]} for s in stats],
        "process_wall_s": round(wall, 1),
        "training_loop_s": round(loop, 1),
        "outside_the_loop_s": round(wall - loop, 1),
        "images_per_s_of_the_whole_process": round(stats[-1]["images_seen"] / wall, 1),
        "load1_before": round(load, 2),
        "load1_after": round(os.getloadavg()[0], 2),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="folder holding keras_png_slices_train/ (default: ganlib's own search)")
    p.add_argument("--preset", default="seed", help="the preset both parts train (default: the seed, 128 px)")
    p.add_argument("--epochs", type=int, default=2, help="real epochs (the first one warms up)")
    p.add_argument("--steps", type=int, default=20, help="timed steps of the step alone")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", type=Path, help="where to write the results (default: benchmarks/results/)")
    args = p.parse_args(argv)
    result = {
        "date": datetime.date.today().isoformat(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "step_alone": step_alone(args.preset, args.data, args.steps, args.warmup),
    }
    print(json.dumps(result["step_alone"]), flush=True)
    result["real_epochs"] = real_epochs(args.preset, args.data, args.epochs)
    print(json.dumps(result["real_epochs"], indent=1), flush=True)
    out = args.json or RESULTS / f"epoch-vs-step-cpu128-{result['date']}.json"
    print(f"wrote {write_json(out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

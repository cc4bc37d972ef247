"""Training throughput: the PyTorch DCGAN tutorial's way against ganlib's way, same model, one device.

    python -m benchmarks.throughput [--data PATH] [--device cpu|cuda] [--quick]

The reference way opens every PNG with PIL per item through torchvision transforms and a DataLoader, trains
in float32 with nn.BCELoss on D's Sigmoid and plain Adam. ganlib's way is the loop's own step: the split
decoded once into a uint8 tensor on the device, bf16 autocast, channels_last, BCE-with-logits, foreach
(CPU) or fused (GPU) Adam. The ways take turns in one process, so that they share whatever else a shared
machine is doing; warm-up steps are not timed; peak memory comes from each way run alone in its own process.
Results go to benchmarks/results/<device>-<model>-<date>.json; docs/results.md shows what was measured.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from benchmarks import flops
from benchmarks.common import RESULTS, module_command, repo_env

# ---------------------------------------------------------------- the two ways, one step each


class PngSlices(torch.utils.data.Dataset):
    """The tutorial's data path: open one PNG with PIL per item and transform it."""

    def __init__(self, files: list[str], resolution: int):
        import torchvision.transforms as T

        self.files = files
        self.transform = T.Compose(
            [T.Grayscale(1), T.Resize(resolution), T.CenterCrop(resolution), T.ToTensor(), T.Normalize(0.5, 0.5)]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.files[i]) as im:
            return self.transform(im), 0


def reference_step_fn(config, files: list[str], batch: int, device: torch.device, workers: int):
    """One DCGAN tutorial iteration per call: next batch, D on real, D on fake, G step, losses to the host."""
    from ganlib.models import build_models

    torch.manual_seed(0)
    G, D = (m.to(device) for m in build_models(config))
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr, betas=config.betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr, betas=config.betas)
    criterion = nn.BCELoss()
    loader = torch.utils.data.DataLoader(
        PngSlices(files, config.resolution),
        batch,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
    )
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            real, _ = next(batches)
        except StopIteration:  # a new epoch
            batches = iter(loader)
            real, _ = next(batches)
        real = real.to(device, non_blocking=True)
        D.zero_grad()
        out = D(real)
        err_real = criterion(out, torch.full_like(out, 1.0))
        err_real.backward()
        fake = G(torch.randn(len(real), config.z_dim, device=device))
        out = D(fake.detach())
        err_fake = criterion(out, torch.full_like(out, 0.0))
        err_fake.backward()
        opt_D.step()
        G.zero_grad()
        out = D(fake)
        err_G = criterion(out, torch.full_like(out, 1.0))
        err_G.backward()
        opt_G.step()
        return (err_real + err_fake).item(), err_G.item()  # the tutorial logs both every iteration

    return step, loader


def ganlib_step_fn(config, images: torch.Tensor, batch: int, device: torch.device, amp: bool, total_images: int):
    """One iteration of ganlib.train's loop per call, from its own step functions."""
    from ganlib.data import to_float
    from ganlib.losses import d_step, g_step
    from ganlib.models import build_models
    from ganlib.train import _Logits, epoch_order
    from ganlib.utils.device import autocast

    torch.manual_seed(0)
    G, D = (m.to(device) for m in build_models(config))
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    fused = {"fused": True} if device.type == "cuda" else {"foreach": True}
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr, betas=config.betas, **fused)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr, betas=config.betas, **fused)
    D_train = _Logits(D)
    amp_ctx = lambda: autocast(device, amp)  # noqa: E731
    order = epoch_order(len(images), total_images, torch.Generator().manual_seed(0)).to(device)
    g_dev = torch.Generator(device).manual_seed(1)
    sums = torch.zeros(4, device=device)
    i = 0

    def step(batch: int = batch):
        nonlocal i
        idx = order[i : i + batch]
        i += batch
        z = torch.randn(batch, config.z_dim, generator=g_dev, device=device)
        real = to_float(images[idx]).contiguous(memory_format=torch.channels_last)
        with amp_ctx():
            fake = G(z)
        with amp_ctx():
            loss_D, d_x, d_gz = d_step(D_train, opt_D, real, fake)
        with amp_ctx():
            loss_G = g_step(D_train, opt_G, fake)
        sums.add_(torch.stack([loss_D, loss_G, d_x, d_gz]))  # no host sync, as in the loop

    return step, (G, D)


# ---------------------------------------------------------------- timing, in a child process

BATCH = 64  # the tutorial's
EPOCH_SIZES = (1000, 5000, 10000)


def time_turn(step, n: int, device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) of `n` calls of `step()`, synchronised on GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def child(spec: dict) -> dict:
    """Time the entries of `spec` in turns, round-robin, so that they share whatever else the machine is doing.

    Each entry is (way, amp, batch). A turn is `steps_per_turn` training steps of one entry; the first
    `warmup` turns of each entry are not recorded. The order of the entries rotates from round to round.
    """
    from ganlib.config import get_preset

    device, config = torch.device(spec["device"]), get_preset(spec["preset"])
    torch.set_num_threads(spec["threads"])
    # ganlib.train turns cuDNN's autotuner on; the flag is global, so the reference gets it too.
    torch.backends.cudnn.benchmark = device.type == "cuda"
    warmup, timed, n = spec["warmup"], spec["timed"], spec["steps_per_turn"]
    entries = [tuple(e) for e in spec["entries"]]
    steps, loader = {}, None  # one model per (way, amp), shared by its batch sizes
    for way, amp, _ in entries:
        if (way, amp) in steps:
            continue
        if way == "reference":
            files = json.loads(Path(spec["files"]).read_text())
            steps[way, amp], loader = reference_step_fn(config, files, BATCH, device, spec["workers"])
        else:
            images = torch.load(spec["images"], weights_only=True).to(device)
            total = (warmup + timed) * n * sum(b for w, a, b in entries if (w, a) == (way, amp))
            steps[way, amp] = ganlib_step_fn(config, images, BATCH, device, amp, total)[0]
    record = {e: {"wall_s": [], "cpu_s": [], "load1": []} for e in entries}
    for turn in range(warmup + timed):
        for way, amp, batch in entries[turn % len(entries) :] + entries[: turn % len(entries)]:
            step = steps[way, amp] if way == "reference" else functools.partial(steps[way, amp], batch)
            wall, cpu = time_turn(step, n, device)
            if turn >= warmup:
                rec = record[way, amp, batch]
                rec["wall_s"].append(wall), rec["cpu_s"].append(cpu), rec["load1"].append(os.getloadavg()[0])
    out = {"entries": [{"way": w, "amp": a, "batch": b, "steps_per_turn": n, **record[w, a, b]} for w, a, b in entries]}
    n_batches = min(spec.get("loader_batches", 0), len(loader) - 1) if loader is not None else 0
    if n_batches > 0:  # the data path alone: a fresh pass, its first batch (worker start-up) not timed
        batches = iter(loader)
        next(batches)
        t0 = time.perf_counter()
        count = sum(len(next(batches)[0]) for _ in range(n_batches))
        out["loader_only_images_per_s"] = count / (time.perf_counter() - t0)
        del batches
    kib = 1024  # ru_maxrss is in KiB on Linux
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 2**20
    out["worker_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 2**20
    if device.type == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_child(spec: dict) -> dict:
    """`child(spec)` in a fresh Python process, so its peak memory and warm-up are its own."""
    cmd = module_command("throughput", "--child", json.dumps(spec))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=repo_env())
    if proc.returncode != 0:
        sys.exit(f"measurement {spec['entries']} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def images_per_s(entry: dict, clock: str = "wall_s") -> float:
    """The median turn's images per second (of wall clock, or of process CPU time with clock="cpu_s")."""
    return entry["batch"] * entry["steps_per_turn"] / statistics.median(entry[clock])


# ---------------------------------------------------------------- the plan, the report

# Turns of training steps: (warm-up, timed) per entry. On CPU a turn is one step (the reference does ~5 images/s
# at 128px) and the whole run stays under ~8 minutes on 2 cores; on GPU a turn is 20 steps.
PLANS = {
    "cpu": {"steps_per_turn": 1, "compare": (1, 3), "memory": (1, 1), "sweep": (1, 2), "batches": (16, 32, 64, 128)},
    "cpu-quick": {"steps_per_turn": 1, "compare": (0, 1), "memory": (0, 1), "sweep": (0, 1), "batches": (16, 32)},
    "cuda": {"steps_per_turn": 20, "compare": (1, 5), "memory": (1, 1), "sweep": (1, 3), "batches": (16, 64, 256)},
    "cuda-quick": {"steps_per_turn": 5, "compare": (1, 1), "memory": (1, 1), "sweep": (1, 1), "batches": (16, 64)},
}


def machine(device: torch.device, threads: int) -> dict:
    import platform

    import torchvision

    info = {"torch": torch.__version__, "torchvision": torchvision.__version__, "python": platform.python_version()}
    info.update(cpu=flops.cpu_info(), threads=threads)
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    info["peak"] = flops.gpu_peak(info["gpu"]) if device.type == "cuda" else flops.cpu_peak(info["cpu"], threads)
    return info


def result_path(device: torch.device, info: dict) -> Path:
    name = info.get("gpu") or f"{info['cpu']['model']} {info['cpu']['cores']}c {info['threads']}t"
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(r\)|\(tm\)", "", name.lower())).strip("-")
    return RESULTS / f"{device.type}-{slug}-{datetime.date.today().isoformat()}.json"


def measure(device: torch.device, data: str | None, plan: dict, threads: int) -> dict:
    """Decode and count FLOPs here; then memory, the interleaved comparison and the batch sweep in children."""
    from ganlib.config import get_preset
    from ganlib.data import find_data_root, load_split, scan_split
    from ganlib.models import build_models
    from ganlib.utils.device import bf16_supported

    config, amp = get_preset("seed"), bf16_supported(device)
    root, origin = find_data_root(data)
    files = [str(e[2]) for e in scan_split(root, "train")]
    if len(files) < 2 * BATCH:
        sys.exit(f"{root}: {len(files)} train slices; the benchmark needs at least {2 * BATCH}")
    print(f"data: {root} ({origin}), {len(files)} slices; load {os.getloadavg()}", flush=True)

    # ganlib decodes the split once per run: time it without its disk cache, it is ganlib's one-off cost.
    t0 = time.perf_counter()
    images = load_split("train", config.resolution, root, cache=False).images
    decode_s = time.perf_counter() - t0

    # FLOPs per image from the shapes, checked by FlopCounterMode on one small step of each way.
    counts = flops.training_flops(*build_models(config), config.z_dim, config.resolution)
    counts["ganlib_counter_flops_per_image"] = flops.counted_flops(
        ganlib_step_fn(config, images[:8].to(device), 2, device, amp, 8)[0], 2
    )
    counts["reference_counter_flops_per_image"] = flops.counted_flops(
        reference_step_fn(config, files[:8], 2, device, 0)[0], 2
    )

    with tempfile.TemporaryDirectory() as tmp:
        tiled = images.repeat(-(-max(EPOCH_SIZES) // len(images)), 1, 1, 1)[: max(EPOCH_SIZES)]
        torch.save(images, Path(tmp, "images.pt"))
        torch.save(tiled.clone(), Path(tmp, "tiled.pt"))
        Path(tmp, "files.json").write_text(json.dumps(files))
        # The tutorial's 2 workers on CPU, where decoding is ~1% of a step; on GPU enough to keep up.
        workers = 2 if device.type == "cpu" else min(8, os.cpu_count() or 1)
        common = {
            "threads": threads,
            "device": device.type,
            "preset": config.name,
            "steps_per_turn": plan["steps_per_turn"],
            "files": str(Path(tmp, "files.json")),
            "images": str(Path(tmp, "images.pt")),
            "workers": workers,
        }
        ref, gan, fp32 = ("reference", False, BATCH), ("ganlib", amp, BATCH), ("ganlib", False, BATCH)

        def run(name: str, entries: list, turns: tuple[int, int], **extra) -> dict:
            print(f"{name}: {', '.join(f'{w} bf16={a} batch {b}' for w, a, b in entries)}", flush=True)
            return run_child({**common, "entries": entries, "warmup": turns[0], "timed": turns[1], **extra})

        # Peak memory: each way alone in its own process.
        memory = {e[0]: run("memory", [e], plan["memory"], loader_batches=4) for e in (ref, gan)}
        # The comparison: the ways take turns in one process (and ganlib without bf16, to show what bf16 buys).
        compare = run("compare", [ref, gan, fp32] if amp else [ref, gan], plan["compare"])
        # ganlib against batch size, reading from the split tiled to 10k slices.
        sweep = run(
            "sweep", [("ganlib", amp, b) for b in plan["batches"]], plan["sweep"], images=str(Path(tmp, "tiled.pt"))
        )

    info = machine(device, threads)
    result = summarise(memory, compare, sweep, counts, info, decode_s, len(images), amp)
    result.update(
        machine=info,
        amp=amp,
        plan=plan,
        reference_workers=workers,
        memory=memory,
        compare=compare,
        sweep=sweep,
        data={"root": str(root), "origin": origin, "slices": len(images)},
    )
    return result


def summarise(memory, compare, sweep, counts, info, decode_s, n_slices, amp) -> dict:
    """The headline numbers from the raw measurements."""
    ref, gan = compare["entries"][0], compare["entries"][1]
    ref_ips, gan_ips = images_per_s(ref), images_per_s(gan)
    # The turns of a round ran back to back, so their ratio cancels most of the load other jobs put on the machine.
    per_round = [r / g for r, g in zip(ref["wall_s"], gan["wall_s"])]
    peak, on_cpu = info["peak"], info.get("gpu") is None
    gan_peak = peak["bf16"] if amp else peak["fp32"]
    # Achieved FLOP/s counts what each way executes (the reference also computes D's gradients in G's step).
    ref_flops, gan_flops = counts["reference_flops_per_image"] * ref_ips, counts["ganlib_flops_per_image"] * gan_ips
    return {
        "reference_images_per_s": ref_ips,
        "ganlib_images_per_s": gan_ips,
        "ganlib_no_bf16_images_per_s": images_per_s(compare["entries"][2]) if amp else None,
        "ratio": statistics.median(per_round),
        "ratio_per_round": per_round,
        "ratio_of_cpu_time": statistics.median(r / g for r, g in zip(ref["cpu_s"], gan["cpu_s"])) if on_cpu else None,
        "loader_only_images_per_s": memory["reference"].get("loader_only_images_per_s"),
        "peak_rss_mb": {w: m["peak_rss_mb"] for w, m in memory.items()},
        "reference_worker_peak_rss_mb": memory["reference"]["worker_peak_rss_mb"],
        "cuda_max_allocated_mb": {w: m.get("cuda_max_allocated_mb") for w, m in memory.items()},
        "flops": counts,
        "reference_flop_per_s": ref_flops,
        "ganlib_flop_per_s": gan_flops,
        "reference_fraction_of_fp32_peak": ref_flops / peak["fp32"] if peak["fp32"] else None,
        "ganlib_fraction_of_peak": gan_flops / gan_peak if gan_peak else None,
        "ganlib_peak_used": "bf16" if amp else "fp32",
        "batch_sweep": [{"batch": e["batch"], "images_per_s": images_per_s(e)} for e in sweep["entries"]],
        "decode_s": decode_s,
        "epoch_s_estimate": [
            {
                "slices": n,
                "reference_s": n / ref_ips,
                "ganlib_s": n / gan_ips,
                "ganlib_decode_s": n * decode_s / n_slices,
            }
            for n in EPOCH_SIZES
        ],
        "load_during": [x for e in compare["entries"] + sweep["entries"] for x in e["load1"]],
    }


def report(r: dict) -> str:
    """The results as the Markdown that docs/results.md shows."""
    f, m = r["flops"], r["machine"]
    loads = r["load_during"] or [float("nan")]
    pct = lambda x: f"{100 * x:.1f}%" if x else "n/a"  # noqa: E731
    lines = [
        f"{m.get('gpu', m['cpu']['model'])}, {m['cpu']['cores']} CPU cores, {m['threads']} torch threads, "
        f"torch {m['torch']}; seed DCGAN at "
        f"128px, batch {BATCH}; 1-minute load average while timing {min(loads):.2f} to {max(loads):.2f}",
        "",
        "| way | images/s | peak memory | GFLOP/image (FlopCounterMode) | achieved FLOP/s |",
        "|---|---|---|---|---|",
    ]
    ways = {
        "reference": ("reference: PIL per item, float32, BCELoss", "fp32", r["reference_fraction_of_fp32_peak"]),
        "ganlib": (
            f"ganlib: uint8 on device, {'bf16' if r['amp'] else 'float32'}, channels_last",
            r["ganlib_peak_used"],
            r["ganlib_fraction_of_peak"],
        ),
    }
    for way, (label, peak, frac) in ways.items():
        memory = f"{r['peak_rss_mb'][way]:.0f} MiB RSS"
        if r["cuda_max_allocated_mb"][way] is not None:
            memory += f", {r['cuda_max_allocated_mb'][way]:.0f} MiB CUDA"
        gflop = f"{f[way + '_flops_per_image'] / 1e9:.2f} ({f[way + '_counter_flops_per_image'] / 1e9:.2f})"
        lines.append(
            f"| {label} | {r[way + '_images_per_s']:.2f} | {memory} | {gflop} | "
            f"{r[way + '_flop_per_s'] / 1e9:.1f} GFLOP/s = {pct(frac)} of {peak} peak |"
        )
    if r["ganlib_no_bf16_images_per_s"]:
        lines.append(f"| ganlib without bf16 autocast | {r['ganlib_no_bf16_images_per_s']:.2f} | | | |")
    rounds = ", ".join(f"{x:.2f}" for x in r["ratio_per_round"])
    by_cpu = f"; by process CPU time {r['ratio_of_cpu_time']:.2f}x" if r["ratio_of_cpu_time"] else ""
    loader = r["loader_only_images_per_s"]
    loader = f" The reference's data loading alone: {loader:.0f} images/s." if loader else ""
    lines += [
        "",
        f"ganlib / reference: **{r['ratio']:.2f}x** (median of the rounds {rounds}){by_cpu}.{loader} "
        f"Peak: {m['peak']['assumption']}.",
        "",
        "| ganlib, batch | " + " | ".join(str(s["batch"]) for s in r["batch_sweep"]) + " |",
        "|---" * (len(r["batch_sweep"]) + 1) + "|",
        "| images/s | " + " | ".join(f"{s['images_per_s']:.2f}" for s in r["batch_sweep"]) + " |",
        "",
        "| slices per epoch | reference, s | ganlib, s | ganlib's one-off decode, s |",
        "|---|---|---|---|",
    ]
    for e in r["epoch_s_estimate"]:
        lines.append(f"| {e['slices']} | {e['reference_s']:.0f} | {e['ganlib_s']:.0f} | {e['ganlib_decode_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder holding keras_png_slices_train/ (default: ganlib's own search)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--threads", type=int, help="torch threads for the training steps (default: torch's, all cores)"
    )
    parser.add_argument("--quick", action="store_true", help="a few steps only, to check that it runs")
    parser.add_argument("--json", help="where to write the results (default: benchmarks/results/, not with --quick)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    plan = PLANS[device.type + ("-quick" if args.quick else "")]
    result = measure(device, args.data, plan, args.threads or torch.get_num_threads())
    result["command"] = " ".join(["python", "-m", "benchmarks.throughput", *(sys.argv[1:] if argv is None else argv)])
    print("\n" + report(result))
    path = Path(args.json) if args.json else None if args.quick else result_path(device, result["machine"])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

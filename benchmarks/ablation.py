"""Ablation: the seed recipe against each improvement switch and the `modern` preset, at equal images.

Every variant trains on the same data for the same number of training images (the StepLR schedule
keeps the seed's shape: four halvings, evenly spaced), then `ganlib.evaluation.evaluate` scores it against the
held-out split. Saves `ablation.json`, `ablation.md` and `samples.png` (8 samples per variant from one
fixed latent batch, a row per variant) in --out; variants already there are kept, so an interrupted
ablation continues. The evaluate reports themselves, whose audit figures show training slices, go
into the git-ignored runs folder, never into --out.

    python -m benchmarks.ablation --data ../shared/oasis/keras_png_slices_data --resolution 64 \\
        --kimg 30 --n 500 --inception-weights /path/to/default_1.pt --out benchmarks/results/ablation-cpu64
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ganlib.checkpoint import load_generator
from ganlib.config import ABLATION, ablation_config, get_preset
from ganlib.data import REPO_ROOT, load_split
from ganlib.evaluation.evaluate import evaluate
from ganlib.models import sample
from ganlib.train import train
from ganlib.utils.device import pick_device
from ganlib.viz import save_grid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="data root (default: the library's choice)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--kimg", type=int, default=60, help="thousands of training images per variant")
    p.add_argument("--epochs", type=int, default=10, help="epochs the budget is cut into")
    p.add_argument("--variants", default=",".join(ABLATION), help=f"comma-separated of {', '.join(ABLATION)}")
    p.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    p.add_argument("--split", default="test")
    p.add_argument("--metrics", default="fid,kid,swd,msssim,memorization")
    p.add_argument("--inception-weights")
    p.add_argument("--seed", type=int, default=0, help="training seed (weights, data order, latents)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    p.add_argument("--runs", default=str(REPO_ROOT / "runs"), help="where the training runs go (default: runs/)")
    args = p.parse_args()

    names = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in names if v not in ABLATION]
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(ABLATION)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device)
    train_set = load_split("train", args.resolution, args.data)
    val_set = load_split("validate", args.resolution, args.data)
    fixed_z = torch.randn(8, 100, generator=torch.Generator().manual_seed(7)).to(device)
    # Variants already in --out are kept, so an interrupted ablation continues where it stopped.
    done = out / "ablation.json"
    results = json.loads(done.read_text())["results"] if done.exists() else {}
    for name in names:
        if name in results:
            print(name, "already done, kept", flush=True)
            strip = out / f"samples-{name.lstrip('+')}.png"
            if not strip.exists():
                G, _ = load_generator(Path(args.runs) / results[name]["run"], device=device)
                save_grid(sample(G, fixed_z).cpu(), strip, nrow=8)
            continue
        base = get_preset("reference", resolution=args.resolution, seed=args.seed)
        config = ablation_config(name, base, args.kimg * 1000, args.epochs)
        t0 = time.perf_counter()
        run = train(config, out=args.runs, device=str(device), train_set=train_set, val_set=val_set)
        seconds = time.perf_counter() - t0
        G, _ = load_generator(run, device=device)
        report = evaluate(
            G,
            metrics=args.metrics,
            n=args.n,
            split=args.split,
            data=args.data,
            inception_weights=args.inception_weights,
            out_dir=run / "evaluation",
            device=str(device),
        )
        save_grid(sample(G, fixed_z).cpu(), out / f"samples-{name.lstrip('+')}.png", nrow=8)
        results[name] = {
            "config": config.to_dict(),
            "run": run.name,
            "train_seconds": round(seconds, 1),
            "metrics": report["metrics"],
        }
        print(name, json.dumps({k: round(v, 4) for k, v in report["metrics"].items()}), flush=True)
        write(out, results, args, device)
    rows = [out / f"samples-{n.lstrip('+')}.png" for n in results]
    from PIL import Image

    strips = [Image.open(r) for r in rows if r.exists()]
    sheet = Image.new("L", (strips[0].width, sum(s.height for s in strips)))
    for i, strip in enumerate(strips):
        sheet.paste(strip, (0, sum(s.height for s in strips[:i])))
    sheet.save(out / "samples.png")


def write(out: Path, results: dict, args, device) -> None:
    command = "python -m benchmarks.ablation " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None
    )
    # A table filled by several invocations (an interrupted run, variants added later) keeps every command.
    done = out / "ablation.json"
    old = json.loads(done.read_text())["meta"] if done.exists() else {}
    commands = old.get("commands", [old["command"]] if "command" in old else [])
    meta = {
        "commands": commands + [command] if command not in commands else commands,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        **({"notes": old["notes"]} if "notes" in old else {}),
    }
    (out / "ablation.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    keys = ["fid", "kid_mean", "swd", "msssim_gap", "mem_share_pixel"]
    lines = ["| variant | " + " | ".join(keys) + " | train s |", "|---" * (len(keys) + 2) + "|"]
    for name, r in results.items():
        vals = [f"{r['metrics'][k]:.4g}" if k in r["metrics"] else "-" for k in keys]
        lines.append(f"| {name} | " + " | ".join(vals) + f" | {r['train_seconds']:.0f} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

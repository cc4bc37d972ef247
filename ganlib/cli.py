"""The `ganlib` command: train, sample, evaluate, info. User errors end in one line, not a traceback."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

from .config import ALIASES, PRESETS, get_preset, parse_set, preset_name
from .data import MASK_LEVELS, DataError, find_data_root, split_counts
from .utils.device import setup_distributed, teardown_distributed


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return n


def _position(value: str) -> int:
    try:
        pos = int(value)
    except ValueError:
        pos = -1
    if pos < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a slice position: give a whole number such as 16 (0-31)")
    return pos


def _train_request(args):
    """What a `train` command asks for: a config, or on --resume the run to continue (`checkpoint.Resume`).

    Returns None when a resumed run already has the epochs asked for (nothing to do; said in one line).
    """
    overrides = parse_set(args.set)
    for key, value in (("seed", args.seed), ("num_epochs", args.epochs), ("batch_size", args.batch_size)):
        if value is not None:
            overrides[key] = value
    if args.no_amp:
        overrides["amp"] = False
    if args.compile:
        overrides["compile"] = True
    if args.sync_bn:
        overrides["sync_bn"] = True
    if args.resume is None:
        return get_preset(args.preset or "cpu", **overrides)
    from .checkpoint import resolve_resume

    resume = resolve_resume(args.resume, overrides)
    stored = resume.config.name
    if args.preset is not None and preset_name(args.preset) != preset_name(stored):
        raise ValueError(f"--preset {args.preset}: the run to resume is a {stored!r} run; leave --preset out")
    if resume.epoch >= resume.config.num_epochs:
        print(
            f"{resume.run_dir} already has {resume.epoch} of {resume.config.num_epochs} epochs; nothing to train "
            "(--epochs N extends it)"
        )
        return None
    print(f"resuming {resume.run_dir} at epoch {resume.epoch + 1} of {resume.config.num_epochs}, with its stored "
          f"{stored!r} config")
    return resume


def cmd_train(args) -> int:
    from .checkpoint import Resume
    from .train import spread_verdict, train

    request = _train_request(args)
    if request is None:
        return 0
    resume = request if isinstance(request, Resume) else None
    config = resume.config if resume is not None else request
    ddp_device = setup_distributed()
    device = str(ddp_device) if ddp_device is not None else args.device
    run_dir = train(
        config,
        data=args.data,
        out=args.out,
        resume=resume,
        device=device,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        force_data=args.force_data,
    )
    if ddp_device is not None:
        teardown_distributed()
    if run_dir is None:  # not rank 0 of a torchrun group: rank 0 reports and exports
        return 0
    print(f"run folder: {run_dir}")
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    if stats and "sample_spread" in stats[-1]:
        print(spread_verdict(stats[-1]["sample_spread"]))
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        last = sorted((run_dir / "samples").glob("fakes_*.png"))[-1]
        shutil.copy(last, export / f"{config.name}_samples.png")
        shutil.copy(run_dir / "losses.png", export / f"{config.name}_losses.png")
        shutil.copy(run_dir / "reals.png", export / f"{config.name}_reals.png")
        print(f"pictures: {export}/{config.name}_samples.png, {config.name}_losses.png")
    return 0


SAMPLE_BATCH = 256  # samples drawn, written and forgotten at a time: memory does not grow with --n
GRID_SAMPLES = 64  # grid.png shows the first ones


def png_bytes_bound(resolution: int) -> int:
    """At most what one 8-bit grayscale PNG of a slice takes on disk: the raw pixels, rows' filter bytes,
    headers and deflate's stored-block overhead. Real slices compress well below it."""
    raw = resolution * (resolution + 1)
    return raw + raw // 16000 * 5 + 200


def cmd_sample(args) -> int:
    from PIL import Image
    from tqdm.auto import tqdm

    from .checkpoint import load_generator
    from .conditional import masks_to_float
    from .data import to_uint8
    from .models import sample
    from .viz import save_grid

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the samples (it is created if missing)")
    G, config = load_generator(args.checkpoint, device=args.device or "cpu")
    if args.slice is not None and not config.positions:
        raise ValueError(f"--slice: {args.checkpoint} was trained without slice positions (positions=0); leave it out")
    if args.slice is not None and args.slice >= config.positions:
        raise ValueError(f"--slice {args.slice}: this generator knows positions 0 to {config.positions - 1}")
    if args.with_masks and not config.with_masks:
        raise ValueError(f"--with-masks: {args.checkpoint} makes slices only (trained without with_masks)")

    # Refuse up front only what cannot fit: the PNGs on the disk that holds --out.
    need = args.n * png_bytes_bound(config.resolution) * (2 if args.with_masks else 1)
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    if need > free:
        raise ValueError(
            f"--n {args.n}: up to {need / 1e9:,.1f} GB of PNGs, but {existing} has {free / 1e9:,.1f} GB free; "
            "ask for fewer samples or free some space"
        )

    keras = config.positions or args.with_masks  # then the keras_png_slices_data layout, split "train"
    image_dir = out / "keras_png_slices_train" if keras else out
    mask_dir = out / "keras_png_slices_seg_train"
    image_dir.mkdir(parents=True, exist_ok=True)
    if args.with_masks:
        mask_dir.mkdir(parents=True, exist_ok=True)
    width = max(3 if keras else 4, len(str(args.n - 1)))
    g = torch.Generator().manual_seed(args.seed)  # one stream of latents, drawn a batch at a time
    grid_images, grid_masks = [], []
    for start in tqdm(range(0, args.n, SAMPLE_BATCH), desc="sampling", unit="batch", disable=args.n <= SAMPLE_BATCH):
        count = min(SAMPLE_BATCH, args.n - start)
        z = torch.randn(count, config.z_dim, generator=g)
        y = None
        if config.positions:  # one position for all, or every position in turn
            y = torch.full((count,), args.slice) if args.slice is not None else (
                torch.arange(start, start + count) % config.positions)  # as default_positions, from `start`
        images, masks = sample(G, z, y=y, masks=True) if args.with_masks else (sample(G, z, y=y), None)
        for k, img in enumerate(to_uint8(images)):
            i, pos = start + k, int(y[k]) if y is not None else 0
            name = f"case_{i:0{width}d}_slice_{pos}.nii.png" if keras else f"sample_{i:0{width}d}.png"
            Image.fromarray(img[0].numpy(), mode="L").save(image_dir / name)
            if masks is not None:  # 0/85/170/255 as in the OASIS release
                level = (masks[k, 0] * MASK_LEVELS).to(torch.uint8).numpy()
                Image.fromarray(level, mode="L").save(mask_dir / f"seg_{i:0{width}d}_slice_{pos}.nii.png")
        if start < GRID_SAMPLES:
            grid_images.append(images[: GRID_SAMPLES - start])
            grid_masks += [masks[: GRID_SAMPLES - start]] if masks is not None else []
    save_grid(torch.cat(grid_images), out / "grid.png")
    if grid_masks:
        save_grid(masks_to_float(torch.cat(grid_masks)), out / "grid_masks.png")
    where = f"{image_dir}" + (f" and {mask_dir}" if args.with_masks else "")
    print(f"wrote {args.n} samples{' with masks' if args.with_masks else ''} to {where}, and grid.png to {out}")
    return 0


def cmd_info(args) -> int:
    root, origin = find_data_root(args.data)
    counts = split_counts(root)
    if not any(counts.values()):
        raise DataError(
            f"{root} holds no slices: expected keras_png_slices_train/ (and _validate/, _test/) with "
            "case_XXX_slice_Y.nii.png files inside; give the folder that holds them"
        )
    print(f"data: {root} ({'bundled demo set' if origin == 'demo' else 'from ' + origin})")
    for split, n in counts.items():
        print(f"  {split:<9}{n:>7} slices")
    device = "cuda (" + torch.cuda.get_device_name() + ")" if torch.cuda.is_available() else "cpu"
    print(f"device: {device}, {os.cpu_count()} CPU cores")
    import torchvision

    print(f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ganlib", description="GANs for brain MRI slices (OASIS).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a preset; one folder per run under runs/")
    p.add_argument("--preset", choices=[*PRESETS, *ALIASES], metavar="NAME",
                   help=f"named config: {', '.join(PRESETS)} (default: cpu; on --resume, the run's)")
    p.add_argument("--data", help="folder holding keras_png_slices_train/ (default: $GANLIB_DATA, repo, demo)")
    p.add_argument("--out", help="parent folder of run folders (default: <repo>/runs)")
    p.add_argument("--epochs", type=_positive, help="number of epochs (overrides the preset)")
    p.add_argument("--batch-size", type=_positive, help="global batch size (overrides the preset)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run folder from its last checkpoint with its stored config (--epochs may extend it)",
    )
    p.add_argument("--force-data", action="store_true", help="on --resume: continue on data that differs")
    p.add_argument("--seed", type=int, help="training seed (overrides the preset)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any TrainConfig field, e.g. --set lr_g=1e-4 --set augment=translation (repeatable)",
    )
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument("--no-amp", action="store_true", help="float32 throughout (no bf16 autocast)")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across torchrun processes")
    p.add_argument("--eval-every", type=_positive, default=0, metavar="K", help="cheap metrics every K epochs")
    p.add_argument("--export", metavar="DIR", help="copy the final sample grid and loss plot into DIR")
    p.add_argument(
        "--checkpoint-every", type=_positive, default=1, metavar="K", help="checkpoint every K epochs (default 1)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="write samples of a checkpoint as PNGs and a grid")
    p.add_argument("--checkpoint", required=True, help="a .pt file, a run folder, or 'pretrained'")
    p.add_argument("--n", type=_positive, default=16, help="how many samples (default 16)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument(
        "--slice", type=_position, metavar="POS",
        help="slice position 0-31 for a position-conditioned generator (default: every position in turn)",
    )
    p.add_argument(
        "--with-masks", action="store_true",
        help="also write each slice's 4-class mask (a paired generator, e.g. pretrained-pairs)",
    )
    p.add_argument(
        "--out", required=True,
        help="output folder; a conditioned or paired generator writes the keras_png_slices_data layout there",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("info", help="which data was found, counts per split, device, versions")
    p.add_argument("--data", help="folder holding keras_png_slices_train/")
    p.set_defaults(func=cmd_info)

    try:
        from .evaluation import evaluate
    except ImportError:  # evaluation needs torchmetrics; everything else works without it
        evaluate = None
    if evaluate is not None:
        p = sub.add_parser("evaluate", help="FID, KID, SWD, diversity and a memorisation audit")
        evaluate.add_arguments(p)
        p.set_defaults(func=evaluate.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="ganlib: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, ValueError, FileNotFoundError) as e:
        print(f"ganlib {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable or read-only --out, a full disk, a folder where a file should be
        where = f" ({e.filename})" if e.filename else ""
        hint = (
            "free some space; the last checkpoint is intact, resume with --resume RUN_DIR"
            if e.errno == errno.ENOSPC
            else "check that the path exists and is writable"
        )
        print(f"ganlib {args.command}: error: {e.strerror or e}{where}; {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # train's TrainingInterrupted names the run folder and the resume command
        print(f"ganlib {args.command}: {e or 'interrupted; resume with --resume RUN_DIR'}", file=sys.stderr)
        return 130
    except RuntimeError as e:
        from .train import TrainingDiverged

        if isinstance(e, TrainingDiverged):
            print(f"ganlib {args.command}: stopped: {e}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())

"""The `ganlib` command: train, sample, evaluate, info. User errors end in one line, not a traceback."""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

from .config import PRESETS, get_preset
from .data import DataError, find_data_root, split_counts


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return n


def _setup_distributed() -> torch.device | None:
    """Join the torchrun group when launched by torchrun; returns the device for this rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return torch.device("cuda", local_rank)
    dist.init_process_group("gloo")
    return torch.device("cpu")


def _teardown_distributed() -> None:
    """Wait for rank 0's last snapshot, then close the group: a process leaving an open gloo group aborts."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def cmd_train(args) -> int:
    from .train import train

    overrides = {}
    if args.epochs is not None:
        overrides["num_epochs"] = args.epochs
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.no_amp:
        overrides["amp"] = False
    if args.compile:
        overrides["compile"] = True
    if args.sync_bn:
        overrides["sync_bn"] = True
    config = get_preset(args.preset, **overrides)
    ddp_device = _setup_distributed()
    device = str(ddp_device) if ddp_device is not None else args.device
    run_dir = train(
        config,
        data=args.data,
        out=args.out,
        resume=args.resume,
        device=device,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
    )
    if ddp_device is not None:
        _teardown_distributed()
    if run_dir is None:  # not rank 0 of a torchrun group: rank 0 reports and exports
        return 0
    print(f"run folder: {run_dir}")
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        last = sorted((run_dir / "samples").glob("fakes_*.png"))[-1]
        shutil.copy(last, export / f"{config.name}_samples.png")
        shutil.copy(run_dir / "losses.png", export / f"{config.name}_losses.png")
        shutil.copy(run_dir / "reals.png", export / f"{config.name}_reals.png")
        print(f"pictures: {export}/{config.name}_samples.png, {config.name}_losses.png")
    return 0


def cmd_sample(args) -> int:
    from .checkpoint import load_generator
    from .data import to_uint8
    from .viz import save_grid

    G, config = load_generator(args.checkpoint, device=args.device or "cpu")
    g = torch.Generator().manual_seed(args.seed)
    z = torch.randn(args.n, config.z_dim, generator=g).to(next(G.parameters()).device)
    with torch.no_grad():
        images = G(z).float().cpu()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for i, img in enumerate(to_uint8(images)):
        Image.fromarray(img[0].numpy(), mode="L").save(out / f"sample_{i:04d}.png")
    save_grid(images, out / "grid.png")
    print(f"wrote {args.n} samples and grid.png to {out}")
    return 0


def cmd_info(args) -> int:
    root, origin = find_data_root(args.data)
    print(f"data: {root} ({'bundled demo set' if origin == 'demo' else 'from ' + origin})")
    for split, n in split_counts(root).items():
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
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="named config (default: cpu)")
    p.add_argument("--data", help="folder holding keras_png_slices_train/ (default: $GANLIB_DATA, repo, demo)")
    p.add_argument("--out", help="parent folder of run folders (default: <repo>/runs)")
    p.add_argument("--epochs", type=_positive, help="number of epochs (overrides the preset)")
    p.add_argument("--batch-size", type=_positive, help="global batch size (overrides the preset)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run folder from its last checkpoint")
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
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("info", help="which data was found, counts per split, device, versions")
    p.add_argument("--data", help="folder holding keras_png_slices_train/")
    p.set_defaults(func=cmd_info)

    try:
        from . import evaluate
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
    except KeyboardInterrupt:
        print(f"ganlib {args.command}: interrupted; resume with --resume RUN_DIR", file=sys.stderr)
        return 130
    except RuntimeError as e:
        from .train import TrainingDiverged

        if isinstance(e, TrainingDiverged):
            print(f"ganlib {args.command}: stopped: {e}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())

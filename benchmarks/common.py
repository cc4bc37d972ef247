"""What the benchmark scripts share: where runs live, image budgets from a measured rate, resumable training,
and reading and writing their JSON results.

Every training run of a benchmark lives outside the repository (`~/ganlib-runs/<script>/<job>/`), so a session
that stops mid-run loses nothing: running the same command again resumes the run from its last epoch.
"""

from __future__ import annotations

import dataclasses
import io
import json
import lzma
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from ganlib.config import TrainConfig
from ganlib.data import DataError, SliceSet, _slice_set
from ganlib.utils.files import REPO_ROOT, from_home, write_atomic

RUNS = Path.home() / "ganlib-runs"
RESULTS = Path(__file__).resolve().parent / "results"
EPOCHS = 10  # a budget is cut into 10 epochs: a checkpoint each, StepLR halving after 2, 4, 6, 8


def module_command(name: str, *args: str) -> list[str]:
    """`python -m benchmarks.<name> ARGS`: a benchmark in a fresh Python (started with `repo_env()`)."""
    return [sys.executable, "-m", f"benchmarks.{name}", *args]


def repo_env() -> dict:
    """This environment with the repository on PYTHONPATH, so `benchmarks` imports from any folder."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def read_json(path: str | os.PathLike) -> dict:
    """The JSON object in `path`, or {} when there is no such file yet."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """`data` as indented JSON, written atomically (a killed benchmark never leaves half a results file)."""
    return write_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def read_stats(run_dir: str | os.PathLike) -> list[dict]:
    """A run folder's stats.jsonl: one dict per epoch trained."""
    path = Path(run_dir) / "stats.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def shown(path: str | os.PathLike) -> str:
    """A path as committed results print it: relative to the repository when inside it, else from ~."""
    path = Path(path)
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else from_home(path)


def budget_config(base: TrainConfig, name: str, minutes: float, seed: int, rate: float) -> TrainConfig:
    """`base` trained for `minutes` of a machine that trains it at `rate` images/s, in EPOCHS epochs.

    Equal compute means equal minutes of one machine, not equal images: a recipe that costs more per image
    gets fewer of them. The images are fixed before training starts, so load on the machine changes how
    long a run takes, never what it computes.
    """
    per_epoch = int(rate * minutes * 60 / EPOCHS) // base.batch_size * base.batch_size
    if per_epoch == 0:
        raise ValueError(f"{minutes:g} minutes at {rate} images/s is less than one batch per epoch: give more minutes")
    return dataclasses.replace(
        base,
        name=name,
        seed=seed,
        val_split="",  # the held-out slices are for the evaluation only
        num_epochs=EPOCHS,
        epoch_images=per_epoch,
        lr_step_epochs=EPOCHS // 5,
    )


def budget_configs(
    bases: dict[str, tuple[TrainConfig, float]], names, seeds, rates_path: Path, same_cost: dict | None = None
) -> list[TrainConfig]:
    """NAME-sSEED configs of `bases` (name: (config, minutes)), each given the images its minutes train at
    the rate measured for it in `rates_path` (budget_config); a clear error for a rate not measured yet.
    `same_cost` maps a name to another whose rate it takes: a switch that computes the same per image
    trains the same images, not a few percent more or less from the noise between two measurements."""
    rates, same_cost = read_json(rates_path), same_cost or {}
    missing = [name for name in names if same_cost.get(name, name) not in rates]
    if missing:
        raise SystemExit(f"{rates_path}: no rate for {', '.join(missing)}; run `rates` first")
    return [budget_config(bases[name][0], f"{name}-s{seed}", bases[name][1], seed,
                          rates[same_cost.get(name, name)]["images_per_s"])
            for name in names for seed in seeds]


def own_base(run_name: str, names) -> list[str]:
    """[NAME] for a run called NAME-sSEED among `names`, so that training one run needs only its own rate
    measured; all of `names` where it is none of them (train_named then lists the choices)."""
    base = run_name.rpartition("-s")[0]
    return [base] if base in names else list(names)


def add_scoring_options(p, default_n: int) -> None:
    """The options of an arm benchmark's `score` command (benchmarks.grow, benchmarks.projected)."""
    p.add_argument("--generators", help="score: a folder of NAME.pt generators trained elsewhere (a lent GPU)")
    p.add_argument("--trained-on", default="this CPU", help="score: where the generators were trained")
    p.add_argument("--inception-weights")
    p.add_argument("--n", type=int, default=default_n)
    p.add_argument("--again", action="store_true", help="score: score arms already in results.json again")


def find_run(folder: str | os.PathLike) -> Path | None:
    """The newest run folder under `folder` that has a checkpoint, or None."""
    runs = sorted(Path(folder).glob("*/checkpoints/latest.pt"))
    return runs[-1].parents[1] if runs else None


def train_or_resume(config: TrainConfig, folder: str | os.PathLike, **train_kwargs) -> Path:
    """Train `config` in a run under `folder`, or continue the run already there; returns the run folder."""
    from ganlib.train import train

    previous = find_run(folder)
    how = f"resuming {previous.name}" if previous else "new"
    print(f"{config.name}: {config.num_epochs * (config.epoch_images or 0):,} images ({how})", flush=True)
    return train(config, out=folder, resume=previous, progress=False, **train_kwargs)


def measure_rate(config: TrainConfig, train_set, runs: Path, images: int) -> dict:
    """images/s of `config` here, from the second of two short epochs of `images` (the first warms up), with
    the load average around it, the threads and the processor: a rate a budget can be fixed from."""
    import platform
    import time

    import torch

    from ganlib.train import train

    config = dataclasses.replace(config, num_epochs=2, epoch_images=images, val_split="")
    load = os.getloadavg()[0]
    run = train(config, out=runs, train_set=train_set, val_set=None, progress=False)
    return {
        "images_per_s": read_stats(run)[-1]["images_per_s"],
        "load1_before": round(load, 2),
        "load1_after": round(os.getloadavg()[0], 2),
        "threads": torch.get_num_threads(),
        "cpu": cpu_name() or platform.processor(),
        "date": time.strftime("%Y-%m-%d"),
    }


def cpu_name() -> str:
    """The processor as results name it: model, cores and its widest vector unit (AMX, AVX-512 with or without
    bf16, AVX2), since two machines of one model name can train at very different rates; '' if unreadable."""
    from benchmarks.flops import cpu_info

    info = cpu_info()
    if info["model"] == "unknown":
        return ""
    flags = set(info["flags"])
    unit = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 bf16"),
                                         ("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "")
    return ", ".join(part for part in (info["model"], f"{info['cores']} cores", unit) if part)


def write_configs(configs: list[TrainConfig], folder: str | os.PathLike) -> None:
    """Each config as FOLDER/NAME.json, for `gpu_run equal --config`; a line for each with its images."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for config in configs:
        (folder / f"{config.name}.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
        extra = f", {config.grow_kimg} thousand at the lower resolutions" if config.grow_from else ""
        print(f"{folder / config.name}.json: {config.num_epochs * config.epoch_images:,} images{extra}")


def train_named(configs: list[TrainConfig], name: str, runs: Path, data) -> Path:
    """Train (or resume) the config called `name` under runs/NAME; a clear error for an unknown name."""
    named = {c.name: c for c in configs}
    if name not in named:
        raise SystemExit(f"unknown run {name!r}; choose one of {', '.join(named)}")
    return train_or_resume(named[name], runs / name, data=data, val_set=None)


def trained_generator(config: TrainConfig, runs: Path, generators: str | None = None) -> Path | None:
    """An arm's generator to score: GENERATORS/NAME.pt (trained elsewhere, a lent GPU) if there, else the
    latest checkpoint of its run under runs/NAME once every epoch is done; None if neither."""
    source = Path(generators) / f"{config.name}.pt" if generators else None
    if source is not None and source.exists():
        return source
    run = find_run(runs / config.name)
    if run is None or len(read_stats(run)) < config.num_epochs:
        return None
    return run / "checkpoints" / "latest.pt"


def loop_minutes(source: Path) -> float | None:
    """Minutes of training loop the run behind a checkpoint logged (its epochs' seconds summed), when the
    checkpoint is a local run's latest.pt; None for a generator trained elsewhere (a lent GPU)."""
    if source.name != "latest.pt" or source.parent.name != "checkpoints":
        return None
    stats = read_stats(source.parents[1])
    return round(sum(s["seconds"] for s in stats) / 60, 1) if stats else None


def score_arm(config: TrainConfig, source: Path, floor: dict, args, out_dir: Path) -> dict:
    """`ganlib evaluate` of one arm's generator (args.n samples against every held-out slice), in the
    numbers the arm tables show, with the real-vs-real floor beside them, and the minutes its run trained
    here (the budgets are set in images; this shows what they took). The audit's nearest-pair figures
    show training slices (patients): they go to the runs folder, never to `out_dir` in the repository."""
    from ganlib.evaluation.evaluate import evaluate

    m = evaluate(source, n=args.n, split="heldout", data=args.data, inception_weights=args.inception_weights,
                 out_dir=out_dir, pair_figures=args.runs / "audit-pairs" / config.name)["metrics"]
    return {
        "images": config.num_epochs * config.epoch_images,
        "fid": m["fid"], "kid": m["kid_mean"], "swd": m["swd"],
        "floor_fid": floor["fid"], "fid_over_floor": m["fid"] / floor["fid"],
        "exact_copies": m["mem_exact_copies"], "share_near_train_pixel": m["mem_share_pixel"],
        "floor_share_near_train_pixel": floor["mem_share_pixel"],
        "trained_on": args.trained_on,
    } | ({"loop_minutes": minutes} if (minutes := loop_minutes(source)) is not None else {})


def save_sample_strip(source, path: Path, n: int = 16, seed: int = 7) -> None:
    """n samples of a generator in one row, from the same latents for every generator (seed 7), so that
    recipes can be compared side by side (generated slices, not patients)."""
    import torch

    from ganlib.checkpoint import load_generator
    from ganlib.models import sample
    from ganlib.viz import save_grid

    G, _ = load_generator(source)
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    save_grid(sample(G, z), path, nrow=n)


def score_arms(configs: list[TrainConfig], args, floor_of, extra) -> dict:
    """Score every trained arm not in results.json yet (all of them with args.again), saving after each:
    `floor_of(config)` is its floor's metrics, `extra(config)` what its row adds. Returns the results."""
    results = read_json(args.out / "results.json")
    for config in configs:
        source = trained_generator(config, args.runs, args.generators)
        if source is None:
            print(f"{config.name}: not trained yet, skipped")
            continue
        if config.name in results and not args.again:
            continue
        scores = score_arm(config, source, floor_of(config), args, args.out / config.name)
        save_sample_strip(source, args.out / f"samples-{config.name}.png")
        results[config.name] = {**scores, **extra(config)}
        write_json(args.out / "results.json", results)
        print(config.name, json.dumps(results[config.name]), flush=True)
    return results


# ---------------------------------------------------------------- synthetic pairs and the U-Net's score


def synthetic_pairs(checkpoint, n: int, seed: int = 0, device: str = "cpu", resolution: int | None = None):
    """n pairs from a paired generator as (slices uint8, masks class ids uint8, positions), positions in turn;
    a clear error for a generator that makes no pairs, or pairs of another size than `resolution`."""
    import torch

    from ganlib.checkpoint import load_generator
    from ganlib.conditional import default_positions
    from ganlib.data import to_uint8
    from ganlib.models import sample

    G, config = load_generator(checkpoint)
    if not (config.with_masks and config.positions):
        raise SystemExit(f"{checkpoint}: not a paired, position-conditioned generator (train it with --preset pairs)")
    if resolution is not None and config.resolution != resolution:
        raise SystemExit(f"{checkpoint}: makes {config.resolution}px slices; this comparison is at {resolution}px")
    z = torch.randn(n, config.z_dim, generator=torch.Generator().manual_seed(seed))
    y = default_positions(n, config.positions)
    images, masks = sample(G.to(device), z, y=y, masks=True)  # on the CPU again
    return to_uint8(images), masks.to(torch.uint8), y


def dice_on(model, test: SliceSet) -> tuple[list[float], float]:
    """A U-Net's Dice per class on a split's real slices and masks, and its mean over the tissues."""
    from ganlib.data import to_float
    from ganlib.pairs.segment import TISSUES, dice_per_class, predict

    dice = dice_per_class(predict(model, to_float(test.images)), test.masks[:, 0])
    return dice.tolist(), float(dice[list(TISSUES)].mean())


# ---------------------------------------------------------------- the data pack a lent GPU trains from


def save_pack(path: str | os.PathLike, sets: dict[str, SliceSet]) -> Path:
    """Several decoded splits in one compressed .npz (uint8 images, ids, file names): a portable data cache.

    A name ending in .xz (`oasis128.npz.xz`) is compressed with xz instead of zlib.

    This is how the data travels to a machine that has no copy of the PNGs (a lent GPU): `load_pack` gives the
    same `SliceSet`s back, without reading a PNG.
    """
    arrays = {}
    for split, s in sets.items():
        arrays[f"{split}/images"] = s.images.numpy()
        arrays[f"{split}/case_ids"] = s.case_ids.numpy()
        arrays[f"{split}/slice_idx"] = s.slice_idx.numpy()
        arrays[f"{split}/files"] = np.array([Path(f).name for f in s.files])
        if s.masks is not None:
            arrays[f"{split}/masks"] = s.masks.numpy()
    buf = io.BytesIO()
    if str(path).endswith(".xz"):  # xz: about 16% smaller than zlib on these slices, and slower to write
        np.savez(buf, **arrays)
        return write_atomic(path, lzma.compress(buf.getbuffer(), preset=6))
    np.savez_compressed(buf, **arrays)
    return write_atomic(path, buf.getbuffer())


def load_pack(path: str | os.PathLike) -> dict[str, SliceSet]:
    """The splits that `save_pack` wrote, as `SliceSet`s (root: the pack file)."""
    path = Path(path)
    try:
        source = io.BytesIO(lzma.decompress(path.read_bytes())) if str(path).endswith(".xz") else path
        with np.load(source, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, lzma.LZMAError) as e:
        again = "make it again with `python -m benchmarks.gpu_run pack`"
        raise DataError(f"{path}: not a readable data pack ({e}); {again}") from None
    sets = {}
    for split in sorted({k.split("/")[0] for k in arrays}):
        a = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(split + "/")}
        if not {"images", "case_ids", "slice_idx", "files"} <= set(a):
            raise DataError(f"{path}: split {split!r} lacks images, ids or file names; make the pack again")
        entries = [(None, None, f, None) for f in a.pop("files").tolist()]
        sets[split] = _slice_set(a, entries, split, path)
    return sets


def pack_image_shape(path: str | os.PathLike, split: str = "train") -> tuple[int, ...]:
    """The shape of one split's images without decoding the pack: `save_pack` writes each split's images
    first, so when that split leads, the array's header lies in the pack's first kilobytes. Otherwise, or for
    anything unexpected, the whole pack is loaded (and its one-line error stands)."""
    path = Path(path)
    try:
        with lzma.open(path) if str(path).endswith(".xz") else open(path, "rb") as f:
            head = f.read(1 << 16)
        shape = _leading_array_shape(head, f"{split}/images.npy")
    except (OSError, EOFError, ValueError, struct.error, zlib.error, lzma.LZMAError):
        shape = None
    return shape if shape is not None else tuple(load_pack(path)[split].images.shape)


def _leading_array_shape(head: bytes, member: str) -> tuple[int, ...] | None:
    """The shape in the .npy header of a zip's first entry, if that entry is `member` (stored or deflated)."""
    if head[:4] != b"PK\x03\x04":
        return None
    (method,) = struct.unpack("<H", head[8:10])
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    if head[30 : 30 + name_len].decode("utf-8", "replace") != member or method not in (0, 8):
        return None
    data = head[30 + name_len + extra_len :]
    if method == 8:
        data = zlib.decompressobj(-zlib.MAX_WBITS).decompress(data, 4096)
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return tuple(read(f)[0])


def reflow_bullets(text: str, width: int = 115) -> str:
    """Markdown bullets (a "- " line and its indented continuations) rewrapped to `width`: a card or report whose
    sentences come from configs and numbers reads as well as one written by hand."""
    import textwrap

    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        if not lines[i].startswith("- "):
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].startswith("  "):
            j += 1
        out.append(textwrap.fill(" ".join(line.strip() for line in lines[i:j]), width, subsequent_indent="  ",
                                 break_long_words=False, break_on_hyphens=False))
        i = j
    return "\n".join(out)

"""Build the synthetic demo data set that ships in `ganlib/demo/keras_png_slices_data`.

The demo set lets ganlib train, test and run its notebooks without the OASIS download. It copies
the OASIS `keras_png_slices_data` layout exactly (folders, file names, 256x256 8-bit slices,
masks stored as class*85), but every "subject" is the MNI152 ICBM 2009a T1 template that nilearn
ships inside its package, warped by a random smooth deformation and given a smooth bias field and
small global changes. Tissue masks come from the template's grey/white matter probability maps
under the same warp. No network access is needed: the three `load_mni152_*` loaders read files
inside the installed nilearn package.

Everything is drawn from numpy RNGs seeded by (seed, case id), so re-running the script, or
building one subject alone with `build_subject`, gives byte-identical PNGs.

Usage (from the repository root; needs the `demo` extra, i.e. nilearn):

    python scripts/make_demo_data.py
    python scripts/make_demo_data.py --out /tmp/demo --train 4 --validate 1 --test 1
"""

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "ganlib" / "demo" / "keras_png_slices_data"
SEED = 3710
SIZE = 256
SLICES_PER_CASE = 32
SPLITS = ("train", "validate", "test")
# Case ids start at a different hundred per split so ids can never collide across splits.
FIRST_CASE_ID = {"train": 1, "validate": 101, "test": 201}
DEFAULT_COUNTS = {"train": 9, "validate": 2, "test": 2}
# Millimetres per output pixel: puts the brain at ~70% of the frame width and ~88% of its
# height, about what OASIS slices show.
MM_PER_PIXEL = 0.8
# Axial range as fractions of the brain's inferior-superior extent: OASIS slices cover the
# mid and upper brain; the bottom (brainstem, cerebellum tip) and the very top are nearly empty.
Z_RANGE = (0.30, 0.90)
MASK_LEVELS = 85  # classes 0..3 are stored as 0, 85, 170, 255, as in OASIS

NOTICE = """\
# Demo data: synthetic brain MRI slices (not OASIS)

These PNGs are **synthetic demonstration data**. They are **not** from OASIS and are not images
of any patient or research participant. Every "case" is the MNI152 ICBM 2009a nonlinear T1
template (the 1 mm, skull-stripped copy shipped inside the nilearn package,
`nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz`), warped by a random
smooth deformation field and given a smooth multiplicative bias field, a small scale, rotation,
shift, contrast and brightness change. Cases differ only by these random transforms, so the set
is useful to exercise the code, not to judge a model.

The masks come from the template's grey and white matter probability maps under the same warp:
0 background, 1 CSF (inside the brain, neither grey nor white matter dominant), 2 grey matter,
3 white matter, stored as pixel values 0, 85, 170, 255 like the OASIS masks.

The layout and file names follow OASIS `keras_png_slices_data` so the same loader reads both:
32 axial slices per case, 256x256, 8-bit grayscale, anterior at the top, patient's left on the
right (radiological convention). Case ids are disjoint across splits
(train {train}, validate {validate}, test {test}).

## How it was made

    python scripts/make_demo_data.py

(needs nilearn, the `demo` extra; seed {seed}; re-running gives byte-identical files).

## Template copyright and licence

The MNI152 ICBM 2009 templates are distributed with the following notice (text of the template
archive's `COPYING` file, as reproduced in nibabel's `COPYING`; "software" refers to the images):

    Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre,
    Montreal Neurological Institute, McGill University.

    Permission to use, copy, modify, and distribute this software and its
    documentation for any purpose and without fee is hereby granted, provided
    that the above copyright notice appear in all copies.  The authors and
    McGill University make no representations about the suitability of this
    software for any purpose.  It is provided "as is" without express or
    implied warranty.  The authors are not responsible for any data loss,
    equipment damage, property loss, or injury to subjects or patients
    resulting from the use or misuse of this software package.

Template references: Fonov VS, Evans AC, McKinstry RC, Almli CR, Collins DL. Unbiased nonlinear
average age-appropriate brain templates from birth to adulthood. NeuroImage 47, Suppl 1, S102
(2009). Fonov V, Evans AC, Botteron K, Almli CR, McKinstry RC, Collins DL. Unbiased average
age-appropriate atlases for pediatric studies. NeuroImage 54(1), 313-327 (2011).
"""


@dataclass(frozen=True)
class Template:
    """The template on its 1 mm grid: T1 in [0, 1], tissue labels 0..3, and where to cut it."""

    t1: np.ndarray
    labels: np.ndarray
    centre_xy: tuple[float, float]
    slice_z: np.ndarray


@dataclass(frozen=True)
class Subject:
    """The random transforms that turn the template into one synthetic case."""

    displacement: np.ndarray  # (3, gx, gy, gz) control-point displacements in mm
    log_bias: np.ndarray  # (bx, by, bz) control points of the log bias field
    scale_xy: tuple[float, float]
    rotation: float  # radians, in the axial plane
    shift_px: tuple[float, float]
    gain: float
    gamma: float


def load_template() -> Template:
    """Load T1, GM and WM from the files inside nilearn (no download) and derive labels and cuts."""
    from nilearn import datasets  # imported here so the module loads without nilearn

    # resolution=1 keeps the native 1 mm grid, all three share it (affine: identity + offset).
    t1 = np.asarray(datasets.load_mni152_template(resolution=1).dataobj, dtype=np.float32)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    labels = tissue_labels(t1, gm, wm)
    return Template(t1=t1, labels=labels, centre_xy=brain_centre_xy(labels > 0), slice_z=slice_positions(labels > 0))


def tissue_labels(t1: np.ndarray, gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """0 outside the skull-stripped T1, else 1 + argmax of (CSF, GM, WM) with CSF = 1 - GM - WM."""
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = 1 + np.argmax(np.stack([csf, gm, wm]), axis=0)
    # The GM map spills past the stripped brain; the T1's support is what the images show.
    return np.where(t1 > 0, labels, 0).astype(np.uint8)


def brain_centre_xy(brain: np.ndarray) -> tuple[float, float]:
    """Centre of the brain's bounding box in x and y, so every slice shares one centre like a scan."""
    idx = np.argwhere(brain)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    return float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2


def slice_positions(brain: np.ndarray) -> np.ndarray:
    """`SLICES_PER_CASE` axial positions (voxel z) spread evenly over `Z_RANGE` of the brain."""
    z = np.flatnonzero(brain.any(axis=(0, 1)))
    lo, hi = z[0] + Z_RANGE[0] * (z[-1] - z[0]), z[0] + Z_RANGE[1] * (z[-1] - z[0])
    return np.linspace(lo, hi, SLICES_PER_CASE)


def subject_rng(case_id: int, seed: int = SEED) -> np.random.Generator:
    """One generator per case, so a case is the same whether built alone or with all others."""
    return np.random.default_rng([seed, case_id])


def random_subject(rng: np.random.Generator) -> Subject:
    """Draw the transforms: a few mm of smooth warp, ~8% bias, a few % of scale, degrees of turn."""
    return Subject(
        displacement=rng.normal(0.0, 2.0, size=(3, 5, 6, 5)),
        log_bias=rng.normal(0.0, 0.08, size=(4, 4, 4)),
        scale_xy=(float(rng.uniform(0.94, 1.06)), float(rng.uniform(0.94, 1.06))),
        rotation=float(np.deg2rad(rng.uniform(-4.0, 4.0))),
        shift_px=(float(rng.uniform(-4.0, 4.0)), float(rng.uniform(-4.0, 4.0))),
        gain=float(rng.uniform(0.9, 1.05)),
        gamma=float(rng.uniform(0.85, 1.15)),
    )


def sample_points(template: Template, subject: Subject) -> np.ndarray:
    """Template voxel coordinates (3, slices, SIZE, SIZE) that each output pixel reads from."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    u = cols - (SIZE - 1) / 2 - subject.shift_px[0]  # to the right of the frame
    v = (SIZE - 1) / 2 - rows - subject.shift_px[1]  # up the frame
    c, s = np.cos(subject.rotation), np.sin(subject.rotation)
    u, v = c * u - s * v, s * u + c * v
    # Radiological display: the frame's right is the patient's left (-x), its top is anterior (+y).
    x = template.centre_xy[0] - u * MM_PER_PIXEL / subject.scale_xy[0]
    y = template.centre_xy[1] + v * MM_PER_PIXEL / subject.scale_xy[1]
    n = len(template.slice_z)
    points = np.stack(
        [
            np.broadcast_to(x, (n, SIZE, SIZE)),
            np.broadcast_to(y, (n, SIZE, SIZE)),
            np.broadcast_to(template.slice_z[:, None, None], (n, SIZE, SIZE)),
        ]
    )
    return points + smooth_field(subject.displacement, points, template.t1.shape)


def smooth_field(control: np.ndarray, points: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Cubic-spline upsampling of a coarse control grid, evaluated only at `points` (cheaper than the volume)."""
    channels = control if control.ndim == 4 else control[None]
    grid = np.stack([points[i] * (channels.shape[i + 1] - 1) / (shape[i] - 1) for i in range(3)])
    field = np.stack([ndimage.map_coordinates(ch, grid, order=3, mode="nearest") for ch in channels])
    return field if control.ndim == 4 else field[0]


def render_subject(template: Template, subject: Subject) -> tuple[np.ndarray, np.ndarray]:
    """The case's slices as uint8 arrays (slices, SIZE, SIZE): images, and masks as class*85."""
    points = sample_points(template, subject)
    labels = ndimage.map_coordinates(template.labels, points, order=0, cval=0)
    t1 = ndimage.map_coordinates(template.t1, points, order=1, cval=0.0)
    bias = np.exp(smooth_field(subject.log_bias, points, template.t1.shape))
    values = subject.gain * np.clip(t1, 0.0, 1.0) ** subject.gamma * bias * 255.0
    images = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    brain = labels > 0
    # Background is exactly 0 where the mask says background, and brain pixels are never 0,
    # so image and mask agree on what is brain.
    images = np.where(brain, np.maximum(images, 1), 0).astype(np.uint8)
    return images, (labels * MASK_LEVELS).astype(np.uint8)


def save_png(array: np.ndarray, path: Path) -> None:
    """8-bit grayscale PNG; optimize=True because the set is committed and size matters."""
    Image.fromarray(array).save(path, optimize=True)  # a 2-D uint8 array becomes mode "L"


def build_subject(
    case_id: int, split: str, out: Path, template: Template | None = None, seed: int = SEED
) -> list[Path]:
    """Write one case's 32 images and masks under `out` in the OASIS layout; return the paths written."""
    template = template if template is not None else load_template()
    images, masks = render_subject(template, random_subject(subject_rng(case_id, seed)))
    image_dir, mask_dir = out / f"keras_png_slices_{split}", out / f"keras_png_slices_seg_{split}"
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(len(images)):
        image_path = image_dir / f"case_{case_id:03d}_slice_{k}.nii.png"
        mask_path = mask_dir / f"seg_{case_id:03d}_slice_{k}.nii.png"
        save_png(images[k], image_path)
        save_png(masks[k], mask_path)
        written += [image_path, mask_path]
    return written


def case_ids(counts: dict[str, int]) -> dict[str, list[int]]:
    """Case ids per split, e.g. train 1..9, validate 101..102, test 201..202."""
    for split, n in counts.items():
        if not 0 < n < 100:
            raise SystemExit(f"--{split} must be between 1 and 99 (got {n})")
    return {split: list(range(FIRST_CASE_ID[split], FIRST_CASE_ID[split] + counts[split])) for split in SPLITS}


def clear_old_pngs(out: Path) -> None:
    """Remove PNGs a previous run left in the split folders, so fewer cases leave no strays behind."""
    for split in SPLITS:
        for folder in (out / f"keras_png_slices_{split}", out / f"keras_png_slices_seg_{split}"):
            for path in folder.glob("*.nii.png"):
                path.unlink()


def describe_range(ids: list[int]) -> str:
    """'001-007' or '101' for the NOTICE."""
    return f"{ids[0]:03d}" if len(ids) == 1 else f"{ids[0]:03d}-{ids[-1]:03d}"


def write_notice(out: Path, ids: dict[str, list[int]], seed: int) -> None:
    """NOTICE.md: what the data is, how to rebuild it, and the template's licence notice."""
    ranges = {split: describe_range(ids[split]) for split in SPLITS}
    (out / "NOTICE.md").write_text(NOTICE.format(seed=seed, **ranges), encoding="utf-8")


def folder_bytes(folder: Path) -> int:
    """Total size of the files under `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="root of the layout (default: %(default)s)")
    for split in SPLITS:
        parser.add_argument(
            f"--{split}", type=int, default=DEFAULT_COUNTS[split], help=f"{split} cases (default: %(default)s)"
        )
    parser.add_argument("--seed", type=int, default=SEED, help="base seed (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    ids = case_ids({split: getattr(args, split) for split in SPLITS})
    template = load_template()
    args.out.mkdir(parents=True, exist_ok=True)
    clear_old_pngs(args.out)
    for split in SPLITS:
        for case_id in ids[split]:
            build_subject(case_id, split, args.out, template, args.seed)
    write_notice(args.out, ids, args.seed)
    for split in SPLITS:
        n_images = len(list((args.out / f"keras_png_slices_{split}").glob("*.png")))
        n_masks = len(list((args.out / f"keras_png_slices_seg_{split}").glob("*.png")))
        print(f"{split:>8}: {len(ids[split])} cases ({describe_range(ids[split])}), {n_images} images, {n_masks} masks")
    print(f"{folder_bytes(args.out):,} bytes in {args.out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()

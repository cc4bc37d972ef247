"""OASIS slices in the `keras_png_slices_data` layout, decoded once into uint8 tensors.

A split is read into memory at the training resolution (and optionally cached on disk,
keyed by resolution and the file list), so training indexes a tensor instead of opening
PNGs every epoch. Bad input stops with a `DataError` that names the file and what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .utils.files import REPO_ROOT, write_atomic

log = logging.getLogger("ganlib")

DEMO_ROOT = Path(__file__).resolve().parent / "demo" / "keras_png_slices_data"
SPLITS = ("train", "validate", "test")
IMAGE_RE = re.compile(r"^case_(\d+)_slice_(\d+)\.nii\.png$")
MASK_RE = re.compile(r"^seg_(\d+)_slice_(\d+)\.nii\.png$")
STRAY_NAMES = {"Thumbs.db", "desktop.ini"}
MASK_LEVELS = 85  # masks store classes 0..3 as 0, 85, 170, 255
NUM_CLASSES = 4  # background, CSF, grey matter, white matter


class DataError(Exception):
    """A problem with the user's data, worded so they can fix it."""


@dataclass
class SliceSet:
    """One split held in memory: images (N, 1, R, R) uint8, optional masks of class ids 0..3."""

    images: torch.Tensor
    case_ids: torch.Tensor
    slice_idx: torch.Tensor
    files: list[str]
    split: str
    root: Path
    masks: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, keep: torch.Tensor) -> SliceSet:
        """The slices where the boolean `keep` (N,) is true, as a SliceSet of its own."""
        rows = keep.nonzero().flatten()
        return dataclasses.replace(
            self,
            images=self.images[rows],
            case_ids=self.case_ids[rows],
            slice_idx=self.slice_idx[rows],
            files=[self.files[i] for i in rows.tolist()],
            masks=self.masks[rows] if self.masks is not None else None,
        )

    def fingerprint(self) -> str:
        """A short hash of the decoded pixels: the same for the same slices wherever they are stored."""
        h = hashlib.sha1(f"v1 {tuple(self.images.shape)}".encode())
        h.update(self.images.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def subject_subset(case_ids: torch.Tensor, share: float, seed: int = 0) -> torch.Tensor:
    """A fixed random `share` of the subjects in `case_ids` (at least one), sorted: the scarce-data setting."""
    if not 0 < share <= 1:
        raise ValueError(f"subject_share={share}: a share of the training subjects, above 0 and at most 1")
    cases = case_ids.unique()
    pick = torch.randperm(len(cases), generator=torch.Generator().manual_seed(seed))
    return cases[pick[: max(1, round(share * len(cases)))]].sort().values


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1], as ToTensor() then Normalize(0.5, 0.5) would give."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], clamping what a generator overshoots."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def find_data_root(path: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Where the data is and how it was chosen: `path`, else $GANLIB_DATA, else the repo folder, else the demo."""
    for given, origin in ((path, "--data"), (os.environ.get("GANLIB_DATA") or None, "GANLIB_DATA")):
        if given is not None:
            root = Path(given).expanduser()
            if not root.is_dir():
                raise DataError(
                    f"{origin} points to {root}, which is not a folder; give the folder that holds "
                    "keras_png_slices_train/ (see keras_png_slices_data/README.md)"
                )
            return root, origin
    repo_data = REPO_ROOT / "keras_png_slices_data"
    if (repo_data / "keras_png_slices_train").is_dir():
        return repo_data, "repo"
    if not _said_demo:
        _said_demo.append(True)  # one notice per process, however many splits are loaded
        log.warning(
            "no OASIS data in %s; using the bundled demo set (synthetic, from the MNI152 template)",
            shown_path(repo_data),
        )
    return DEMO_ROOT, "demo"


_said_demo: list[bool] = []


def shown_path(path: str | os.PathLike) -> str:
    """`path` relative to the repository when inside it (so notebooks never print this machine's paths)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def split_dirs(root: Path, split: str) -> tuple[Path, Path]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return root / f"keras_png_slices_{split}", root / f"keras_png_slices_seg_{split}"


def _list_folder(folder: Path, pattern: re.Pattern, what: str) -> dict[tuple[int, int], Path]:
    """{(case, slice): path} for the files of one folder; strays ignored, odd names reported."""
    if not folder.is_dir():
        raise DataError(f"missing folder {folder}: expected the {what} of the keras_png_slices_data layout")
    found: dict[tuple[int, int], Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_symlink() and not p.exists():
            raise DataError(f"{p}: a broken symbolic link (to {os.readlink(p)}); fix the link or delete it")
        if p.name.startswith(".") or p.name in STRAY_NAMES or p.is_dir():
            continue  # .DS_Store, ._foo.png, Thumbs.db and sub-folders are not data
        m = pattern.match(p.name)
        if m is None:
            if p.suffix.lower() == ".png":
                raise DataError(f"{p}: unexpected file name; {what} are named like {pattern.pattern}")
            log.warning("ignoring %s: not a PNG slice", p)
            continue
        found[(int(m.group(1)), int(m.group(2)))] = p
    if not found:
        raise DataError(f"{folder} holds no slices; put the {what} there (see keras_png_slices_data/README.md)")
    return found


def scan_split(root: Path, split: str, with_masks: bool = False) -> list[tuple[int, int, Path, Path | None]]:
    """(case, slice, image path, mask path) for each slice of a split, sorted by case then slice."""
    image_dir, mask_dir = split_dirs(root, split)
    images = _list_folder(image_dir, IMAGE_RE, f"{split} images")
    masks: dict = {}
    if with_masks:
        masks = _list_folder(mask_dir, MASK_RE, f"{split} masks")
        for key in sorted(set(masks) - set(images)):
            raise DataError(
                f"{masks[key]} has no matching image case_{key[0]:03d}_slice_{key[1]}.nii.png in {image_dir}"
            )
        for key in sorted(set(images) - set(masks)):
            raise DataError(f"{images[key]} has no matching mask seg_{key[0]:03d}_slice_{key[1]}.nii.png in {mask_dir}")
    return [(c, s, images[(c, s)], masks.get((c, s))) for c, s in sorted(images)]


def read_png(path: Path, resolution: int, mask: bool = False) -> np.ndarray:
    """One PNG as a (resolution, resolution) uint8 array; mask pixels become class ids 0..3."""
    try:
        with Image.open(path) as im:
            im.load()
            img = im
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"{path}: not a readable PNG ({e}); replace or delete the file") from None
    if img.format != "PNG":
        raise DataError(f"{path}: is a {img.format} file, not a PNG; convert or delete it")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        log.warning("%s: 16-bit image converted to 8-bit", path)
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.max() > 0 else 1.0
        img = Image.fromarray(np.round(arr / hi * 255).astype(np.uint8))
    elif img.mode != "L":
        log.warning("%s: %s image converted to grayscale", path, img.mode)
        img = img.convert("L")
    size = (resolution, resolution)
    if mask:
        return mask_classes(np.asarray(img.resize(size, Image.NEAREST)), path)
    return np.asarray(img.resize(size, Image.BILINEAR), dtype=np.uint8)


def mask_classes(arr: np.ndarray, path: Path) -> np.ndarray:
    """Class ids 0..3 of a mask stored as 0/85/170/255 (the OASIS release) or as the ids themselves."""
    values = set(np.unique(arr).tolist())
    if values <= {0, 1, 2, 3}:
        return arr.astype(np.uint8)
    if values <= {0, MASK_LEVELS, 2 * MASK_LEVELS, 3 * MASK_LEVELS}:
        return (arr // MASK_LEVELS).astype(np.uint8)
    odd = sorted(values - {0, 1, 2, 3, MASK_LEVELS, 2 * MASK_LEVELS, 3 * MASK_LEVELS})[:5]
    raise DataError(
        f"{path}: mask values {odd} are not classes; masks hold 0/85/170/255 (background, CSF, grey, white "
        "matter) or the class ids 0-3"
    )


def _cache_key(entries: list, resolution: int, with_masks: bool) -> str:
    h = hashlib.sha1(f"v1 {resolution} {with_masks}".encode())
    for _, _, img, msk in entries:
        for p in (img, msk) if msk is not None else (img,):
            st = p.stat()
            h.update(f"{p.resolve()} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("GANLIB_CACHE", Path.home() / ".cache" / "ganlib"))


def load_split(
    split: str = "train",
    resolution: int = 128,
    data: str | os.PathLike | None = None,
    with_masks: bool = False,
    max_images: int | None = None,
    cache: bool | str | os.PathLike = True,
) -> SliceSet:
    """Decode a split once into uint8 tensors at `resolution` (cached on disk unless cache=False).

    `max_images` keeps that many slices spread evenly over the split (smoke runs).
    """
    root, _ = find_data_root(data)
    entries = scan_split(root, split, with_masks)
    if max_images is not None and max_images < len(entries):
        keep = np.linspace(0, len(entries) - 1, max_images).round().astype(int)
        entries = [entries[i] for i in keep]
    cache_file = None
    if cache:
        cache_dir = default_cache_dir() if cache is True else Path(cache)
        cache_file = cache_dir / f"{split}-{resolution}-{_cache_key(entries, resolution, with_masks)}.npz"
        if cache_file.exists():
            try:
                with np.load(cache_file) as z:
                    arrays = {k: z[k] for k in z.files}
                return _slice_set(arrays, entries, split, root)
            except (OSError, ValueError, KeyError):
                log.warning("ignoring unreadable cache %s; decoding the PNGs again", cache_file)
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        images = list(pool.map(lambda e: read_png(e[2], resolution), entries))
        masks = list(pool.map(lambda e: read_png(e[3], resolution, mask=True), entries)) if with_masks else None
    arrays = {
        "images": np.stack(images)[:, None],
        "case_ids": np.array([e[0] for e in entries], dtype=np.int64),
        "slice_idx": np.array([e[1] for e in entries], dtype=np.int64),
    }
    if masks is not None:
        arrays["masks"] = np.stack(masks)[:, None]
    if cache_file is not None:
        _write_cache(cache_file, arrays)
    return _slice_set(arrays, entries, split, root)


def _write_cache(path: Path, arrays: dict) -> None:
    try:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        write_atomic(path, buf.getbuffer())
    except OSError as e:  # a read-only home must not stop training
        log.warning("could not write cache %s (%s); continuing without it", path, e)


def _slice_set(arrays: dict, entries: list, split: str, root: Path) -> SliceSet:
    return SliceSet(
        images=torch.from_numpy(arrays["images"]),
        case_ids=torch.from_numpy(arrays["case_ids"]),
        slice_idx=torch.from_numpy(arrays["slice_idx"]),
        files=[str(e[2]) for e in entries],
        split=split,
        root=root,
        masks=torch.from_numpy(arrays["masks"]) if "masks" in arrays else None,
    )


def split_counts(root: Path) -> dict[str, int]:
    """Number of image slices per split present under `root` (0 for a missing split)."""
    counts = {}
    for split in SPLITS:
        image_dir, _ = split_dirs(root, split)
        counts[split] = sum(1 for p in image_dir.iterdir() if IMAGE_RE.match(p.name)) if image_dir.is_dir() else 0
    return counts

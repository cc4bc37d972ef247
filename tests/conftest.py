"""Shared fixtures: small real PNG data sets in the OASIS layout, and the OASIS subset when CI points at it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def brain_slice(case: int, slice_idx: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic slice (an ellipse 'brain' with a darker core) and its 4-class mask, as uint8 arrays."""
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    r = 0.3 + 0.05 * np.sin(case) + 0.004 * slice_idx
    outer = (xx / r) ** 2 + (yy / (r * 1.2)) ** 2
    image = np.where(outer < 1, 120 + 60 * np.cos(6 * xx + case), 0)
    image = np.where(outer < 0.3, 200, image).astype(np.uint8)
    mask = np.select([outer < 0.3, outer < 0.8, outer < 1], [3, 2, 1], 0).astype(np.uint8) * 85
    return image, mask


def write_layout(root: Path, cases: dict[str, list[int]], slices: int = 4, masks: bool = True) -> Path:
    """PNG files named like OASIS's under root/keras_png_slices_{split} (and _seg_ for masks)."""
    for split, case_ids in cases.items():
        img_dir = root / f"keras_png_slices_{split}"
        seg_dir = root / f"keras_png_slices_seg_{split}"
        img_dir.mkdir(parents=True, exist_ok=True)
        if masks:
            seg_dir.mkdir(parents=True, exist_ok=True)
        for c in case_ids:
            for s in range(slices):
                image, mask = brain_slice(c, s)
                Image.fromarray(image, mode="L").save(img_dir / f"case_{c:03d}_slice_{s}.nii.png")
                if masks:
                    Image.fromarray(mask, mode="L").save(seg_dir / f"seg_{c:03d}_slice_{s}.nii.png")
    return root


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """train: 4 cases x 4 slices, validate and test: 1 case each; with masks."""
    return write_layout(tmp_path / "data", {"train": [1, 2, 3, 4], "validate": [402], "test": [441]})


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # Each test gets its own decode cache, so tests never see each other's arrays, and its own runs folder,
    # so nothing a test trains lands in the repository; the demo-data notice is said once per test.
    monkeypatch.setenv("GANLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GANLIB_RUNS", str(tmp_path / "runs"))
    import ganlib.data

    monkeypatch.setattr(ganlib.data, "_said_demo", [])


@pytest.fixture
def oasis() -> Path:
    """The real OASIS subset, where CI points GANLIB_OASIS at ../shared; skipped elsewhere."""
    path = os.environ.get("GANLIB_OASIS")
    if not path or not Path(path, "keras_png_slices_train").is_dir():
        pytest.skip("real OASIS data not available (set GANLIB_OASIS to ../shared/oasis/keras_png_slices_data)")
    return Path(path)


# ---------------------------------------------------------------- tests never write into the repository

_REPO = Path(__file__).resolve().parents[1]


def _repo_litter() -> set[str]:
    """Run folders under runs/ and, when bytecode is off (as `make test` sets it), __pycache__ folders."""
    found = {str(p.relative_to(_REPO)) for p in (_REPO / "runs").glob("*")}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        for top in ("ganlib", "tests", "benchmarks", "scripts", "notebooks"):
            found |= {str(p.relative_to(_REPO)) for p in (_REPO / top).rglob("__pycache__")}
    return found


def pytest_sessionstart(session):
    session.config._ganlib_litter = _repo_litter()


def pytest_sessionfinish(session, exitstatus):
    new = sorted(_repo_litter() - getattr(session.config, "_ganlib_litter", set()))
    if new:
        print(f"\nconftest: the tests wrote into the repository: {', '.join(new[:10])}")
        session.exitstatus = 1


def assert_in_results_document(table_md: Path, keep: str = "rows") -> None:
    """docs/results.md shows a benchmark's `table.md` exactly as its scoring command wrote it, so the document's
    figures come from the repository, never typed in by hand: its table `rows`, its `body` (all but the title
    line) or the `whole` file."""
    lines = table_md.read_text().strip().splitlines()
    shown = {"rows": [line for line in lines if line.startswith("|")], "body": lines[1:], "whole": lines}[keep]
    shown = "\n".join(shown).strip()
    doc = Path(__file__).resolve().parents[1] / "docs" / "results.md"
    assert shown in doc.read_text(), f"docs/results.md does not show {table_md} as written:\n{shown}"

"""Writing files so that a crash, a kill or a full disk never leaves half of one behind."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout: keras_png_slices_data/ and runs/ sit here


def write_atomic(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write `data` to a temporary name beside `path`, then rename it over `path`.

    On an error the temporary file is removed, the previous file at `path` is untouched, and the OSError
    names `path` (a full disk reads "No space left on device").
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:  # an OSError, or Ctrl-C in the middle of the write
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
    return path


def from_home(path: str | os.PathLike) -> str:
    """`path` with this machine's home folder written as ~, as a report or result that may be committed names it."""
    path = Path(path)
    return f"~/{path.relative_to(Path.home())}" if path.is_relative_to(Path.home()) else str(path)

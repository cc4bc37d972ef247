"""Run folders: numbered without races, and locked while a process trains in one."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .files import REPO_ROOT


class RunFolderBusy(ValueError):
    """Another process is training in this run folder."""


def default_runs_root() -> Path:
    """Where run folders go without --out: $GANLIB_RUNS, else <repo>/runs."""
    return Path(os.environ.get("GANLIB_RUNS") or REPO_ROOT / "runs")


def new_run_dir(out: str | os.PathLike | None, name: str) -> Path:
    """runs/00007-cpu: the next free number under `out`, claimed by mkdir so two processes never share one."""
    root = Path(out) if out is not None else default_runs_root()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(20, "--out is a file, not a folder; give a folder for run folders", str(root))
    root.mkdir(parents=True, exist_ok=True)
    number = max((int(p.name[:5]) for p in root.iterdir() if p.name[:5].isdigit()), default=-1) + 1
    while True:
        run_dir = root / f"{number:05d}-{name}"
        try:
            run_dir.mkdir()  # atomic: exactly one caller creates a given folder
            return run_dir
        except FileExistsError:
            number += 1  # another process took this number first


@contextlib.contextmanager
def lock_run_dir(run_dir: Path):
    """Hold an OS lock on `run_dir` while training in it; a second process gets a one-line error.

    The lock (flock on run_dir/.lock) goes away with the process, so a crashed or killed run never leaves
    a stale one behind.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; run folders are not locked there
        yield
        return
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            raise RunFolderBusy(
                f"{run_dir} is being trained by process {holder}; wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock

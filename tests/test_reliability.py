"""What a hostile user tried (issue 10): resume that keeps its word, locked run folders, one-line errors.

Each test failed on the code before the fix: the resume extended runs to the CLI preset's epoch count, two
processes trained one folder, failed runs left empty folders, and these inputs printed tracebacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganlib.config import get_preset
from ganlib.train import train
from ganlib.utils.runs import lock_run_dir, new_run_dir
from tests.conftest import write_layout

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganlib", *args], capture_output=True, text=True, cwd=REPO)


def one_line_error(r: subprocess.CompletedProcess, *words: str) -> str:
    """The last stderr line, checked to be ganlib's one-line error holding `words`, with no traceback."""
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("ganlib "), line
    for w in words:
        assert w in line, (w, line)
    return line


def epochs_in(run: Path) -> int:
    return len((run / "stats.jsonl").read_text().splitlines())


@pytest.fixture
def finished_run(tiny_data, tmp_path) -> Path:
    """A finished 2-epoch smoke run on tiny_data."""
    return train(get_preset("smoke", num_epochs=2), data=tiny_data, out=tmp_path / "runs", progress=False)


# ---------------------------------------------------------------- resume keeps its word


def test_resume_without_epochs_keeps_the_runs_own_count(finished_run, tiny_data):
    config_before = (finished_run / "config.json").read_text()
    r = cli("train", "--resume", str(finished_run), "--data", str(tiny_data))
    assert r.returncode == 0, r.stderr
    assert "already has 2 of 2 epochs; nothing to train" in r.stdout
    assert epochs_in(finished_run) == 2 and (finished_run / "config.json").read_text() == config_before


def test_resume_with_epochs_extends_and_says_so(finished_run, tiny_data):
    r = cli("train", "--resume", str(finished_run), "--data", str(tiny_data), "--epochs", "3", "--no-amp")
    assert r.returncode == 0, r.stderr
    assert f"resuming {finished_run} at epoch 3 of 3, with its stored 'smoke' config" in r.stdout
    config = json.loads((finished_run / "config.json").read_text())
    assert epochs_in(finished_run) == 3 and config["num_epochs"] == 3 and config["amp"] is False  # a speed switch


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--batch-size", "4"], ["batch_size=8", "not batch_size=4"]),
        (["--set", "lr=0.1"], ["lr=0.0002", "keeps its own config"]),
        (["--seed", "5"], ["seed=0", "not seed=5"]),
        (["--preset", "cpu"], ["--preset cpu", "a 'smoke' run"]),
    ],
)
def test_resume_refuses_what_would_change_the_computation(finished_run, tiny_data, flags, words):
    r = cli("train", "--resume", str(finished_run), "--data", str(tiny_data), "--epochs", "3", *flags)
    one_line_error(r, *words)
    assert epochs_in(finished_run) == 2


def test_resume_on_other_data_is_refused_unless_forced(finished_run, tmp_path):
    other = write_layout(tmp_path / "other", {"train": [7, 8, 9, 10], "validate": [402]})
    reals = (finished_run / "reals.png").read_bytes()
    r = cli("train", "--resume", str(finished_run), "--data", str(other), "--epochs", "3")
    one_line_error(r, "training slices differ", "--force-data")
    assert epochs_in(finished_run) == 2 and (finished_run / "reals.png").read_bytes() == reals
    r = cli("train", "--resume", str(finished_run), "--data", str(other), "--epochs", "3", "--force-data")
    assert r.returncode == 0, r.stderr
    assert epochs_in(finished_run) == 3


def test_resume_without_data_continues_on_the_runs_own_data(finished_run, tiny_data):
    # The run was trained on tiny_data; from the repository (default data: the demo set) a bare resume goes on
    # with tiny_data, where it used to be refused for a fingerprint mismatch.
    assert torch.load(finished_run / "checkpoints" / "latest.pt", weights_only=True)["data_root"] == str(tiny_data)
    r = cli("train", "--resume", str(finished_run), "--epochs", "3")
    assert r.returncode == 0, r.stderr
    assert epochs_in(finished_run) == 3 and "the run's own data" in r.stderr


# ---------------------------------------------------------------- run folders


def test_a_run_folder_in_use_is_refused(finished_run, tiny_data):
    with lock_run_dir(finished_run):  # this process trains there
        r = cli("train", "--resume", str(finished_run), "--data", str(tiny_data), "--epochs", "3")
        one_line_error(r, "is being trained by process", str(os.getpid()))
    assert epochs_in(finished_run) == 2
    r = cli("train", "--resume", str(finished_run), "--data", str(tiny_data), "--epochs", "3")
    assert r.returncode == 0, r.stderr  # released with its holder


def test_a_killed_holder_leaves_no_stale_lock(finished_run, tiny_data):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from ganlib.utils.runs import lock_run_dir\nwith lock_run_dir(__import__('pathlib')."
         f"Path({str(finished_run)!r})):\n    print('held', flush=True)\n    import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    one_line_error(cli("train", "--resume", str(finished_run), "--data", str(tiny_data), "--epochs", "3"), "process")
    holder.kill(), holder.wait()
    r = cli("train", "--resume", str(finished_run), "--data", str(tiny_data), "--epochs", "3")
    assert r.returncode == 0, r.stderr


def test_run_numbers_are_race_free(tmp_path):
    made, errors = [], []

    def claim():
        try:
            made.append(new_run_dir(tmp_path, "x"))
        except Exception as e:  # noqa: BLE001  (the old code raised FileExistsError here)
            errors.append(e)

    threads = [threading.Thread(target=claim) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(made)) == 40 and all(p.is_dir() for p in made)


def test_a_failed_train_leaves_no_run_folder(tmp_path):
    data = tmp_path / "data"
    (data / "keras_png_slices_train").mkdir(parents=True)  # a split folder with nothing in it
    r = cli("train", "--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "runs"))
    one_line_error(r, "holds no slices")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_training_without_a_validate_split(tmp_path):
    data = write_layout(tmp_path / "data", {"train": [1, 2, 3, 4]})
    run = train(get_preset("smoke", num_epochs=1), data=data, out=tmp_path / "runs", progress=False)
    stats = json.loads((run / "stats.jsonl").read_text())
    assert stats["val_loss_D"] is None and stats["loss_D"] > 0


# ---------------------------------------------------------------- one-line errors


@pytest.mark.skipif(sys.platform != "linux", reason="/sys and /dev/full are Linux's")
def test_unwritable_out_is_one_line(tiny_data, tmp_path):
    r = cli("train", "--preset", "smoke", "--data", str(tiny_data), "--out", "/sys/ganlib-runs", "--epochs", "1")
    one_line_error(r, "/sys/ganlib-runs", "writable")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    r = cli("train", "--preset", "smoke", "--data", str(tiny_data), "--out", str(a_file), "--epochs", "1")
    one_line_error(r, str(a_file), "not a folder")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_names_the_file_and_keeps_the_last_checkpoint(finished_run, tiny_data):
    latest = finished_run / "checkpoints" / "latest.pt"
    before = latest.read_bytes()
    # Every write to /dev/full fails with ENOSPC, as on a full disk: the checkpoint's temporary file goes there.
    (finished_run / "checkpoints" / "latest.pt.tmp").symlink_to("/dev/full")
    r = cli("train", "--resume", str(finished_run), "--data", str(tiny_data), "--epochs", "3")
    one_line_error(r, "No space left on device", str(latest), "resume with --resume")
    assert latest.read_bytes() == before and torch.load(latest, weights_only=True)["epoch"] == 2
    assert not (finished_run / "checkpoints" / "latest.pt.tmp").exists()


def test_sample_out_pointing_at_a_file(finished_run, tmp_path):
    target = tmp_path / "grid.png"
    target.write_bytes(b"")
    one_line_error(cli("sample", "--checkpoint", str(finished_run), "--out", str(target)), "is a file")


@pytest.mark.parametrize(
    "content, words",
    [
        ({"weights": torch.zeros(3)}, ["not a ganlib checkpoint", "no generator with its config"]),
        ([1, 2, 3], ["not a ganlib checkpoint", "holds a list"]),
    ],
)
def test_a_pt_that_is_not_a_ganlib_checkpoint(tmp_path, content, words):
    path = tmp_path / "foreign.pt"
    torch.save(content, path)
    one_line_error(cli("sample", "--checkpoint", str(path), "--out", str(tmp_path / "s")), str(path), *words)


def test_weights_that_do_not_fit_their_config(finished_run, tiny_data, tmp_path):
    ckpt = torch.load(finished_run / "checkpoints" / "latest.pt", weights_only=True)
    ckpt["config"]["g_width"] = 16  # the weights are 8 wide
    torch.save(ckpt, tmp_path / "edited.pt")
    r = cli("sample", "--checkpoint", str(tmp_path / "edited.pt"), "--out", str(tmp_path / "s"))
    one_line_error(r, "weights do not fit its config")
    r = cli("train", "--resume", str(tmp_path / "edited.pt"), "--data", str(tiny_data), "--epochs", "3")
    one_line_error(r, "checkpoint part G does not fit the run's config")


def test_info_on_a_folder_without_slices(tmp_path):
    one_line_error(cli("info", "--data", str(tmp_path)), "holds no slices", "keras_png_slices_train")


def test_a_broken_symlink_is_named(tiny_data, tmp_path):
    link = tiny_data / "keras_png_slices_train" / "case_009_slice_0.nii.png"
    link.symlink_to(tmp_path / "gone.png")
    r = cli("train", "--preset", "smoke", "--data", str(tiny_data), "--out", str(tmp_path / "runs"))
    one_line_error(r, "case_009_slice_0.nii.png", "broken symbolic link")


def test_masks_stored_as_class_ids(tmp_path):
    from ganlib.data import DataError, load_split

    data = write_layout(tmp_path / "data", {"train": [1, 2]})
    seg = data / "keras_png_slices_seg_train"
    levels = load_split("train", 32, data, with_masks=True, cache=False).masks
    for p in seg.iterdir():  # the same masks, written as 0..3
        Image.fromarray(np.array(Image.open(p)) // 85, mode="L").save(p)
    ids = load_split("train", 32, data, with_masks=True, cache=False).masks
    assert torch.equal(ids, levels) and set(ids.unique().tolist()) == {0, 1, 2, 3}
    Image.fromarray(np.full((8, 8), 7, dtype=np.uint8), mode="L").save(next(seg.iterdir()))
    with pytest.raises(DataError, match="mask values \\[7\\] are not classes"):
        load_split("train", 32, data, with_masks=True, cache=False)

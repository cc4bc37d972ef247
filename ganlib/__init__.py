"""ganlib: GANs for 2D brain MRI slices (OASIS), the library behind the notebook series."""

from .config import PRESETS, TrainConfig, get_preset

__version__ = "0.1.0"
__all__ = ["PRESETS", "TrainConfig", "get_preset", "__version__"]

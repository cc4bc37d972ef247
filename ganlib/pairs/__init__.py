"""Synthetic image+mask pairs put to use: a small U-Net segmenter, Dice, and mask class shares (`segment`).

The paired generator itself is a switch of the core networks (`TrainConfig.with_masks`, `ganlib.conditional`)."""

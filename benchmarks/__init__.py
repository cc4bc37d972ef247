"""The research behind the tutorial: scripts that measure ganlib, with their saved results in results/.

Run each from the repository as a module, `python -m benchmarks.NAME --help`; docs/results.md gives every
table with the command that made it.

- common: what the scripts share (run folders outside the repository, image budgets from a measured rate,
  resumable training, JSON results, the data pack a lent GPU trains from)
- equal_compute: recipes at equal minutes of this CPU, 64 px; cpu128: the 128 px CPU-trained generator
- ablation: one switch at a time on the seed's recipe; split_table: the README's commands on the test split
- synthetic_segmentation: a U-Net trained with synthetic image+mask pairs, tested on real patients
- throughput (with flops): the PyTorch tutorial's training step against ganlib's; gpu_run: all of it on a lent GPU
"""

"""How good and how original a generator's slices are: Inception features, metrics, the memorisation audit,
and `evaluate`, which scores a generator (or real slices: the floor) and writes a report."""

"""chipsweep.lake: the result lake."""

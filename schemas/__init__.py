"""chipsweep: schemas."""

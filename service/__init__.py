"""chipsweep: service."""

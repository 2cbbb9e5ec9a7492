"""chipsweep: queries."""

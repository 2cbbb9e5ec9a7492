"""chipsweep: workers."""

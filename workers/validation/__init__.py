"""chipsweep.workers.validation: published runs, predictions and calibration."""

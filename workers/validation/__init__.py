"""Validation and calibration of the models against published runs (tests/validation/ in the checkout).

`cases` reads the runs as `evaluate` rows, `training` and `edge` predict them, `report` gives what
`chipsweep validate` prints, and `calibrate` fits the catalog's calibration constants on a named subset
(`python -m chipsweep.workers.validation.calibrate`).
"""

from chipsweep.workers.validation.cases import Result
from chipsweep.workers.validation.report import (
    fitted_cases,
    issue13_rows,
    json_row,
    render_serving,
    render_training,
    run,
    serving_report,
    summary_table,
    training_report,
)

__all__ = ["Result", "fitted_cases", "issue13_rows", "json_row", "render_serving", "render_training", "run", "serving_report", "summary_table",
           "training_report"]

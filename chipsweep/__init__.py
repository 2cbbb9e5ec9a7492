"""chipsweep: sweeps of LLM models x chips x clusters x parallel layouts, results in a Parquet lake,
Pareto frontiers in SQL.

The layers are subpackages, each importing only the ones before it (ARCHITECTURE.md):
`chipsweep.schemas` (specs, catalog, columns, errors) <- `chipsweep.workers` (the numpy model) <-
`chipsweep.lake` (Parquet files and DuckDB views) <- `chipsweep.queries` (saved SQL, frontiers, plots)
<- `chipsweep.service` (queue, dispatcher, re-runs, HTTP, CLI).

The Python API, for notebooks and scripts (the CLI and HTTP call the same functions):

    import chipsweep
    chipsweep.evaluate([{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "n_chips": 64,
                         "global_batch": 512}], kind="training")      # -> pyarrow.Table
    chipsweep.submit("spec.yaml")                                     # -> the `status --json` keys
    chipsweep.status("name"), chipsweep.wait("name"), chipsweep.cancel("name"), chipsweep.resume("name")
    chipsweep.query("pareto_training", model="llama3_8b")             # -> pyarrow.Table
    chipsweep.left_off("pareto_training", model="llama3_8b")          # -> chips the frontier cannot place
    chipsweep.beyond_limits("pareto_training", {"model": "llama3_8b", "max_days": 0.5})  # -> how close an empty limit came
    chipsweep.sql("SELECT chip, count(*) FROM latest_training JOIN chips USING (chip_id, sweep, version) GROUP BY ALL")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["ChipsweepError", "ColumnWarning", "RowWarning", "beyond_limits", "cancel", "evaluate", "left_off", "query",
           "resume", "sql", "status", "submit", "wait"]

if TYPE_CHECKING:
    from chipsweep.schemas.errors import ChipsweepError
    from chipsweep.service.python_api import (
        ColumnWarning,
        RowWarning,
        beyond_limits,
        cancel,
        evaluate,
        left_off,
        query,
        resume,
        sql,
        status,
        submit,
        wait,
    )


def __getattr__(name: str) -> Any:
    # the API loads on first use: `import chipsweep` stays cheap (no numpy, Ray or DuckDB until needed)
    if name == "ChipsweepError":
        from chipsweep.schemas.errors import ChipsweepError

        return ChipsweepError
    if name in __all__ and name != "ChipsweepError":
        from chipsweep.service import python_api

        return getattr(python_api, name)
    raise AttributeError(f"module 'chipsweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    # tab completion in a notebook lists the lazily loaded API too
    return sorted({*globals(), *__all__})

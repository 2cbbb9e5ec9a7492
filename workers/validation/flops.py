"""What each source's own FLOP count says about its runs: the FLOPs per token a run's published TFLOP/s and tokens/s
imply, against the core's model FLOPs for the case row that predicts it (`chipsweep validate --flops`).

Where the formulas agree the two are equal within a percent; where the source counts differently the ratio is fixed
for all its runs of a model (NeMo's and pre-2025 MaxText's full attention, Megatron-Core's hybrid formula taking a
Mamba block's inner width as twice the hidden size); anything else is an input of the case rows to check. Two such
were found this way (2026-12-06): Megatron-Bridge's DeepSeek-V3 runs ran an MTP module their tables do not name,
and tpu-recipes' Gemma 3 12B rows lacked the catalog model's 256-wide heads and sliding windows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.workers.context import Context
from chipsweep.workers.training_rows import evaluate_training
from chipsweep.workers.validation.cases import CASES_DIR, Case, case_table, moe2026_cases, runs2026_cases

RUN_SUFFIX = "__tokens_per_s_per_chip"


@dataclass
class FlopsCheck:
    """One source's runs of one model at one sequence length that publish both TFLOP/s and tokens/s."""

    source: str
    model: str  # as the file names it
    seq_len: int
    runs: int
    published: tuple[float, float]  # FLOPs per token, min and max over the runs
    core: tuple[float, float]  # the core's, min and max
    ratio: tuple[float, float]  # core / published, min and max


def _published(path: Path) -> dict[str, dict[str, dict[str, str]]]:
    """run id -> metric -> the csv row."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    with path.open() as fh:
        for d in csv.DictReader(fh):
            out.setdefault(d["case_id"][: -len("__" + d["metric"])], {})[d["metric"]] = d
    return out


def flops_checks(catalog: Catalog | None = None, path: Path | None = None) -> list[FlopsCheck]:
    """Every 2024-26 case whose run publishes Model TFLOP/s and tokens/s per chip, grouped by source, model and
    sequence length: the FLOPs per token the two imply against the core's count for the case's row."""
    catalog = catalog or load_catalog(use_env=False)
    path = path or CASES_DIR / "training_runs_2026.csv"
    runs = _published(path)
    cases: list[Case] = []
    for kw in ({}, {"only_cp": True}, {"only_fp4": True}, {"only_int8": True}):
        cases += runs2026_cases(path, catalog, **kw)[0]
    cases += moe2026_cases(path, catalog)[0]
    chosen: list[tuple[Case, dict[str, dict[str, str]]]] = []
    for c in cases:
        got = runs.get(c.case_id.removesuffix(RUN_SUFFIX), {})
        if "model_tflops_per_chip" in got and "tokens_per_s_per_chip" in got:
            chosen.append((c, got))
    if not chosen:
        return []
    table = case_table([c for c, _ in chosen])
    table = table.append_column("tokens", pa.array([1e12] * table.num_rows))
    out, _ = evaluate_training(table, Context.build(catalog))
    tflops = np.asarray(out.column("model_tflops_per_chip").to_numpy(zero_copy_only=False), dtype=float)
    tokens_s = np.asarray(out.column("tokens_per_s").to_numpy(zero_copy_only=False), dtype=float)
    groups: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for i, (c, got) in enumerate(chosen):
        d = got["tokens_per_s_per_chip"]
        published = float(got["model_tflops_per_chip"]["value"]) * 1e12 / float(d["value"])
        core = tflops[i] * 1e12 * float(c.row["n_chips"]) / tokens_s[i] if tokens_s[i] > 0 else np.nan  # type: ignore[arg-type]
        groups.setdefault((c.source, d["model"], int(float(d["seq_len"]))), []).append((published, core))
    checks = []
    for (source, model, seq), pairs in sorted(groups.items()):
        pub = np.array([p for p, _ in pairs])
        core = np.array([q for _, q in pairs])
        ratio = core / pub
        finite = np.isfinite(ratio)
        if not finite.any():
            continue
        checks.append(FlopsCheck(source, model, seq, len(pairs), (float(pub.min()), float(pub.max())),
                                 (float(np.nanmin(core)), float(np.nanmax(core))),
                                 (float(ratio[finite].min()), float(ratio[finite].max()))))
    return checks


def render_flops(checks: list[FlopsCheck]) -> str:
    """The checks as `validate --flops` prints them: a group whose ratio leaves 0.97-1.03 marked `*`."""
    lines = ["FLOPs per token: published (Model TFLOP/s over tokens/s) against the core's count for the case rows",
             f"{'source':22s} {'model':28s} {'seq':>7s} {'runs':>4s} {'published G':>17s} {'core G':>17s} {'core/pub':>13s}"]
    for c in checks:
        off = " *" if c.ratio[0] < 0.97 or c.ratio[1] > 1.03 else ""
        lines.append(f"{c.source:22s} {c.model[:28]:28s} {c.seq_len:7d} {c.runs:4d} "
                     f"{c.published[0] / 1e9:8.1f}-{c.published[1] / 1e9:<8.1f} {c.core[0] / 1e9:8.1f}-{c.core[1] / 1e9:<8.1f}"
                     f" {c.ratio[0]:6.3f}-{c.ratio[1]:<6.3f}{off}")
    lines.append("* the source counts other FLOPs than the core (full attention, its own formula for a model), or a case "
                 "row lacks what the run ran: docs/accuracy.md names each")
    return "\n".join(lines)

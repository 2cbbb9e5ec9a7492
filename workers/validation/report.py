"""What `chipsweep validate` reports: every case predicted, which cases a calibration constant was fitted
on (the rest are held out), and the errors per source group over all cases and over the held-out ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chipsweep.schemas.catalog import Catalog, load_catalog
from chipsweep.workers.validation import edge, training
from chipsweep.workers.validation.cases import Result, all_training_cases, edge_cases, vtrain_cases


def run(kind: str = "all") -> list[Result]:
    """Predictions of every case of `kind` (training | inference | asic | all)."""
    results: list[Result] = []
    if kind in ("training", "all"):
        results += training.predict(all_training_cases())
    if kind in ("inference", "asic", "all"):
        results += edge.predict(edge_cases(kind))
    return results


def fitted_cases() -> set[str]:
    """Case ids any calibration constant in the catalog was fitted on (training and edge)."""
    cat = load_catalog()
    out: set[str] = set()
    for cset in cat.calibration.values():
        for const in cset.constants.values():
            out.update(_expand(const.fitted_on))
    for cl in cat.clusters.values():
        for text in cl.derived.values():
            if "fitted on" in text:
                out.update(_expand([w.strip(" ,.;") for w in text.split("fitted on", 1)[1].split()]))
    return out | edge_fitted_cases(cat)


def edge_fitted_cases(catalog: Catalog | None = None) -> set[str]:
    """Validation case ids any edge constant in asic.yaml was fitted on."""
    catalog = catalog or load_catalog()
    out: set[str] = set()
    for section in ("inference", "asic"):
        for item in (catalog.asic.get(section) or {}).values():
            if not isinstance(item, dict):
                continue
            consts = [item] if "value" in item else [c for c in item.values() if isinstance(c, dict)]
            for c in consts:
                out.update(str(v) for v in c.get("fitted_on") or [])
    return out


def _expand(names: Iterable[str]) -> set[str]:
    """Case ids, where `vtrain_single_even` style names stand for every even row of a vTrain file."""
    out: set[str] = set()
    for name in names:
        if name.startswith("vtrain_") and name.endswith(("_even", "_odd")):
            which = name.split("_")[1]
            parity = 0 if name.endswith("_even") else 1
            out.update(c.case_id for i, c in enumerate(vtrain_cases(which)) if i % 2 == parity)
        else:
            out.add(name)
    return out


def summary_table(results: list[Result], fitted: set[str]) -> list[tuple[str, int, float, float, int, float, float]]:
    """Per source: all cases (n, mean, max |error|) and the held-out ones (not fitted on)."""
    rows = []
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.case.source, []).append(r)
    for g, rs in sorted(groups.items()):
        e = np.array([abs(r.error) for r in rs])
        held = np.array([abs(r.error) for r in rs if r.case.case_id not in fitted])
        rows.append((
            g, len(rs), float(np.nanmean(e)), float(np.nanmax(e)), len(held),
            float(np.nanmean(held)) if len(held) else float("nan"), float(np.nanmax(held)) if len(held) else float("nan"),
        ))
    return rows

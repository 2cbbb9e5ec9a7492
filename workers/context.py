"""What every evaluation needs from one catalog, built once: chip and model tables, per-model core terms,
per-chip links and peaks, and the training calibration resolved per chip.

`chipsweep evaluate`, sweep chunks and the validation cases all build one `Context` per catalog and
hand it to the row modules (`training_rows`, `inference_rows`, `asic_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chipsweep.schemas.catalog import Catalog
from chipsweep.schemas.vocab import PRECISIONS
from chipsweep.workers import training
from chipsweep.workers.tables import (
    ChipTable,
    ModelTable,
    chip_link_arrays,
    default_precision,
    model_shape_arrays,
    peak_for_precision,
)

Array = np.ndarray


@dataclass
class Context:
    """What every evaluation needs from the catalog, built once per catalog."""

    catalog: Catalog
    chips: ChipTable
    models: ModelTable
    cal: dict[str, Array]  # calibration constant -> value per chip (by chip index)
    defaults: dict[str, float]
    model_terms: dict[str, Array]  # per-model core quantities (parameters, ...), by model index
    model_shapes: dict[str, Array]  # the core's shape keys, by model index
    model_tokens: Array  # default training tokens, by model index
    chip_links: dict[str, Array]  # the core's chip keys (bytes, bytes/s), by chip index
    chip_peaks: Array  # (precision, chip) peak FLOP/s
    chip_default_precision: Array  # by chip index

    @classmethod
    def build(cls, catalog: Catalog) -> Context:
        chips = ChipTable.from_catalog(catalog)
        models = ModelTable.from_catalog(catalog)
        defaults = {k: float(v["value"]) for k, v in (catalog.defaults.get("defaults") or {}).items()}
        cal = calibration_by_chip(catalog, chips, defaults)
        shapes = model_shape_arrays(models.cols)
        terms = training.model_terms(training.shapes_of(shapes))
        published = models.cols["training_tokens_b"] * 1e9
        tokens = np.where(np.isfinite(published), published, defaults["tokens_per_param"] * terms["n_params"])
        default_prec = default_precision(chips.cols)
        peaks = np.stack([peak_for_precision(chips.cols, np.full(len(chips.ids), float(i)))[0] for i in range(len(PRECISIONS))])
        return cls(catalog, chips, models, cal, defaults, terms, shapes, tokens, chip_link_arrays(chips.cols, defaults),
                   peaks, default_prec)

    def cal_for(self, chip_idx: Array) -> dict[str, Array | float]:
        """Calibration per row: a scalar where every chip shares the value, else gathered by chip."""
        out: dict[str, Array | float] = {}
        safe = np.maximum(chip_idx, 0)
        for k, v in self.cal.items():
            out[k] = float(v[0]) if v.min() == v.max() else v[safe]
        return out


def calibration_by_chip(catalog: Catalog, chips: ChipTable, defaults: dict[str, float]) -> dict[str, Array]:
    """Each calibration constant as an array over chips: the default set, then sets that name the chip's
    class, then sets that name the chip id (most specific wins)."""
    n = len(chips.ids)
    out: dict[str, Array] = {}
    classes = [catalog.chips[c].chip_class for c in chips.ids]
    sets = sorted(catalog.calibration.items(), key=lambda kv: (bool(kv[1].applies_to), kv[0]))
    for key in training.CAL_KEYS:
        if key in defaults:
            out[key] = np.full(n, defaults[key])
    for _, cset in sets:
        for key, const in cset.constants.items():
            arr = out.setdefault(key, np.full(n, np.nan))
            if not cset.applies_to:
                arr[:] = const.value
    for level in ("class", "id"):
        for _, cset in sets:
            for target in cset.applies_to:
                idx = [
                    i
                    for i, cid in enumerate(chips.ids)
                    if (level == "id" and cid == target) or (level == "class" and classes[i] == target)
                ]
                for key, const in cset.constants.items():
                    out[key][idx] = const.value
    return out

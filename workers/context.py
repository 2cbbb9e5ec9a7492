"""What every evaluation needs from one catalog, built once: chip and model tables, per-model core terms,
per-chip links and peaks, the framework features, and the training calibration resolved per chip and
framework with the sources it was fitted on.

`chipsweep evaluate`, sweep chunks and the validation cases all build one `Context` per catalog and
hand it to the row modules (`training_rows`, `inference_rows`, `asic_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from chipsweep.schemas.catalog import CalibrationSet, Catalog, Chip
from chipsweep.schemas.vocab import FRAMEWORKS, PRECISIONS
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

# defaults.yaml `frameworks` feature -> the core's input key
FEATURES = {
    "sequence_parallel": "fw_sp", "selective_recompute": "fw_selective", "interleave": "fw_interleave",
    "max_zero": "fw_max_zero", "comm_overlap": "fw_overlap", "tp_overlap": "fw_tp_overlap", "split_sends": "fw_split",
    "ds_engine": "fw_ds", "uneven": "fw_uneven", "pp_inner": "fw_pp_inner",
    "ep_dedup": "fw_ep_dedup", "zero3_per_tensor": "fw_z3_tensors", "zero3_live_params": "fw_z3_live",
    "zero3_prefetch_params": "fw_z3_prefetch", "fa2_attention": "fw_fa2", "moe_probs_in_act": "fw_moe_probs_in_act",
}
FRAMEWORK_DEFAULTS = ("flash", "grad_bytes")  # per-framework defaults of row fields


@dataclass
class Context:
    """What every evaluation needs from the catalog, built once per catalog."""

    catalog: Catalog
    chips: ChipTable
    models: ModelTable
    cal: dict[str, Array]  # calibration constant -> (framework, chip) values
    defaults: dict[str, float]
    model_terms: dict[str, Array]  # per-model core quantities (parameters, ...), by model index
    model_shapes: dict[str, Array]  # the core's shape keys, by model index
    model_tokens: Array  # default training tokens, by model index
    chip_links: dict[str, Array]  # the core's chip keys (bytes, bytes/s), by chip index
    chip_peaks: Array  # (precision, chip) peak FLOP/s
    chip_default_precision: Array  # by chip index
    frameworks: dict[str, Array]  # the core's fw_* keys and per-framework row defaults, by framework code
    calibrated_on: np.ndarray  # (framework, chip) text: the sources that fitted the chip's constants

    @classmethod
    def build(cls, catalog: Catalog) -> Context:
        chips = ChipTable.from_catalog(catalog)
        models = ModelTable.from_catalog(catalog)
        defaults = {k: float(v["value"]) for k, v in (catalog.defaults.get("defaults") or {}).items()}
        cal, provenance = calibration_by_chip(catalog, chips, defaults)
        shapes = model_shape_arrays(models.cols)
        terms = training.model_terms(training.shapes_of(shapes))
        published = models.cols["training_tokens_b"] * 1e9
        tokens = np.where(np.isfinite(published), published, defaults["tokens_per_param"] * terms["n_params"])
        default_prec = default_precision(chips.cols)
        peaks = np.stack([peak_for_precision(chips.cols, np.full(len(chips.ids), float(i)))[0] for i in range(len(PRECISIONS))])
        return cls(catalog, chips, models, cal, defaults, terms, shapes, tokens, chip_link_arrays(chips.cols, defaults),
                   peaks, default_prec, framework_table(catalog), provenance)

    def cal_for(self, chip_idx: Array, framework: Array | None = None) -> dict[str, Array | float]:
        """Calibration per row: a scalar where every (framework, chip) shares the value, else gathered."""
        out: dict[str, Array | float] = {}
        safe = np.maximum(np.asarray(chip_idx, dtype=np.int64), 0)
        fw = np.zeros(len(safe), dtype=np.int64) if framework is None else np.asarray(framework, dtype=np.int64)
        for k, v in self.cal.items():
            out[k] = float(v.flat[0]) if v.min() == v.max() else v[fw, safe]
        return out

    def with_quoted(self, reason: Array, rows: Array, chip_idx: Array) -> Array:
        """`reason` with, on `rows` (refused for a datasheet field the catalog leaves blank), the values the chip's
        sources quote for its blank fields (catalog `quoted`), so the user sees what to choose from."""
        out = np.asarray(reason, dtype=object).copy()
        for i in np.nonzero(np.asarray(rows, dtype=bool))[0].tolist():
            c = int(chip_idx[i])
            quoted = self.catalog.chips[self.chips.ids[c]].quoted if c >= 0 else {}
            if quoted:
                values = "; ".join(f"{k}: {', '.join(f'{v:g}' for v in vals)}" for k, vals in quoted.items())
                out[i] = f"{out[i]} (the chip's sources disagree; they quote {values})"
        return out

    def features_for(self, framework: Array) -> dict[str, Array]:
        """The framework's features and row defaults per row (framework codes, NaN = the default `megatron`)."""
        fw = np.nan_to_num(np.asarray(framework, dtype=np.float64), nan=0.0).astype(np.int64)
        return {k: v[fw] for k, v in self.frameworks.items()}


def framework_table(catalog: Catalog) -> dict[str, Array]:
    """defaults.yaml `frameworks` as arrays by framework code (`same_as` entries copy another's features)."""
    raw = dict(catalog.defaults.get("frameworks") or {})
    out: dict[str, list[float]] = {key: [] for key in (*FEATURES.values(), *FRAMEWORK_DEFAULTS)}
    for name in FRAMEWORKS:
        entry = dict(raw.get(name) or {})
        seen = {name}
        while "same_as" in entry:
            target = str(entry["same_as"])
            if target in seen or target not in raw:
                raise ValueError(f"defaults.yaml frameworks.{name}: same_as '{target}' is unknown or circular")
            seen.add(target)
            entry = dict(raw[target])
        for feature, key in FEATURES.items():
            out[key].append(float(entry.get(feature, 0)))
        for key in FRAMEWORK_DEFAULTS:
            out[key].append(float(entry.get(key, np.nan)))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def calibration_by_chip(
    catalog: Catalog, chips: ChipTable, defaults: dict[str, float]
) -> tuple[dict[str, Array], np.ndarray]:
    """Each calibration constant as a (framework, chip) array, and the provenance text of each pair.

    Sets apply from the least to the most specific: the default set, then sets naming a calibration family,
    a chip class, a chip id; at each level a set for every framework, then one naming the row's framework.
    `calibrated_on` names the sources a chip-level set was fitted on, else says the chip's constants are
    extrapolated from its family (or from every chip's default).
    """
    n, k = len(chips.ids), len(FRAMEWORKS)
    entries = [catalog.chips[c] for c in chips.ids]
    classes = [c.chip_class for c in entries]
    families = [c.training_family for c in entries]
    out: dict[str, Array] = {}
    for key in training.CAL_KEYS:
        if key in defaults:
            out[key] = np.full((k, n), defaults[key])
    level_of = {"default": 0, "family": 1, "class": 2, "id": 3}

    def level(target: str | None) -> str:
        if target is None:
            return "default"
        if target in catalog.chips:
            return "id"
        if target in classes:
            return "class"
        return "family"

    applied: list[tuple[int, int, list[int], list[int], CalibrationSet, str]] = []
    for _name, cset in sorted(catalog.calibration.items()):
        fws = [FRAMEWORKS.index(f) for f in cset.frameworks if f in FRAMEWORKS] or list(range(k))
        targets: list[str | None] = list(cset.applies_to) or [None]
        for target in targets:
            where = level(target)
            idx = [
                i for i in range(n)
                if target is None or chips.ids[i] == target or classes[i] == target or families[i] == target
            ]
            applied.append((level_of[where], 1 if cset.frameworks else 0, fws, idx, cset, where))
    fitted_by: dict[tuple[int, int], tuple[int, list[str]]] = {}
    id_keys: dict[tuple[int, int], set[str]] = {}  # constants a chip-id set gave (framework, chip)
    set_at: dict[str, np.ndarray] = {}  # matrix constant -> the level of the set that gave each (framework, chip)
    for lv, _specific, fws, idx, cset, lvname in sorted(applied, key=lambda a: (a[0], a[1])):
        for key, const in cset.constants.items():
            arr = out.setdefault(key, np.full((k, n), np.nan))
            for f in fws:
                arr[f, idx] = const.value
                if key in MATRIX_KEYS:
                    set_at.setdefault(key, np.zeros((k, n), dtype=np.int64))[f, idx] = lv
        if lvname == "id":
            sources = sorted({s for c in cset.constants.values() for s in c.fitted_on})
            for f in fws:
                for i in idx:
                    fitted_by[(f, i)] = (lv, sources)
                    id_keys.setdefault((f, i), set()).update(cset.constants)
    # a chip without a set of its own takes the chip-id constants of the chip whose compute it is (same_compute_as)
    twin_of: dict[int, str] = {}
    index = {c: i for i, c in enumerate(chips.ids)}
    for i, entry in enumerate(entries):
        j = index.get(entry.same_compute_as or "")
        if j is None:
            continue
        for f in range(k):
            if (f, i) in fitted_by or (f, j) not in fitted_by:
                continue
            for key in id_keys[(f, j)]:
                out[key][f, i] = out[key][f, j]
            twin_of[i] = chips.ids[j]
    scaled_from = _scale_by_measured_gemm(out, entries, chips.ids, fitted_by, id_keys, twin_of, k,
                                          {key: v == level_of["default"] for key, v in set_at.items()},
                                          defaults.get("gemm_reach"))
    kin_of = _same_core_architecture(out, entries, chips.ids, fitted_by, id_keys, twin_of, k)
    provenance = np.empty((k, n), dtype=object)
    family_sets = {t for *_, cset, _where in applied for t in cset.applies_to if level(t) == "family"}
    for f in range(k):
        for i in range(n):
            hit = fitted_by.get((f, i))
            if hit and hit[1]:
                provenance[f, i] = "; ".join(hit[1])
            elif i in twin_of and (f, index[twin_of[i]]) in fitted_by:
                provenance[f, i] = f"extrapolated from {twin_of[i]} (same compute)"
            elif (f, i) in kin_of:
                provenance[f, i] = (f"extrapolated from {', '.join(kin_of[(f, i)])} (same core architecture, compute "
                                    f"capability {entries[i].core_architecture}.x)")
            elif (f, i) in scaled_from:
                refs, precision, lent = scaled_from[(f, i)]
                provenance[f, i] = (
                    f"extrapolated from {', '.join(refs)} by {', '.join(lent)}'s measured {precision} GEMM throughput "
                    "(its family's)" if lent else
                    f"extrapolated from {', '.join(refs)} by measured {precision} GEMM throughput" if precision else
                    f"extrapolated from {', '.join(refs)} by the mean measured GEMM share (defaults.yaml gemm_reach; "
                    "no run or GEMM measurement of its own or its family's)")
            elif families[i] in family_sets:
                provenance[f, i] = f"extrapolated from {families[i]}"
            else:
                provenance[f, i] = "extrapolated from all chips (default set)"
    return out, provenance


MATRIX_KEYS = ("mm_eff_max", "mm_eff_max_fp8")  # the constants a measured GEMM throughput scales
MATRIX_BOUNDS = (0.2, 1.0)  # calibration.yaml bounds of both


def scaled_matrix_eff(share: float, refs: list[tuple[float, float]]) -> float:
    """A matrix efficiency carried over from fitted chips by the vendor GEMM library's share of peak: the geometric
    mean over `refs` (fitted constant, that chip's measured share) of constant x `share` / measured share, inside
    the bounds. The library's reach carries over; the training software's losses stay those the runs fitted."""
    vals = np.log([v * share / s for v, s in refs])
    return float(np.clip(np.exp(np.mean(vals)), *MATRIX_BOUNDS))


def _same_core_architecture(
    out: dict[str, Array], entries: list[Chip], ids: list[str], fitted_by: dict[tuple[int, int], tuple[int, list[str]]],
    id_keys: dict[tuple[int, int], set[str]], twin_of: dict[int, str], k: int,
) -> dict[tuple[int, int], list[str]]:
    """A chip with neither runs, a twin nor a GEMM measurement of its own but a CUDA compute capability takes each
    matrix constant as the geometric mean over the fitted chips of its major revision ('devices with the same major
    revision number are of the same core architecture', CUDA C++ Programming Guide): the B300 and GB300 (10.3) the
    B200's and GB200's (10.0), the GH200 the H100's, the L40S and RTX 30/40 the A100's, where the family mean mixes
    Ampere, Hopper and Blackwell. Sets `out` in place; returns (framework, chip) -> the chips it took them from."""
    done: dict[tuple[int, int], list[str]] = {}
    for i, entry in enumerate(entries):
        arch = entry.core_architecture
        if arch is None or i in twin_of or entry.gemm_measured is not None:
            continue
        for f in range(k):
            if (f, i) in fitted_by:
                continue
            kin = [j for j, e in enumerate(entries) if j != i and e.core_architecture == arch
                   and e.same_compute_as is None and fitted_by.get((f, j), (0, []))[1]]
            for key in MATRIX_KEYS:
                vals = [float(out[key][f, j]) for j in kin if key in id_keys.get((f, j), ())]
                if vals:
                    out[key][f, i] = float(np.exp(np.mean(np.log(vals))))
                    if key == MATRIX_KEYS[0]:  # provenance follows the 16-bit constant
                        done[(f, i)] = sorted(ids[j] for j in kin if key in id_keys.get((f, j), ()))
    return done


def gemm_share(chip: Chip, chips: Iterable[Chip]) -> tuple[float, str, list[str]] | None:
    """The share of peak `chip`'s vendor GEMM library reaches, at which precision, and whose measurement it is: its
    own `gemm_measured`, else its calibration family's measured chips' (geometric mean; one precision), else None."""
    if chip.gemm_fraction is not None and chip.gemm_measured is not None:
        return chip.gemm_fraction, chip.gemm_measured.precision, []
    kin = [c for c in chips if c.id != chip.id and c.training_family == chip.training_family and c.same_compute_as is None
           and c.gemm_fraction is not None and c.gemm_measured is not None]
    if not kin or len({c.gemm_measured.precision for c in kin}) != 1:  # type: ignore[union-attr]
        return None
    share = float(np.exp(np.mean(np.log([c.gemm_fraction for c in kin]))))  # type: ignore[arg-type]
    return share, kin[0].gemm_measured.precision, [c.id for c in kin]  # type: ignore[union-attr]


def _scale_by_measured_gemm(
    out: dict[str, Array], entries: list[Chip], ids: list[str], fitted_by: dict[tuple[int, int], tuple[int, list[str]]],
    id_keys: dict[tuple[int, int], set[str]], twin_of: dict[int, str], k: int,
    from_default: dict[str, np.ndarray], reach: float | None,
) -> dict[tuple[int, int], tuple[list[str], str, list[str]]]:
    """A chip with neither its own fitted matrix efficiency nor a twin (`same_compute_as`) takes, for each matrix
    constant, `scaled_matrix_eff` over the chips fitted on their own runs and measured. The share of peak it scales
    by: its own measured GEMM throughput (`gemm_measured`), against the chips measured at the same precision;
    without one, where no set of its family gives the constant either (`from_default`: the family has no fitted
    chip), its family's measured chips' share (the vendor library is the family's: the MI325X takes the MI300X's
    hipBLASLt share), else the mean measured share (defaults.yaml `gemm_reach`) against every measured fitted chip,
    in place of the all-chip mean (which mixes in TPUs' XLA efficiencies at their own peak definitions). Sets `out`
    in place; returns (framework, chip) -> (reference chips, precision or '' for any, the family chips whose
    measured share it took)."""
    done: dict[tuple[int, int], tuple[list[str], str, list[str]]] = {}
    measured = [j for j, e in enumerate(entries) if e.gemm_fraction is not None and e.gemm_measured is not None]
    for i, entry in enumerate(entries):
        known = gemm_share(entry, entries)
        if i in twin_of or known is None and reach is None:
            continue
        share, precision, lent = known or (float(reach), "", [])  # type: ignore[arg-type]
        for f in range(k):
            if (f, i) in fitted_by:
                continue
            refs = [j for j in measured if j != i and entries[j].same_compute_as is None and fitted_by.get((f, j), (0, []))[1]
                    and (not precision or entries[j].gemm_measured.precision == precision)]  # type: ignore[union-attr]
            scaled = set()
            for key in MATRIX_KEYS:
                fd = from_default.get(key)
                if i not in measured and fd is not None and not fd[f, i]:
                    continue  # a family set gives it: the family's fitted chips speak for it
                pairs = [(float(out[key][f, j]), float(entries[j].gemm_fraction)) for j in refs  # type: ignore[arg-type]
                         if key in id_keys.get((f, j), ())]
                if pairs:
                    out[key][f, i] = scaled_matrix_eff(float(share), pairs)  # type: ignore[arg-type]
                    scaled.add(key)
            if MATRIX_KEYS[0] in scaled or i in measured and scaled:  # provenance follows the 16-bit constant
                done[(f, i)] = (sorted(ids[j] for j in refs), precision, lent)
    return done

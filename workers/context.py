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

from chipsweep.schemas.catalog import CalibrationSet, Catalog, CatalogError, Chip
from chipsweep.schemas.vocab import FRAMEWORKS, PRECISIONS
from chipsweep.workers import training
from chipsweep.workers.tables import (
    ChipTable,
    ModelTable,
    chip_link_arrays,
    default_precision,
    first_rule,
    model_shape_arrays,
    peak_for_precision,
    training_seq,
)
from chipsweep.workers.transformer import hybrid_rows

Array = np.ndarray

# defaults.yaml `frameworks` feature -> the core's input key
FEATURES = {
    "sequence_parallel": "fw_sp", "selective_recompute": "fw_selective", "interleave": "fw_interleave",
    "max_zero": "fw_max_zero", "comm_overlap": "fw_overlap", "tp_overlap": "fw_tp_overlap", "split_sends": "fw_split",
    "ds_engine": "fw_ds", "uneven": "fw_uneven", "pp_inner": "fw_pp_inner",
    "ep_dedup": "fw_ep_dedup", "zero3_per_tensor": "fw_z3_tensors", "zero3_live_params": "fw_z3_live",
    "zero3_prefetch_params": "fw_z3_prefetch", "fa2_attention": "fw_fa2", "moe_probs_in_act": "fw_moe_probs_in_act",
    "ce_in_place": "fw_ce_in_place", "int8_training": "fw_int8", "master_shards": "fw_master_shards",
    "zero3_keeps_head": "fw_z3_head",
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
    model_hybrid: Array  # by model index: True where some layers are not attention + MLP (training.HYBRID_KEYS matter)
    model_tokens: Array  # default training tokens, by model index
    chip_links: dict[str, Array]  # the core's chip keys (bytes, bytes/s), by chip index
    chip_peaks: Array  # (precision, chip) peak FLOP/s
    chip_default_precision: Array  # by chip index
    chip_default_framework: Array  # framework code a blank `framework` takes, by chip index
    frameworks: dict[str, Array]  # the core's fw_* keys and per-framework row defaults, by framework code
    calibrated_on: np.ndarray  # (framework, chip) text: the sources that fitted the chip's constants

    @classmethod
    def build(cls, catalog: Catalog) -> Context:
        chips = ChipTable.from_catalog(catalog)
        models = ModelTable.from_catalog(catalog)
        defaults = {k: float(v["value"]) for k, v in (catalog.defaults.get("defaults") or {}).items()}
        cal, provenance = calibration_by_chip(catalog, chips, defaults)
        shapes = model_shape_arrays(models.cols)
        shapes["seq"] = training_seq(shapes["seq"], models.cols["train_seq_len"])  # training rows' default sequence
        terms = training.model_terms(training.shapes_of(shapes))
        published = models.cols["training_tokens_b"] * 1e9
        tokens = np.where(np.isfinite(published), published, defaults["tokens_per_param"] * terms["n_params"])
        default_prec = default_precision(chips.cols)
        peaks = np.stack([peak_for_precision(chips.cols, np.full(len(chips.ids), float(i)))[0] for i in range(len(PRECISIONS))])
        hybrid = hybrid_rows(shapes["layers"], shapes["att_layers"], shapes["mlp_layers"], shapes["ssm_layers"])
        return cls(catalog, chips, models, cal, defaults, terms, shapes, hybrid, tokens,
                   chip_link_arrays(chips.cols, defaults),
                   peaks, default_prec, default_frameworks(catalog, chips.ids), framework_table(catalog), provenance)

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


def default_frameworks(catalog: Catalog, chip_ids: list[str]) -> Array:
    """Code of the framework each chip's rows run when `framework` is blank: the first defaults.yaml
    `framework_default` rule whose vendor and chip classes match (`first_rule`), else the first framework."""
    rules = list(catalog.defaults.get("framework_default") or [])
    for rule in rules:
        if rule.get("framework") not in FRAMEWORKS:
            raise CatalogError(f"defaults.yaml framework_default: framework {rule.get('framework')!r} is not allowed; "
                               f"allowed: {', '.join(FRAMEWORKS)}")
    out = np.zeros(len(chip_ids), dtype=np.float64)
    for i, cid in enumerate(chip_ids):
        rule = first_rule(rules, catalog.chips[cid])
        out[i] = FRAMEWORKS.index(rule["framework"]) if rule else 0.0
    return out


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
    keeps: dict[tuple[int, int], set[str]] = {}  # ... of them, those it lends to no other chip (`lends: false`)
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
                    keeps.setdefault((f, i), set()).update(k for k, c in cset.constants.items() if not c.lends)
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
    # a chip with neither its own set nor a twin: its matrix constants by `extrapolate_matrix`, the rest as set above
    extrapolated: dict[tuple[int, int], str] = {}
    # (framework, chip) pairs whose 16-bit matrix efficiency no 16-bit GEMM measured: a set that keeps it (`lends:
    # false`: its runs ran their GEMMs in 8 or 4 bits, so only their attention and output layer set it), or a chip
    # that took it from such chips alone (its core architecture's)
    unmeasured = {fi for fi, kept in keeps.items() if MATRIX_KEYS[0] in kept}
    own_runs = [j for j in range(n) if entries[j].same_compute_as is None]
    reach = defaults.get("gemm_reach")
    for i, entry in enumerate(entries):
        if i in twin_of:
            continue
        for f in range(k):
            if (f, i) in fitted_by:
                continue
            for key in MATRIX_KEYS:
                if key not in out:
                    continue
                fitted = [j for j in own_runs
                          if j != i and fitted_by.get((f, j), (0, []))[1] and key in id_keys.get((f, j), ())]
                family_set = key in set_at and set_at[key][f, i] == level_of["family"]
                lent = [(entries[j], float(out[key][f, j])) for j in fitted if key not in keeps.get((f, j), ())]
                got = extrapolate_matrix(
                    entry, lent, float(out[key][f, i]) if family_set else None, reach, entries,
                    unlent=[(entries[j], float(out[key][f, j])) for j in fitted if key in keeps.get((f, j), ())])
                if got is not None:
                    out[key][f, i] = got[0]
                    if key == MATRIX_KEYS[0]:  # provenance follows the 16-bit constant
                        extrapolated[(f, i)] = got[1]
                        if "same core architecture" in got[1] and not any(
                                c.core_architecture == entry.core_architecture for c, _ in lent):
                            unmeasured.add((f, i))
    provenance = np.empty((k, n), dtype=object)
    for f in range(k):
        for i in range(n):
            hit = fitted_by.get((f, i))
            if hit and hit[1]:
                provenance[f, i] = "; ".join(hit[1])
            elif i in twin_of and (f, index[twin_of[i]]) in fitted_by:
                provenance[f, i] = f"extrapolated from {twin_of[i]} (same compute)"
            else:
                provenance[f, i] = extrapolated.get((f, i), "extrapolated from all chips (default set)")
            twin = index.get(entries[i].same_compute_as or "") if i in twin_of else None
            if (f, i) in unmeasured or (twin is not None and (f, twin) in unmeasured):
                provenance[f, i] += UNMEASURED_16
    return out, provenance


# appended to `calibrated_on` where no 16-bit GEMM measured the chip's 16-bit matrix efficiency (every dense B200 and
# GB200 run is fp8): a 16-bit row on such a chip, and the attention of any row, rests on what that efficiency fits
UNMEASURED_16 = (" (16-bit GEMMs never measured: the runs behind its 16-bit matrix efficiency ran their GEMMs in 8 "
                 "or 4 bits; it rests on their attention and output layer)")


MATRIX_KEYS = ("mm_eff_max", "mm_eff_max_fp8")  # the constants a measured GEMM throughput scales
MATRIX_BOUNDS = (0.2, 1.0)  # calibration.yaml bounds of both


def scaled_matrix_eff(share: float, refs: list[tuple[float, float]]) -> float:
    """A matrix efficiency carried over from fitted chips by the vendor GEMM library's share of peak: the geometric
    mean over `refs` (fitted constant, that chip's measured share) of constant x `share` / measured share, inside
    the bounds. The library's reach carries over; the training software's losses stay those the runs fitted."""
    vals = np.log([v * share / s for v, s in refs])
    return float(np.clip(np.exp(np.mean(vals)), *MATRIX_BOUNDS))


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


def measured_reach(chip: Chip, chips: Iterable[Chip]) -> tuple[float, list[str]] | None:
    """The share of peak the vendor's GEMM library reaches on `chip`, and the chips whose measurement it is: its own
    `gemm_measured`, else its twin's (`same_compute_as`: one die), else the measured chips' of its core architecture
    (NVIDIA compute capability major: the GB300 and B300 the GB200's), else its family's (`gemm_share`: the MI355X the
    MI300X's), among chips of its class (a GeForce card's GEMMs are not its datacenter cousin's); None where none is
    measured."""
    if chip.gemm_fraction is not None:
        return chip.gemm_fraction, [chip.id]
    pool = [c for c in chips if c.chip_class == chip.chip_class]
    twin = next((c for c in pool if c.id == chip.same_compute_as and c.gemm_fraction is not None), None)
    if twin is not None:
        return twin.gemm_fraction, [twin.id]  # type: ignore[return-value]
    core = [c for c in pool if chip.core_architecture is not None and c.core_architecture == chip.core_architecture
            and c.id != chip.id and c.gemm_fraction is not None]
    if core:
        return float(np.exp(np.mean(np.log([c.gemm_fraction for c in core])))), [c.id for c in core]  # type: ignore[arg-type]
    share = gemm_share(chip, pool)
    return (share[0], list(share[2])) if share else None


def extrapolate_matrix(chip: Chip, fitted: list[tuple[Chip, float]], family_mean: float | None,
                       reach: float | None, chips: Iterable[Chip] = (),
                       unlent: list[tuple[Chip, float]] | None = None) -> tuple[float, str] | None:
    """A matrix constant (`mm_eff_max` or `mm_eff_max_fp8`) of a chip without runs or twin, from the chips fitted on
    their own runs with that constant (`fitted`: chip, value), by the first rule that applies, and the
    `calibrated_on` text that says which:
    1. its own measured GEMM share (`gemm_measured`): `scaled_matrix_eff` over the fitted chips measured at its
       precision (the vendor library's reach carries over, the training software's losses stay the runs');
    2. its core architecture (NVIDIA `compute_capability` major: 'devices with the same major revision number are of
       the same core architecture', CUDA C++ Programming Guide): the geometric mean of those fitted chips (the B300
       the B200's and GB200's, the GH200 the H100's);
    3. its family's mean of fitted chips (`family_mean`, the catalog's family set);
    4. its family's measured chips' share (the vendor library is the family's: the MI325X the MI300X's), scaled as 1;
    5. the mean measured share (defaults.yaml `gemm_reach`) against every measured fitted chip (not the all-chip
       mean, which mixes in TPUs' XLA efficiencies at their own peak definitions).
    None where none applies (the default set's value stays). `chips`: the catalog's, for rule 4. `unlent`: fitted
    chips whose constant is lent to no chip of another core architecture (calibration.yaml `lends: false`: none of
    their runs ran their matrix multiplies at its precision), which only rule 2 takes: a chip of the same core
    architecture runs the same kernels, so it shares whatever fits them."""
    measured = [(c, v) for c, v in fitted if c.gemm_fraction is not None and c.gemm_measured is not None]
    own = gemm_share(chip, [chip])  # rule 1 only: the family's share is rule 4

    def scaled(share: float, precision: str) -> tuple[float, list[str]] | None:
        pairs = [(c, v) for c, v in measured if not precision or c.gemm_measured.precision == precision]  # type: ignore[union-attr]
        if not pairs:
            return None
        return scaled_matrix_eff(share, [(v, float(c.gemm_fraction)) for c, v in pairs]), sorted(c.id for c, _ in pairs)  # type: ignore[arg-type]

    if own is not None and (got := scaled(own[0], own[1])):
        return got[0], f"extrapolated from {', '.join(got[1])} by measured {own[1]} GEMM throughput"
    kin = [(c, v) for c, v in [*fitted, *(unlent or [])]
           if chip.core_architecture is not None and c.core_architecture == chip.core_architecture]
    if kin:
        return (float(np.exp(np.mean(np.log([v for _, v in kin])))),
                f"extrapolated from {', '.join(sorted(c.id for c, _ in kin))} (same core architecture, compute "
                f"capability {chip.core_architecture}.x)")
    if family_mean is not None:
        return family_mean, f"extrapolated from {chip.training_family}"
    lent = gemm_share(chip, chips)
    if lent is not None and (got := scaled(lent[0], lent[1])):
        return got[0], (f"extrapolated from {', '.join(got[1])} by {', '.join(lent[2])}'s measured {lent[1]} GEMM "
                        "throughput (its family's)")
    if reach is not None and (got := scaled(reach, "")):
        return got[0], (f"extrapolated from {', '.join(got[1])} by the mean measured GEMM share (defaults.yaml "
                        "gemm_reach; no run or GEMM measurement of its own or its family's)")
    return None

"""A spec resolved against the catalog: the `Sweep` workers evaluate, and its stored form.

`resolve(spec, catalog)` turns a spec into a `Sweep`: every axis as a small array of codes (catalog
index, choice index or number), so the number of configurations is known before anything runs and
workers decode a flat index into axis values with numpy (mixed radix, last axis fastest). A sweep
version is resolved once, when it is recorded: `Sweep.record()` is what the queue stores and actors
receive, and `Sweep.from_record` rebuilds it without resolving again. Every problem is reported with the
field, the value and what is allowed.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chipsweep.schemas.axes import AXES, AxisDef, closest_ids, fmt_number, name_hint
from chipsweep.schemas.catalog import MEASURED_OF, Catalog, Chip, keep_measured_share
from chipsweep.schemas.columns import MAXIMISE, objective_columns
from chipsweep.schemas.errors import Problem, SpecError
from chipsweep.schemas.numbers import Storage, as_number, fmt, storage
from chipsweep.schemas.spec import SweepSpec, parse_spec
from chipsweep.schemas.vocab import (
    CHIP_INTEGER_RANGE,
    CHIP_POSITIVE,
    MOE_FIELDS,
    OVERRIDABLE,
    PRECISION_FIELD,
    PRECISION_PEAKS,
    REQUIRED_SHAPE_FIELDS,
)

REF_KEYS = ("model_idx", "chip_idx", "cluster_idx")  # the axes that name catalog entries

# ------------------------------------------------------------------------------------------------
# resolution against the catalog
# ------------------------------------------------------------------------------------------------
@dataclass
class Axis:
    """One resolved axis: its display values and the numeric codes workers use."""

    name: str
    key: str
    values: list[Any]  # ids, choice strings or numbers, as users read them
    codes: np.ndarray  # float64 (catalog index, choice index, number); int64 for catalog refs


@dataclass
class Sweep:
    """A spec resolved against a catalog: axes as code arrays, fixed codes, the effective catalog."""

    spec: SweepSpec
    catalog: Catalog  # with the spec's overrides applied
    axes: list[Axis]
    fixed: dict[str, float]  # raw key -> code
    objectives: list[tuple[str, bool]]  # (column, maximise)
    hashes: dict[str, str] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        return [len(a.values) for a in self.axes]

    @property
    def configurations(self) -> int:
        return math.prod(self.sizes)

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def name(self) -> str:
        return self.spec.name

    def axes_json(self) -> dict[str, list[Any]]:
        """Axis name -> resolved values, in axis order (decoding `idx` needs only this)."""
        return {a.name: a.values for a in self.axes}

    def record(self) -> dict[str, Any]:
        """The resolved sweep as JSON data: what the queue stores for a version and actors receive.
        `catalog` is the effective catalog (overrides applied), so nothing is resolved again."""
        return {
            "spec": self.spec.canonical(),
            "axes": [{"name": a.name, "key": a.key, "values": a.values, "codes": a.codes.tolist(),
                      "ref": bool(a.codes.dtype.kind == "i")} for a in self.axes],
            "fixed": dict(self.fixed),
            "objectives": [[col, maximise] for col, maximise in self.objectives],
            "hashes": dict(self.hashes),
            "catalog": self.catalog.snapshot(),
        }

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Sweep:
        """The sweep a `record()` describes (its spec is re-read for its settings, not re-resolved)."""
        axes = [Axis(a["name"], a["key"], list(a["values"]),
                     np.asarray(a["codes"], dtype=np.int64 if a.get("ref") else np.float64)) for a in rec["axes"]]
        return cls(
            spec=SweepSpec.model_validate(rec["spec"]),
            catalog=Catalog.from_snapshot(rec["catalog"]),
            axes=axes,
            fixed={str(k): float(v) for k, v in rec["fixed"].items()},
            objectives=[(str(c), bool(m)) for c, m in rec["objectives"]],
            hashes=dict(rec["hashes"]),
        )


def resolve(spec: SweepSpec, catalog: Catalog) -> Sweep:
    """Check the spec against the catalog and resolve every axis; raises `SpecError` with all problems."""
    problems: list[Problem] = []
    effective = _apply_overrides(spec, catalog, problems)
    axes: list[Axis] = []
    for name, raw in spec.axes.items():
        d = _axis_def(spec.kind, name, f"axes.{name}", raw, problems)
        if d is None:
            continue
        axis = _resolve_axis(name, d, raw, effective, f"axes.{name}", problems, kind=spec.kind)
        if axis is not None:
            axes.append(axis)
    # catalog axes vary slowest: a chip's (or model's) configurations form long contiguous runs, so chunks
    # never span two of them and a change to one entry re-runs only its share (`workers.space.chunk_ranges`)
    axes.sort(key=lambda a: a.key not in REF_KEYS)
    fixed: dict[str, float] = {}
    for name, raw in spec.fixed.items():
        where = f"fixed.{name}"
        if name in spec.axes:
            problems.append(Problem(where, raw, "a setting that is not also an axis", f"'{name}' is already an axis"))
            continue
        d = _axis_def(spec.kind, name, where, raw, problems)
        if d is None:
            continue
        axis = _resolve_axis(name, d, [raw], effective, where, problems, single=True, kind=spec.kind)
        if axis is not None:
            fixed[d.key] = float(axis.codes[0])
    objectives = _objectives(spec, problems)
    _required(spec, problems)
    _experts(spec, axes, fixed, effective, problems)
    _moe_columns(spec, axes, effective, problems)
    _precisions(spec, axes, effective, problems)
    _asic_design(spec, axes, effective, problems)
    if problems:
        raise SpecError(problems)
    sweep = Sweep(spec, effective, axes, fixed, objectives)
    sweep.hashes = effective.hashes()
    return sweep


def _axis_def(kind: str, name: str, where: str, raw: Any, problems: list[Problem]) -> AxisDef | None:
    defs = AXES[kind]
    d = defs.get(name)
    if d is None:
        hint = name_hint(kind, name)
        problems.append(Problem(where, raw, ", ".join(defs),
                                f"unknown axis or setting '{name}'" + (f" ({hint})" if hint else "")))
    return d


def _objectives(spec: SweepSpec, problems: list[Problem]) -> list[tuple[str, bool]]:
    allowed = objective_columns(spec.kind)
    names = spec.objective_names()
    if spec.objectives is not None and not (1 <= len(names) <= 3):
        problems.append(Problem("objectives", names, "1 to 3 output columns", "wrong number of objectives"))
    out = []
    for i, col in enumerate(names):
        if col not in allowed:
            problems.append(Problem(f"objectives[{i}]", col, ", ".join(allowed), "not an output column of this kind"))
        else:
            out.append((col, col in MAXIMISE))
    return out


def _spec_values(spec: SweepSpec, axes: list[Axis], name: str) -> tuple[str, list[Any]]:
    """Where a spec sets `name` ('axes.<name>' or 'fixed.<name>') and the values it takes there ([] where unset)."""
    for a in axes:
        if a.name == name:
            return f"axes.{name}", list(a.values)
    return f"fixed.{name}", [spec.fixed[name]] if name in spec.fixed else []


def _experts(spec: SweepSpec, axes: list[Axis], fixed: dict[str, float], catalog: Catalog,
             problems: list[Problem]) -> None:
    """Expert parallelism above 1 where every model of the sweep is dense: each such configuration could only be
    infeasible, so the spec is refused naming the ep values and the models (a sweep mixing dense and
    mixture-of-experts models keeps its ep axis: the dense models' ep > 1 rows say why they are out)."""
    where, ep = _spec_values(spec, axes, "ep")
    wide = [v for v in ep if isinstance(v, (int, float)) and v > 1]
    if not wide or _spec_values(spec, axes, "moe_experts")[1]:
        return
    ids = [str(m) for m in _spec_values(spec, axes, "model")[1]]
    if not ids or any(m not in catalog.models for m in ids):
        return  # explicit shapes, or an unknown id (already a problem of its own)
    if not any((catalog.models[m].moe_experts or 0) > 1 for m in ids):
        problems.append(Problem(where, wide if where.startswith("axes") else wide[0], "1: expert parallelism needs a mixture-of-experts model, and this sweep's "
                                f"models are dense ({', '.join(ids)})", "no experts to spread"))


def _moe_columns(spec: SweepSpec, axes: list[Axis], catalog: Catalog, problems: list[Problem]) -> None:
    """Mixture-of-experts columns on a sweep of catalog models: a dense model's row reads them as a mixture of experts
    whose other columns are blank (Llama 3 70B with moe_experts 8 ran top-1 experts of no width: 2.8x its dense
    speed), where `evaluate` refuses the row ('model ... is dense'); and a moe_topk above a model's experts, which
    the core clamps. Both are refused naming the field, the values and the models."""

    def values(name: str) -> tuple[str, list[Any]]:
        return _spec_values(spec, axes, name)

    ids = [str(m) for m in values("model")[1]]
    if not ids or any(m not in catalog.models for m in ids):
        return  # explicit shapes (a model of one's own), or an unknown id (already a problem of its own)
    dense = [m for m in ids if catalog.models[m].moe_experts is None]
    for name in MOE_FIELDS:
        where, vals = values(name)
        if vals and dense:
            moe = sorted(m for m, e in catalog.models.items() if e.moe_experts is not None)
            problems.append(Problem(where, vals[0] if where.startswith("fixed") else vals,
                                    f"blank on a sweep of dense models, or the mixture-of-experts models alone in a "
                                    f"sweep of their own ({', '.join(moe)})",
                                    f"{', '.join(dense)} {'is' if len(dense) == 1 else 'are'} dense: a row would read "
                                    "the column as a mixture of experts with the others blank"))
            return
    where, topk = values("moe_topk")
    experts = [int(v) for v in values("moe_experts")[1]] or [int(catalog.models[m].moe_experts or 0) for m in ids]
    over = [v for v in topk if isinstance(v, (int, float)) and experts and v > min(experts)]
    if over:
        problems.append(Problem(where, over if where.startswith("axes") else over[0],
                                f"an integer from 1 to moe_experts ({min(experts)})", "more experts per token than the model has"))


def _precisions(spec: SweepSpec, axes: list[Axis], catalog: Catalog, problems: list[Problem]) -> None:
    """A precision no chip of the sweep publishes a peak for (fp4 on H100 alone): every such row could only be refused,
    and a sweep that stores feasible rows kept none of them without a word, so the spec is refused naming the value,
    the chips and the precisions they do publish (where some chip of the sweep has it, the others' rows say why)."""
    key, fields = (("compute_precision", PRECISION_PEAKS) if spec.kind == "inference" else
                   ("precision", {p: (f,) for p, f in PRECISION_FIELD.items()}) if spec.kind == "training" else
                   (None, {}))
    where, vals = _spec_values(spec, axes, key) if key is not None else ("", [])
    chips = [str(c) for c in _spec_values(spec, axes, "chip")[1]]
    if not vals or not chips or any(c not in catalog.chips for c in chips):
        return  # an unknown id (a problem of its own) or chips given by a cluster

    def publishes(chip: str, precision: str) -> bool:
        return any(getattr(catalog.chips[chip], f, None) is not None for f in fields[precision])

    for v in vals:
        if isinstance(v, str) and v in fields and not any(publishes(c, v) for c in chips):
            have = [p for p in fields if any(publishes(c, p) for c in chips)]
            problems.append(Problem(where, v, ", ".join(have) or "none: these chips publish no peak",
                                    f"no chip of this sweep publishes a peak for {v} ({', '.join(chips)})"))


def _asic_design(spec: SweepSpec, axes: list[Axis], catalog: Catalog, problems: list[Problem]) -> None:
    """An ASIC axis value no configuration could run is refused before anything is queued, as evaluate refuses the
    row: a node outside the sourced per-node tables, a clock above the fastest shipping one, a DRAM bus width that
    is a whole number of interfaces (LPDDR channels, HBM stacks) of none of the sweep's DRAM types."""
    if spec.kind != "asic":
        return

    def values(name: str) -> tuple[str, list[Any]]:
        return _spec_values(spec, axes, name)

    nodes = catalog.asic_nodes()
    where, vals = values("node_nm")
    bad = [v for v in vals if isinstance(v, (int, float)) and not nodes[0] <= v <= nodes[-1]]
    if bad:
        problems.append(Problem(where, bad if where.startswith("axes") else bad[0],
                                f"{nodes[0]:g} to {nodes[-1]:g} nm (the nodes asic.yaml's energy, area, wafer-price and "
                                "defect tables cover)", "outside the sourced constant tables"))
    clock_max = float(catalog.asic["asic"]["clock_ghz_max"]["value"])
    where, vals = values("clock_ghz")
    bad = [v for v in vals if isinstance(v, (int, float)) and v > clock_max]
    if bad:
        problems.append(Problem(where, bad if where.startswith("axes") else bad[0], f"up to {clock_max:g} GHz",
                                "faster than any shipping logic clock"))
    _, drams = values("dram")
    widths = catalog.dram_interface_bits()
    kinds = [widths.get(str(d)) for d in drams]  # None: no DRAM (its bus is ignored)
    where, vals = values("dram_bus_bits")
    if drams and None not in kinds:
        bad = [v for v in vals if isinstance(v, (int, float)) and not any(v >= w and v % w == 0 for w in kinds if w)]
        if bad:
            allowed = "; ".join(f"{d}: multiples of {widths[str(d)]}" for d in drams)
            problems.append(Problem(where, bad if where.startswith("axes") else bad[0],
                                    f"a whole number of the DRAM type's interfaces ({allowed})",
                                    "no DRAM type of the sweep comes in this width"))


def _required(spec: SweepSpec, problems: list[Problem]) -> None:
    given = set(spec.axes) | set(spec.fixed)
    if spec.kind == "training":
        shapes = set(REQUIRED_SHAPE_FIELDS)
        if "model" not in given and not shapes <= given:
            problems.append(Problem("axes.model", None, "a model axis (or fixed model), or layers, hidden, heads, vocab and seq_len", "missing"))
        if "chip" not in given and "cluster" not in given:
            problems.append(Problem("axes.chip", None, "a chip axis (or a cluster axis)", "missing"))
        if "global_batch" not in given:
            problems.append(Problem("fixed.global_batch", None, "an integer >= 1 (sequences per step), fixed or as an axis", "missing"))
        if "n_chips" not in given and "cluster" not in given and not {"tp", "pp", "dp"} <= given:
            problems.append(Problem("axes.n_chips", None, "an n_chips axis, a cluster axis, or tp, pp and dp", "missing"))
    elif spec.kind == "inference":
        for need in ("model", "chip"):
            if need not in given:
                problems.append(Problem(f"axes.{need}", None, f"a {need} axis (or a fixed {need})", "missing"))
    else:
        for need in ("model", "node_nm"):
            if need not in given:
                problems.append(Problem(f"axes.{need}", None, f"a {need} axis (or a fixed {need})", "missing"))
        if "n_mac" not in given and "peak_tops" not in given:
            problems.append(Problem("axes.n_mac", None, "an n_mac axis (or peak_tops), fixed or as an axis", "missing"))


def _apply_overrides(spec: SweepSpec, catalog: Catalog, problems: list[Problem]) -> Catalog:
    """The catalog with the spec's what-if chip overrides applied (so hashes and dims reflect them)."""
    if not spec.overrides:
        return catalog
    chips = dict(catalog.chips)
    for chip_id, fields in spec.overrides.items():
        where = f"overrides.{chip_id}"
        if chip_id not in chips:
            problems.append(Problem(where, chip_id, "catalog chip ids: " + ", ".join(sorted(chips)), "unknown chip id"))
            continue
        bad = [f for f in fields if f not in OVERRIDABLE]
        for f in bad:
            problems.append(Problem(f"{where}.{f}", fields[f], ", ".join(OVERRIDABLE), "not an overridable chip field"))
        neg = [f for f in fields if f in OVERRIDABLE and f not in CHIP_INTEGER_RANGE and not (
            math.isfinite(fields[f]) and fields[f] >= 0 and (fields[f] > 0 or f not in CHIP_POSITIVE))]
        for f in neg:
            st = storage(f"chip.{f}")
            low = "> 0" if f in CHIP_POSITIVE else ">= 0"
            problems.append(Problem(f"{where}.{f}", fields[f], f"a finite number {low} ({st.describe()} of dims/chips)",
                                    "not a finite number" if not math.isfinite(fields[f]) else f"not {low}"))
        counted = [f for f in fields if f in CHIP_INTEGER_RANGE and not (
            math.isfinite(fields[f]) and float(fields[f]).is_integer()
            and CHIP_INTEGER_RANGE[f][0] <= fields[f] <= CHIP_INTEGER_RANGE[f][1])]
        for f in counted:
            lo, hi = CHIP_INTEGER_RANGE[f]
            problems.append(Problem(f"{where}.{f}", fields[f], f"an integer from {lo} to {hi}", "not in range"))
        neg += counted
        if not bad and not neg:
            # a published figure changed alone carries its measured counterpart along (catalog.keep_measured_share)
            now = keep_measured_share(chips[chip_id].model_dump(), fields)
            chips[chip_id] = chips[chip_id].model_copy(update={
                k: int(now[k]) if k in INT_CHIP_FIELDS and now[k] is not None else now[k]
                for k in (*fields, *MEASURED_OF.values()) if k in now})
    return Catalog(chips, dict(catalog.models), dict(catalog.clusters), catalog.calibration, catalog.asic,
                   catalog.defaults, catalog.overlay_path)


# chip fields stored as whole numbers (a spec's overrides arrive as floats): scale_up_domain, scale_up_torus_dims, ...
INT_CHIP_FIELDS = frozenset(name for name, f in Chip.model_fields.items() if f.annotation in (int, int | None))


MAX_AXIS_VALUES = 10_000_000  # values one range/geometric axis may expand to


def _expand(raw: Any, where: str, d: AxisDef, problems: list[Problem], st: Storage | None = None) -> list[Any] | None:
    """The axis form -> a list of raw values (or None after recording a problem)."""
    if isinstance(raw, Mapping):
        if set(raw) == {"range"} or set(raw) == {"geometric"}:
            form = next(iter(raw))
            params = raw[form]
            if not isinstance(params, Mapping):
                problems.append(Problem(f"{where}.{form}", params, "a mapping {start, stop, step|factor}", "wrong type"))
                return None
            return _series(form, params, f"{where}.{form}", d, problems, st)
        return None  # a catalog filter; resolved by the caller
    if isinstance(raw, list):
        return raw
    return [raw]


def _series(form: str, params: Mapping[str, Any], where: str, d: AxisDef, problems: list[Problem],
            st: Storage | None = None) -> list[Any] | None:
    step_key = "step" if form == "range" else "factor"
    allowed_keys = {"start", "stop", step_key}
    extra = set(params) - allowed_keys
    if extra:
        problems.append(Problem(f"{where}.{sorted(extra)[0]}", params[sorted(extra)[0]], ", ".join(sorted(allowed_keys)), "unknown field"))
        return None
    vals: dict[str, float] = {}
    for k in ("start", "stop", step_key):
        v = params.get(k, 1 if k == "step" else None)
        if v is None:
            problems.append(Problem(f"{where}.{k}", None, "a number", "missing"))
            return None
        num = as_number(v)  # numeric text too: YAML 1.1 reads 1.0e300 as a string
        if num is None:
            numeric = not isinstance(v, bool) and isinstance(v, int | float | str) and _looks_numeric(v)
            problems.append(Problem(f"{where}.{k}", v, "a finite number",
                                    "not a finite number" if numeric else "wrong type"))
            return None
        vals[k] = num
    start, stop, step = vals["start"], vals["stop"], vals[step_key]
    if form == "range":
        if step <= 0:
            problems.append(Problem(f"{where}.step", step, "a number > 0", "invalid value"))
            return None
        count = (stop - start) / step
    else:
        if step <= 1 or start <= 0:
            problems.append(Problem(f"{where}.factor" if step <= 1 else f"{where}.start", step if step <= 1 else start,
                                    "factor > 1 and start > 0", "invalid value"))
            return None
        count = math.log(stop / start) / math.log(step) if stop >= start else -1.0
    if not math.isfinite(count) or count + 1 > MAX_AXIS_VALUES:
        problems.append(Problem(where, dict(params), f"at most {MAX_AXIS_VALUES:,} values per axis", "too many values"))
        return None
    n = max(math.floor(count + 1e-9) + 1, 0)
    out = [start + i * step for i in range(n)] if form == "range" else [start * step**i for i in range(n)]
    if st is not None and out and not (st.low <= min(out) and max(out) <= st.high):
        big = max(out) > st.high
        problems.append(Problem(f"{where}.{'stop' if big else 'start'}", params.get("stop" if big else "start"),
                                f"values from {fmt(max(st.low, d.minimum or st.low))} to {fmt(st.high)} ({st.describe()})",
                                "out of range for its column"))
        return None
    if d.kind == "int":
        rounded = [round(v) for v in out]
        if len(set(rounded)) != len(rounded):  # an integer axis: steps under 1 round onto each other
            i = next(i for i in range(1, len(rounded)) if rounded[i] == rounded[i - 1])
            problems.append(Problem(f"{where}.{step_key}", params.get(step_key, 1),
                                    f"a {step_key} whose values stay distinct as integers (or a list)",
                                    f"{fmt(out[i - 1])} and {fmt(out[i])} both round to {rounded[i]} on this integer axis"))
            return None
        return list(rounded)
    return out


def _looks_numeric(v: Any) -> bool:
    """Whether `v` is meant as a number (so 'not a finite number' is the right complaint)."""
    if isinstance(v, int | float):
        return True
    try:
        float(str(v))
    except (ValueError, OverflowError):
        return False
    return True


def _storage(name: str, d: AxisDef, kind: str | None) -> Storage | None:
    """Where an int/num axis lands (its fact column's type), None for refs, choices and booleans."""
    if d.kind not in ("int", "num"):
        return None
    return storage(name, kind, integer=d.kind == "int")


def _allowed(d: AxisDef, st: Storage | None) -> str:
    """What an axis accepts, with the range its column's type holds (`integers from 1 to 2,147,483,647
    (stored as int32 in column n_chips)`)."""
    if st is None:
        return d.allowed()
    noun = "integers" if d.kind == "int" else "finite numbers"
    lo = st.low if d.minimum is None else max(d.minimum, st.low)
    hi = st.high if d.maximum is None else min(d.maximum, st.high)
    return f"{noun} from {fmt(lo)} to {fmt(hi)} ({st.describe()})"


def _resolve_axis(
    name: str, d: AxisDef, raw: Any, catalog: Catalog, where: str, problems: list[Problem], *, single: bool = False,
    kind: str | None = None,
) -> Axis | None:
    if d.kind == "ref":
        return _resolve_ref(name, d, raw, catalog, where, problems, single)
    st = _storage(name, d, kind)
    values = _expand(raw, where, d, problems, st)
    if values is None:
        if isinstance(raw, Mapping) and not ({"range"} == set(raw) or {"geometric"} == set(raw)):
            problems.append(Problem(where, raw, "a list, {range: {start, stop, step}} or {geometric: {start, stop, factor}}", "not an axis form"))
        return None
    if not values:
        problems.append(Problem(where, raw, "a non-empty list of " + d.allowed(), "empty axis"))
        return None
    codes: list[float] = []
    shown: list[Any] = []
    ok = True
    for i, v in enumerate(values):
        at = where if single else f"{where}[{i}]"
        code = _code(d, v, st)
        if code is None:
            num = as_number(v) if st is not None else None
            beyond = num is not None and not (st is not None and st.low <= num <= st.high)
            problems.append(Problem(at, v, _allowed(d, st), "out of range for its column" if beyond else
                                    ("not a finite number" if st is not None and _looks_numeric(v) and num is None
                                     else "not an allowed value")))
            ok = False
            continue
        codes.append(code)
        shown.append(d.options[int(code)] if d.kind == "choice" and not d.numeric_choice else
                      (bool(code) if d.kind == "bool" else (int(code) if d.kind in ("int", "choice") else code)))
    if not ok:
        return None
    if len(set(codes)) != len(codes):
        dup = next(v for v in shown if shown.count(v) > 1)
        problems.append(Problem(where, dup, "distinct values", "duplicate value in axis"))
        return None
    return Axis(name, d.key, shown, np.asarray(codes, dtype=np.float64))


def _code(d: AxisDef, v: Any, st: Storage | None = None) -> float | None:
    """The numeric code of one value, or None when it is not allowed (for numbers: finite, an integer
    where one is needed, within the axis's bounds and the range of the column it is stored in)."""
    if d.kind == "bool":
        if isinstance(v, bool):
            return 1.0 if v else 0.0
        if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no"):
            return 1.0 if v.lower() in ("true", "yes") else 0.0
        return None
    if d.kind == "choice":
        if d.numeric_choice:
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                return None
            num = as_number(v)
            return num if num is not None and fmt_number(num) in d.options else None
        if isinstance(v, str) and v.lower() in d.options:
            return float(d.options.index(v.lower()))
        return None
    num = as_number(v)  # YAML reads 300e9 as a string; NaN, infinities and 10**400 are None
    if num is None:
        return None
    if d.kind == "int" and abs(num - round(num)) > 1e-9:
        return None
    if d.minimum is not None and num < d.minimum:
        return None
    if d.maximum is not None and num > d.maximum:
        return None
    if st is not None and not (st.low <= num <= st.high):
        return None
    return float(num)


def _resolve_ref(
    name: str, d: AxisDef, raw: Any, catalog: Catalog, where: str, problems: list[Problem], single: bool
) -> Axis | None:
    table_name = d.options[0]
    table: Mapping[str, Any] = getattr(catalog, table_name)
    ids = sorted(table)
    if isinstance(raw, Mapping):
        chosen = _filter(table, raw, where, problems)
        if chosen is None:
            return None
        if not chosen:
            problems.append(Problem(where, dict(raw), _filter_hint(table, raw), "empty axis: no catalog entry matches the filter"))
            return None
    else:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            problems.append(Problem(where, raw, "a non-empty list of " + d.allowed(), "empty axis"))
            return None
        chosen = []
        for i, v in enumerate(items):
            at = where if single or not isinstance(raw, list) else f"{where}[{i}]"
            if not isinstance(v, str) or v not in table:
                close = closest_ids(str(v), ids)
                hint = f"closest: {', '.join(close)}; all " if close else ""
                problems.append(Problem(at, v, f"catalog {table_name[:-1]} ids ({hint}`chipsweep catalog list`): "
                                        + ", ".join(ids), f"unknown {table_name[:-1]} id"))
                continue
            if v in chosen:
                problems.append(Problem(at, v, "distinct values", "duplicate value in axis"))
                continue
            chosen.append(v)
        if len(chosen) != len(items):
            return None
    index = {k: i for i, k in enumerate(ids)}
    return Axis(name, d.key, list(chosen), np.asarray([index[c] for c in chosen], dtype=np.int64))


def _field_value(entry: Any, key: str) -> Any:
    data = entry.model_dump(by_alias=True)
    return data.get(key)


def _matches(have: Any, want: Any) -> bool:
    """Filter semantics: lists are alternatives; strings match exactly, as a glob, or as a leading
    '_'-separated part (`edge` matches class `edge_inference`)."""
    if isinstance(want, list | tuple):
        return any(_matches(have, w) for w in want)
    if isinstance(want, str) and isinstance(have, str):
        return have == want or fnmatch.fnmatchcase(have, want) or have.startswith(want + "_")
    return bool(have == want)


def _filter(table: Mapping[str, Any], criteria: Mapping[str, Any], where: str, problems: list[Problem]) -> list[str] | None:
    if not criteria:
        problems.append(Problem(where, {}, "a list of ids, or a filter such as {class: edge_inference}", "empty filter"))
        return None
    sample = next(iter(table.values()))
    known = set(sample.model_dump(by_alias=True))
    bad = [k for k in criteria if k not in known]
    if bad:
        problems.append(Problem(f"{where}.{bad[0]}", criteria[bad[0]], "fields of the entry: " + ", ".join(sorted(known)), "unknown filter field"))
        return None
    return sorted(k for k, e in table.items() if all(_matches(_field_value(e, f), w) for f, w in criteria.items()))


def _filter_hint(table: Mapping[str, Any], criteria: Mapping[str, Any]) -> str:
    hints = []
    for f in criteria:
        seen = sorted({str(_field_value(e, f)) for e in table.values() if _field_value(e, f) is not None})
        hints.append(f"{f}: " + ", ".join(seen[:40]))
    # a value also matches as a glob or as a leading '_'-separated part (`edge` is every edge_* class): say so
    return "; ".join(hints) + " (or a glob, e.g. nvidia_*, or a leading part, e.g. datacenter for datacenter_*)"


# top-level fields whose problems do not stop the axes from being checked too (value used meanwhile)
_STAND_INS: dict[str, Any] = {"name": "x", "store": "all", "objectives": None, "schedule": None, "description": ""}


def validate(data: Any, catalog: Catalog) -> Sweep:
    """Parse and resolve a spec, reporting every problem at once: a bad name, store or an unknown
    top-level field does not hide a bad axis."""
    if isinstance(data, SweepSpec):
        return resolve(data, catalog)
    try:
        return resolve(parse_spec(data), catalog)
    except SpecError as first:
        if not isinstance(data, Mapping):
            raise
        problems = list(first.problems)
        repaired = dict(data)
        for p in first.problems:
            top = p.field.split(".")[0].split("[")[0]
            if top in _STAND_INS:
                repaired[top] = _STAND_INS[top]
            elif top not in SweepSpec.model_fields:
                repaired.pop(top, None)
            else:
                raise  # kind, axes, fixed or overrides malformed: nothing more to check reliably
        if repaired == dict(data):
            raise
        try:
            resolve(parse_spec(repaired), catalog)
        except SpecError as more:
            problems += [p for p in more.problems if p not in problems]
        raise SpecError(problems) from None

"""The sweep spec (CONTRACT.md "Sweep spec"): what a user submits, validated before anything is queued.

A spec names a kind, axes whose Cartesian product is the space (lists, inclusive ranges, geometric
series, catalog filters such as `{class: edge_inference}`), fixed settings, what-if chip overrides,
objectives, what to store and a schedule. `resolve(spec, catalog)` turns it into a `Sweep`: every axis
as a small array of codes (catalog index, choice index or number), so the number of configurations is
known before anything runs and workers decode a flat index into axis values with numpy (mixed radix,
last axis fastest). Every problem is reported with the field, the value and what is allowed.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.catalog import CalibrationSet, Catalog, Chip, Cluster, Model, content_hash
from schemas.columns import FACTS
from workers.asic import ARCHS, ASIC_PRECISIONS, DRAM_TYPES, YIELD_MODELS
from workers.tables import CHIP_NUMERIC, PRECISIONS, RECOMPUTE
from workers.training import FRAMEWORKS

Kind = Literal["training", "inference", "asic"]
StoreMode = Literal["all", "feasible", "frontier"]

# a sweep name becomes a directory name in the lake: no separators, no `..`, no `=` (hive partitions)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
NAME_ALLOWED = "1-128 characters: letters, digits, '_', '.', '-' (starting with a letter or digit, no '..')"
OVERRIDABLE = tuple(f for f in CHIP_NUMERIC if f != "process_nm")


# ------------------------------------------------------------------------------------------------
# problems
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where, what was given, what would be accepted."""

    field: str
    value: Any
    allowed: str
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": _jsonable(self.value), "allowed": self.allowed, "message": self.message}

    def __str__(self) -> str:
        what = f"{self.message}; " if self.message else ""
        return f"field '{self.field}' = {_short(self.value)}: {what}allowed: {self.allowed}"


class SpecError(ValueError):
    """A spec refused before anything is queued; `problems` name field, value and what is allowed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    def as_dict(self) -> dict[str, Any]:
        first = self.problems[0].as_dict() if self.problems else {}
        return {"error": "invalid spec", **first, "problems": [p.as_dict() for p in self.problems]}


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _short(value: Any) -> str:
    text = json.dumps(_jsonable(value)) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# ------------------------------------------------------------------------------------------------
# axis definitions per kind
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AxisDef:
    """What values one axis (or fixed setting) accepts and the key the worker reads it under."""

    kind: Literal["ref", "int", "num", "choice", "bool"]
    key: str  # key in the worker's raw arrays
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[str, ...] = ()  # choices; for refs: the catalog table ("chips", "models", "clusters")
    numeric_choice: bool = False  # choice values written as numbers (weight_bits: 4 | 8 | 16)

    def allowed(self) -> str:
        if self.kind == "ref":
            what = self.options[0][:-1]
            return f"catalog {what} ids (`chipsweep catalog list --kind {self.options[0]}`), or a filter on {what} fields"
        if self.kind == "choice":
            return "one of " + ", ".join(self.options)
        if self.kind == "bool":
            return "true or false"
        noun = "integers" if self.kind == "int" else "numbers"
        if self.minimum is not None and self.maximum is not None:
            return f"{noun} from {_fmt(self.minimum)} to {_fmt(self.maximum)}"
        if self.minimum is not None:
            return f"{noun} >= {_fmt(self.minimum)}"
        return noun


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _ints(key: str, lo: float | None = 1, hi: float | None = None) -> AxisDef:
    return AxisDef("int", key, lo, hi)


def _nums(key: str, lo: float | None = 0, hi: float | None = None) -> AxisDef:
    return AxisDef("num", key, lo, hi)


_SHAPES = {k: _ints(k) for k in ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab", "seq_len", "head_dim")}
_OVERRIDES = {f"chip.{f}": _nums(f"chip.{f}") for f in OVERRIDABLE}

# the inference workload: the same axes for catalog chips (inference) and hypothetical designs (asic)
_EDGE_WORKLOAD: dict[str, AxisDef] = {
    "weight_bits": AxisDef("choice", "weight_bits", options=("4", "8", "16"), numeric_choice=True),
    "kv_bits": AxisDef("choice", "kv_bits", options=("4", "8", "16"), numeric_choice=True),
    "batch": _ints("batch"),
    "prompt_len": _ints("prompt_len", 0),
    "gen_len": _ints("gen_len", 0),
    "quant_overhead": _nums("quant_overhead", 0, 1),
    "params_b": _nums("params_b", 1e-9),
    "mlp": AxisDef("choice", "mlp", options=("gelu", "swiglu")),
}


AXES: dict[str, dict[str, AxisDef]] = {
    "training": {
        "model": AxisDef("ref", "model_idx", options=("models",)),
        "chip": AxisDef("ref", "chip_idx", options=("chips",)),
        "cluster": AxisDef("ref", "cluster_idx", options=("clusters",)),
        "n_chips": _ints("n_chips"),
        "global_batch": _ints("global_batch"),
        "tokens": _nums("tokens", 1),
        "tp": _ints("tp"),
        "pp": _ints("pp"),
        "dp": _ints("dp"),
        "micro_batch": _ints("micro_batch"),
        "interleave": _ints("interleave", 1, 64),
        "recompute": AxisDef("choice", "recompute", options=RECOMPUTE),
        "zero_stage": _ints("zero_stage", 0, 3),
        "precision": AxisDef("choice", "precision", options=PRECISIONS),
        "sequence_parallel": AxisDef("bool", "sequence_parallel"),
        "flash_attention": AxisDef("bool", "flash_attention"),
        "framework": AxisDef("choice", "framework", options=FRAMEWORKS),
        "grad_bytes": _nums("grad_bytes", 1, 4),
        "mlp": AxisDef("choice", "mlp", options=("gelu", "swiglu")),
        **_SHAPES,
        **_OVERRIDES,
    },
    "inference": {
        "model": AxisDef("ref", "model_idx", options=("models",)),
        "chip": AxisDef("ref", "chip_idx", options=("chips",)),
        "n_chips": _ints("n_chips"),
        **_EDGE_WORKLOAD,
        **_SHAPES,
        **_OVERRIDES,
    },
    "asic": {
        "model": AxisDef("ref", "model_idx", options=("models",)),
        "node_nm": _nums("node_nm", 1, 100),
        "n_mac": _ints("n_mac"),
        "peak_tops": _nums("peak_tops", 1e-12),
        "clock_ghz": _nums("clock_ghz", 1e-6, 100),
        "sram_mb": _nums("sram_mb", 0),
        "dram": AxisDef("choice", "dram", options=DRAM_TYPES),
        "dram_bus_bits": _ints("dram_bus_bits", 0),
        "dram_mt_s": _nums("dram_mt_s", 1e-9),
        "dram_gb": _nums("dram_gb", 0),
        "precision": AxisDef("choice", "precision", options=ASIC_PRECISIONS),
        "arch": AxisDef("choice", "arch", options=ARCHS),
        "yield_model": AxisDef("choice", "yield_model", options=YIELD_MODELS),
        "d0_per_cm2": _nums("d0_per_cm2", 0),
        "tiles": _ints("tiles"),
        "spare_tiles": _ints("spare_tiles", 0),
        **_EDGE_WORKLOAD,
        **_SHAPES,
    },
}

# objectives: output column -> direction (the Pareto frontier keeps rows no other row beats on all)
MAXIMISE = {
    "tokens_per_s", "model_tflops_per_chip", "hardware_tflops_per_chip", "mfu", "hfu", "decode_tokens_per_s",
    "prefill_tokens_per_s", "throughput_tokens_per_s", "peak_tops", "tops_per_w", "yield", "dies_per_wafer",
}
DEFAULT_OBJECTIVES: dict[str, tuple[str, ...]] = {
    "training": ("time_to_train_days", "cost_usd"),
    "inference": ("decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd"),
    "asic": ("decode_tokens_per_s", "energy_per_token_j", "unit_cost_usd"),
}


def objective_columns(kind: str) -> list[str]:
    """Output columns a sweep of this kind may name as objectives (float outputs of its fact table)."""
    return [c.name for c in FACTS[kind] if c.role == "output" and c.dtype.startswith("float")]


# ------------------------------------------------------------------------------------------------
# the spec (pydantic, structure only; `resolve` checks it against the catalog)
# ------------------------------------------------------------------------------------------------
class Schedule(BaseModel):
    """When the scheduler re-runs the sweep: when an input spec changes, and/or on a cron expression."""

    model_config = ConfigDict(extra="forbid")
    on_change: bool = False
    cron: str | None = None
    interval_s: float | None = Field(default=None, gt=0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            from croniter import croniter
        except ImportError:  # pragma: no cover - croniter is a dependency
            return v
        if not croniter.is_valid(v):
            raise ValueError("not a cron expression (minute hour day month weekday, e.g. '0 3 * * *')")
        return v


Scalar = int | float | str | bool


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Kind
    axes: dict[str, Any] = Field(min_length=1)
    fixed: dict[str, Scalar] = Field(default_factory=dict)
    overrides: dict[str, dict[str, float]] = Field(default_factory=dict)
    objectives: list[str] | None = None
    store: StoreMode = "all"
    schedule: Schedule | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(NAME_PATTERN, v) or ".." in v:
            raise ValueError(f"a sweep name is a directory in the lake: {NAME_ALLOWED}")
        return v

    def objective_names(self) -> list[str]:
        return list(self.objectives or DEFAULT_OBJECTIVES[self.kind])

    def canonical(self) -> dict[str, Any]:
        """The spec as plain JSON data (what the queue and the lake's `sweeps` table record)."""
        return self.model_dump(mode="json", exclude_none=True)


def parse_spec(data: Any) -> SweepSpec:
    """A spec from parsed YAML/JSON data; pydantic errors become `SpecError` problems."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("(spec)", data, "a mapping with name, kind, axes (and fixed, overrides, objectives, store, schedule)")])
    try:
        return SweepSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError([_problem_of(err) for err in exc.errors()]) from None


def read_spec_text(text: str | bytes) -> Any:
    """Parsed YAML or JSON text (JSON is YAML); invalid text is a `SpecError` naming line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(spec)"
        raise SpecError([Problem(where, None, "a YAML or JSON mapping", f"invalid YAML: {getattr(exc, 'problem', exc)}")]) from None


def load_spec_text(text: str | bytes) -> SweepSpec:
    """A spec from YAML or JSON text."""
    return parse_spec(read_spec_text(text))


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


_ALLOWED_TOP = "name, kind, axes, fixed, overrides, objectives, store, schedule, description"


def _problem_of(err: Mapping[str, Any]) -> Problem:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "(spec)"
    kind = err.get("type", "")
    value = err.get("input")
    msg = str(err.get("msg", ""))
    if kind == "extra_forbidden":
        parent = loc.rsplit(".", 1)[0] if "." in loc else ""
        allowed = {"": _ALLOWED_TOP, "schedule": "on_change, cron, interval_s"}.get(parent, "the documented fields")
        return Problem(loc, value, allowed, "unknown field")
    if kind == "missing":
        return Problem(loc, None, "required", "missing field")
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return Problem(loc, value, str(expected).replace("'", ""), "not an allowed value")
    if loc == "name":
        return Problem(loc, value, NAME_ALLOWED, "unsafe sweep name")
    if loc == "axes" and kind == "too_short":
        return Problem(loc, value, "at least one axis", "no axes")
    return Problem(loc, value, msg, "wrong type" if "type" in kind or "parsing" in kind else "invalid value")


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


def resolve(spec: SweepSpec, catalog: Catalog) -> Sweep:
    """Check the spec against the catalog and resolve every axis; raises `SpecError` with all problems."""
    problems: list[Problem] = []
    defs = AXES[spec.kind]
    effective = _apply_overrides(spec, catalog, problems)
    axes: list[Axis] = []
    for name, raw in spec.axes.items():
        d = _axis_def(defs, name, f"axes.{name}", raw, problems)
        if d is None:
            continue
        axis = _resolve_axis(name, d, raw, effective, f"axes.{name}", problems)
        if axis is not None:
            axes.append(axis)
    fixed: dict[str, float] = {}
    for name, raw in spec.fixed.items():
        where = f"fixed.{name}"
        if name in spec.axes:
            problems.append(Problem(where, raw, "a setting that is not also an axis", f"'{name}' is already an axis"))
            continue
        d = _axis_def(defs, name, where, raw, problems)
        if d is None:
            continue
        axis = _resolve_axis(name, d, [raw], effective, where, problems, single=True)
        if axis is not None:
            fixed[d.key] = float(axis.codes[0])
    objectives = _objectives(spec, problems)
    _required(spec, problems)
    if problems:
        raise SpecError(problems)
    sweep = Sweep(spec, effective, axes, fixed, objectives)
    sweep.hashes = effective.hashes()
    return sweep


def _axis_def(defs: Mapping[str, AxisDef], name: str, where: str, raw: Any, problems: list[Problem]) -> AxisDef | None:
    d = defs.get(name)
    if d is None:
        problems.append(Problem(where, raw, ", ".join(defs), f"unknown axis or setting '{name}'"))
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


def _required(spec: SweepSpec, problems: list[Problem]) -> None:
    given = set(spec.axes) | set(spec.fixed)
    if spec.kind == "training":
        shapes = {"layers", "hidden", "heads", "vocab", "seq_len"}
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
        neg = [f for f in fields if f in OVERRIDABLE and fields[f] < 0]
        for f in neg:
            problems.append(Problem(f"{where}.{f}", fields[f], "a number >= 0", "negative"))
        if not bad and not neg:
            chips[chip_id] = chips[chip_id].model_copy(update=dict(fields))
    return Catalog(chips, dict(catalog.models), dict(catalog.clusters), catalog.calibration, catalog.asic,
                   catalog.defaults, catalog.overlay_path)


def _expand(raw: Any, where: str, d: AxisDef, problems: list[Problem]) -> list[Any] | None:
    """The axis form -> a list of raw values (or None after recording a problem)."""
    if isinstance(raw, Mapping):
        if set(raw) == {"range"} or set(raw) == {"geometric"}:
            form = next(iter(raw))
            params = raw[form]
            if not isinstance(params, Mapping):
                problems.append(Problem(f"{where}.{form}", params, "a mapping {start, stop, step|factor}", "wrong type"))
                return None
            return _series(form, params, f"{where}.{form}", d, problems)
        return None  # a catalog filter; resolved by the caller
    if isinstance(raw, list):
        return raw
    return [raw]


def _series(form: str, params: Mapping[str, Any], where: str, d: AxisDef, problems: list[Problem]) -> list[Any] | None:
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
        if isinstance(v, bool) or not isinstance(v, int | float):
            problems.append(Problem(f"{where}.{k}", v, "a number", "wrong type"))
            return None
        vals[k] = float(v)
    start, stop, step = vals["start"], vals["stop"], vals[step_key]
    if form == "range":
        if step <= 0:
            problems.append(Problem(f"{where}.step", step, "a number > 0", "invalid value"))
            return None
        n = math.floor((stop - start) / step + 1e-9) + 1
        out = [start + i * step for i in range(max(n, 0))] if n <= 10_000_000 else None
    else:
        if step <= 1 or start <= 0:
            problems.append(Problem(f"{where}.factor" if step <= 1 else f"{where}.start", step if step <= 1 else start,
                                    "factor > 1 and start > 0", "invalid value"))
            return None
        n = math.floor(math.log(stop / start) / math.log(step) + 1e-9) + 1 if stop >= start else 0
        out = [start * step**i for i in range(max(n, 0))]
    if out is None:
        problems.append(Problem(where, dict(params), "at most 10,000,000 values per axis", "too many values"))
        return None
    if d.kind == "int":
        out = [round(v) for v in out]
    return out


def _resolve_axis(
    name: str, d: AxisDef, raw: Any, catalog: Catalog, where: str, problems: list[Problem], *, single: bool = False
) -> Axis | None:
    if d.kind == "ref":
        return _resolve_ref(name, d, raw, catalog, where, problems, single)
    values = _expand(raw, where, d, problems)
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
        code = _code(d, v)
        if code is None:
            problems.append(Problem(at, v, d.allowed(), "not an allowed value"))
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


def _code(d: AxisDef, v: Any) -> float | None:
    """The numeric code of one value, or None when it is not allowed."""
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
            try:
                num = float(v)
            except ValueError:
                return None
            return num if _fmt(num) in d.options else None
        if isinstance(v, str) and v.lower() in d.options:
            return float(d.options.index(v.lower()))
        return None
    if isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v)  # YAML reads 300e9 as a string
        except ValueError:
            return None
    if not isinstance(v, int | float) or not math.isfinite(v):
        return None
    if d.kind == "int" and abs(v - round(v)) > 1e-9:
        return None
    if d.minimum is not None and v < d.minimum:
        return None
    if d.maximum is not None and v > d.maximum:
        return None
    return float(v)


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
                problems.append(Problem(at, v, f"catalog {table_name[:-1]} ids: " + ", ".join(ids), f"unknown {table_name[:-1]} id"))
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
    return "; ".join(hints)


# ------------------------------------------------------------------------------------------------
# the catalog a version used, carried with it (queue and workers rebuild it exactly)
# ------------------------------------------------------------------------------------------------
def catalog_snapshot(catalog: Catalog) -> dict[str, Any]:
    return {
        "chips": [c.model_dump(mode="json", by_alias=True) for c in catalog.chips.values()],
        "models": [m.model_dump(mode="json", by_alias=True) for m in catalog.models.values()],
        "clusters": [c.model_dump(mode="json", by_alias=True) for c in catalog.clusters.values()],
        "calibration": {k: v.model_dump(mode="json") for k, v in catalog.calibration.items()},
        # YAML keeps what JSON would not (integer keys such as the quantisation table's 4, 8, 16)
        "asic_yaml": yaml.safe_dump(catalog.asic, sort_keys=True),
        "defaults_yaml": yaml.safe_dump(catalog.defaults, sort_keys=True),
        "overlay_path": catalog.overlay_path,
    }


def catalog_from_snapshot(snap: Mapping[str, Any]) -> Catalog:
    return Catalog(
        chips={c["id"]: Chip.model_validate(c) for c in snap["chips"]},
        models={m["id"]: Model.model_validate(m) for m in snap["models"]},
        clusters={c["id"]: Cluster.model_validate(c) for c in snap["clusters"]},
        calibration={k: CalibrationSet.model_validate(v) for k, v in snap["calibration"].items()},
        asic=dict(yaml.safe_load(snap.get("asic_yaml") or "") or {}),
        defaults=dict(yaml.safe_load(snap.get("defaults_yaml") or "") or {}),
        overlay_path=snap.get("overlay_path"),
    )


def spec_hash(spec: SweepSpec) -> str:
    return content_hash(spec.canonical())


def sizes_of(axes: Iterable[Axis]) -> list[int]:
    return [len(a.values) for a in axes]

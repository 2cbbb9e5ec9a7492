"""The sweep spec: axis forms, catalog filters, size known up front, and refusals that name field,
value and what is allowed."""

from __future__ import annotations

import time

import pytest

from chipsweep.schemas.catalog import load_catalog
from chipsweep.schemas.errors import SpecError
from chipsweep.schemas.spec import load_spec_text, parse_spec, read_spec_text
from chipsweep.schemas.sweep import resolve, validate
from tests.conftest import training_spec

CONTRACT_EXAMPLE = """
name: gpt3-everywhere
kind: training                      # training | inference | asic
axes:                               # the Cartesian product of these
  model: [gpt3_175b, llama2_70b]
  chip: {class: datacenter_training}        # a list of ids, or a catalog filter
  n_chips: {geometric: {start: 64, stop: 8192, factor: 2}}
  tp: [1, 2, 4, 8]
  pp: {geometric: {start: 1, stop: 64, factor: 2}}
  micro_batch: [1, 2, 4]
  recompute: [none, selective, full]
fixed: {global_batch: 1536, tokens: 300e9}
overrides: {nvidia_h100_sxm: {usd_per_hour: 2.0}}
store: feasible                     # all | feasible | frontier
schedule: {on_change: true, cron: "0 3 * * *"}
"""


@pytest.fixture(scope="module")
def catalog():  # type: ignore[no-untyped-def]
    return load_catalog(use_env=False)


def refused(data: object, catalog) -> SpecError:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as info:
        resolve(parse_spec(data), catalog)
    return info.value


def test_contract_example_resolves_with_its_size_known_up_front(catalog) -> None:  # type: ignore[no-untyped-def]
    sweep = resolve(load_spec_text(CONTRACT_EXAMPLE), catalog)
    n_dc = len(catalog.filter_chips(**{"class": "datacenter_training"}))
    assert sweep.sizes == [2, n_dc, 8, 4, 7, 3, 3]
    assert sweep.configurations == 2 * n_dc * 8 * 4 * 7 * 3 * 3
    assert sweep.fixed["tokens"] == 300e9  # YAML reads 300e9 as text; the spec reads it as a number
    assert sweep.catalog.chips["nvidia_h100_sxm"].usd_per_hour == 2.0  # the what-if override is applied
    assert sweep.hashes["chips/nvidia_h100_sxm"] != catalog.hashes()["chips/nvidia_h100_sxm"]
    assert sweep.spec.schedule is not None and sweep.spec.schedule.cron == "0 3 * * *"


def test_axis_forms_range_and_geometric_are_inclusive(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec(axes={
        "model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"],
        "n_chips": {"range": {"start": 64, "stop": 256, "step": 64}},
        "tp": {"geometric": {"start": 1, "stop": 8, "factor": 2}},
        "global_batch": {"range": {"start": 512, "stop": 1024, "step": 512}},
    })
    spec["fixed"].pop("global_batch")
    sweep = resolve(parse_spec(spec), catalog)
    assert sweep.axes_json()["n_chips"] == [64, 128, 192, 256]
    assert sweep.axes_json()["tp"] == [1, 2, 4, 8]
    assert sweep.axes_json()["global_batch"] == [512, 1024]


def test_catalog_filters_exact_prefix_and_glob(catalog) -> None:  # type: ignore[no-untyped-def]
    def chips(flt: dict[str, object]) -> list[str]:
        spec = training_spec(axes={"model": ["llama3_8b"], "chip": flt, "n_chips": [64]})
        return resolve(parse_spec(spec), catalog).axes_json()["chip"]

    assert chips({"class": "datacenter_training"}) == catalog.filter_chips(**{"class": "datacenter_training"})
    edge = chips({"class": "edge"})  # a leading part of the class name: edge_inference, edge_voice, ...
    assert edge and all(catalog.chips[c].chip_class.startswith("edge_") for c in edge)
    assert chips({"vendor": "NVIDIA*", "class": "datacenter_training"}) == sorted(
        c for c in catalog.filter_chips(**{"class": "datacenter_training"}) if catalog.chips[c].vendor.startswith("NVIDIA"))
    # a filter matching nothing lists the values there are and says a glob or a leading part also matches (a user
    # found `{class: datacenter}` taking every datacenter_* class, which no message said)
    with pytest.raises(SpecError) as info:
        chips({"class": "quantum"})
    [p] = info.value.problems
    assert "datacenter_training" in p.allowed and "a leading part, e.g. datacenter for datacenter_*" in p.allowed


def test_a_billion_configurations_resolve_instantly(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec("huge", axes={
        "model": ["llama3_8b", "llama2_70b"], "chip": {"class": "datacenter_training"},
        "n_chips": {"range": {"start": 8, "stop": 8000, "step": 8}},
        "tp": [1, 2, 4, 8], "pp": [1, 2, 4, 8], "micro_batch": [1, 2, 4, 8, 16],
        "recompute": ["none", "selective", "full"], "zero_stage": [0, 1, 2, 3],
        "global_batch": {"range": {"start": 64, "stop": 2048, "step": 64}},
    })
    spec["fixed"].pop("zero_stage")
    spec["fixed"].pop("global_batch")
    t0 = time.perf_counter()
    sweep = resolve(parse_spec(spec), catalog)
    assert sweep.configurations > 1_000_000_000
    assert time.perf_counter() - t0 < 2.0


# ---- refusals: field, value, allowed --------------------------------------------------------------
def test_unknown_field_is_refused_naming_the_allowed_fields(catalog) -> None:  # type: ignore[no-untyped-def]
    err = refused({**training_spec(), "colour": "blue"}, catalog)
    p = err.problems[0]
    assert (p.field, p.value) == ("colour", "blue")
    assert "axes" in p.allowed and "store" in p.allowed


def test_unknown_axis_is_refused_naming_the_allowed_axes(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec()
    spec["axes"]["warp_drive"] = [1, 2]
    p = refused(spec, catalog).problems[0]
    assert p.field == "axes.warp_drive" and p.value == [1, 2]
    assert "micro_batch" in p.allowed and "recompute" in p.allowed
    spec["axes"].pop("warp_drive")
    spec["axes"]["micro_batches"] = [1, 2]  # a near miss says what it may have meant
    assert "(did you mean micro_batch?)" in refused(spec, catalog).problems[0].message


def test_unknown_chip_id_is_refused_with_the_catalog_ids(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec()
    spec["axes"]["chip"] = ["nvidia_h100_sxm", "nvidia_h1000"]
    p = refused(spec, catalog).problems[0]
    assert (p.field, p.value) == ("axes.chip[1]", "nvidia_h1000")
    assert "nvidia_h100_sxm" in p.allowed and "google_tpu_v5p" in p.allowed


def test_empty_axis_is_refused(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec()
    spec["axes"]["tp"] = []
    p = refused(spec, catalog).problems[0]
    assert (p.field, p.value) == ("axes.tp", [])
    assert "empty" in p.message and "integers >= 1" in p.allowed


def test_filter_matching_nothing_is_an_empty_axis_listing_the_values(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec()
    spec["axes"]["chip"] = {"class": "quantum"}
    p = refused(spec, catalog).problems[0]
    assert p.field == "axes.chip" and "empty axis" in p.message
    assert "datacenter_training" in p.allowed


def test_wrong_types_are_refused(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec()
    spec["axes"]["tp"] = [1, "two", 2.5]
    problems = refused(spec, catalog).problems
    assert [(p.field, p.value) for p in problems] == [("axes.tp[1]", "two"), ("axes.tp[2]", 2.5)]
    assert problems[0].allowed == "integers from 1 to 32,767 (stored as int16 in column tp)"
    p = refused({**training_spec(), "store": "sometimes"}, catalog).problems[0]
    assert (p.field, p.value) == ("store", "sometimes") and "feasible" in p.allowed
    p = refused({**training_spec(), "axes": "all of them"}, catalog).problems[0]
    assert p.field == "axes" and p.value == "all of them"
    spec = training_spec()
    spec["axes"]["recompute"] = ["some"]
    p = refused(spec, catalog).problems[0]
    assert (p.field, p.value, p.allowed) == ("axes.recompute[0]", "some", "one of none, selective, full")


@pytest.mark.parametrize("name", ["../../etc", "a/b", "..", "x=y", "", "a" * 200, ".hidden"])
def test_names_that_could_escape_the_lake_are_refused(catalog, name: str) -> None:  # type: ignore[no-untyped-def]
    p = refused(training_spec(name), catalog).problems[0]
    assert (p.field, p.value) == ("name", name)
    assert "letters, digits" in p.allowed


def test_overrides_name_catalog_chips_and_overridable_fields(catalog) -> None:  # type: ignore[no-untyped-def]
    problems = refused(training_spec(overrides={"nvidia_h999": {"usd_per_hour": 1.0},
                                                "nvidia_h100_sxm": {"colour": 3.0}}), catalog).problems
    assert [(p.field, p.value) for p in problems] == [("overrides.nvidia_h999", "nvidia_h999"),
                                                      ("overrides.nvidia_h100_sxm.colour", 3.0)]
    assert "usd_per_hour" in problems[1].allowed


def test_setting_both_fixed_and_axis_missing_required_and_bad_objectives(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec(objectives=["cost_usd", "happiness"])
    spec["fixed"]["tp"] = 2
    spec["fixed"].pop("global_batch")
    fields = {p.field for p in refused(spec, catalog).problems}
    assert fields == {"fixed.tp", "fixed.global_batch", "objectives[1]"}


def test_invalid_yaml_and_cron_are_refused() -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text("name: [unclosed")
    assert "invalid YAML" in str(info.value)
    with pytest.raises(SpecError) as info:
        parse_spec({**training_spec(), "schedule": {"cron": "every tuesday"}})
    assert info.value.problems[0].field == "schedule.cron"
    # what is wrong in the message and what is allowed in `allowed` (an audit found the two swapped: the complaint
    # where the allowed values go, "invalid value" as the message)
    problem = info.value.problems[0]
    assert problem.value == "every tuesday" and problem.message == "not a cron expression"
    assert problem.allowed.startswith("five fields: minute hour day month weekday")
    assert "allowed: five fields" in str(info.value)


def test_edge_specs_resolve(catalog) -> None:  # type: ignore[no-untyped-def]
    inf = resolve(parse_spec({"name": "edge", "kind": "inference", "axes": {
        "model": ["llama3_8b"], "chip": {"system_kind": "edge"}, "weight_bits": [4, 8], "batch": [1, 4]}}), catalog)
    assert inf.axes_json()["weight_bits"] == [4, 8] and inf.configurations == 2 * 2 * len(inf.axes_json()["chip"])
    asic = resolve(parse_spec({"name": "asic", "kind": "asic", "axes": {
        "model": ["llama3_8b"], "node_nm": [5, 7], "n_mac": [4096], "dram": ["lpddr5", "hbm3"]}}), catalog)
    assert asic.configurations == 4
    p = refused({"name": "asic", "kind": "asic", "axes": {"model": ["llama3_8b"], "node_nm": [5], "dram": ["ddr2"]}},
                catalog).problems
    assert {q.field for q in p} == {"axes.dram[0]", "axes.n_mac"}


def test_asic_axis_values_no_design_could_run_are_refused_as_evaluate_refuses_the_row(catalog) -> None:  # type: ignore[no-untyped-def]
    """A node outside the per-node tables (evaluate: 'allowed 3 to 16'), a clock no logic runs at and a bus width that
    is no whole number of the sweep's DRAM interfaces were accepted: the sweep finished with such rows infeasible, or
    (a zero-bit bus) 'feasible' at 0 tokens/s and infinite J/token."""
    p = refused({"name": "asic", "kind": "asic", "axes": {
        "model": ["llama3_8b"], "node_nm": [1, 7, 40], "n_mac": [1024], "clock_ghz": [1, 99], "dram": ["lpddr5x"],
        "dram_bus_bits": [0, 8, 48, 64]}}, catalog).problems
    by = {q.field: q for q in p}
    assert set(by) == {"axes.node_nm", "axes.clock_ghz", "axes.dram_bus_bits"}
    assert by["axes.node_nm"].value == [1, 40] and "3 to 16 nm" in by["axes.node_nm"].allowed
    assert by["axes.clock_ghz"].value == [99] and "6.2 GHz" in by["axes.clock_ghz"].allowed
    assert by["axes.dram_bus_bits"].value == [0, 8] and "lpddr5x: multiples of 16" in by["axes.dram_bus_bits"].allowed
    # with an HBM type beside LPDDR a 64-bit bus still serves the LPDDR rows (the HBM ones say why they are out)
    ok = resolve(parse_spec({"name": "asic", "kind": "asic", "axes": {
        "model": ["llama3_8b"], "node_nm": [4.5], "n_mac": [1024], "dram": ["lpddr5x", "hbm3"], "dram_bus_bits": [64, 1024]}}),
        catalog)
    assert ok.configurations == 4


def test_every_problem_is_reported_at_once(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = {**training_spec("../x"), "colour": "red"}
    spec["axes"]["tp"] = []
    with pytest.raises(SpecError) as info:
        validate(spec, catalog)
    assert [p.field for p in info.value.problems] == ["name", "colour", "axes.tp"]


# ------------------------------------------------------------------------------------------------
# input that cannot hurt: YAML without aliases, duplicate keys or deep nesting; numbers that fit
# the column they are stored in
# ------------------------------------------------------------------------------------------------
ALIAS_BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_a_yaml_alias_bomb_is_refused_at_once_naming_the_alias() -> None:
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as err:
        load_spec_text(ALIAS_BOMB)
    assert time.perf_counter() - t0 < 0.5
    p = err.value.problems[0]
    assert p.field == "line 2, column 8" and "aliases (*a) are not allowed" in p.message


def test_duplicate_yaml_keys_are_refused_naming_the_key() -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text("name: a\nkind: training\nname: b\n")
    p = err.value.problems[0]
    assert p.field == "line 3, column 1" and "duplicate key 'name'" in p.message
    with pytest.raises(SpecError, match="duplicate key 'tp'"):
        load_spec_text('{"name": "a", "axes": {"tp": [1], "tp": [2]}}')


@pytest.mark.parametrize("depth", [40, 1000, 100_000])
def test_deeply_nested_json_or_yaml_is_refused_without_recursion(depth: int) -> None:
    for text in ('{"a":' * depth + "1" + "}" * depth, "[" * depth + "]" * depth):
        with pytest.raises(SpecError) as err:
            load_spec_text(text)
        assert "nested deeper than 32 levels" in err.value.problems[0].message


def test_a_spec_description_is_capped() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**training_spec(), "description": "x" * 10_001})
    p = err.value.problems[0]
    assert p.field == "description" and p.allowed == "at most 10,000 characters"
    assert len(str(err.value)) < 400 and len(str(p.as_dict()["value"])) <= 120


def test_a_name_with_a_trailing_newline_is_refused(catalog) -> None:  # type: ignore[no-untyped-def]
    for name in ("nl\n", "nl\r\n", "ok\x00", "a\nb", " x"):
        p = refused(training_spec(name), catalog).problems[0]
        assert (p.field, p.value) == ("name", name)


@pytest.mark.parametrize(("axis", "value", "column"), [
    ("n_chips", 1e30, "int32 in column n_chips"),
    ("n_chips", 2**31, "int32 in column n_chips"),
    ("n_chips", 10**400, None),  # too big for a float: refused, not an OverflowError
    ("tp", 40_000, "int16 in column tp"),
    ("global_batch", 3e9, "int32 in column global_batch"),
])
def test_an_axis_value_that_does_not_fit_its_column_is_refused_naming_the_field(catalog, axis: str, value: object,
                                                                                column: str | None) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec()
    spec["axes"][axis] = [64, value] if axis != "global_batch" else [value]
    spec["fixed"].pop(axis, None)
    p = refused(spec, catalog).problems[0]
    assert p.field == f"axes.{axis}[{1 if axis != 'global_batch' else 0}]"
    if column:
        assert column in p.allowed and p.message == "out of range for its column"


def test_inference_n_chips_is_checked_against_its_int16_column(catalog) -> None:  # type: ignore[no-untyped-def]
    spec = {"name": "inf", "kind": "inference", "axes": {"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"],
                                                         "n_chips": [1, 40_000]}}
    p = refused(spec, catalog).problems[0]
    assert p.field == "axes.n_chips[1]" and "int16 in column n_chips" in p.allowed


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", ".inf", "-inf", 1e400])
def test_nan_and_infinity_are_refused_in_fixed_settings_and_axes(catalog, value: object) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec()
    spec["fixed"]["tokens"] = value
    p = refused(spec, catalog).problems[0]
    assert p.field == "fixed.tokens" and "finite numbers" in p.allowed


def test_a_geometric_stop_yaml_reads_as_text_is_a_number_or_refused_clearly(catalog) -> None:  # type: ignore[no-untyped-def]
    import yaml

    assert yaml.safe_load("{stop: 1.0e300}")["stop"] == "1.0e300"  # YAML 1.1: text, not a float
    spec = training_spec()
    spec["axes"]["n_chips"] = {"geometric": {"start": 64, "stop": "1.0e300", "factor": 2}}
    p = refused(spec, catalog).problems[0]
    assert p.field == "axes.n_chips.geometric.stop" and p.value == "1.0e300"
    assert "int32 in column n_chips" in p.allowed and p.message == "out of range for its column"
    spec["axes"]["n_chips"] = {"geometric": {"start": 64, "stop": "4.096e3", "factor": 2}}
    assert validate(spec, catalog).axes_json()["n_chips"] == [64, 128, 256, 512, 1024, 2048, 4096]
    spec["axes"]["tokens"] = {"geometric": {"start": 1e9, "stop": "1.0e300", "factor": 10}}
    spec["fixed"].pop("tokens")
    assert len(validate(spec, catalog).axes_json()["tokens"]) == 292  # float64 holds 1e300


@pytest.mark.parametrize(("series", "field"), [
    ({"geometric": {"start": 1, "stop": ".inf", "factor": 2}}, "axes.n_chips.geometric.stop"),
    ({"geometric": {"start": 1, "stop": 1e9, "factor": 1.000000001}}, "axes.n_chips.geometric"),
    ({"range": {"start": 1, "stop": 1e9, "step": 1e-300}}, "axes.n_chips.range"),
    ({"range": {"start": "nan", "stop": 10, "step": 1}}, "axes.n_chips.range.start"),
    ({"range": {"start": 1, "stop": 10**400, "step": 1}}, "axes.n_chips.range.stop"),
])
def test_series_that_are_not_finite_or_too_long_are_refused_quickly(catalog, series: dict, field: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    spec = training_spec()
    spec["axes"]["n_chips"] = series
    t0 = time.perf_counter()
    p = refused(spec, catalog).problems[0]
    assert time.perf_counter() - t0 < 1.0
    assert p.field == field


@pytest.mark.parametrize("price", [float("nan"), float("inf"), -1.0])
def test_an_override_that_is_not_a_finite_number_is_refused(catalog, price: float) -> None:  # type: ignore[no-untyped-def]
    spec = training_spec(overrides={"nvidia_h100_sxm": {"usd_per_hour": price}})
    p = refused(spec, catalog).problems[0]
    assert p.field == "overrides.nvidia_h100_sxm.usd_per_hour" and "a finite number >= 0" in p.allowed


def test_a_nan_override_in_yaml_is_refused() -> None:
    cat = load_catalog(use_env=False)
    text = "name: x\nkind: training\naxes: {model: [llama3_8b], chip: [nvidia_h100_sxm], n_chips: [64]}\n" \
           "fixed: {global_batch: 512}\noverrides: {nvidia_h100_sxm: {usd_per_hour: .nan}}\n"
    p = refused(read_spec_text(text), cat).problems[0]
    assert p.field == "overrides.nvidia_h100_sxm.usd_per_hour" and p.message == "not a finite number"


def test_the_catalog_overlay_refuses_aliases_and_duplicate_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from chipsweep.schemas.catalog import CatalogError

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("x: &x [1, 2]\nchips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 1.0, y: *x}\n")
    with pytest.raises(CatalogError, match="aliases"):
        load_catalog(str(bomb), use_env=False)
    dup = tmp_path / "dup.yaml"
    dup.write_text("chips:\n  - {id: nvidia_h100_sxm, usd_per_hour: 1.0, usd_per_hour: 9.0}\n")
    with pytest.raises(CatalogError, match="duplicate key 'usd_per_hour'"):
        load_catalog(str(dup), use_env=False)


@pytest.mark.parametrize("kind", ["inference", "training"])
def test_expert_parallelism_over_only_dense_models_is_refused_naming_ep_and_the_models(catalog, kind: str) -> None:  # type: ignore[no-untyped-def]
    """ep > 1 needs experts to spread: a sweep whose every model is dense could only write infeasible rows for it
    (issue 14: 'ep with a dense model' gets a clear error); a sweep that also has a mixture-of-experts model keeps
    the axis, and its dense rows say why they are out."""
    base = {"name": "ep-dense", "kind": kind, "axes": {"model": ["llama3_8b", "qwen3_32b"], "chip": ["nvidia_h100_sxm"],
                                                       "n_chips": [8], "ep": [1, 2, 8]}}
    if kind == "training":
        base["fixed"] = {"global_batch": 512}
    with pytest.raises(SpecError) as exc:
        validate(base, catalog)
    p = exc.value.as_dict()
    assert (p["field"], p["value"], p["message"]) == ("axes.ep", [2, 8], "no experts to spread")
    assert "mixture-of-experts" in p["allowed"] and "llama3_8b, qwen3_32b" in p["allowed"]
    mixed = dict(base, axes=dict(base["axes"], model=["llama3_8b", "qwen3_30b_a3b"]))
    assert validate(mixed, catalog).configurations == 2 * 3
    fixed = dict(base, axes={k: v for k, v in base["axes"].items() if k != "ep"})
    fixed["fixed"] = {**base.get("fixed", {}), "ep": 4}
    with pytest.raises(SpecError, match="no experts to spread"):
        validate(fixed, catalog)


def test_a_precision_no_chip_of_the_sweep_publishes_is_refused_naming_the_chips_and_what_they_have(catalog) -> None:  # type: ignore[no-untyped-def]
    """compute_precision fp4 on H100 alone was accepted: every row refused, none kept by a feasible store, and
    pareto_serving answered 0 rows without a reason; `evaluate` refuses the row. A sweep with a chip that has the
    precision keeps the axis (the others' rows say why)."""
    spec = {"name": "fp4", "kind": "inference", "axes": {"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"],
                                                         "compute_precision": ["fp4", "fp8"]}}
    with pytest.raises(SpecError) as exc:
        validate(spec, catalog)
    p = exc.value.as_dict()
    assert (p["field"], p["value"]) == ("axes.compute_precision", "fp4")
    assert "nvidia_h100_sxm" in p["message"] and p["allowed"] == "fp16, bf16, fp8, int8"
    both = dict(spec, axes={**spec["axes"], "chip": ["nvidia_h100_sxm", "nvidia_b200_hgx"]})
    assert validate(both, catalog).configurations == 4
    training = {"name": "fp4", "kind": "training", "axes": {"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"],
                                                            "n_chips": [8], "precision": ["nvfp4"]},
                "fixed": {"global_batch": 64}}
    with pytest.raises(SpecError, match="axes.precision"):
        validate(training, catalog)


@pytest.mark.parametrize("kind", ["inference", "training"])
def test_moe_columns_on_a_sweep_with_a_dense_model_are_refused_as_evaluate_refuses_the_row(catalog, kind: str) -> None:  # type: ignore[no-untyped-def]
    """moe_experts 8 on Llama 3 70B made a sweep row a mixture of experts with the other columns blank (top-1 experts
    of no width: 15.9 days for 44 of the dense model), and moe_topk 16 on Mixtral's 8 experts was clamped to 8;
    `evaluate` refuses both rows. The spec is refused naming the field, its values and the dense models."""
    base = {"name": "moe-dense", "kind": kind, "axes": {"model": ["llama3_70b"], "chip": ["nvidia_h100_sxm"],
                                                        "n_chips": [8], "moe_experts": [8]}}
    if kind == "training":
        base["fixed"] = {"global_batch": 512}
    with pytest.raises(SpecError) as exc:
        validate(base, catalog)
    p = exc.value.as_dict()
    assert (p["field"], p["value"]) == ("axes.moe_experts", [8])
    assert p["message"].startswith("llama3_70b is dense") and "mixtral_8x22b" in p["allowed"]
    mixed = dict(base, axes={k: v for k, v in base["axes"].items() if k != "moe_experts"})
    mixed["axes"]["model"] = ["mixtral_8x22b", "llama3_8b"]
    mixed["fixed"] = {**base.get("fixed", {}), "moe_topk": 2}
    with pytest.raises(SpecError, match="llama3_8b is dense"):
        validate(mixed, catalog)
    moe = dict(base, axes={**mixed["axes"], "model": ["mixtral_8x22b"], "moe_topk": [2, 16]})
    with pytest.raises(SpecError) as exc:
        validate(moe, catalog)
    p = exc.value.as_dict()
    assert (p["field"], p["value"], p["allowed"]) == ("axes.moe_topk", [16], "an integer from 1 to moe_experts (8)")
    assert validate(dict(moe, axes={**moe["axes"], "moe_topk": [1, 2]}), catalog).configurations == 2


def test_an_integer_axis_whose_steps_round_together_names_the_step(catalog) -> None:  # type: ignore[no-untyped-def]
    """A geometric n_chips axis with factor 1.0001 rounds 1, 1.0001, ... to 1, 1, ...: the refusal names the factor
    and the rounding, where it said 'duplicate value in axis' to a user who wrote no duplicate (user test)."""
    spec = {**training_spec(), "axes": {**training_spec()["axes"],
                                        "n_chips": {"geometric": {"start": 1, "stop": 1024, "factor": 1.0001}}}}
    with pytest.raises(SpecError) as info:
        resolve(parse_spec(spec), catalog)
    [p] = [p for p in info.value.problems if p.field.startswith("axes.n_chips")]
    assert p.field == "axes.n_chips.geometric.factor" and p.value == 1.0001
    assert "both round to 1 on this integer axis" in p.message and "distinct as integers" in p.allowed


def test_a_list_in_fixed_a_bad_override_and_a_bad_interval_are_told_in_plain_words() -> None:
    """pydantic's own wording leaked through: a list under `fixed` was four problems on `fixed.prompt_len.int`,
    `.float`, `.str` and `.bool` ('Input should be a valid integer', ...), an override 'Input should be a valid
    dictionary', an interval 'Input should be greater than 0'. Each is one problem on the field the user wrote, with
    what would be accepted."""
    base = {"name": "words", "kind": "inference", "axes": {"model": ["llama3_8b"], "chip": ["nvidia_h100_sxm"]}}
    with pytest.raises(SpecError) as err:
        parse_spec({**base, "fixed": {"prompt_len": [1, 2]}})
    [p] = err.value.problems
    assert (p.field, p.value, p.message) == ("fixed.prompt_len", [1, 2], "a list in fixed")
    assert "list them under axes" in p.allowed
    with pytest.raises(SpecError) as err:
        parse_spec({**base, "overrides": {"chips": [{"id": "nvidia_h100_sxm", "memory_gb": 96}]},
                    "schedule": {"interval_s": -5}})
    over, interval = err.value.problems
    assert over.field == "overrides.chips" and "overrides: {nvidia_h100_sxm: {usd_per_hour: 1.5}}" in over.allowed
    assert (interval.field, interval.value, interval.allowed) == ("schedule.interval_s", -5, "a number > 0")
    with pytest.raises(SpecError) as err:
        parse_spec({**base, "overrides": {"nvidia_h100_sxm": {"memory_gb": "lots"}}})
    [p] = err.value.problems
    assert p.field == "overrides.nvidia_h100_sxm.memory_gb" and p.allowed.startswith("a number")
    assert not any("Input should" in str(q.allowed) for q in err.value.problems)

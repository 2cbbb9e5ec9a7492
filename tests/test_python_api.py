"""The Python API: `chipsweep.evaluate`, `submit`, `query`, `sql` -- what notebooks and scripts call, and
what the CLI and HTTP call too -- and the one error family every edge renders the same way."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from fastapi.testclient import TestClient

import chipsweep
from chipsweep.schemas.errors import ChipsweepError, SpecError
from chipsweep.service.api import create_app
from chipsweep.service.cli import main as cli
from chipsweep.service.queue import Queue
from tests.conftest import training_spec

ROW = {"model": "llama3_8b", "chip": "nvidia_h100_sxm", "n_chips": 64, "global_batch": 512, "tokens": 1e11}
STATUS_KEYS = {"sweep_id", "version", "state", "configurations", "chunks_total", "chunks_done", "chunks_failed",
               "rows_written", "configs_per_s"}


def test_evaluate_takes_a_list_of_dicts_and_returns_the_cli_columns(tmp_path: Path) -> None:
    table = chipsweep.evaluate([ROW, {**ROW, "n_chips": 128}], kind="training")
    assert isinstance(table, pa.Table) and table.num_rows == 2
    steps = table.column("step_time_s").to_pylist()
    assert all(s > 0 for s in steps) and steps[1] < steps[0]  # twice the chips, a shorter step
    # the same rows through `chipsweep evaluate` give the same numbers
    csv = tmp_path / "in.csv"
    csv.write_text(",".join(ROW) + "\n" + ",".join(str(v) for v in ROW.values()) + "\n")
    assert cli(["evaluate", "--kind", "training", str(csv), "-o", str(tmp_path / "out.parquet")]) == 0
    import pyarrow.parquet as pq

    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("step_time_s")[0].as_py() == pytest.approx(steps[0], rel=1e-9)
    assert [c for c in out.column_names if c != "tokens"] == [c for c in table.column_names if c != "tokens"]


def test_evaluate_takes_an_arrow_table_and_mixed_type_columns() -> None:
    arrow = chipsweep.evaluate(pa.Table.from_pylist([ROW]), kind="training")
    mixed = chipsweep.evaluate([ROW, {**ROW, "n_chips": "64"}], kind="training")  # text and integers in one column
    assert mixed.column("step_time_s").to_pylist() == [arrow.column("step_time_s")[0].as_py()] * 2


def test_evaluate_takes_a_pandas_dataframe_when_pandas_is_installed() -> None:
    pd = pytest.importorskip("pandas", reason="pandas is optional; chipsweep does not require it")
    table = chipsweep.evaluate(pd.DataFrame([ROW]), kind="training")
    assert table.column("step_time_s")[0].as_py() > 0


def test_a_filtered_dataframes_messages_name_its_rows_by_index_label() -> None:
    """A notebook filters a DataFrame (index 5, 9, 12) and looks a message's row up with `df.loc[...]`: the
    warnings, the reasons and strict's refusals name the index label, not the position (it said 'row 3' for
    label 12). The table's rows stay in the input's order; a list of dicts, or a DataFrame indexed 0..n-1, keeps
    its 1-based positions."""
    pd = pytest.importorskip("pandas", reason="pandas is optional; chipsweep does not require it")
    frame = pd.DataFrame([ROW, ROW, {**ROW, "chip": "no_such_chip"}], index=[5, 9, 12])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = chipsweep.evaluate(frame, kind="training")
    said = [str(w.message) for w in caught if issubclass(w.category, chipsweep.RowWarning)]
    assert said and all(m.startswith("row label 12: field 'chip' = 'no_such_chip'") for m in said)
    reasons = table.column("infeasible_reason").to_pylist()
    assert reasons[:2] == ["", ""] and reasons[2].startswith("row label 12:")
    steps = table.column("step_time_s").to_pylist()
    assert steps[0] > 0 and steps[1] == steps[0] and steps[2] != steps[2]  # the bad row, NaN, in its place
    with pytest.raises(ChipsweepError) as err:
        chipsweep.evaluate(frame, kind="training", strict=True)
    assert str(err.value).startswith("row label 12:") and err.value.problems[0].message.startswith("row label 12:")
    # a refusal of an infeasible row (the serving and ASIC kinds' strict path), and a text label
    serving = pd.DataFrame([{"model": "llama3_405b", "chip": "nvidia_rtx_3090", "batch": 64}], index=["big"])
    with pytest.raises(ChipsweepError, match=r"^row label 'big': does not fit"):
        chipsweep.evaluate(serving, kind="inference", strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chipsweep.evaluate(frame.to_dict("records"), kind="training")
        chipsweep.evaluate(frame.reset_index(drop=True), kind="training")
    assert [str(w.message)[:19] for w in caught] == ["row 3: field 'chip'"] * 2


def test_a_bad_row_keeps_its_place_with_a_warning_and_strict_refuses_the_rows() -> None:
    rows = [ROW, {**ROW, "chip": "no_such_chip"}]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = chipsweep.evaluate(rows, kind="training")
    assert table.num_rows == 2 and table.column("step_time_s")[0].as_py() > 0
    reason = table.column("infeasible_reason")[1].as_py()
    assert "row 2" in reason and "'chip'" in reason and "no_such_chip" in reason
    assert any("no_such_chip" in str(w.message) for w in caught)
    with pytest.raises(ChipsweepError) as err:
        chipsweep.evaluate(rows, kind="training", strict=True)
    assert "no_such_chip" in str(err.value)


def test_a_column_evaluate_does_not_read_but_nearly_names_an_input_is_said(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """CONTRACT: columns not listed pass through untouched. A column whose name comes close to an input
    (`concurency`), is a synonym users reach for (`weight_precision`, `tp` on a serving row) or is another kind's
    input (`concurrency` on a training row) would leave every row at the default without a word: a ColumnWarning
    names it and what it may have meant, and the CLI prints it. A pass-through label (`case_id`) stays silent, and
    the rows run exactly as without the column."""
    row = {"model": "llama3_8b", "chip": "nvidia_rtx_4090", "n_chips": 1, "concurrency": 4}
    given = {**row, "weight_precision": "int4", "tp": 2, "concurency": 8, "case_id": "a"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = chipsweep.evaluate([given], kind="inference")
        plain = chipsweep.evaluate([row], kind="inference")
    notes = [str(w.message) for w in caught if issubclass(w.category, chipsweep.ColumnWarning)]
    assert len(notes) == 3, notes
    weight, tp, typo = notes
    assert weight.startswith("column 'weight_precision' is not an input of kind inference") and "weight_bits" in weight
    assert "'tp'" in tp and "n_chips" in tp and "'concurency'" in typo and "did you mean concurrency?" in typo
    assert out.column("weight_bits").to_pylist() == [16]  # the default: the column was not read
    assert out.column("tpot_s").to_pylist() == plain.column("tpot_s").to_pylist()
    assert out.column("case_id").to_pylist() == ["a"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chipsweep.evaluate([{**ROW, "concurrency": 3, "label": "x"}], kind="training")
    notes = [str(w.message) for w in caught if issubclass(w.category, chipsweep.ColumnWarning)]
    assert notes == ["column 'concurrency' is not an input of kind training: it passes through untouched and every "
                     "row runs as if it were absent (it is an input of kind inference)"]
    with warnings.catch_warnings(record=True) as caught:  # a catalog model's field is not a row column
        warnings.simplefilter("always")
        chipsweep.evaluate([{**ROW, "model": "deepseek_v3", "moe_groups": 4}], kind="training")
    notes = [str(w.message) for w in caught if issubclass(w.category, chipsweep.ColumnWarning)]
    assert len(notes) == 1 and "'moe_groups'" in notes[0] and "field of a catalog model entry" in notes[0], notes
    # strict refuses what it would only warn of (a misspelt optional column ran every row at the default)
    with pytest.raises(ChipsweepError, match="column 'golbal_batch' is not an input of kind training") as err:
        chipsweep.evaluate([{**ROW, "golbal_batch": 256}], kind="training", strict=True)
    assert err.value.field == "golbal_batch"
    assert chipsweep.evaluate([{**ROW, "case_id": "a"}], kind="training", strict=True).column("fits").to_pylist() == [True]
    csv = tmp_path / "rows.csv"
    csv.write_text("model,chip,n_chips,weight_precision\nllama3_8b,nvidia_rtx_4090,1,int4\n")
    assert cli(["evaluate", "--kind", "inference", str(csv), "-o", str(tmp_path / "out.csv")]) == 0
    assert "column 'weight_precision' is not an input of kind inference" in capsys.readouterr().err


@pytest.mark.parametrize(("rows", "kind", "field"), [
    ([ROW], "trainning", "kind"),
    ({"model": "llama3_8b"}, "training", "rows"),
    ("model,chip", "training", "rows"),
    ([ROW, 3], "training", "rows[1]"),
])
def test_evaluate_refuses_bad_arguments_naming_the_field(rows: object, kind: str, field: str) -> None:
    with pytest.raises(ChipsweepError) as err:
        chipsweep.evaluate(rows, kind=kind)
    assert err.value.field == field and err.value.allowed


def test_inference_and_asic_kinds_evaluate_too() -> None:
    inf = chipsweep.evaluate([{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "batch": 8, "prompt_len": 512,
                               "gen_len": 128}], kind="inference")
    assert inf.column("decode_tokens_per_s")[0].as_py() > 0
    asic = chipsweep.evaluate([{"node_nm": 7, "n_mac": 4096, "clock_ghz": 1.0, "sram_mb": 16, "dram": "lpddr5",
                                "dram_bus_bits": 64, "precision": "int8", "model": "llama3_8b", "weight_bits": 8,
                                "prompt_len": 128, "gen_len": 128, "batch": 1}], kind="asic")
    assert asic.column("unit_cost_usd")[0].as_py() > 0


@pytest.mark.usefixtures("ray_local")
def test_submit_runs_a_sweep_and_query_and_sql_read_its_lake(home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(training_spec("api-sweep")))
    status = chipsweep.submit(spec)  # a path; waits
    assert set(status) >= STATUS_KEYS
    assert status["state"] == "done" and status["chunks_done"] == status["chunks_total"]
    assert status["configurations"] == 6912 and status["rows_written"] == 6912
    counted = chipsweep.sql("SELECT count(*) AS n FROM latest_training WHERE sweep = 'api-sweep'")
    assert counted.column("n")[0].as_py() == 6912
    front = chipsweep.query("pareto_training", model="llama3_8b", sweep="api-sweep")
    assert 0 < front.num_rows < 6912 and "time_to_train_days" in front.column_names
    # the same saved query through the CLI prints the same rows
    assert cli(["query", "pareto_training", "--param", "model=llama3_8b", "--param", "sweep=api-sweep",
                "--format", "json"]) == 0


def test_submit_without_wait_only_queues_the_sweep(home) -> None:  # type: ignore[no-untyped-def]
    status = chipsweep.submit(training_spec("queued-only"), wait=False)
    assert status["state"] == "queued" and status["chunks_done"] == 0
    assert Queue(home.queue_path).sweep("queued-only").state == "queued"


def test_a_refused_spec_queues_nothing_and_names_every_bad_field(home) -> None:  # type: ignore[no-untyped-def]
    bad = training_spec("refused")
    bad["axes"]["chip"] = ["nvidia_h100_sxm", "no_such_chip"]
    bad["axes"]["tp"] = [1, 0]
    with pytest.raises(SpecError) as err:
        chipsweep.submit(bad)
    fields = {p.field for p in err.value.problems}
    assert {"axes.chip[1]", "axes.tp[1]"} <= fields
    assert Queue(home.queue_path).sweeps() == []


def test_one_error_renders_the_same_at_every_edge(home, capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An unknown chip in a spec: the Python exception, the CLI's exit 2 and the HTTP 422 body name the
    same field, value and allowed values."""
    bad = training_spec("same-error")
    bad["axes"]["chip"] = ["no_such_chip"]
    with pytest.raises(SpecError) as err:
        chipsweep.submit(bad, wait=False)
    py = err.value.as_dict()

    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(bad))
    assert cli(["submit", str(spec), "--json", "--no-run"]) == 2
    cli_body = json.loads(capsys.readouterr().err.splitlines()[0])

    with TestClient(create_app(home, dispatch=False)) as client:
        r = client.post("/sweeps", content=spec.read_bytes(), headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422
    for body in (cli_body, r.json()):
        assert {k: body[k] for k in ("field", "value", "allowed")} == {k: py[k] for k in ("field", "value", "allowed")}
    assert py["field"] == "axes.chip[0]" and py["value"] == "no_such_chip" and py["allowed"].startswith("catalog chip ids")
    # a near miss is answered with the ids it was probably meant to be, first
    bad["axes"]["chip"] = ["nvidia_h100_sx"]
    with pytest.raises(SpecError) as err:
        chipsweep.submit(bad, wait=False)
    assert "closest: nvidia_h100_sxm" in err.value.as_dict()["allowed"]


def test_every_layers_error_is_a_chipsweep_error() -> None:
    from chipsweep.lake import LakeError
    from chipsweep.queries.errors import QueryError
    from chipsweep.schemas.catalog import CatalogError
    from chipsweep.service.queue import QueueError
    from chipsweep.service.settings import SettingsError
    from chipsweep.workers.evaluate import EvaluateError

    for cls in (SpecError, CatalogError, EvaluateError, LakeError, QueryError, QueueError, SettingsError):
        assert issubclass(cls, ChipsweepError), cls
    with pytest.raises(ChipsweepError) as err:
        chipsweep.sql("DELETE FROM training")
    assert err.value.field == "sql" and err.value.http_status == 400


def test_the_progress_bar_draws_the_end_once_and_closes(capsys) -> None:  # type: ignore[no-untyped-def]
    """`submit --wait`'s bar stops when the sweep is over: Ray's shutdown after the last chunk took ~3 s, and the
    bar kept redrawing at 100 % through it, its rate falling."""
    from chipsweep.service.cli.progress import Progress

    def status(done: int, state: str) -> dict[str, object]:
        return {"sweep_id": "bar", "version": 1, "configurations": 10, "configurations_done": done, "state": state,
                "chunks_done": done // 5, "chunks_total": 2, "chunks_failed": 0, "rows_written": done}

    bar = Progress(status(0, "running"), enabled=True)
    bar.update(status(5, "running"))
    assert bar.bar is not None
    bar.update(status(10, "done"))
    assert bar.bar is None  # closed at the end
    drawn = capsys.readouterr().err
    assert "10/10" in drawn and "chunks 2/2" in drawn
    bar.update(status(10, "done"))  # the ticks that come while Ray shuts down draw nothing
    assert not bar.due()
    assert capsys.readouterr().err == ""


def test_dir_lists_the_lazily_loaded_api() -> None:
    """The API loads on first use, so `dir(chipsweep)` (a notebook's tab completion) showed none of it."""
    assert set(chipsweep.__all__) <= set(dir(chipsweep))



def test_a_result_fed_back_never_keeps_its_old_outputs_on_a_row_refused_now() -> None:
    """A notebook edits a result and evaluates it again: a row now refused kept `fits` true and the old speed and
    cost beside its refusal (the refused row's given cells were restored, outputs too), and the output columns
    themselves drew ColumnWarnings ('global_batch_run ... did you mean global_batch?')."""
    import pandas as pd

    first = chipsweep.evaluate([ROW]).to_pandas()
    assert bool(first.loc[0, "fits"]) and first.loc[0, "tokens_per_s"] > 0
    edited = first.copy()
    edited.loc[0, "chip"] = "nvidia_h100_smx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = chipsweep.evaluate(edited).to_pylist()[0]
    assert again["fits"] is None and again["infeasible_reason"].startswith("row 1: field 'chip'")
    assert all(again[c] is None or again[c] != again[c] for c in ("tokens_per_s", "cost_usd", "time_to_train_days"))
    assert again["chip"] == "nvidia_h100_smx"  # what the user gave stays beside the message
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", chipsweep.RowWarning)
        owned = chipsweep.evaluate([{**ROW, "chip": "nvidia_h100_smx", "cost_basis": "owned"}]).to_pylist()[0]
    assert owned["fits"] is None and owned["cost_basis"] == "owned"  # an input too: the basis the row asked for
    assert not [w for w in caught if issubclass(w.category, chipsweep.ColumnWarning)], [str(w.message) for w in caught]
    serving = chipsweep.evaluate([{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "n_chips": 1, "concurrency": 8}],
                                 kind="inference").to_pandas()
    serving.loc[0, "engine"] = "vlm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = chipsweep.evaluate(serving, kind="inference").to_pylist()[0]
    assert row["fits"] is None and row["tpot_s"] != row["tpot_s"] and "engine" in row["infeasible_reason"]
    # a DataFrame column of mixed types is read as a list of dicts reads it (it raised pyarrow's ArrowInvalid)
    mixed = chipsweep.evaluate(pd.DataFrame([{**ROW, "tp": 2}, {**ROW, "tp": "4"}]))
    assert mixed.column("tp").to_pylist() == [2, 4] and mixed.column("fits").to_pylist() == [True, True]


def test_a_sweep_submitted_without_waiting_is_polled_cancelled_and_resumed_from_the_package(home) -> None:  # type: ignore[no-untyped-def]
    """`chipsweep.status`, `wait`, `cancel` and `resume` were only in chipsweep.service.python_api: a notebook that
    submitted with wait=False could not poll or finish its sweep. A spec built with numpy values and ranges is taken
    as YAML's plain numbers and lists are (np.int64(64) was 'not a finite number')."""
    import numpy as np

    spec = training_spec("nb-poll")
    spec["axes"]["n_chips"] = np.array([32, 64])
    spec["axes"]["tp"] = [np.int64(1), np.int64(2)]
    spec["axes"]["micro_batch"] = range(1, 3)
    queued = chipsweep.submit(spec, wait=False)
    assert queued["state"] == "queued" and chipsweep.status("nb-poll")["state"] == "queued"
    assert chipsweep.cancel("nb-poll")["state"] == "cancelled"
    done = chipsweep.resume("nb-poll", wait=False)
    assert done["state"] == "queued"
    final = chipsweep.wait("nb-poll")
    assert final["state"] == "done" and final["configurations"] == 4 * 3 * 2 * 2 * 4 * 2 * 2
    assert set(chipsweep.__all__) >= {"status", "wait", "cancel", "resume", "beyond_limits"}
    # a list parameter is the comma-separated text the saved queries take
    front = chipsweep.query("pareto_training", model="llama3_8b", sweep="nb-poll",
                            objectives=["time_to_train_days", "energy_mwh"])
    assert front.num_rows >= 1 and "energy_mwh" in front.column_names
    near = chipsweep.beyond_limits("pareto_training", {"model": "llama3_8b", "sweep": "nb-poll", "max_days": 1e-6})
    assert near and near[0].startswith("no row meets max_days = 1e-06: the best time_to_train_days without it is")

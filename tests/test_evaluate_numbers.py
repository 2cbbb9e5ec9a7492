"""`evaluate` rows: every number finite and within the type it is stored in (workers/parse.py
`numbers`), one bad row named with its field and value, the other rows still evaluated."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

import chipsweep
from chipsweep.service.cli import main as cli

GOOD = "llama3_8b,nvidia_h100_sxm,64,512,1e12"


def test_a_csv_with_1e30_chips_and_nan_or_inf_tokens_names_those_rows_and_runs_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("model,chip,n_chips,global_batch,tokens\n" + "\n".join([
        GOOD,
        "llama3_8b,nvidia_h100_sxm,1e30,512,1e12",
        "llama3_8b,nvidia_h100_sxm,64,512,nan",
        "llama3_8b,nvidia_h100_sxm,64,512,inf",
        "llama3_8b,nvidia_h100_sxm,64,512,",  # blank: "choose for me" (the default tokens)
        GOOD,
    ]) + "\n")
    out = tmp_path / "out.csv"
    assert cli(["evaluate", "--kind", "training", str(src), "-o", str(out)]) == 0
    t = pacsv.read_csv(out)
    reasons = t.column("infeasible_reason").to_pylist()
    steps = t.column("step_time_s").to_pylist()
    assert "row 2: field 'n_chips' = '1e30'" in reasons[1] and "int32" in reasons[1]
    assert "row 3: field 'tokens' = 'nan'" in reasons[2] and "nan and infinities are not numbers" in reasons[2]
    assert "row 4: field 'tokens' = 'inf'" in reasons[3]
    assert steps[0] is not None and steps[4] is not None and steps[5] is not None
    assert steps[1] is None and steps[2] is None and steps[3] is None


def test_the_python_api_names_an_overflowing_row_and_evaluates_the_others() -> None:
    rows = [{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "n_chips": n, "global_batch": 512, "tokens": 1e12}
            for n in (64, 1e30, 128)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = chipsweep.evaluate(rows, kind="training")
    assert any("row 2: field 'n_chips'" in str(w.message) for w in caught)
    reasons = table.column("infeasible_reason").to_pylist()
    assert reasons[0] == "" and "n_chips" in reasons[1] and reasons[2] == ""


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_strict_evaluate_refuses_a_non_finite_cell_naming_row_field_and_value(value: str) -> None:
    rows = [{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "n_chips": 64, "global_batch": 512, "tokens": value}]
    with pytest.raises(chipsweep.ChipsweepError) as err:
        chipsweep.evaluate(rows, kind="training", strict=True)
    assert err.value.field == "tokens" and "row 1" in str(err.value) and value in str(err.value)


def test_a_training_row_without_seq_len_runs_at_the_models_pre_training_sequence_not_its_context() -> None:
    """Qwen3 pre-trained 35 of its 36T tokens at 4,096 tokens and only then extended its context to 32,768 (catalog
    `train_seq_len`): a row that gives no seq_len runs, and reports, 4,096; one that gives 32,768 runs at it, its
    attention and activations 8x longer. Serving keeps the 32,768 context: a longer prompt is a beyond-context
    variant, a 30,000-token one is not."""
    base = {"model": "qwen3_30b_a3b", "chip": "nvidia_h100_sxm", "n_chips": 16, "tp": 1, "pp": 1, "ep": 16,
            "global_batch": 1024, "micro_batch": 1, "recompute": "full", "precision": "fp8"}
    rows = chipsweep.evaluate([base, {**base, "seq_len": 4096}, {**base, "seq_len": 32768}], kind="training").to_pylist()
    default, short, long = rows
    assert default["seq_len"] == 4096 and long["seq_len"] == 32768
    assert default["tokens_per_s"] == pytest.approx(short["tokens_per_s"], rel=1e-12)
    assert long["tokens_per_s"] < 0.8 * default["tokens_per_s"]  # causal attention over 8x the tokens
    serve = {"model": "qwen3_8b", "chip": "nvidia_h100_sxm", "gen_len": 500}
    near, beyond = chipsweep.evaluate([{**serve, "prompt_len": 30000}, {**serve, "prompt_len": 33000}],
                                      kind="inference").to_pylist()
    assert "beyond the model's context" not in (near["notes"] or "")
    assert "beyond the model's context" in beyond["notes"]


def test_a_json_input_is_read_as_rows_and_a_list_of_anything_else_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A .json input was read as CSV: a header of 'n_chips:8'-like names, 0 rows written, exit 0. It is a list of row
    objects now (the same cells as the CSV's), evaluated as the same rows in CSV are; anything else is refused."""
    rows = [{"model": "llama3_8b", "chip": "nvidia_h100_sxm", "n_chips": 1, "prompt_len": 512, "gen_len": 128,
             "disaggregated": False},
            {"model": "llama3_8b", "chip": "nvidia_rtx_4090", "weight_bits": 4, "prompt_len": 512, "gen_len": 128}]
    src, out, csv_src, csv_out = (tmp_path / n for n in ("r.json", "r.csv", "c.csv", "c_out.csv"))
    src.write_text(json.dumps(rows))
    csv_src.write_text("model,chip,n_chips,prompt_len,gen_len,disaggregated,weight_bits\n"
                       "llama3_8b,nvidia_h100_sxm,1,512,128,false,\nllama3_8b,nvidia_rtx_4090,,512,128,,4\n")
    assert cli(["evaluate", "--kind", "inference", str(src), "-o", str(out)]) == 0
    assert cli(["evaluate", "--kind", "inference", str(csv_src), "-o", str(csv_out)]) == 0
    got, want = (pacsv.read_csv(p).to_pylist() for p in (out, csv_out))
    assert len(got) == 2 and [r["output_tokens_per_s"] for r in got] == [r["output_tokens_per_s"] for r in want]
    (tmp_path / "bad.json").write_text("[1, 2]")
    capsys.readouterr()
    assert cli(["evaluate", "--kind", "inference", str(tmp_path / "bad.json"), "-o", str(out)]) == 2
    assert "a JSON input is a list of row objects" in capsys.readouterr().err

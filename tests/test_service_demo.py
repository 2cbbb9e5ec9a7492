"""`chipsweep demo`, the README's main command: over a million configurations through the service on
the local default, then both frontiers printed (from the saved queries, and without them)."""

from __future__ import annotations

import pytest

from chipsweep.service import demo

pytestmark = pytest.mark.usefixtures("ray_local")


def test_demo_sweeps_a_million_configurations_and_prints_both_frontiers(home, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert demo.main() == 0
    out = capsys.readouterr().out
    total = int(out.split(" configurations in ")[0].rsplit("\n", 1)[-1].replace(",", ""))
    assert total >= 1_000_000
    assert out.count(" done ") == 3
    assert "Training frontier" in out and "-- gpt3_175b:" in out and "-- llama3_70b:" in out
    assert "Edge frontier for llama3_8b" in out and "frontier designs" in out

    monkeypatch.setattr(demo, "_saved", lambda *a, **k: None)  # without the queries package
    assert demo.main() == 0
    out = capsys.readouterr().out
    assert "(DuckDB over the lake)" in out and "frontier designs (DuckDB over the lake)" in out
